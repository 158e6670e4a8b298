"""`blockiot chain blocks|block N|txs|readings|members|commands`: the chain a data dir
holds, as aligned tables (`--json`, `--csv`), with members and sensors by name and
readings in their units.

The store is opened read-only (SQLite `mode=ro`, one snapshot per command): these views
work on a stopped data dir and beside a running node, change nothing, and create no
data dir. Block time = genesis time + slot x slot length, printed in UTC (ISO 8601).
`--since` takes a height or an ISO time (UTC unless it names its offset); `--limit N`
keeps the newest N rows, reading the chain from its head down only as far as needed.
"""
from __future__ import annotations

import argparse
import json
import math
from datetime import datetime, timezone
from pathlib import Path

from blockiot.chain.errors import DecodeError, StoreError
from blockiot.chain.genesis import Genesis
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import (
    SENSOR_UNITS, Action, Command, ContractDeploy, Data, EquivocationProof, Reading, Sensor, TxKind,
    decode_block, decode_tx,
)
from blockiot.tools.cli import UserError
from blockiot.tools.options import non_negative_int, positive_int
from blockiot.tools.table import Column, add_format_flags, emit, key_values, output_format, render

SENSOR_NAMES = {sensor.name.lower(): sensor for sensor in Sensor}
KIND_NAMES = {kind.name.lower(): kind for kind in TxKind}


def _short(value) -> str:
    return value[:16]


BLOCK_COLUMNS = [Column("height"), Column("time"), Column("slot"), Column("id", text=_short),
                 Column("leader"), Column("txs"), Column("bytes")]
TX_COLUMNS = [Column("height"), Column("index", "IDX"), Column("time"), Column("id", text=_short),
              Column("kind"), Column("sender"), Column("detail")]
READING_COLUMNS = [Column("time"), Column("height"), Column("device"), Column("sensor"), Column("value"), Column("unit")]
MEMBER_COLUMNS = [Column("index", "IDX"), Column("name"), Column("role"), Column("groups"),
                  Column("public_key", "KEY", text=_short)]
COMMAND_COLUMNS = [Column("time"), Column("height"), Column("issuer"), Column("device"), Column("action"),
                   Column("args"), Column("kind")]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "chain", help="show the stored chain: blocks, txs, readings, members, commands",
        description="Show what a data dir's chain store holds, read-only (also beside a running node): "
                    "tables by default, --json or --csv for programs.",
    )
    views = parser.add_subparsers(dest="view", metavar="VIEW")
    views.required = True

    def view(name: str, help: str, run, *, scan: bool = True):
        sub = views.add_parser(name, help=help, description=help)
        sub.add_argument("--data-dir", type=Path, required=True, help="the node's data directory")
        add_format_flags(sub)
        if scan:
            sub.add_argument("--since", type=since, help="from this height, or this ISO time (e.g. 2025-11-24T16:00)")
            sub.add_argument("--limit", type=positive_int, help="the newest N rows only")
        sub.set_defaults(func=lambda args: _with_store(args, run))
        return sub

    view("blocks", "blocks: height, time, slot, id, leader, txs, size", _blocks)
    block = view("block", "one block: its header fields and its txs", _block, scan=False)
    block.add_argument("height", type=non_negative_int, help="the block's height")
    txs = view("txs", "transactions: kind, sender and what each says", _txs)
    txs.add_argument("--device", help="sent by this member (name)")
    txs.add_argument("--kind", type=str.lower, choices=sorted(KIND_NAMES), help="of this kind")
    readings = view("readings", "sensor readings in their units, by device and sensor name", _readings)
    readings.add_argument("--device", help="from this member (name)")
    readings.add_argument("--sensor", type=lambda text: text.lower().replace("-", "_"), choices=sorted(SENSOR_NAMES),
                          help="of this sensor")
    view("members", "the cluster's members: index, name, role, groups, key", _members, scan=False)
    commands = view("commands", "device commands and the devices' reports of them", _commands)
    commands.add_argument("--device", help="issued by or addressed to this member (name)")


