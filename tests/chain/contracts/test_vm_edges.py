"""The contract VM at its edges (issue 13): transfers use memory and count against their limit
unless they move nothing, balances see the execution's own transfers and only members have
one, group loops walk the group they name, every limit holds exactly at its value, and each
instruction's steps are pinned (whether a run fails at its step limit is consensus: every node
must charge the same)."""
from __future__ import annotations

import pytest

from blockiot.chain.contracts import Limits, SlotTick, Transfer, compile_rule, execute, load
from blockiot.chain.contracts.arith import INT_MAX, INT_MIN
from blockiot.chain.contracts.bytecode import EveryTrigger, Function, Handler, Op, Program, encode_instruction, encode_program
from blockiot.chain.contracts.dryrun import MemoryHost
from blockiot.chain.contracts.engine import TxEvent, initial_state
from blockiot.chain.contracts.vocabulary import ACTIONS, to_vm_fixed
from blockiot.chain.wire import Sensor, TxKind

SLOT = 10


def run(source: str, host: MemoryHost | None = None, limits: Limits = Limits(), event=None, state=None):
    """Effects of one execution of `source` at SLOT (a schedule unless `event` is given)."""
    exe = load(compile_rule(source, "edge.rule").bytecode)
    state = initial_state(exe.program) if state is None else state
    return execute(exe, state, event or SlotTick(SLOT - 1), SLOT, host or MemoryHost(), limits)


def every(body: str, decl: str = "") -> str:
    return decl + "\nwith every(1):\n" + "\n".join(f"    {line}" for line in body.splitlines()) + "\n"


def written(effects) -> dict:
    assert effects.ok, effects.error
    return dict(effects.state_writes)


def least_memory(source: str, host: MemoryHost | None = None) -> int:
    """The smallest memory limit under which `source` runs without a fault."""
    low, high = 0, 8192
    assert run(source, host, Limits(memory_bytes=high)).ok
    while low < high:
        middle = (low + high) // 2
        if run(source, host, Limits(memory_bytes=middle)).ok:
            high = middle
        else:
            low = middle + 1
    return high


# -- transfers and balances -------------------------------------------------------------------


def test_each_transfer_costs_memory_and_one_that_moves_nothing_costs_none():
    def transfers(count: int, payee: int = 2, amount: int = 1) -> str:
        return every(f"for i in range({count}):\n    transfer(device(1), device({payee}), {amount})")

    one, two, three = (least_memory(transfers(n)) for n in (1, 2, 3))
    assert one < two < three and three - two == two - one
    assert least_memory(transfers(3, payee=1)) == least_memory(transfers(3, amount=0)) == least_memory(transfers(0))
    assert least_memory(transfers(0)) < one


def test_each_command_costs_memory_and_more_with_its_arguments():
    bare = least_memory(every("command(device(1), close)"))
    with_args = least_memory(every("command(device(1), set, 1, 2, 3)"))
    nothing = least_memory(every("pass"))
    assert nothing < bare < with_args


def test_a_transfer_to_oneself_or_of_nothing_moves_nothing_and_never_reaches_the_limit():
    host = MemoryHost(balances={1: 100}, members=frozenset({1, 2}))
    effects = run(every("for i in range(20):\n    transfer(device(1), device(1), 5)\n"
                        "    transfer(device(1), device(2), 0)\nstate.b = balance(device(1))", "state.b = 0"), host)
    assert written(effects) == {(0, 0): 100}
    assert effects.transfers == ()


@pytest.mark.parametrize(
    "body, error",
    [
        ("transfer(device(1), device(9), 0)", "payee 9 is not a member of the cluster"),
        ("transfer(device(9), device(9), 5)", "payer 9 is not a member of the cluster"),
        ("transfer(device(1), device(1), -5)", "transfer of a negative amount (-5)"),
    ],
)
def test_a_transfer_that_moves_nothing_is_still_checked(body, error):
    effects = run(every(body), MemoryHost(members=frozenset({1, 2})))
    assert effects.error == error and effects.transfers == ()


def test_balances_read_in_an_execution_include_its_own_transfers():
    host = MemoryHost(balances={1: 100, 2: 5, 3: 0}, members=frozenset({1, 2, 3}))
    source = every("transfer(device(1), device(2), 30)\ntransfer(device(3), device(2), 10)\n"
                   "state.a = balance(device(1))\nstate.b = balance(device(2))\nstate.c = balance(device(3))",
                   "state.a = 0\nstate.b = 0\nstate.c = 0")
    effects = run(source, host)
    assert written(effects) == {(0, 0): 70, (1, 0): 45, (2, 0): -10}
    assert effects.transfers == (Transfer(1, 2, 30), Transfer(3, 2, 10))
    assert host.balances == {1: 100, 2: 5, 3: 0}  # the host is read, never written


