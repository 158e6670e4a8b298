"""Crash-safe on-disk chain: SQLite through sqlite-utils, WAL, synchronous=FULL.

One SQLite transaction per block holds the block's raw signed bytes, each raw tx, the
block's state diff (kept so the block can be undone) and the new state rows. A process
killed at any instant reopens at the last fully applied block: SQLite's journal makes
the transaction all-or-nothing, and nothing is kept outside it.

Tables: meta (genesis, schema), blocks (height, id, slot, raw, diff), txs (height,
idx, id, raw), state (tbl, key, value) with keys and values in the state's canonical
tuple encoding.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from .errors import StoreError
from .genesis import Genesis, decode_genesis
from .state import LedgerState, StateDiff, decode_tuple, encode_tuple
from .wire import tx_id

SCHEMA_VERSION = 1
DB_NAME = "chain.db"


class ChainStore:
    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(self.data_dir / DB_NAME)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._create()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open chain store in {self.data_dir}: {exc}") from None

    def _create(self) -> None:
        with self.db.atomic():
            self.db["meta"].create({"key": str, "value": bytes}, pk="key", if_not_exists=True)
            self.db["blocks"].create(
                {"height": int, "id": bytes, "slot": int, "raw": bytes, "diff": bytes},
                pk="height", if_not_exists=True,
            )
            self.db["txs"].create(
                {"height": int, "idx": int, "id": bytes, "raw": bytes}, pk=("height", "idx"), if_not_exists=True
            )
            self.db["state"].create({"tbl": str, "key": bytes, "value": bytes}, pk=("tbl", "key"), if_not_exists=True)
            if not self.db["meta"].count_where("key = ?", ["schema"]):
                self.db["meta"].insert({"key": "schema", "value": bytes([SCHEMA_VERSION])})
        schema = self._meta("schema")
        if schema != bytes([SCHEMA_VERSION]):
            raise StoreError(f"chain store schema {schema!r} is not the supported {SCHEMA_VERSION}")

    def _meta(self, key: str) -> bytes | None:
        rows = list(self.db.query("select value from meta where key = ?", [key]))
        return rows[0]["value"] if rows else None

    # --- genesis ------------------------------------------------------------------------

    def bind(self, genesis: Genesis) -> None:
        """Record the genesis on first use; refuse a store that belongs to another cluster."""
        stored = self._meta("genesis")
        if stored is None:
            self._write(lambda: self.db["meta"].insert({"key": "genesis", "value": genesis.encoded}))
        elif stored != genesis.encoded:
            raise StoreError(f"{self.data_dir} holds a different cluster's chain (genesis differs)")

    def genesis(self) -> Genesis:
        stored = self._meta("genesis")
        if stored is None:
            raise StoreError(f"{self.data_dir} holds no chain (no genesis)")
        return decode_genesis(stored)

    # --- the validator's finality lock (docs/PROTOCOL.md §6.2 H2) -----------------------

    def lock(self) -> int:
        """The highest justified slot of any block this validator signed (-1: none)."""
        stored = self._meta("lock")
        return int.from_bytes(stored, "big", signed=True) if stored is not None else -1

    def set_lock(self, slot: int) -> None:
        """Keep the lock before the block that raised it goes on air."""
        value = slot.to_bytes(8, "big", signed=True)
        self._write(lambda: self.db["meta"].upsert({"key": "lock", "value": value}, pk="key"))

    # --- blocks -------------------------------------------------------------------------

    def head(self) -> tuple[int, bytes, int] | None:
        rows = list(self.db.query("select height, id, slot from blocks order by height desc limit 1"))
        return (rows[0]["height"], rows[0]["id"], rows[0]["slot"]) if rows else None

    def load_into(self, state: LedgerState) -> tuple[int, bytes, int] | None:
        """Fill `state` with the stored state rows; return the stored head (or None)."""
        for row in self.db.query("select tbl, key, value from state"):
            if row["tbl"] not in state.tables:
                raise StoreError(f"chain store has rows of unknown state table {row['tbl']!r}")
            state.load(row["tbl"], decode_tuple(row["key"]), decode_tuple(row["value"]))
        return self.head()

    def append(self, applied) -> None:
        """Persist one applied block, its txs and its state diff in one transaction."""
        block = applied.block
        h = block.header

        def write():
            self.db["blocks"].insert(
                {"height": h.height, "id": applied.id, "slot": h.slot, "raw": block.raw, "diff": applied.diff.encode()}
            )
            self.db["txs"].insert_all(
                [{"height": h.height, "idx": i, "id": tx_id(raw), "raw": raw} for i, raw in enumerate(block.txs)]
            )
            self._apply_rows(applied.diff, new=True)

        self._write(write)

    def truncate(self, height: int) -> list[StateDiff]:
        """Remove blocks above `height` (fork choice), undoing their state rows; returns the
        removed blocks' diffs, newest first, for the in-memory state to undo too."""
        rows = list(self.db.query("select height, diff from blocks where height > ? order by height desc", [height]))
        diffs = [StateDiff.decode(r["diff"]) for r in rows]

        def write():
            for diff in diffs:
                self._apply_rows(diff, new=False)
            self.db.execute("delete from txs where height > ?", [height])
            self.db.execute("delete from blocks where height > ?", [height])

        self._write(write)
        return diffs

    def _apply_rows(self, diff: StateDiff, *, new: bool) -> None:
        for (table, key), (old, after) in diff.changes.items():
            value = after if new else old
            k = encode_tuple(key)
            if value is None:
                self.db.execute("delete from state where tbl = ? and key = ?", [table, k])
            else:
                self.db["state"].upsert({"tbl": table, "key": k, "value": encode_tuple(value)}, pk=("tbl", "key"))

    def _write(self, fn) -> None:
        try:
            with self.db.atomic():
                fn()
        except sqlite3.Error as exc:
            raise StoreError(f"chain store write failed, nothing was kept: {exc}") from None

    def raw_blocks(self, from_height: int = 1):
        """(height, id, raw) of stored blocks from `from_height` on, in order."""
        for row in self.db.query("select height, id, raw from blocks where height >= ? order by height", [from_height]):
            yield row["height"], row["id"], row["raw"]

    def raw_block(self, height: int) -> bytes | None:
        rows = list(self.db.query("select raw from blocks where height = ?", [height]))
        return rows[0]["raw"] if rows else None

    def close(self) -> None:
        self.db.close()
