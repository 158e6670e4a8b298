"""Hostile contracts are contained: each fails its own execution clearly, changes nothing, crashes nothing."""
from __future__ import annotations

import pytest

from blockiot.chain.contracts import Limits, SlotTick, compile_rule, execute, load
from blockiot.chain.contracts.bytecode import EveryTrigger, Function, Handler, Op, Program, encode_instruction, encode_program
from blockiot.chain.contracts.dryrun import MemoryHost

BEFORE = {(0, 0): 41}  # every rule below declares state.keep first; it holds 41 before the run


def run(source: str, limits: Limits = Limits(), host: MemoryHost | None = None):
    rule = compile_rule("state.keep = 0\n" + source, "hostile.rule")
    exe = load(rule.bytecode)
    state = dict(BEFORE)
    effects = execute(exe, state, SlotTick(0), 5, host or MemoryHost(), limits)
    assert state == BEFORE  # the engine never mutates the state it is given
    assert not effects.ok
    assert effects.state_writes == () and effects.commands == () and effects.transfers == ()
    return effects, rule


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("while True:\n    state.keep += 1", "step limit of 10000 exceeded"),
        ("state.keep = 1 // (state.keep - 7)", "division by zero"),
        ("state.keep = state.keep % (state.keep - 7)", "division by zero"),
        ("x = 1.5 / (state.keep - 7)", "division by zero"),
        ("x = 2\nwhile True:\n    x = x * x", "integer overflow"),
        ("for i in range(100):\n    command(device(1), close)", "more than 8 commands"),
        ("for i in range(100):\n    transfer(device(1), device(2), 1)", "more than 8 transfers"),
        ("transfer(device(1), device(2), -5)", "negative amount"),
        ("command(device(99), close)", "not a member"),
        ("command(device(1), notify, 3000000000)", "32 bits"),
        ("for i in range(100000):\n    state.t[i] = 1", "memory limit of 4096 bytes"),
    ],
)
def test_hostile_rule_fails_its_execution_only(body, fragment):
    source = "state.t = table(int, int)\nwith every(1):\n    state.keep = 7\n" + "\n".join(
        f"    {line}" for line in body.splitlines())
    effects, _ = run(source, host=MemoryHost(members=frozenset({1, 2})))
    assert fragment in effects.error


def test_infinite_loop_reports_its_source_line():
    effects, rule = run("with every(1):\n    x = 0\n    while x >= 0:\n        x = x - 1 + 1\n")
    assert "step limit" in effects.error
    assert rule.line_at(effects.error_offset) in (4, 5)
    assert effects.steps > Limits().steps


def test_deep_recursion_hits_the_call_depth():
    source = "def down(n: int) -> int:\n    return down(n + 1)\nwith every(1):\n    state.keep = down(0)\n"
    effects, _ = run(source)
    assert effects.error == f"calls nested deeper than {Limits().call_depth}"


def test_state_cannot_grow_past_its_entry_limit_across_executions():
    source = "state.t = table(int, int)\nstate.next = 0\nwith every(1):\n" \
             "    for i in range(100):\n        state.t[state.next + i] = 1\n    state.next += 100\n"
    exe = load(compile_rule(source, "grow.rule").bytecode)
    limits = Limits(steps=100_000, memory_bytes=100_000, state_entries=256)
    state: dict = {}
    results = []
    for slot in range(1, 5):
        effects = execute(exe, state, SlotTick(slot - 1), slot, MemoryHost(), limits)
        results.append(effects.error)
        if effects.ok:
            state = {**state, **dict(effects.state_writes)}
    assert results[:2] == [None, None]
    assert results[2] == "contract state would hold 301 entries, the limit is 256"
    assert len(state) == 201  # two executions' worth of entries and the counter; the third changed nothing


def _raw(code: bytes, locals_: int = 1) -> bytes:
    return encode_program(Program((), (0,), (Function(0, 0, locals_),), (Handler(EveryTrigger(1), 0),), code))


@pytest.mark.parametrize(
    "code, fragment",
    [
        (encode_instruction(Op.PUSH, (1,)) + encode_instruction(Op.JMP, (-3,)), "operand stack deeper than 64"),
        (encode_instruction(Op.ADD) + encode_instruction(Op.RET), "stack underflow"),
        (encode_instruction(Op.LOAD, (9,)) + encode_instruction(Op.RET), "local out of range"),
        (encode_instruction(Op.PUSH, (1,)), "ran past the end"),
        (encode_instruction(Op.EVENT, (0,)) + encode_instruction(Op.RET), "no triggering transaction"),
        (encode_instruction(Op.CALL, (0,)), "calls nested deeper"),
        (encode_instruction(Op.PUSH, (1,)) + encode_instruction(Op.PUSH, (1,)) + encode_instruction(Op.COMMAND, (99, 0)),
         "unknown command action"),
    ],
)
def test_hostile_bytecode_is_contained(code, fragment):
    exe = load(_raw(code))
    effects = execute(exe, {}, SlotTick(0), 1, MemoryHost(), Limits())
    assert not effects.ok and fragment in effects.error
    assert effects.error_offset is not None


def test_a_failed_contract_leaves_the_next_execution_unaffected():
    exe = load(compile_rule("state.n = 0\nwith every(1):\n    state.n += 1\n    x = 1 // (state.n % 2)\n",
                            "flaky.rule").bytecode)
    state: dict = {}
    errors = []
    for slot in range(1, 5):
        effects = execute(exe, state, SlotTick(slot - 1), slot, MemoryHost())
        errors.append(effects.error)
        if effects.ok:
            state = {**state, **dict(effects.state_writes)}
    # n goes 1 (ok), 2 would divide by zero (fails, n stays 1), again 2 (fails) ...: nothing half-applied
    assert errors == [None, "division by zero", "division by zero", "division by zero"]
    assert state == {(0, 0): 1}
