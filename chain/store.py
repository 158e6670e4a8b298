"""Crash-safe on-disk chain: SQLite through sqlite-utils, WAL, synchronous=FULL.

The store holds the finalized chain only (docs/PROTOCOL.md §10). One SQLite transaction
per block holds the block's raw signed bytes and the state rows it changed. A process
killed at any instant reopens at the last fully applied block: SQLite's journal makes
the transaction all-or-nothing, and nothing is kept outside it.

Tables (schema 2): meta (genesis, schema, lock), blocks (height, id, slot, raw), state
(tbl, key, value) with keys and values in the state's canonical tuple encoding. Each
transaction is stored once, inside its block's raw bytes (what was signed, and what
`verify` re-checks); readers decode blocks. A finalized block is never undone, so no undo
data is kept. Schema 1 also kept every tx again (a `txs` table) and each block's state
diff: opening one for writing upgrades it in one transaction (then VACUUM); opening it
read-only reads it as it is, its extra table and column unread.

`ChainStore(data_dir, read_only=True)` opens an existing store with SQLite's `mode=ro`:
it creates no directory, never writes chain.db (SQLite may add its empty -wal/-shm
companions) and reads beside a running node (WAL); `snapshot()` holds one consistent
view for several reads. Opening or reading a missing, truncated, random, foreign or
newer file raises a one-line `StoreError`, never an sqlite3 error.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from .errors import ChainError, StoreError
from .genesis import Genesis, decode_genesis
from .state import LedgerState, decode_tuple, encode_tuple

SCHEMA_VERSION = 2
DB_NAME = "chain.db"


def _line(problem: object) -> str:
    """A message on one line (SQLite's and construct's may span several)."""
    return " ".join(str(problem).split()) or type(problem).__name__


class ChainStore:
    def __init__(self, data_dir: str | Path, *, read_only: bool = False):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.read_only = read_only
        if read_only and not self.path.is_file():
            raise StoreError(f"{self.data_dir} holds no chain store ({DB_NAME} not found)")
        try:
            if read_only:
                conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
            else:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open chain store {self.path}: {_line(exc)}") from None
        try:
            self.db = sqlite_utils.Database(conn)
            self._open()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open chain store {self.path}: {_line(exc)}") from None
            raise

    def _open(self) -> None:
        """Check what the file holds before anything is written to it: nothing (a new
        store), or a chain store of a schema this code reads."""
        tables = set(self.db.table_names())
        if not tables and not self.read_only:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            with self.db.atomic():
                self.db["meta"].create({"key": str, "value": bytes}, pk="key")
                self.db["blocks"].create({"height": int, "id": bytes, "slot": int, "raw": bytes}, pk="height")
                self.db["state"].create({"tbl": str, "key": bytes, "value": bytes}, pk=("tbl", "key"))
                self.db["meta"].insert({"key": "schema", "value": bytes([SCHEMA_VERSION])})
            return
        stored = self._meta("schema") if {"meta", "blocks", "state"} <= tables else None
        if not isinstance(stored, bytes) or len(stored) != 1:
            raise StoreError(f"{self.path} is not a BlockIoT chain store")
        schema = stored[0]
        if schema > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has chain store schema {schema}, newer than the {SCHEMA_VERSION} "
                             "this blockiot reads: upgrade blockiot")
        if schema < 1:
            raise StoreError(f"{self.path} has unknown chain store schema {schema}")
        if self.read_only:
            return
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        if schema == 1:
            with self.db.atomic():
                self.db.execute("DROP TABLE IF EXISTS txs")
                self.db.execute("ALTER TABLE blocks DROP COLUMN diff")
                self.db["meta"].upsert({"key": "schema", "value": bytes([SCHEMA_VERSION])}, pk="key")
            self.db.execute("VACUUM")

    # --- reading ------------------------------------------------------------------------

    def _rows(self, sql: str, params=()):
        """The rows of a query, every sqlite3 error (also one met while iterating) a StoreError."""
        try:
            yield from self.db.query(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read chain store {self.path}: {_line(exc)}") from None

    def _one(self, sql: str, params=()):
        return next(self._rows(sql, params), None)

    def _meta(self, key: str):
        row = self._one("select value from meta where key = ?", [key])
        return row["value"] if row else None

    @contextmanager
    def snapshot(self):
        """Hold one read transaction: reads inside see one state of the store, also while
        a node appends blocks to it."""
        try:
            with self.db.atomic():
                self._meta("schema")  # a deferred transaction's view starts at its first read
                yield self
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read chain store {self.path}: {_line(exc)}") from None

    def check_integrity(self) -> None:
        """SQLite's own check of the file (page structure, not chain content)."""
        problems = [row["quick_check"] for row in self._rows("PRAGMA quick_check(1)")]
        if problems != ["ok"]:
            raise StoreError(f"{self.path} is corrupt: {_line('; '.join(map(str, problems)))}")

    # --- genesis ------------------------------------------------------------------------

    def bind(self, genesis: Genesis) -> None:
        """Record the genesis on first use (read-only: only compare); refuse a store that
        belongs to another cluster."""
        stored = self._meta("genesis")
        if stored is None and not self.read_only:
            self._write(lambda: self.db["meta"].insert({"key": "genesis", "value": genesis.encoded}))
        elif stored != genesis.encoded:
            self.genesis()  # the clearer error when there is none, or it is unreadable
            raise StoreError(f"{self.data_dir} holds a different cluster's chain (genesis differs)")

    def genesis(self) -> Genesis:
        stored = self._meta("genesis")
        if stored is None:
            raise StoreError(f"{self.data_dir} holds no chain (no genesis)")
        try:
            return decode_genesis(_blob(stored, "genesis", None))
        except ChainError as exc:
            raise StoreError(f"{self.path} holds an unreadable genesis: {exc}") from None

    # --- the validator's finality lock (docs/PROTOCOL.md §6.2 H2) -----------------------

    def lock(self) -> int:
        """The highest justified slot of any block this validator signed (-1: none)."""
        stored = self._meta("lock")
        return int.from_bytes(_blob(stored, "lock", None), "big", signed=True) if stored is not None else -1

    def set_lock(self, slot: int) -> None:
        """Keep the lock before the block that raised it goes on air."""
        value = slot.to_bytes(8, "big", signed=True)
        self._write(lambda: self.db["meta"].upsert({"key": "lock", "value": value}, pk="key"))

    # --- blocks -------------------------------------------------------------------------

    def head(self) -> tuple[int, bytes, int] | None:
        row = self._one("select height, id, slot from blocks order by height desc limit 1")
        return (row["height"], _blob(row["id"], "id", row["height"]), row["slot"]) if row else None

    def load_into(self, state: LedgerState) -> tuple[int, bytes, int] | None:
        """Fill `state` with the stored state rows; return the stored head (or None)."""
        for row in self._rows("select tbl, key, value from state"):
            if row["tbl"] not in state.tables:
                raise StoreError(f"chain store has rows of unknown state table {row['tbl']!r}")
            try:
                key, value = (decode_tuple(_blob(row[c], f"state {c}", None)) for c in ("key", "value"))
            except ChainError as exc:
                raise StoreError(f"chain store has an unreadable {row['tbl']} state row: {exc}") from None
            state.load(row["tbl"], key, value)
        return self.head()

    def append(self, applied) -> None:
        """Persist one applied block and the state rows it changed, in one transaction."""
        block = applied.block
        h = block.header

        def write():
            self.db["blocks"].insert({"height": h.height, "id": applied.id, "slot": h.slot, "raw": block.raw})
            for (table, key), (_old, new) in applied.diff.changes.items():
                k = encode_tuple(key)
                if new is None:
                    self.db.execute("delete from state where tbl = ? and key = ?", [table, k])
                else:
                    self.db["state"].upsert({"tbl": table, "key": k, "value": encode_tuple(new)}, pk=("tbl", "key"))

        self._write(write)

    def _write(self, fn) -> None:
        try:
            with self.db.atomic():
                fn()
        except sqlite3.Error as exc:
            raise StoreError(f"chain store write failed, nothing was kept: {_line(exc)}") from None

    def raw_blocks(self, from_height: int = 1, *, newest_first: bool = False):
        """(height, id, raw) of stored blocks from `from_height` on, in height order (the
        head first with `newest_first`)."""
        order = "desc" if newest_first else "asc"
        for row in self._rows(f"select height, id, raw from blocks where height >= ? order by height {order}", [from_height]):
            yield row["height"], _blob(row["id"], "id", row["height"]), _blob(row["raw"], "raw", row["height"])

    def headers(self, from_height: int = 1):
        """(height, id, slot) of stored blocks from `from_height` on, in order (no raw bytes read)."""
        for row in self._rows("select height, id, slot from blocks where height >= ? order by height", [from_height]):
            yield row["height"], _blob(row["id"], "id", row["height"]), row["slot"]

    def block(self, height: int) -> tuple[bytes, bytes] | None:
        """(id, raw) of the block at `height`, or None."""
        row = self._one("select id, raw from blocks where height = ?", [height])
        return (_blob(row["id"], "id", height), _blob(row["raw"], "raw", height)) if row else None

    def height_from_slot(self, slot: int) -> int | None:
        """The lowest height whose block's slot is >= `slot` (None: none); slots grow with
        heights, so a binary search over the primary key, not a scan."""
        head = self.head()
        if head is None or head[2] < slot:
            return None
        lo, hi = 1, head[0]
        while lo < hi:
            mid = (lo + hi) // 2
            row = self._one("select slot from blocks where height = ?", [mid])
            if row is None:
                raise StoreError(f"chain store {self.path} misses block {mid}")
            lo, hi = (mid + 1, hi) if row["slot"] < slot else (lo, mid)
        return lo

    def close(self) -> None:
        self.db.close()


def _blob(value, column: str, height: int | None) -> bytes:
    """A BLOB column's value; anything else is a damaged store."""
    if not isinstance(value, bytes):
        where = f" of block {height}" if height is not None else ""
        raise StoreError(f"chain store column {column}{where} holds {type(value).__name__}, not bytes")
    return value


class StoredChain:
    """The finalized chain a `ChainStore` holds, read on demand: the `FinalizedBlocks`
    (chain/consensus/finalized.py) of a node with a disk. Its runtime appends each
    `Output.persist` block to the same store, so `add` has nothing to do."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store

    def __len__(self) -> int:
        head = self.store.head()
        return head[0] if head else 0

    def __iter__(self):
        return self.store.raw_blocks()

    def headers(self):
        return self.store.headers()

    def block(self, height: int) -> tuple[bytes, bytes] | None:
        return self.store.block(height)

    def add(self, height: int, block_id: bytes, slot: int, raw: bytes) -> None:
        """Nothing: the runtime stores `Output.persist` itself."""
