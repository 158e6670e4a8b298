"""`blockiot contract compile|test|deploy`: compile a device rule and show its bytecode, dry-run it
on readings, or deploy it through the running node.

Readings CSV for `contract test` (one reading per line; `#` starts a comment; an optional
header line `slot,device,sensor,value`):

    slot,device,sensor,value
    100,1,moisture,27.5
    100,12,rain_forecast,10
    160,2,4,31.0

`sensor` is a sensor name (moisture, temperature, ...) or its number; `value` is in the
sensor's unit with at most its decimals (moisture 27.5 %, temperature 4.25 °C). Slots must
not decrease; the readings of one slot form one block: schedules due since the previous
block run first, then each reading and the rules it triggers, in file order.
"""
from __future__ import annotations

import argparse
import csv
from decimal import Decimal, InvalidOperation
from pathlib import Path

from blockiot.chain.contracts import SlotTick, compile_rule, disassemble, load
from blockiot.chain.runtime.control import NodeClient
from blockiot.chain.contracts.arith import FIXED_SCALE
from blockiot.chain.contracts.compiler import CompiledRule, T, TableType
from blockiot.chain.contracts.disasm import describe_trigger
from blockiot.chain.contracts.dryrun import DryRun, MemoryHost, Outcome
from blockiot.chain.contracts.onchain import deploy_tx_bytes
from blockiot.chain.errors import EncodeError
from blockiot.chain.contracts.vocabulary import ACTIONS, SENSORS
from blockiot.chain.genesis import load_genesis_toml
from blockiot.chain.wire import MAX_TX_BYTES, SENSOR_UNITS, Sensor
from blockiot.tools.cli import UserError
from blockiot.tools.options import non_negative_int

_ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
_SENSOR_NAMES = {v: k for k, v in SENSORS.items()}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "contract", help="compile device rules, or dry-run them on readings",
        description="Device rules (smart contracts): compile a .rule file to bytecode, or dry-run it "
                    "against a CSV of readings. See docs/CONTRACTS.md for the language.",
    )
    sub = parser.add_subparsers(dest="contract_command", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("compile", help="print the bytecode size and a disassembly",
                       description="Compile a rule; print its bytecode size and disassembly.")
    c.add_argument("file", type=Path, help="rule source (.rule)")
    c.add_argument("--output", "-o", type=Path, help="also write the bytecode to this file")
    c.set_defaults(func=run_compile)
    t = sub.add_parser("test", help="dry-run a rule on readings and print the commands it would issue",
                       description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("file", type=Path, help="rule source (.rule)")
    t.add_argument("--readings", type=Path, required=True, help="CSV: slot,device,sensor,value")
    t.add_argument("--group", type=_group, action="append", default=[], metavar="NAME=1,2,3",
                   help="members of a group the rule names (repeatable)")
    t.add_argument("--genesis", type=Path, help="take groups and members from a cluster description (TOML)")
    t.set_defaults(func=run_test)
    d = sub.add_parser("deploy", help="deploy a rule to the cluster through the running node",
                       description="Compile a rule and hand its deploy transaction to the node running on "
                                   "--data-dir (a validator's, until cluster governance decides rules); "
                                   "prints the transaction id once the node accepted it.")
    d.add_argument("file", type=Path, help="rule source (.rule)")
    d.add_argument("--data-dir", type=Path, required=True, help="the running node's data dir")
    d.set_defaults(func=run_deploy)


def _compile(path: Path) -> CompiledRule:
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    return compile_rule(source, str(path))


def run_deploy(args) -> int:
    rule = _compile(args.file)
    try:
        deploy_tx_bytes(rule.bytecode)
    except EncodeError:
        raise UserError(f"{args.file} is too large to deploy: a transaction holds at most {MAX_TX_BYTES} bytes") from None
    print(NodeClient(args.data_dir).submit({"kind": "deploy", "code": rule.bytecode.hex()}))
    return 0


def run_compile(args) -> int:
    rule = _compile(args.file)
    try:
        deploy = f"deploy transaction {deploy_tx_bytes(rule.bytecode)} bytes"
    except EncodeError:
        deploy = f"too large to deploy: a transaction holds at most {MAX_TX_BYTES} bytes"
    print(f"{args.file}: {len(rule.bytecode)} bytes of bytecode, {deploy}")
    print(disassemble(rule.program, rule.names, rule.line_at))
    if args.output:
        try:
            args.output.write_bytes(rule.bytecode)
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"wrote {args.output}")
    return 0


def _group(spec: str) -> tuple[str, tuple[int, ...]]:
    """`--group NAME=1,2,3`: a group's name and its members' registry numbers."""
    name, sep, members = spec.partition("=")
    try:
        numbers = tuple(non_negative_int(m.strip()) for m in members.split(",") if m.strip())
    except argparse.ArgumentTypeError:
        numbers = None
    if not sep or not name or numbers is None:
        raise argparse.ArgumentTypeError(f"write NAME=1,2,3 with member numbers >= 0, not {spec!r}")
    return name, numbers


def _sensor(text: str, where: str) -> int:
    text = text.strip()
    if text.isdigit() and int(text) in Sensor._value2member_map_:
        return int(text)
    if text.lower() in SENSORS:
        return SENSORS[text.lower()]
    raise UserError(f"{where}: unknown sensor {text!r} (one of {', '.join(SENSORS)})")


def read_readings(path: Path) -> list[tuple[int, int, int, int]]:
    """(slot, device, sensor, value in wire units) per CSV row; mistakes name their line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    rows = []
    for n, fields in enumerate(csv.reader(lines), start=1):
        where = f"{path}:{n}"
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        if n == 1 and fields[0].strip().lower() == "slot":
            continue
        if len(fields) != 4:
            raise UserError(f"{where}: expected slot,device,sensor,value, got {len(fields)} field(s)")
        try:
            slot, device = int(fields[0]), int(fields[1])
        except ValueError:
            raise UserError(f"{where}: slot and device are whole numbers") from None
        sensor = _sensor(fields[2], where)
        decimals = SENSOR_UNITS[Sensor(sensor)][1]
        try:
            scaled = Decimal(fields[3].strip()) * 10**decimals
        except InvalidOperation:
            raise UserError(f"{where}: {fields[3].strip()!r} is not a number") from None
        if not scaled.is_finite():
            raise UserError(f"{where}: {fields[3].strip()!r} is not a finite number")
        if scaled != scaled.to_integral_value():
            raise UserError(f"{where}: {_SENSOR_NAMES[sensor]} takes at most {decimals} decimal(s)")
        if rows and slot < rows[-1][0]:
            raise UserError(f"{where}: slot {slot} comes before slot {rows[-1][0]}; sort the readings by slot")
        if slot < 0 or device < 0:
            raise UserError(f"{where}: slot and device cannot be negative")
        rows.append((slot, device, sensor, int(scaled)))
    return rows


def _fixed(value: int) -> str:
    return str(Decimal(value) / FIXED_SCALE)


def _show(value: int, type_) -> str:
    if type_ is T.FIXED or (isinstance(type_, TableType) and type_.value is T.FIXED):
        return _fixed(value)
    if type_ is T.BOOL or (isinstance(type_, TableType) and type_.value is T.BOOL):
        return str(bool(value))
    return str(value)


def _describe(outcome: Outcome, rule: CompiledRule) -> list[str]:
    event = outcome.event
    if isinstance(event, SlotTick):
        triggers = [rule.program.handlers[h].trigger for h in outcome.effects.handlers]
        what = "schedule " + ", ".join(describe_trigger(t, rule.program.groups) for t in triggers)
    else:
        unit, decimals = SENSOR_UNITS[Sensor(event.sensor)]
        what = f"{_SENSOR_NAMES[event.sensor]} {Decimal(event.value).scaleb(-decimals)} {unit} from device {event.sender}"
    head = f"slot {outcome.slot:>6}  {what}"
    e = outcome.effects
    if not e.ok:
        line = rule.line_at(e.error_offset) if e.error_offset is not None else None
        return [f"{head}\n    FAILED: {e.error}" + (f" (line {line})" if line else "") + ", nothing changed"]
    out = [head]
    out += [f"    -> device {c.target}: {_ACTION_NAMES[c.action]} {' '.join(map(str, c.args))}".rstrip()
            for c in e.commands]
    out += [f"    -> transfer {t.amount} from {t.payer} to {t.payee}" for t in e.transfers]
    return out


def run_test(args) -> int:
    rule = _compile(args.file)
    rows = read_readings(args.readings)
    host = MemoryHost(groups=dict(args.group))
    if args.genesis:
        genesis = load_genesis_toml(args.genesis)
        names = {g for m in genesis.members for g in m.groups}
        host.groups = {**{g: genesis.group(g) for g in names}, **host.groups}
        host.members = frozenset(m.index for m in genesis.members)
    run = DryRun(load(rule.bytecode), host)
    commands = failures = 0
    blocks: dict[int, list[tuple[int, int, int]]] = {}
    for slot, device, sensor, value in rows:
        blocks.setdefault(slot, []).append((device, sensor, value))
    for slot, readings in blocks.items():
        for outcome in run.block(slot, readings):
            print("\n".join(_describe(outcome, rule)))
            commands += len(outcome.effects.commands)
            failures += not outcome.effects.ok
    print(f"{len(rows)} reading(s), {commands} command(s), {failures} failed execution(s)")
    print("state:")
    for slot, (name, type_) in enumerate(zip(rule.names.state, rule.names.state_types)):
        if not isinstance(type_, TableType):
            print(f"    {name} = {_show(run.state.get((slot, 0), 0), type_)}")
            continue
        entries = sorted((k, v) for (s, k), v in run.state.items() if s == slot)
        print(f"    {name}: " + (", ".join(f"[{k}] {_show(v, type_)}" for k, v in entries) or "empty"))
    if host.balances:
        print("balances: " + ", ".join(f"{m}: {b}" for m, b in sorted(host.balances.items())))
    return 0
