"""The field simulator's scenarios: what goes wrong, and when, in a run of `FieldSim`.

Times are fractions of the run so every scenario works at any length. Validators are
registry indices 0..V-1, the other nodes V..N-1.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable

from blockiot.hil.sim.fieldsim import ClockModel, FieldSim, SimConfig, SimConfigError

LOSSY_LOSS = 0.3
# Bursty scenario (Gilbert-Elliott per receiver): 2 min good, 30 s fades losing 90 %: 18 % on average.
BURST = (120.0, 30.0, 0.9)
# Flapping scenario: a third of the validators cut off and back, each phase 1-4 slots long.
FLAP_SLOTS = (1, 4)
# Clock-drift scenario: nodes without a time source start up to this many drift
# allowances off, and run this many ppm fast or slow (cheap crystals, temperature).
DRIFT_START_ALLOWANCES = 3.0
DRIFT_PPM = 200.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    prepare: Callable[[SimConfig], SimConfig]
    install: Callable[[FieldSim], None]


def _same(config: SimConfig) -> SimConfig:
    return config


def _nothing(sim: FieldSim) -> None:
    """Nothing goes wrong."""


def _lossy(config: SimConfig) -> SimConfig:
    return config if config.loss else replace(config, loss=LOSSY_LOSS)


def _bursty(config: SimConfig) -> SimConfig:
    return config if config.burst else replace(config, burst=BURST)


def _flapping(sim: FieldSim) -> None:
    """During the middle third of the run the cut-off side flaps: cut, healed, cut, ..."""
    duration = sim.config.duration_s
    slot = sim.consensus.slot_seconds
    rng = random.Random(f"flap:{sim.config.seed}")
    cut = list(range(_third(sim.config.validators)))
    t, end = duration / 3, 2 * duration / 3
    while t < end:
        length = rng.randint(*FLAP_SLOTS) * slot
        sim.cut_off(cut, t, min(t + length, end))
        t += length + rng.randint(*FLAP_SLOTS) * slot


def _third(count: int) -> int:
    return max(1, count // 3)


def _partition(sim: FieldSim) -> None:
    duration = sim.config.duration_s
    cut = list(range(_third(sim.config.validators)))
    sim.cut_off(cut, duration / 3, 2 * duration / 3)


def _leader_crash(sim: FieldSim) -> None:
    duration = sim.config.duration_s
    sim.give_disk(0)
    sim.crash(0, duration / 3)
    sim.restart(0, 2 * duration / 3)


def _equivocation(sim: FieldSim) -> None:
    if sim.config.validators < 4:
        raise SimConfigError("the equivocation scenario needs at least 4 validators (one Byzantine of n = 3f + 1)")
    sim.nodes[sim.config.validators - 1].byzantine = True


def _clock_drift(sim: FieldSim) -> None:
    rng = random.Random(f"clock:{sim.config.seed}")
    spread = DRIFT_START_ALLOWANCES * sim.consensus.drift
    for node in sim.nodes:
        if node.validator and node.index < (sim.config.validators + 1) // 2:
            continue  # these validators keep GPS time
        node.clock = ClockModel(rng.uniform(-spread, spread), rng.uniform(-DRIFT_PPM, DRIFT_PPM), time_source=False)


def _late_join(sim: FieldSim) -> None:
    duration = sim.config.duration_s
    members = [i for i in range(sim.config.validators, sim.config.nodes) if i not in sim.relays]
    late = members[: _third(len(members))] if members else []
    late.append(sim.config.validators - 1)
    for index in late:
        sim.join_late(index, duration / 2)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("baseline", "every node up, no extra loss", _same, _nothing),
        Scenario("lossy", f"{LOSSY_LOSS:.0%} random packet loss on every link (unless --loss is given)", _lossy, _nothing),
        Scenario(
            "bursty",
            f"bursty loss at every receiver (Gilbert-Elliott: {BURST[0]:g} s good, {BURST[1]:g} s fades losing "
            f"{BURST[2]:.0%}, unless --burst is given)",
            _bursty,
            _nothing,
        ),
        Scenario("partition", "a third of the validators cut off for the middle third of the run, then healed", _same, _partition),
        Scenario(
            "flapping",
            f"a third of the validators cut off and back again and again ({FLAP_SLOTS[0]}-{FLAP_SLOTS[1]} slots each) "
            "for the middle third of the run, then healed",
            _same,
            _flapping,
        ),
        Scenario("leader-crash", "validator 0 dies at 1/3 of the run and restarts from its disk at 2/3", _same, _leader_crash),
        Scenario(
            "equivocation",
            "the last validator is Byzantine: it signs two blocks in each of its slots and floods random bytes",
            _same,
            _equivocation,
        ),
        Scenario(
            "clock-drift",
            f"all nodes but half the validators lack a time source: start up to {DRIFT_START_ALLOWANCES:g} drift "
            f"allowances off, run up to {DRIFT_PPM:g} ppm off, follow the chain's slot clock",
            _same,
            _clock_drift,
        ),
        Scenario(
            "late-join",
            "a third of the devices that do not relay, and the last validator, join with empty state halfway",
            _same,
            _late_join,
        ),
    )
}


def simulate(config: SimConfig) -> dict:
    """Run `config.scenario` on the field `config` describes; the metrics report."""
    scenario = SCENARIOS.get(config.scenario)
    if scenario is None:
        raise SimConfigError(f"unknown scenario {config.scenario!r}; scenarios: {', '.join(SCENARIOS)}")
    sim = FieldSim(scenario.prepare(config))
    scenario.install(sim)
    return sim.run()
