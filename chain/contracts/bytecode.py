"""The contract bytecode format: opcodes, program layout and instruction stream, declared once with construct.

A program on the wire, field by field (all integers are LEB128 varints unless noted):

    version      1 byte, PROGRAM_VERSION
    groups       count, then each group name (length-prefixed UTF-8) the code refers to by index
    state        count, then each state slot's initial value (zigzag); a table slot starts at 0
    functions    count, then each function's (entry offset in code, parameter count, local count)
    handlers     count, then each handler's trigger and the index of the function it runs
    code         length-prefixed instruction stream

An instruction is one opcode byte followed by its operands (`OPERANDS`): `u` an unsigned
varint, `s` a zigzag varint, `j` a zigzag jump distance counted from the end of the
instruction. The commonest instructions with a small operand take a single byte, the operand
folded into the opcode (`SHORT_FORMS`, as the JVM's `iload_0`). `decode_program` accepts
only canonical encodings (it re-encodes and compares; a long form whose operand fits a
short form is not canonical), so equal programs have equal bytes everywhere.
"""
from __future__ import annotations

import enum
import io
from dataclasses import dataclass

from construct import (
    Byte,
    Enum,
    GreedyBytes,
    If,
    Pass,
    PascalString,
    Prefixed,
    PrefixedArray,
    Struct,
    Switch,
    VarInt,
    ZigZag,
    this,
)

from blockiot.chain.contracts.arith import INT_MAX, INT_MIN
from blockiot.chain.contracts.errors import BytecodeError
from blockiot.chain.errors import EncodeError
from blockiot.radio.codec import decoding, encoding

PROGRAM_VERSION = 1

# Bounds a decoder enforces so a hostile deploy cannot make nodes build huge tables.
MAX_CODE_BYTES = 4096
MAX_TABLE_ENTRIES = 255
MAX_LOCALS = 255


class Op(enum.IntEnum):
    """Opcodes of the contract VM. Stack effects are written (before -- after)."""

    RET = 0x00       # ( -- ) return from a function without a value; ends a rule
    RETV = 0x01      # ( v -- ) return v to the caller
    PUSH = 0x02      # s: ( -- s)
    POP = 0x03       # ( v -- )
    LOAD = 0x04      # u: ( -- local[u] )
    STORE = 0x05     # u: ( v -- ) local[u] = v
    SLOAD = 0x06     # u: ( -- state[u] )
    SSTORE = 0x07    # u: ( v -- ) state[u] = v
    TLOAD = 0x08     # u: ( key -- state[u][key] )
    TSTORE = 0x09    # u: ( key v -- ) state[u][key] = v
    ADD = 0x10       # ( a b -- a+b )
    SUB = 0x11       # ( a b -- a-b )
    MUL = 0x12       # ( a b -- a*b )
    DIV = 0x13       # ( a b -- floor(a/b) )
    MOD = 0x14       # ( a b -- a mod b ), sign of b
    NEG = 0x15       # ( a -- -a )
    FMUL = 0x16      # ( a b -- a*b ) fixed-point
    FDIV = 0x17      # ( a b -- a/b ) fixed-point
    MIN = 0x18       # ( a b -- min )
    MAX = 0x19       # ( a b -- max )
    ABS = 0x1A       # ( a -- |a| )
    EQ = 0x20        # ( a b -- a==b )
    NE = 0x21
    LT = 0x22
    LE = 0x23
    GT = 0x24
    GE = 0x25
    NOT = 0x26       # ( a -- a==0 )
    JMP = 0x30       # j: jump
    JZ = 0x31        # j: ( c -- ) jump if c == 0
    CALL = 0x32      # u: call function u with its parameters taken from the stack
    FORGROUP = 0x33  # j g c: ( -- member ) push member local[c] of group g and count on; jump j when done
    EVENT = 0x40     # u: ( -- field u of the triggering transaction, see EventField )
    SLOT = 0x41      # ( -- current slot )
    LATEST = 0x42    # ( device sensor default -- latest reading's value, or default )
    SEEN = 0x43      # ( device sensor -- slot of the latest reading, or -1 )
    INGROUP = 0x44   # u: ( device -- device is in group u )
    GROUPLEN = 0x45  # u: ( -- number of members of group u )
    GROUPAT = 0x46   # u: ( i -- i-th member of group u )
    BALANCE = 0x47   # ( member -- balance in the internal unit )
    COMMAND = 0x50   # u u: action, argc: ( target arg1 .. argc -- ) issue a device command
    TRANSFER = 0x51  # ( payer payee amount -- ) move internal units


