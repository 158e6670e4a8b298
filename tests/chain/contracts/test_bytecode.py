"""The bytecode format: round trips, canonical form, and malformed or fuzzed bytes contained."""
from __future__ import annotations

import pytest
from conftest import EXAMPLE_NAMES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockiot.chain.contracts import BytecodeError, Limits, SlotTick, TxEvent, decode_program, execute, load
from blockiot.chain.contracts.bytecode import (
    OPERANDS,
    PROGRAM_VERSION,
    EveryTrigger,
    Function,
    Handler,
    Op,
    Program,
    ReadingTrigger,
    TransactionTrigger,
    encode_instruction,
    encode_program,
)
from blockiot.chain.contracts.dryrun import MemoryHost
from blockiot.chain.errors import DecodeError
from blockiot.chain.wire import Sensor, TxKind


def program(code: bytes, *, state=(0,), groups=(), functions=None, handlers=None) -> Program:
    return Program(
        groups=tuple(groups), state_init=tuple(state),
        functions=tuple(functions or (Function(0, 0, 2),)),
        handlers=tuple(handlers or (Handler(EveryTrigger(1), 0),)), code=code,
    )


def code(*instrs) -> bytes:
    return b"".join(encode_instruction(op, tuple(args)) for op, *args in instrs)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_round_trip(example, name):
    rule = example(name)
    assert rule.bytecode[0] == PROGRAM_VERSION
    assert decode_program(rule.bytecode) == rule.program
    assert encode_program(rule.program) == rule.bytecode


def test_every_trigger_shape_round_trips():
    handlers = (
        Handler(ReadingTrigger(Sensor.MOISTURE), 0),
        Handler(ReadingTrigger(Sensor.LIGHT, device=7), 0),
        Handler(ReadingTrigger(Sensor.POWER, group=0), 0),
        Handler(TransactionTrigger(TxKind.DATA, device=300), 0),
        Handler(EveryTrigger(2880, 100), 0),
    )
    p = program(code((Op.RET,)), groups=("g",), handlers=handlers)
    assert decode_program(encode_program(p)) == p


def test_short_forms_are_one_byte_and_long_forms_of_small_operands_are_not_canonical():
    assert encode_instruction(Op.LOAD, (3,)) == bytes([0x83])
    assert len(encode_instruction(Op.LOAD, (16,))) == 2
    long_load = bytes([Op.LOAD, 3])  # LOAD 3 spelled long
    raw = encode_program(program(code((Op.PUSH, 1), (Op.POP,), (Op.RET,))))
    assert load(raw)
    bad = encode_program(program(long_load + code((Op.POP,), (Op.RET,))))
    with pytest.raises(BytecodeError, match="canonical"):
        decode_program(bad)


@pytest.mark.parametrize(
    "raw_code, fragment",
    [
        (bytes([0x7F]), "unknown opcode 0x7f"),
        (bytes([Op.PUSH]), "malformed instruction at offset 0"),
        (bytes([Op.JMP, 0x01, Op.RET]), "lands inside an instruction"),   # jumps to offset 2 ... of 3
        (code((Op.SLOAD, 5), (Op.RET,)), "out of range"),
        (code((Op.CALL, 9), (Op.RET,)), "out of range"),
        (code((Op.GROUPLEN, 0), (Op.RET,)), "out of range"),
        (bytes([Op.PUSH]) + b"\xff" * 10 + b"\x01", "64 bits"),
    ],
)
def test_malformed_code_is_refused_at_load(raw_code, fragment):
    with pytest.raises(BytecodeError, match=fragment):
        load(encode_program(program(raw_code)))


def test_wrong_version_empty_and_trailing_bytes_are_refused():
    raw = encode_program(program(code((Op.RET,))))
    with pytest.raises(BytecodeError, match="version"):
        load(bytes([PROGRAM_VERSION + 1]) + raw[1:])
    with pytest.raises(BytecodeError, match="version"):
        load(b"")
    with pytest.raises(BytecodeError, match="canonical"):
        load(raw + b"\x00")


def test_handlers_must_run_parameterless_functions_at_instruction_starts():
    with pytest.raises(BytecodeError, match="takes parameters"):
        load(encode_program(program(code((Op.RET,)), functions=(Function(0, 1, 1),))))
    with pytest.raises(BytecodeError, match="outside the code"):
        load(encode_program(program(code((Op.PUSH, 300), (Op.RET,)), functions=(Function(1, 0, 0),))))


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_truncation_of_an_example_is_refused(example, name):
    raw = example(name).bytecode
    for end in range(len(raw)):
        with pytest.raises(BytecodeError):
            load(raw[:end])


def test_bytecode_errors_are_chain_decode_errors():
    with pytest.raises(DecodeError):
        load(b"\x01\xff")


# --- fuzzing: hostile deploys are refused or run contained ---------------------------------

_HOST = MemoryHost(groups={"field-a": (1, 2), "microgrid": (1, 2, 3)}, readings={(12, 4): (10, 1)})
_EVENTS = (TxEvent(TxKind.READING, 1, Sensor.MOISTURE, 250), TxEvent(TxKind.READING, 2, Sensor.POWER, -300),
           SlotTick(0))


def _contained(raw: bytes) -> None:
    """Either the bytes are refused with BytecodeError, or every execution returns Effects."""
    try:
        exe = load(raw)
    except BytecodeError:
        return
    state = {(0, 0): 5}
    for event in _EVENTS:
        effects = execute(exe, state, event, 10, _HOST, Limits(steps=2_000))
        if not effects.ok:
            assert effects.state_writes == () and effects.commands == () and effects.transfers == ()
    assert state == {(0, 0): 5}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    _contained(bytes([PROGRAM_VERSION]) + data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(EXAMPLE_NAMES), edits=st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 10_000), st.integers(0, 255)),
    min_size=1, max_size=4))
def test_fuzz_mutated_examples(example, name, edits):
    raw = bytearray(example(name).bytecode)
    for kind, pos, byte in edits:
        pos %= len(raw) + (kind == "insert")
        if kind == "flip" and pos < len(raw):
            raw[pos] ^= byte or 1
        elif kind == "insert":
            raw.insert(pos, byte)
        elif len(raw) > 1:
            del raw[pos % len(raw)]
    _contained(bytes(raw))


@settings(max_examples=300, deadline=None)
@given(body=st.lists(st.tuples(st.sampled_from(list(Op)), st.integers(0, 20), st.integers(-3, 3)), max_size=30))
def test_fuzz_valid_instruction_streams(body):
    """Well-formed code doing arbitrary things (underflow, bad locals, wild jumps) stays contained."""
    instrs = []
    for op, a, b in body:
        spec = {"j": 0, "u": a, "s": b}
        instrs.append(encode_instruction(op, tuple(spec[c] for c in OPERANDS.get(op, ""))))
    raw_code = b"".join(instrs) + encode_instruction(Op.RET)
    _contained(encode_program(program(raw_code, state=(5, 0), groups=("field-a",))))