def test_the_balance_of_a_non_member_fails_the_execution():
    effects = run(every("state.a = balance(device(7))", "state.a = 0"), MemoryHost(members=frozenset({1, 2})))
    assert effects.error == "balance of 7 is not a member of the cluster"
    assert effects.state_writes == ()


@pytest.mark.parametrize("balances", [{2: INT_MAX}, {1: INT_MIN}])
def test_a_transfer_that_would_take_a_balance_beyond_64_bits_fails(balances):
    effects = run(every("transfer(device(1), device(2), 1)"), MemoryHost(balances=balances))
    assert effects.error == "integer overflow (beyond 64 bits)" and effects.transfers == ()


def test_exactly_the_limit_of_transfers_and_commands_is_allowed():
    assert len(run(every("for i in range(8):\n    transfer(device(1), device(2), 1)")).transfers) == 8
    assert len(run(every("for i in range(8):\n    command(device(1), close)")).commands) == 8
    assert run(every("for i in range(9):\n    transfer(device(1), device(2), 1)")).error == \
        "more than 8 transfers in one execution"


# -- groups ------------------------------------------------------------------------------------

GROUPS = {"a": (1, 2), "b": (5, 6, 7)}
GROUP_DECL = 'a = group("a")\nb = group("b")\nstate.outer = table(device, int)\nstate.inner = table(device, int)'


def table(effects, slot: int) -> dict:
    return {key: value for (s, key), value in written(effects).items() if s == slot}


def test_a_group_loop_walks_every_member_of_the_group_it_names():
    body = "for x in b:\n    state.outer[x] += 1\n    for y in a:\n        state.inner[y] += 1"
    effects = run(every(body, GROUP_DECL), MemoryHost(groups=GROUPS))
    assert table(effects, 0) == {5: 1, 6: 1, 7: 1}
    assert table(effects, 1) == {1: 3, 2: 3}  # the inner loop starts again for each outer member


def test_a_loop_left_early_restarts_from_the_first_member_next_time():
    body = "for x in b:\n    if x == device(6):\n        break\n    state.outer[x] += 1\n" \
           "for x in b:\n    state.inner[x] += 1"
    effects = run(every(body, GROUP_DECL), MemoryHost(groups=GROUPS))
    assert table(effects, 0) == {5: 1}
    assert table(effects, 1) == {5: 1, 6: 1, 7: 1}


def test_an_empty_group_loops_never_and_has_no_members():
    body = "for x in b:\n    state.outer[x] += 1\nif len(b) == 0 and not device(5) in b:\n    state.inner[device(1)] = 1"
    effects = run(every(body, GROUP_DECL), MemoryHost(groups={"a": (1, 2)}))
    assert table(effects, 0) == {} and table(effects, 1) == {1: 1}


def test_membership_and_size_are_of_the_group_named():
    body = "state.n = len(b) * 10 + len(a)\nif device(6) in b and not device(6) in a and device(2) in a:\n" \
           "    state.yes = 1"
    effects = run(every(body, 'a = group("a")\nb = group("b")\nstate.n = 0\nstate.yes = 0'), MemoryHost(groups=GROUPS))
    assert written(effects) == {(0, 0): 32, (1, 0): 1}


def test_a_group_is_charged_steps_by_its_size():
    small = run(every("state.n = len(b)", 'b = group("b")\nstate.n = 0'), MemoryHost(groups={"b": (1,)}))
    large = run(every("state.n = len(b)", 'b = group("b")\nstate.n = 0'), MemoryHost(groups={"b": tuple(range(50))}))
    assert large.steps - small.steps == 49


def _group_at(index: int) -> bytes:
    """A program over groups ("a", "b") that stores the index-th member of "b" in state 0."""
    code = (encode_instruction(Op.PUSH, (index,)) + encode_instruction(Op.GROUPAT, (1,))
            + encode_instruction(Op.SSTORE, (0,)) + encode_instruction(Op.RET))
    return encode_program(Program(("a", "b"), (0,), (Function(0, 0, 0),), (Handler(EveryTrigger(1), 0),), code))


@pytest.mark.parametrize("index, member", [(0, 5), (2, 7)])
def test_a_group_member_by_index(index, member):
    effects = execute(load(_group_at(index)), {}, SlotTick(0), 1, MemoryHost(groups=GROUPS))
    assert written(effects) == {(0, 0): member}