class EventField(enum.IntEnum):
    """Operand of EVENT: which field of the triggering transaction to push."""

    VALUE = 0   # the reading's value, fixed-point
    DEVICE = 1  # the sender


OPERANDS: dict[Op, str] = {
    Op.PUSH: "s", Op.LOAD: "u", Op.STORE: "u", Op.SLOAD: "u", Op.SSTORE: "u",
    Op.TLOAD: "u", Op.TSTORE: "u", Op.JMP: "j", Op.JZ: "j", Op.CALL: "u",
    Op.EVENT: "u", Op.INGROUP: "u", Op.GROUPLEN: "u", Op.GROUPAT: "u", Op.COMMAND: "uu",
    Op.FORGROUP: "juu",
}
JUMPS = frozenset(op for op, spec in OPERANDS.items() if "j" in spec)  # the jump is always operand 0
_FIELD = {"u": VarInt, "s": ZigZag, "j": ZigZag}

# One-byte forms: opcode byte = first + operand, for operands 0 .. 15.
SHORT_FORMS: dict[Op, int] = {Op.LOAD: 0x80, Op.STORE: 0x90, Op.PUSH: 0xA0, Op.SLOAD: 0xB0, Op.SSTORE: 0xC0}
SHORT_RANGE = 16
_SHORT_DECODE = {first + n: (op, n) for op, first in SHORT_FORMS.items() for n in range(SHORT_RANGE)}


def _operand_struct(spec: str) -> Struct:
    return Struct(*(f"a{i}" / _FIELD[kind] for i, kind in enumerate(spec)))


Instruction = Struct(
    "op" / Byte,
    "args" / Switch(
        this.op,
        {int(op): (_operand_struct(OPERANDS[op]) if op in OPERANDS else Pass) for op in Op},
        default=Pass,  # unknown opcodes are rejected before parsing, with their offset
    ),
)

TriggerType = Enum(Byte, reading=1, transaction=2, every=3)
Scope = Enum(Byte, any=0, device=1, group=2)


def _filtered(what: str) -> Struct:
    """A trigger on transactions of one `what`, from any sender, one device, or one group."""
    return Struct(what / VarInt, "scope" / Scope, "ref" / If(this.scope != "any", VarInt))


TriggerFormat = Struct(
    "type" / TriggerType,
    "params" / Switch(
        this.type,
        {
            "reading": _filtered("sensor"),
            "transaction": _filtered("kind"),
            "every": Struct("period" / VarInt, "offset" / VarInt),
        },
    ),
)

ProgramFormat = Struct(
    "version" / Byte,
    "groups" / PrefixedArray(VarInt, PascalString(VarInt, "utf8")),
    "state" / PrefixedArray(VarInt, ZigZag),
    "functions" / PrefixedArray(VarInt, Struct("entry" / VarInt, "params" / VarInt, "locals" / VarInt)),
    "handlers" / PrefixedArray(VarInt, Struct("trigger" / TriggerFormat, "function" / VarInt)),
    "code" / Prefixed(VarInt, GreedyBytes),
)


@dataclass(frozen=True)
class ReadingTrigger:
    """Runs on every reading of `sensor` from one device (`device`) or any member of a group."""

    sensor: int
    device: int | None = None
    group: int | None = None  # index into Program.groups


@dataclass(frozen=True)
class TransactionTrigger:
    """Runs on every transaction of `kind` from one device or any member of a group."""

    kind: int
    device: int | None = None
    group: int | None = None


