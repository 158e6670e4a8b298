"""Hypothesis drives the adversarial cluster (blockiot.hil.sim.adversary) of real `NodeCore`s,
n = 4 and n = 7 plus non-validators, some validators Byzantine twins: slot by slot it
chooses which nodes lose or get late the slot's block, partitions that come and go, the
loss, delay and reordering of all traffic, the twins' sides, and equivocations;
after every step no two honest finalized chains may conflict and no finalized block may
be reverted, and after every heal finality must resume within `resume_bound(n)` slots.

The profile is bounded for CI and reproducible (derandomized); `blockiot bench safety
--hours H` runs the long random search. A failure prints the steps that led to it.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from blockiot.chain.consensus.events import BlockProposed, Equivocation
from blockiot.hil.sim.adversary import (
    STEPS_PER_SLOT, Adversary, AdversaryCluster, Invariants, resume_bound, run_schedule,
)

# Nodes named by position in the cluster (validators, twins, members), taken modulo their count.
NODES = st.frozensets(st.integers(0, 11), max_size=3)


def test_invariants_catch_conflicts_and_reverts():
    invariants = Invariants(["A", "B"])
    invariants.finalized("A", 1, b"x", slot=5)
    invariants.finalized("B", 1, b"x", slot=5)
    invariants.root("A", 1, b"x", slot=5)
    assert invariants.violations == []
    invariants.finalized("B", 2, b"y", slot=6)
    invariants.finalized("A", 2, b"z", slot=7)  # conflicts with B's
    invariants.finalized("A", 3, b"w", slot=7)  # reported once per node
    invariants.root("B", 1, b"x", slot=8)  # B's finalized height went down
    assert [(v.kind, v.slot) for v in invariants.violations] == [("conflict", 7), ("revert", 8)]


@pytest.mark.parametrize("n", [4, 7])
def test_a_lossless_cluster_agrees_and_finality_resumes_after_a_heal(n):
    cluster = AdversaryCluster(n, members=2)
    cluster.run_slots(4 * n)
    assert all(node.core.finalized.height > 0 for node in cluster.honest)
    cluster.heal()
    assert cluster.run_until_resumed(resume_bound(n)) is not None
    assert cluster.violations == []


def test_twins_sign_two_blocks_for_their_slot_and_each_side_gets_one():
    adversary = Adversary()
    cluster = AdversaryCluster(4, members=1, byzantine=1, adversary=adversary, readings=False)
    cluster.diverge("D'")
    adversary.lose = {("D", 3): {"C", "D'"}, ("D'", 3): {"A", "B", "m0", "D"}}
    cluster.run_slots(8)
    for twin in ("D", "D'"):
        assert 3 in {e.slot for e in cluster.events[twin] if isinstance(e, BlockProposed)}
    reported = {(e.leader, e.slot) for node in cluster.honest for e in cluster.events[node.name] if isinstance(e, Equivocation)}
    assert (3, 3) in reported  # the two blocks met once catch-up brought them together
    assert cluster.violations == []


def test_a_random_schedule_replays_from_its_seed():
    assert run_schedule(3, 4) == run_schedule(3, 4)


class AdversarialCluster(RuleBasedStateMachine):
    """Each step is one slot: the rule says what the adversary changes as it starts."""

    n = 4

    @initialize(seed=st.integers(0, 2**16), byzantine=st.integers(0, 2), members=st.integers(0, 2))
    def build(self, seed, byzantine, members):
        self.adversary = Adversary(random.Random(seed))
        self.cluster = AdversaryCluster(self.n, members=members, byzantine=min(byzantine, (self.n - 1) // 3),
                                        adversary=self.adversary, seed=seed)

    def names(self, picks) -> set[str]:
        return {self.cluster.nodes[i % len(self.cluster.nodes)].name for i in picks}

    def signers(self, slot: int) -> list[str]:
        return [node.name for node in self.cluster.signers(slot)]

    @rule(lost=NODES, late=NODES, steps=st.integers(1, 3 * STEPS_PER_SLOT))
    def next_slot(self, lost, late, steps):
        """The next slot runs; its block never reaches `lost` and reaches `late` late."""
        slot = self.cluster.slot + 1
        for leader in self.signers(slot):
            self.adversary.lose.setdefault((leader, slot), set()).update(self.names(lost))
            self.adversary.delay.setdefault((leader, slot), {}).update(dict.fromkeys(self.names(late), steps))
        self.cluster.run_slots(1)

    @rule(block_loss=st.sampled_from([0.0, 0.1, 0.3, 0.5]), loss=st.sampled_from([0.0, 0.1, 0.3]),
          max_delay=st.sampled_from([0, 2, STEPS_PER_SLOT]), reorder=st.booleans())
    def network(self, block_loss, loss, max_delay, reorder):
        """From now on a block flood is lost with probability `block_loss`, any packet with
        probability `loss`, and packets come up to `max_delay` steps late."""
        adversary = self.adversary
        adversary.block_loss, adversary.loss, adversary.max_delay, adversary.reorder = block_loss, loss, max_delay, reorder
        self.cluster.run_slots(1)

    @rule(side=st.frozensets(st.integers(0, 11), min_size=1))
    def partition(self, side):
        self.adversary.groups = {node.name: node.name in self.names(side) for node in self.cluster.nodes}
        self.cluster.run_slots(1)

    @rule()
    def rejoin(self):
        self.adversary.groups = None
        self.cluster.run_slots(1)

    @precondition(lambda self: any(not node.honest for node in self.cluster.nodes))
    @rule(side=NODES, cross=st.sampled_from([0.0, 0.5, 1.0]))
    def twins_apart(self, side, cross):
        """Every Byzantine validator's first twin hears and reaches only the honest nodes in
        `side`, its second twin only the others; honest traffic between them is lost with
        probability `cross`."""
        honest = {node.name for node in self.cluster.honest}
        first = self.names(side) & honest
        for slot in range(self.n):
            if len(self.signers(slot)) == 2:
                twin, other_twin = self.signers(slot)
                self.adversary.sides.update({twin: first, other_twin: honest - first})
        self.adversary.cross = cross
        self.cluster.run_slots(1)

    @rule()
    def twins_together(self):
        self.adversary.sides = {}
        self.cluster.run_slots(1)

    @precondition(lambda self: any(not node.honest for node in self.cluster.nodes))
    @rule(audience=NODES)
    def equivocate(self, audience):
        """The next Byzantine slot gets two blocks: `audience` hears only the second twin's."""
        slot = self.cluster.slot + 1
        while len(self.signers(slot)) < 2:
            slot += 1
        first, second = self.signers(slot)
        self.cluster.diverge(second)
        hears_second = self.names(audience) - {first, second}
        others = {node.name for node in self.cluster.nodes} - hears_second - {first, second}
        self.adversary.lose.setdefault((first, slot), set()).update(hears_second)
        self.adversary.lose.setdefault((second, slot), set()).update(others)
        self.cluster.run_slots(1)

    @rule()
    def heal_and_resume(self):
        """Heal for a while: every honest node finalizes a block made after the heal."""
        self.cluster.heal()
        self.cluster.run_until_resumed(resume_bound(self.n))
        self.cluster.unheal()

    @invariant()
    def safe_and_live(self):
        assert not self.cluster.violations, self.cluster.violations

    def teardown(self):
        if hasattr(self, "cluster") and not self.cluster.violations:
            self.heal_and_resume()
            self.safe_and_live()


class AdversarialCluster7(AdversarialCluster):
    n = 7


PROFILE = dict(deadline=None, derandomize=True, stateful_step_count=30)
TestFourValidators = AdversarialCluster.TestCase
TestFourValidators.settings = settings(max_examples=12, **PROFILE)
TestSevenValidators = AdversarialCluster7.TestCase
TestSevenValidators.settings = settings(max_examples=6, **PROFILE)