@pytest.mark.parametrize("index", [3, -1])
def test_a_group_member_index_outside_the_group_fails(index):
    effects = execute(load(_group_at(index)), {}, SlotTick(0), 1, MemoryHost(groups=GROUPS))
    assert effects.error == f"group member {index} does not exist"


# -- the triggering event, the slot and readings ---------------------------------------------------


def test_a_reading_rule_sees_the_readings_value_and_sender():
    source = "state.v = 0.0\nstate.from4 = 0\nstate.s = 0\nwith reading(moisture) as r:\n" \
             "    state.v = r.value\n    state.s = slot\n    if r.device == device(4):\n        state.from4 = 1\n"
    effects = run(source, event=TxEvent(TxKind.READING, 4, Sensor.MOISTURE, 300))
    assert written(effects) == {(0, 0): to_vm_fixed(Sensor.MOISTURE, 300), (1, 0): 1, (2, 0): SLOT}


def test_the_slot_of_a_devices_latest_reading_or_minus_one():
    host = MemoryHost(readings={(3, int(Sensor.MOISTURE)): (250, 7)})
    source = every("state.seen = latest_slot(device(3), moisture)\nstate.never = latest_slot(device(4), moisture)",
                   "state.seen = 0\nstate.never = 0")
    assert written(run(source, host)) == {(0, 0): 7, (1, 0): -1}


# -- limits hold exactly at their values ------------------------------------------------------------


def test_a_run_may_use_exactly_its_steps():
    source = every("for i in range(30):\n    state.n += i", "state.n = 0")
    steps = run(source).steps
    assert run(source, limits=Limits(steps=steps)).ok
    assert run(source, limits=Limits(steps=steps - 1)).error == f"step limit of {steps - 1} exceeded"


def test_helpers_nest_exactly_as_deep_as_the_limit():
    helper = "def down(n: int) -> int:\n    if n == 0:\n        return 0\n    return down(n - 1)\n"
    assert run(every("state.r = down(7)", helper + "state.r = 1")).ok  # eight nested calls
    assert run(every("state.r = down(8)", helper + "state.r = 1")).error == "calls nested deeper than 8"


def test_a_helper_returns_its_memory():
    helper = "def twice(n: int) -> int:\n    m = n * 2\n    return m\n"
    effects = run(every("for i in range(300):\n    state.r = twice(i)", helper + "state.r = 0"))
    assert written(effects) == {(0, 0): 598}


@pytest.mark.parametrize("argument, ok", [(2**31 - 1, True), (-(2**31), True), (2**31, False), (-(2**31) - 1, False)])
def test_command_arguments_are_32_bit(argument, ok):
    effects = run(every(f"command(device(1), notify, {argument})"))
    assert effects.ok is ok
    assert ok or effects.error == "a command takes at most 8 arguments of 32 bits"


def test_state_may_hold_exactly_its_entry_limit_and_a_cleared_entry_frees_one():
    decl = "state.t = table(int, int)"
    limits = Limits(state_entries=3)
    assert run(every("for i in range(3):\n    state.t[i] = 1", decl), limits=limits).ok
    assert run(every("for i in range(4):\n    state.t[i] = 1", decl), limits=limits).error == \
        "contract state would hold 4 entries, the limit is 3"
    full = {(0, 0): 1, (0, 1): 1, (0, 2): 1}
    effects = run(every("state.t[0] = 0\nstate.t[5] = 1", decl), limits=limits, state=full)
    assert written(effects) == {(0, 0): 0, (0, 5): 1}
    assert run(every("state.t[1] = 1\nstate.t[5] = 1", decl), limits=limits, state=full).error == \
        "contract state would hold 4 entries, the limit is 3"


@pytest.mark.parametrize("expression", ["-state.a", "abs(state.a)"])
def test_negating_the_least_64_bit_integer_overflows(expression):
    effects = run(every(f"state.r = {expression}", f"state.a = {INT_MIN}\nstate.r = 0"))
    assert effects.error == "integer overflow (beyond 64 bits)"


# -- metering: what every node charges, pinned like a known-answer vector ----------------------------

I = encode_instruction
CLOSE = ACTIONS["close"]


def _metered(code: bytes, *, groups: tuple[str, ...] = ("g",), functions=None) -> bytes:
    functions = functions or (Function(0, 0, 1),)
    return encode_program(Program(groups, (0,), functions, (Handler(EveryTrigger(1), 0),), code))