@dataclass(frozen=True)
class EveryTrigger:
    """Runs at a block whose slots since the previous block include one with slot % period == offset."""

    period: int
    offset: int = 0


Trigger = ReadingTrigger | TransactionTrigger | EveryTrigger


@dataclass(frozen=True)
class Function:
    entry: int   # byte offset in code
    params: int
    locals: int  # including the parameters


@dataclass(frozen=True)
class Handler:
    trigger: Trigger
    function: int


@dataclass(frozen=True)
class Program:
    """A deployable rule: everything the VM needs, nothing it does not (no names, no lines)."""

    groups: tuple[str, ...]
    state_init: tuple[int, ...]
    functions: tuple[Function, ...]
    handlers: tuple[Handler, ...]
    code: bytes


@dataclass(frozen=True)
class Instr:
    """One decoded instruction at byte `offset`; jump operands are resolved to absolute offsets."""

    offset: int
    op: Op
    args: tuple[int, ...]
    size: int


def _trigger_to_container(trigger: Trigger) -> dict:
    if isinstance(trigger, EveryTrigger):
        return {"type": "every", "params": {"period": trigger.period, "offset": trigger.offset}}
    scope, ref = ("any", None)
    if trigger.device is not None:
        scope, ref = "device", trigger.device
    elif trigger.group is not None:
        scope, ref = "group", trigger.group
    if isinstance(trigger, ReadingTrigger):
        return {"type": "reading", "params": {"sensor": trigger.sensor, "scope": scope, "ref": ref}}
    return {"type": "transaction", "params": {"kind": trigger.kind, "scope": scope, "ref": ref}}


def _trigger_from_container(c) -> Trigger:
    p = c.params
    if c.type == "every":
        if p.period == 0 or p.offset >= p.period:
            raise BytecodeError(f"schedule every {p.period} slots with offset {p.offset} is invalid")
        return EveryTrigger(p.period, p.offset)
    if c.type not in ("reading", "transaction") or p.scope not in ("any", "device", "group"):
        raise BytecodeError("unknown trigger type or scope")
    device = p.ref if p.scope == "device" else None
    group = p.ref if p.scope == "group" else None
    if c.type == "reading":
        return ReadingTrigger(p.sensor, device, group)
    return TransactionTrigger(p.kind, device, group)


def encode_instruction(op: Op, args: tuple[int, ...] = ()) -> bytes:
    """Bytes of one instruction; a jump's operand is its distance from the instruction's end."""
    spec = OPERANDS.get(op, "")
    if len(args) != len(spec):
        raise EncodeError(f"{op.name} takes {len(spec)} operand(s), got {len(args)}")
    if op in SHORT_FORMS and 0 <= args[0] < SHORT_RANGE:
        return bytes([SHORT_FORMS[op] + args[0]])
    with encoding(f"{op.name} {args}", EncodeError):
        return Instruction.build({"op": int(op), "args": {f"a{i}": a for i, a in enumerate(args)}})


def encode_program(program: Program) -> bytes:
    with encoding("program", EncodeError):
        return ProgramFormat.build(
            {
                "version": PROGRAM_VERSION,
                "groups": list(program.groups),
                "state": list(program.state_init),
                "functions": [vars(f) for f in program.functions],
                "handlers": [
                    {"trigger": _trigger_to_container(h.trigger), "function": h.function}
                    for h in program.handlers
                ],
                "code": program.code,
            }
        )


def _check_int(value: int, what: str) -> None:
    if not INT_MIN <= value <= INT_MAX:
        raise BytecodeError(f"{what} {value} does not fit in 64 bits")


