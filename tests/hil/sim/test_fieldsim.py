"""The field simulator: DESIGN.md invariants 1-5 in every scenario (deterministic by
seed), a property test over seeds and loss rates, what the Ouroboros-BFT depth rule does
in a partition, and the event loop under it."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockiot.hil.sim.eventloop import EventLoop
from blockiot.hil.sim.fieldsim import SimConfig, SimConfigError, default_slot_seconds
from blockiot.hil.sim.scenarios import SCENARIOS, simulate

SMALL = dict(nodes=8, validators=4, hours=0.5, seed=3)
SLOTS = int(SMALL["hours"] * 3600 / default_slot_seconds("LongFast"))


def assert_invariants(report: dict) -> None:
    assert report["finalized_conflicts"] == 0  # 1: no two conflicting finalized blocks
    assert report["finalized_prefix_agree"]  # 2: honest finalized chains are prefixes of one
    assert report["duty_cycle_violations"] == 0  # 3: nobody over its airtime budget
    assert report["restart_lost_finalized"] == 0  # 5: a restart keeps every finalized block


@pytest.fixture(scope="module")
def reports():
    return {name: simulate(SimConfig(scenario=name, **SMALL)) for name in SCENARIOS}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_invariants_hold_in_every_scenario(reports, scenario):
    report = reports[scenario]
    assert_invariants(report)
    # 30 s fades that lose 90 % leave some windows without a quorum of blocks
    assert report["blocks_finalized"] >= (0.6 if scenario == "bursty" else 0.75) * SLOTS
    assert report["txs_finalized"] >= 0.75 * report["txs_sent"] > 0


def test_lossless_finality_takes_2q_minus_1_slots_plus_the_flood(reports):
    baseline = reports["baseline"]
    assert baseline["lossless_finality_slots"] == 5  # n = 4, q = 3
    assert 5 <= baseline["finality_p50_slots"] < 6
    assert baseline["rejected"] == {} and set(baseline["bytes_on_air"]) == {"BLOCK", "TX"}


def test_scenarios_show_their_faults(reports):
    assert reports["lossy"]["radio"]["lost"] > 0
    assert reports["partition"]["packets_on_air"].get("GET_BLOCKS", 0) > 0  # the cut-off side catches up
    assert reports["equivocation"]["equivocations_detected"] > 0
    assert reports["equivocation"]["equivocations_on_chain"] > 0  # recorded by EVIDENCE txs
    assert all(r["equivocations_on_chain"] == 0 for name, r in reports.items() if name != "equivocation")
    assert reports["equivocation"]["rejected"]["malformed"] > 0  # 4: its noise changed nothing
    late = reports["late-join"]["finalized_heights"]
    assert late["min"] >= late["max"] - 2  # the late nodes caught up
    crash = reports["leader-crash"]
    assert crash["blocks_proposed"] < reports["baseline"]["blocks_proposed"]  # its slots went empty meanwhile


def test_same_seed_same_run():
    config = SimConfig(scenario="lossy", nodes=6, validators=4, hours=0.2, seed=11)
    first, second = simulate(config), simulate(config)
    first.pop("wall_s"), second.pop("wall_s")
    assert first == second


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), loss=st.floats(0.0, 0.45), scenario=st.sampled_from(sorted(SCENARIOS)))
def test_invariants_hold_for_random_seeds_and_loss(seed, loss, scenario):
    report = simulate(SimConfig(scenario=scenario, nodes=6, validators=4, hours=0.25, seed=seed, loss=loss))
    assert_invariants(report)


def test_the_ouroboros_bft_depth_rule_alone_splits_in_a_partition():
    report = simulate(SimConfig(scenario="partition", finality="obft", **SMALL))
    assert report["finalized_conflicts"] > 0 and not report["finalized_prefix_agree"]


def test_impossible_configurations_are_refused():
    with pytest.raises(SimConfigError):
        SimConfig(nodes=3, validators=4)
    with pytest.raises(SimConfigError):
        simulate(SimConfig(scenario="equivocation", nodes=5, validators=3, hours=0.1))
    with pytest.raises(SimConfigError):
        simulate(SimConfig(scenario="no-such", nodes=5, hours=0.1))


def test_event_loop_runs_in_time_then_schedule_order():
    loop = EventLoop()
    ran = []
    loop.schedule(2.0, lambda: ran.append("b"))
    loop.schedule(1.0, lambda: (ran.append("a"), loop.schedule(0.5, lambda: ran.append("late"))))
    loop.schedule(2.0, lambda: ran.append("c"))
    loop.run(1.5)
    assert ran == ["a", "late"] and loop.now == 1.5
    loop.run(10)
    assert ran == ["a", "late", "b", "c"] and loop.now == 10