_CALLER = I(Op.CALL, (1,)) + I(Op.RET)
# Whole runs: the op measured plus 1 step per other instruction (+1 per member of a group looked up).
METERED = {
    "SLOAD": (I(Op.SLOAD, (0,)) + I(Op.POP) + I(Op.RET), 2 + 2),
    "SSTORE": (I(Op.PUSH, (1,)) + I(Op.SSTORE, (0,)) + I(Op.RET), 5 + 2),
    "TLOAD": (I(Op.PUSH, (1,)) + I(Op.TLOAD, (0,)) + I(Op.POP) + I(Op.RET), 3 + 3),
    "TSTORE": (I(Op.PUSH, (1,)) + I(Op.PUSH, (2,)) + I(Op.TSTORE, (0,)) + I(Op.RET), 6 + 3),
    "LATEST": (I(Op.PUSH, (1,)) + I(Op.PUSH, (int(Sensor.MOISTURE),)) + I(Op.PUSH, (0,)) + I(Op.LATEST)
               + I(Op.POP) + I(Op.RET), 10 + 5),
    "SEEN": (I(Op.PUSH, (1,)) + I(Op.PUSH, (int(Sensor.MOISTURE),)) + I(Op.SEEN) + I(Op.POP) + I(Op.RET), 10 + 4),
    "INGROUP": (I(Op.PUSH, (1,)) + I(Op.INGROUP, (0,)) + I(Op.POP) + I(Op.RET), 3 + 3),
    "GROUPLEN": (I(Op.GROUPLEN, (0,)) + I(Op.POP) + I(Op.RET), 2 + 2),
    "FORGROUP": (I(Op.FORGROUP, (0, 0, 0)) + I(Op.RET), 2 + 1),
    "BALANCE": (I(Op.PUSH, (1,)) + I(Op.BALANCE) + I(Op.POP) + I(Op.RET), 5 + 3),
    "COMMAND": (I(Op.PUSH, (1,)) + I(Op.COMMAND, (CLOSE, 0)) + I(Op.RET), 20 + 2),
    "TRANSFER": (I(Op.PUSH, (1,)) + I(Op.PUSH, (2,)) + I(Op.PUSH, (3,)) + I(Op.TRANSFER) + I(Op.RET), 20 + 4),
    **{name: (I(Op.PUSH, (6,)) + I(Op.PUSH, (3,)) + I(Op[name]) + I(Op.POP) + I(Op.RET), cost + 4)
       for name, cost in (("ADD", 1), ("MUL", 1), ("DIV", 2), ("MOD", 2), ("FMUL", 2), ("FDIV", 2))},
}


@pytest.mark.parametrize("name", sorted(METERED))
def test_each_instruction_costs_its_steps(name):
    code, steps = METERED[name]
    effects = execute(load(_metered(code)), {}, SlotTick(0), 1, MemoryHost())
    assert effects.ok, effects.error
    assert effects.steps == steps


def test_a_call_costs_five_steps_and_a_group_one_per_member_once():
    functions = (Function(0, 0, 0), Function(len(_CALLER), 0, 0))
    call = execute(load(_metered(_CALLER + I(Op.RET), functions=functions)), {}, SlotTick(0), 1, MemoryHost())
    assert call.steps == 5 + 2
    code = I(Op.GROUPLEN, (0,)) + I(Op.PUSH, (0,)) + I(Op.GROUPAT, (0,)) + I(Op.ADD) + I(Op.POP) + I(Op.RET)
    group = execute(load(_metered(code)), {}, SlotTick(0), 1, MemoryHost(groups={"g": (5, 6, 7)}))
    assert group.steps == 2 + 2 + 4 + 3  # GROUPLEN, GROUPAT, four others, the three members once


def test_the_operand_stack_holds_exactly_its_limit():
    def pushes(count: int) -> bytes:
        return I(Op.PUSH, (1,)) * count + I(Op.POP) * count + I(Op.RET)

    assert execute(load(_metered(pushes(64))), {}, SlotTick(0), 1, MemoryHost()).ok
    effects = execute(load(_metered(pushes(65))), {}, SlotTick(0), 1, MemoryHost())
    assert effects.error == "operand stack deeper than 64"


@pytest.mark.parametrize("pushed", [0, 1])
def test_a_call_with_fewer_values_than_its_parameters_fails(pushed):
    caller = I(Op.PUSH, (7,)) * pushed + _CALLER
    functions = (Function(0, 0, 0), Function(len(caller), 2, 2))
    effects = execute(load(_metered(caller + I(Op.RET), functions=functions)), {}, SlotTick(0), 1, MemoryHost())
    assert effects.error == "stack underflow or local out of range"