def decode_instructions(code: bytes) -> tuple[Instr, ...]:
    """Split code into instructions; unknown opcodes, truncated operands and bad jumps raise BytecodeError."""
    if len(code) > MAX_CODE_BYTES:
        raise BytecodeError(f"code is {len(code)} bytes, the limit is {MAX_CODE_BYTES}")
    stream = io.BytesIO(code)
    out: list[Instr] = []
    while stream.tell() < len(code):
        start = stream.tell()
        if code[start] in _SHORT_DECODE:
            op, n = _SHORT_DECODE[code[start]]
            out.append(Instr(start, op, (n,), 1))
            stream.seek(start + 1)
            continue
        if code[start] not in Op._value2member_map_:
            raise BytecodeError(f"unknown opcode 0x{code[start]:02x} at offset {start}")
        with decoding(f"instruction at offset {start}", BytecodeError):
            parsed = Instruction.parse_stream(stream)
        op = Op(parsed.op)
        args = tuple(parsed.args[f"a{n}"] for n in range(len(OPERANDS.get(op, ""))))
        end = stream.tell()
        for a in args:
            _check_int(a, f"operand of {op.name} at offset {start}")
        if encode_instruction(op, args) != code[start:end]:
            raise BytecodeError(f"{op.name} at offset {start} is not in canonical form")
        if op in JUMPS:
            args = (end + args[0], *args[1:])
        out.append(Instr(start, op, args, end - start))
    starts = {i.offset for i in out}
    for i in out:
        if i.op in JUMPS and i.args[0] not in starts:
            raise BytecodeError(f"jump at offset {i.offset} lands inside an instruction ({i.args[0]})")
    return tuple(out)


def decode_program(raw: bytes) -> Program:
    """Parse and validate deployed bytecode; anything malformed raises BytecodeError."""
    if not raw or raw[0] != PROGRAM_VERSION:
        raise BytecodeError(
            f"unsupported bytecode version {raw[0] if raw else 'none'} (expected {PROGRAM_VERSION})"
        )
    with decoding("bytecode", BytecodeError):
        c = ProgramFormat.parse(raw)
    for name, table in (("groups", c.groups), ("state", c.state), ("functions", c.functions),
                        ("handlers", c.handlers)):
        if len(table) > MAX_TABLE_ENTRIES:
            raise BytecodeError(f"{len(table)} {name}, the limit is {MAX_TABLE_ENTRIES}")
    for v in c.state:
        _check_int(v, "initial state value")
    functions = tuple(Function(f.entry, f.params, f.locals) for f in c.functions)
    handlers = tuple(Handler(_trigger_from_container(h.trigger), h.function) for h in c.handlers)
    program = Program(tuple(c.groups), tuple(c.state), functions, handlers, bytes(c.code))
    instructions = decode_instructions(program.code)
    check_references(program, instructions)
    if encode_program(program) != raw:
        raise BytecodeError("bytecode is not in canonical form")
    return program


def check_references(program: Program, instructions: tuple[Instr, ...]) -> None:
    """Every index in the program points at something that exists."""
    starts = {i.offset for i in instructions}
    for n, f in enumerate(program.functions):
        if f.entry not in starts:
            raise BytecodeError(f"function {n} starts outside the code ({f.entry})")
        if f.params > f.locals or f.locals > MAX_LOCALS:
            raise BytecodeError(f"function {n} has {f.params} parameters and {f.locals} locals")
    for h in program.handlers:
        if h.function >= len(program.functions) or program.functions[h.function].params:
            raise BytecodeError(f"handler runs function {h.function}, which is missing or takes parameters")
        t = h.trigger
        if not isinstance(t, EveryTrigger) and t.group is not None and t.group >= len(program.groups):
            raise BytecodeError(f"trigger names group {t.group}, which is not declared")
    bounds = {
        Op.SLOAD: len(program.state_init), Op.SSTORE: len(program.state_init),
        Op.TLOAD: len(program.state_init), Op.TSTORE: len(program.state_init),
        Op.CALL: len(program.functions), Op.INGROUP: len(program.groups),
        Op.GROUPLEN: len(program.groups), Op.GROUPAT: len(program.groups),
        Op.EVENT: len(EventField),
    }
    for i in instructions:
        limit = bounds.get(i.op)
        if limit is not None and i.args[0] >= limit:
            raise BytecodeError(f"{i.op.name} {i.args[0]} at offset {i.offset} is out of range")
        if i.op is Op.FORGROUP and i.args[1] >= len(program.groups):
            raise BytecodeError(f"FORGROUP at offset {i.offset} names a group that is not declared")