def since(text: str) -> int | datetime:
    """A height (a whole number) or an ISO 8601 time (UTC when it names no offset)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a height or an ISO time such as 2025-11-24T16:00, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _with_store(args, run) -> int:
    store = ChainStore(args.data_dir, read_only=True)
    try:
        with store.snapshot():
            result = run(args, _Chain(store))
    finally:
        store.close()
    if isinstance(result, str):
        print(result)
    else:
        rows, columns = result
        emit(rows, columns, output_format(args))
    return 0


class _Chain:
    """The stored chain with names: members, sensors, actions, kinds, block times."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store
        self.genesis: Genesis = store.genesis()

    def name(self, index: int) -> str:
        return self.genesis.name_of(index)

    def member_index(self, name: str | None) -> int | None:
        if name is None:
            return None
        member = self.genesis.by_name(name)
        if member is None:
            raise UserError(f"no member named {name!r} in cluster {self.genesis.name}")
        return member.index

    def time(self, slot: int) -> str:
        moment = datetime.fromtimestamp(self.genesis.genesis_time + slot * self.genesis.params.slot_seconds, timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def start(self, since_value) -> int | None:
        """The first height `--since` admits (None: no block does)."""
        if since_value is None:
            return 1
        if isinstance(since_value, int):
            return max(since_value, 1)
        offset = since_value.timestamp() - self.genesis.genesis_time
        return self.store.height_from_slot(math.ceil(offset / self.genesis.params.slot_seconds))

    def decode(self, height: int, raw: bytes):
        """(block, [decoded tx]) of a stored block."""
        try:
            block = decode_block(raw)
            return block, [decode_tx(tx) for tx in block.txs]
        except DecodeError as exc:
            raise StoreError(f"block {height} in {self.store.path} does not decode ({exc}); "
                             "`blockiot verify` checks the whole chain") from None

    def scan(self, args, rows_of) -> list[dict]:
        """`rows_of(height, id, block, txs)` for the blocks `--since` admits, in chain order;
        with `--limit`, the newest rows, reading from the head down only as far as needed."""
        start = self.start(args.since)
        if start is None:
            return []
        if args.limit is None:
            return [row for height, block_id, raw in self.store.raw_blocks(start)
                    for row in rows_of(height, block_id, *self.decode(height, raw))]
        picked: list[dict] = []
        for height, block_id, raw in self.store.raw_blocks(start, newest_first=True):
            picked.extend(reversed(rows_of(height, block_id, *self.decode(height, raw))))
            if len(picked) >= args.limit:
                break
        return picked[: args.limit][::-1]

    def block_row(self, height: int, block_id: bytes, block) -> dict:
        slot = block.header.slot
        return {"height": height, "time": self.time(slot), "slot": slot, "id": block_id.hex(),
                "parent": block.header.parent_prefix.hex(), "leader": self.name(self.genesis.leader_for_slot(slot)),
                "txs": len(block.txs), "bytes": len(block.raw)}

    def tx_row(self, height: int, index: int, slot: int, tx) -> dict:
        return {"height": height, "index": index, "time": self.time(slot), "id": tx.id.hex(),
                "kind": TxKind(tx.kind).name.lower(), "sender": self.name(tx.sender), "nonce": tx.nonce,
                "detail": self.detail(tx), "bytes": len(tx.raw)}

    def detail(self, tx) -> str:
        """What a tx says, in a few words."""
        body = tx.body
        if isinstance(body, Reading):
            value, unit = reading_value(body)
            return f"{Sensor(body.sensor).name.lower()} {value} {unit}"
        if isinstance(body, Command):
            return " ".join([Action(body.action).name.lower(), "->", self.name(body.target), *map(str, body.args)])
        sizes = {Data: "payload", ContractDeploy: "code", EquivocationProof: "evidence"}
        field = sizes.get(type(body))
        return f"{len(getattr(body, field))} B of {field}" if field else ""


def reading_value(reading: Reading) -> tuple[int | float, str]:
    """(value in its unit, unit): a MOISTURE reading of 287 is (28.7, "%")."""
    unit, decimals = SENSOR_UNITS[Sensor(reading.sensor)]
    return (reading.value / 10**decimals if decimals else reading.value), unit


# --- the views ------------------------------------------------------------------------------


def _blocks(args, chain: _Chain):
    rows = chain.scan(args, lambda height, block_id, block, txs: [chain.block_row(height, block_id, block)])
    return rows, BLOCK_COLUMNS


def _block(args, chain: _Chain):
    found = chain.store.block(args.height)
    if found is None:
        head = chain.store.head()
        raise UserError(f"no block at height {args.height}; the chain holds 1..{head[0] if head else 0}")
    block_id, raw = found
    block, txs = chain.decode(args.height, raw)
    tx_rows = [chain.tx_row(args.height, i, block.header.slot, tx) for i, tx in enumerate(txs)]
    record = chain.block_row(args.height, block_id, block)
    fmt = output_format(args)
    if fmt == "json":
        return json.dumps({**record, "txs": tx_rows}, ensure_ascii=False)
    if fmt == "csv":
        return tx_rows, TX_COLUMNS
    return key_values(record.items()) + ("\n\n" + render(tx_rows, TX_COLUMNS, "text") if tx_rows else "")


def _txs(args, chain: _Chain):
    sender = chain.member_index(args.device)
    kind = KIND_NAMES[args.kind] if args.kind else None

    def rows_of(height, block_id, block, txs):
        return [chain.tx_row(height, i, block.header.slot, tx) for i, tx in enumerate(txs)
                if (sender is None or tx.sender == sender) and (kind is None or tx.kind == kind)]

    return chain.scan(args, rows_of), TX_COLUMNS


def _readings(args, chain: _Chain):
    device = chain.member_index(args.device)
    sensor = SENSOR_NAMES[args.sensor] if args.sensor else None

    def rows_of(height, block_id, block, txs):
        rows = []
        for tx in txs:
            body = tx.body
            if not isinstance(body, Reading) or (device is not None and tx.sender != device) or \
                    (sensor is not None and body.sensor != sensor):
                continue
            value, unit = reading_value(body)
            rows.append({"device": chain.name(tx.sender), "sensor": Sensor(body.sensor).name.lower(), "value": value,
                         "unit": unit, "height": height, "time": chain.time(block.header.slot),
                         "slot": block.header.slot, "tx": tx.id.hex()})
        return rows

    return chain.scan(args, rows_of), READING_COLUMNS


def _members(args, chain: _Chain):
    rows = [{"index": m.index, "name": chain.name(m.index), "role": m.role, "groups": list(m.groups),
             "public_key": m.public_key.hex()} for m in chain.genesis.members]
    return rows, MEMBER_COLUMNS


def _commands(args, chain: _Chain):
    device = chain.member_index(args.device)

    def rows_of(height, block_id, block, txs):
        rows = []
        for tx in txs:
            body = tx.body
            if not isinstance(body, Command) or (device is not None and device not in (tx.sender, body.target)):
                continue
            rows.append({"time": chain.time(block.header.slot), "height": height, "issuer": chain.name(tx.sender),
                         "device": chain.name(body.target), "action": Action(body.action).name.lower(),
                         "args": list(body.args), "kind": "report" if tx.sender == body.target else "command",
                         "tx": tx.id.hex()})
        return rows

    return chain.scan(args, rows_of), COMMAND_COLUMNS
