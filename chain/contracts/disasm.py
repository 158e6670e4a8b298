"""Disassembler: a readable listing of a program, with source names and lines when the compiler kept them."""
from __future__ import annotations

from typing import Callable

from blockiot.chain.contracts.bytecode import (
    JUMPS,
    EventField,
    EveryTrigger,
    Op,
    Program,
    ReadingTrigger,
    Trigger,
    decode_instructions,
    encode_program,
)
from blockiot.chain.contracts.compiler import Names
from blockiot.chain.contracts.vocabulary import ACTIONS, KINDS, SENSORS

_SENSOR_NAMES = {v: k for k, v in SENSORS.items()}
_ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
_KIND_NAMES = {v: k for k, v in KINDS.items()}


def describe_trigger(trigger: Trigger, groups: tuple[str, ...]) -> str:
    if isinstance(trigger, EveryTrigger):
        offset = f", offset={trigger.offset}" if trigger.offset else ""
        return f"every({trigger.period}{offset})"
    if isinstance(trigger, ReadingTrigger):
        head = f"reading({_SENSOR_NAMES.get(trigger.sensor, trigger.sensor)}"
    else:
        head = f"transaction({_KIND_NAMES.get(trigger.kind, trigger.kind)}"
    if trigger.device is not None:
        return f"{head}, device={trigger.device})"
    if trigger.group is not None:
        return f'{head}, group="{groups[trigger.group]}")'
    return f"{head})"


def disassemble(program: Program, names: Names | None = None,
                line_at: Callable[[int], int | None] | None = None) -> str:
    """A listing: header tables, then each function's instructions with offsets and operands."""
    state_names = names.state if names else tuple(f"s{i}" for i in range(len(program.state_init)))
    fn_names = names.functions if names else tuple(f"f{i}" for i in range(len(program.functions)))
    size = len(encode_program(program))
    out = [f"{size} bytes (code {len(program.code)}), {len(program.handlers)} rule(s)"]
    for i, g in enumerate(program.groups):
        out.append(f"group {i}: \"{g}\"")
    for i, init in enumerate(program.state_init):
        kind = f": {names.state_types[i]}" if names else ""
        out.append(f"state {i}: {state_names[i]}{kind} = {init}")
    for h in program.handlers:
        out.append(f"on {describe_trigger(h.trigger, program.groups)} run {fn_names[h.function]}")
    starts = {f.entry: (n, f) for n, f in enumerate(program.functions)}
    for ins in decode_instructions(program.code):
        if ins.offset in starts:
            n, f = starts[ins.offset]
            out.append(f"{fn_names[n]}: ({f.params} parameter(s), {f.locals} local(s))")
        text = f"  {ins.offset:04d}  {ins.op.name:<9}{_operands(ins.op, ins.args, program, state_names, fn_names)}"
        line = line_at(ins.offset) if line_at else None
        out.append(f"{text:<44}; line {line}" if line else text)
    return "\n".join(out)


def _operands(op: Op, args: tuple[int, ...], program: Program, state_names, fn_names) -> str:
    if not args:
        return ""
    a = args[0]
    if op is Op.FORGROUP:
        return f'-> {a:04d} when done; group {args[1]} ("{program.groups[args[1]]}"), counter {args[2]}'
    if op in JUMPS:
        return f"-> {a:04d}"
    if op in (Op.SLOAD, Op.SSTORE, Op.TLOAD, Op.TSTORE):
        return f"{a} ({state_names[a]})"
    if op in (Op.INGROUP, Op.GROUPLEN, Op.GROUPAT):
        return f'{a} ("{program.groups[a]}")'
    if op is Op.CALL:
        return f"{a} ({fn_names[a]})"
    if op is Op.EVENT:
        return EventField(a).name.lower()
    if op is Op.COMMAND:
        return f"{_ACTION_NAMES.get(a, a)}, {args[1]} arg(s)"
    return str(a)
