"""The engine: which events trigger which rules, schedules between blocks, determinism."""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockiot.chain.contracts import SlotTick, TxEvent, compile_rule, load
from blockiot.chain.contracts.arith import FIXED_DECIMALS
from blockiot.chain.contracts.dryrun import DryRun, MemoryHost
from blockiot.chain.contracts.engine import matching_handlers
from blockiot.chain.contracts.vocabulary import to_vm_fixed
from blockiot.chain.wire import SENSOR_UNITS, Sensor, TxKind

RULES = """
station = device(12)
with reading(moisture, group="field-a") as r:
    pass
with reading(rain_forecast, device=station) as r:
    pass
with reading(temperature) as r:
    pass
with transaction(data, group="field-a") as t:
    pass
with every(10, offset=3):
    pass
"""


@pytest.fixture
def exe():
    return load(compile_rule(RULES, "t.rule").bytecode)


@pytest.mark.parametrize(
    "event, expected",
    [
        (TxEvent(TxKind.READING, 1, Sensor.MOISTURE, 300), (0,)),      # member of field-a
        (TxEvent(TxKind.READING, 5, Sensor.MOISTURE, 300), ()),        # not a member
        (TxEvent(TxKind.READING, 12, Sensor.RAIN_FORECAST, 30), (1,)),
        (TxEvent(TxKind.READING, 11, Sensor.RAIN_FORECAST, 30), ()),   # another device
        (TxEvent(TxKind.READING, 40, Sensor.TEMPERATURE, 400), (2,)),  # any device
        (TxEvent(TxKind.DATA, 2), (3,)),
        (TxEvent(TxKind.DATA, 7), ()),
        (TxEvent(TxKind.COMMAND, 2), ()),
        (SlotTick(previous_slot=0), (4,)),                            # slot 3 is due in (0, 5]
    ],
)
def test_triggers_match_kind_sensor_and_sender(exe, event, expected):
    host = MemoryHost(groups={"field-a": (1, 2)})
    assert matching_handlers(exe, event, 5, host) == expected


@given(period=st.integers(1, 50), offset=st.integers(0, 49), previous=st.integers(-1, 300), gap=st.integers(1, 120))
def test_a_schedule_runs_when_a_due_slot_passed_since_the_previous_block(period, offset, previous, gap):
    offset %= period
    exe = load(compile_rule(f"with every({period}, offset={offset}):\n    pass\n", "e.rule").bytecode)
    slot = previous + gap
    due = any(s % period == offset for s in range(previous + 1, slot + 1))
    assert matching_handlers(exe, SlotTick(previous), slot, MemoryHost()) == ((0,) if due else ())


def test_a_schedule_runs_once_per_block_however_many_periods_passed():
    run = DryRun(load(compile_rule("state.n = 0\nwith every(2):\n    state.n += 1\n", "e.rule").bytecode))
    for slot in (1, 2, 9, 10, 11):
        run.block(slot, [])
    assert run.state == {(0, 0): 3}  # blocks at 2, 9 and 10 each passed a due slot; 11 did not


def test_a_dry_run_refuses_slots_that_go_back():
    run = DryRun(load(compile_rule("with every(2):\n    pass\n", "e.rule").bytecode))
    run.block(5, [])
    with pytest.raises(Exception, match="does not come after"):
        run.block(5, [])


def test_the_same_readings_give_the_same_effects_on_three_engines(example):
    rule = example("energy")
    rng = random.Random(5)
    blocks = [(slot, [(rng.randint(1, 4), Sensor.POWER, rng.randint(-900, 900) * 10) for _ in range(rng.randint(0, 3))])
              for slot in range(1, 60)]
    runs = [DryRun(load(rule.bytecode), MemoryHost(groups={"microgrid": (1, 2, 3, 4)})) for _ in range(3)]
    logs = [[o.effects for slot, readings in blocks for o in run.block(slot, readings)] for run in runs]
    assert logs[0] == logs[1] == logs[2]
    assert runs[0].state == runs[1].state == runs[2].state
    assert runs[0].host.balances == runs[1].host.balances == runs[2].host.balances
    assert any(e.transfers for e in logs[0])  # the run did settle some energy


def test_every_sensor_unit_fits_the_vm_fixed_point():
    """Readings are rescaled to thousandths exactly, so no sensor may have more than 3 decimals."""
    for sensor, (_, decimals) in SENSOR_UNITS.items():
        assert decimals <= FIXED_DECIMALS
        assert to_vm_fixed(sensor, 10**decimals) == 1000  # one whole unit
