"""Governance on the ledger (chain/governance.py): who may propose and vote, the 2/3
threshold, expiry, and effects that take hold at the first epoch boundary after the
passing block is final on the chain, with the leader schedule switching there."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from blockiot.chain import governance as gov
from blockiot.chain.consensus import finality
from blockiot.chain.contracts import compile_rule
from blockiot.chain.crypto import Identity
from blockiot.chain.errors import DecodeError, EncodeError, InvalidBlock, InvalidTx
from blockiot.chain.evidence import encode_evidence, make_evidence, proof_of
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.ledger import AppliedBlock, Ledger
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import (
    MAX_GROUPS,
    MAX_HARDWARE,
    MAX_PROPOSAL_TTL,
    MAX_UPDATE_CHUNK,
    PARAM_RANGES,
    AddMember,
    ApproveUpdate,
    DeployRule,
    EquivocationProof,
    GrantValidator,
    JoinRequest,
    Param,
    Proposal,
    Reading,
    RemoveMember,
    RetireRule,
    RevokeValidator,
    Sensor,
    SetParam,
    Vote,
    decode_tx,
    sign_join,
    sign_tx,
)
from test_ledger import forge_block

RULE = compile_rule(
    (Path(__file__).resolve().parents[2] / "examples" / "contracts" / "cold_chain.rule").read_text(), "cold_chain.rule"
).bytecode


class Gov:
    """A test cluster on one ledger: `validators` validators (indices 0..), then members;
    each signer keeps its own nonces; `history` holds the raw blocks built."""

    def __init__(self, validators: int, members: int = 2, epoch_slots: int = 8, store=None):
        self.identities = [Identity.from_seed(bytes([0x60 + i]) * 32) for i in range(validators + members)]
        registry = tuple(
            Member(i, ident.public_key, "validator" if i < validators else "member",
                   ("core",) if i < validators else ("field",), f"m{i}")
            for i, ident in enumerate(self.identities)
        )
        self.genesis = Genesis("gov-test", 1_764_000_000, Params(slot_seconds=30, epoch_slots=epoch_slots), registry)
        self.ledger = Ledger(self.genesis, store)
        self.nonces: dict[int, int] = {}
        self.history: list[bytes] = []  # raw blocks, in order

    @property
    def state(self):
        return self.ledger.state

    def tx(self, index: int, body) -> bytes:
        self.nonces[index] = self.nonces.get(index, 0) + 1
        return sign_tx(self.identities[index], self.genesis.chain_id, index, self.nonces[index], body).raw

    def block(self, *raw_txs: bytes, slot: int | None = None) -> AppliedBlock:
        slot = max(self.ledger.head.slot + 1, 1) if slot is None else slot  # the first block in slot 1
        leader = self.identities[self.ledger.leader_for_slot(slot)]
        applied = self.ledger.build_block(leader, slot, list(raw_txs))
        self.history.append(applied.block.raw)
        return applied

    def until(self, slot: int) -> None:
        """Empty blocks in every slot up to `slot`."""
        while self.ledger.head.slot < slot:
            self.block()

    def propose(self, proposer: int, action, ttl: int = 60) -> tuple[int, int]:
        raw = self.tx(proposer, Proposal(ttl, action))
        assert self.block(raw).block.txs == (raw,)
        return proposer, self.nonces[proposer]

    def vote(self, pid, *voters: int) -> AppliedBlock:
        raws = [self.tx(v, Vote(*pid)) for v in voters]
        applied = self.block(*raws)
        assert applied.block.txs == tuple(raws)
        return applied

    def refusal(self, raw: bytes, slot: int | None = None) -> str | None:
        """The reason a tx is refused in a block of `slot` on the head (None: it applies); the
        state is left as it was."""
        slot = self.ledger.head.slot + 1 if slot is None else slot
        self.state.begin()
        try:
            self.state.apply_tx(decode_tx(raw), slot)
        except gov.Refused as exc:
            return exc.reason
        finally:
            self.state.rollback()
        return None


def status(cluster: Gov, pid) -> str:
    return gov.proposal(cluster.state, *pid).status


# --- threshold -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 6, 7])
def test_a_proposal_passes_with_more_than_two_thirds_of_the_validators(n):
    """n = 4: 2 fail, 3 pass; n = 6: 4 (exactly 2/3) fail, 5 pass; n = 7: 4 fail, 5 pass."""
    cluster = Gov(n)
    pid = cluster.propose(0, SetParam(Param.DUTY_CYCLE_BP, 500))  # the proposer's yes counts
    for yes in range(2, n + 1):
        cluster.vote(pid, yes - 1)
        passed = status(cluster, pid) == "passed"
        assert passed == (3 * yes > 2 * n), (n, yes)
        if passed:
            assert yes == 2 * n // 3 + 1
            break


def test_exactly_two_thirds_is_not_enough():
    cluster = Gov(6)
    pid = cluster.propose(0, SetParam(Param.MAX_BLOCK_TXS, 20))
    cluster.vote(pid, 1, 2, 3)
    assert status(cluster, pid) == "open" and len(gov.proposal(cluster.state, *pid).yes) == 4
    cluster.vote(pid, 4)
    assert status(cluster, pid) == "passed"


def test_a_members_proposal_needs_the_validators_votes():
    cluster = Gov(4)
    pid = cluster.propose(5, SetParam(Param.DUTY_CYCLE_BP, 500))
    assert gov.proposal(cluster.state, *pid).yes == ()
    cluster.vote(pid, 0, 1)
    assert status(cluster, pid) == "open"
    cluster.vote(pid, 2)
    assert status(cluster, pid) == "passed"


# --- refusals --------------------------------------------------------------------------------


def test_votes_that_do_not_count_are_refused_with_a_reason():
    cluster = Gov(4)
    pid = cluster.propose(0, SetParam(Param.DUTY_CYCLE_BP, 500), ttl=5)  # slot 1, open through slot 6
    assert cluster.refusal(cluster.tx(4, Vote(*pid))) == "not-validator"
    assert cluster.refusal(cluster.tx(1, Vote(0, 99))) == "unknown-proposal"
    assert cluster.refusal(cluster.tx(0, Vote(*pid))) == "double-vote"  # its proposal was its vote
    cluster.vote(pid, 1)
    assert cluster.refusal(cluster.tx(1, Vote(*pid))) == "double-vote"
    assert cluster.refusal(cluster.tx(2, Vote(*pid)), slot=6) is None
    assert cluster.refusal(cluster.tx(2, Vote(*pid)), slot=7) == "expired"
    cluster.vote(pid, 2)
    assert cluster.refusal(cluster.tx(3, Vote(*pid))) == "decided"


def test_a_refused_vote_is_left_out_of_a_block_and_changes_nothing():
    cluster = Gov(4)
    pid = cluster.propose(0, SetParam(Param.DUTY_CYCLE_BP, 500))
    root = cluster.state.state_root()
    applied = cluster.block(cluster.tx(5, Vote(*pid)), cluster.tx(0, Vote(*pid)))
    assert applied.block.txs == () and applied.state_root == root


def test_proposals_from_outside_or_beyond_their_rights_are_refused():
    cluster = Gov(4)
    stranger = Identity.from_seed(b"\x99" * 32)
    raw = sign_tx(stranger, cluster.genesis.chain_id, 17, 1, Proposal(10, SetParam(Param.DUTY_CYCLE_BP, 9))).raw
    assert cluster.refusal(raw) == "not-member"
    assert cluster.refusal(cluster.tx(4, Proposal(10, GrantValidator(5)))) == "not-validator"
    assert cluster.refusal(cluster.tx(4, Proposal(10, RemoveMember(1)))) == "not-validator"
    assert cluster.refusal(cluster.tx(4, Proposal(10, RemoveMember(5)))) is None
    assert cluster.refusal(cluster.tx(0, Proposal(10, GrantValidator(1)))) == "no-change"
    assert cluster.refusal(cluster.tx(0, Proposal(10, RevokeValidator(4)))) == "no-change"
    assert cluster.refusal(cluster.tx(0, Proposal(10, RevokeValidator(1, evidence=3)))) == "no-evidence"
    assert cluster.refusal(cluster.tx(0, Proposal(10, RetireRule(0, 1)))) == "unknown-rule"
    assert cluster.refusal(cluster.tx(0, Proposal(10, DeployRule(b"\x00junk")))) == "bad-rule"
    taken = AddMember(cluster.identities[5].public_key, 0, "newbie")
    assert cluster.refusal(cluster.tx(4, Proposal(10, taken))) == "key-in-use"
    renamed = AddMember(b"\x07" * 32, 0, "m5")
    assert cluster.refusal(cluster.tx(4, Proposal(10, renamed))) == "name-in-use"


# --- effects at the epoch boundary after finality ---------------------------------------------------


def test_a_validator_joins_at_the_first_boundary_after_the_passing_block_is_final():
    cluster = Gov(4, epoch_slots=8)
    pid = cluster.propose(0, GrantValidator(4))  # slot 1
    cluster.vote(pid, 1, 2)  # slot 2 passes it
    assert gov.proposal(cluster.state, *pid).slot == 2
    cluster.until(6)
    assert status(cluster, pid) == "passed"  # final 2q - 1 = 5 slots after its block, at slot 7
    assert gov.validators_at(cluster.state, 100) == (0, 1, 2, 3)
    cluster.until(7)
    info = gov.proposal(cluster.state, *pid)
    assert (info.status, info.slot) == ("enacted", 8)
    assert gov.validators_at(cluster.state, 7) == (0, 1, 2, 3)
    assert gov.validators_at(cluster.state, 8) == (0, 1, 2, 3, 4)
    assert [gov.leader_for_slot(cluster.state, s) for s in range(4, 12)] == [0, 1, 2, 3, 3, 4, 0, 1]
    block = cluster.block()  # slot 8: validator 3 leads under the new set (0 did before)
    assert block.block.header.slot == 8 and cluster.ledger.leader_for_slot(8) == 3
    with pytest.raises(InvalidBlock, match="not the leader"):
        cluster.ledger.build_block(cluster.identities[1], 9, [])
    assert cluster.ledger.build_block(cluster.identities[4], 9, []).block.header.slot == 9


def test_after_the_switch_a_block_of_the_old_schedules_leader_is_refused():
    cluster = Gov(4, epoch_slots=8)
    pid = cluster.propose(0, GrantValidator(4))
    cluster.vote(pid, 1, 2)
    cluster.until(7)
    other = Ledger(cluster.genesis)
    for raw in cluster.history:
        other.apply_block(raw)
    assert other.state.state_root() == cluster.state.state_root()
    old_leader = cluster.identities[cluster.genesis.leader_for_slot(8)]
    with pytest.raises(InvalidBlock, match="not signed by the slot's leader"):
        other.apply_block(forge_block(other, old_leader, 8, []))
    right = cluster.identities[other.leader_for_slot(8)]
    assert other.apply_block(forge_block(other, right, 8, [])).block.header.slot == 8


def test_finality_that_comes_late_delays_the_switch_to_a_later_boundary():
    cluster = Gov(4, epoch_slots=8)
    pid = cluster.propose(0, GrantValidator(4))
    cluster.vote(pid, 1, 2)  # slot 2
    cluster.block(slot=3)
    cluster.block(slot=4)  # then slots 5-8 are lost: slot 2 can no longer be dense
    cluster.block(slot=9)
    cluster.until(13)
    assert status(cluster, pid) == "passed"
    cluster.until(14)  # the block of slot 14 makes slot 9 final, and 2 below it
    info = gov.proposal(cluster.state, *pid)
    assert (info.status, info.slot) == ("enacted", 16)
    assert gov.validators_at(cluster.state, 15) == (0, 1, 2, 3) and gov.validators_at(cluster.state, 16)[-1] == 4


def test_one_validator_set_change_per_boundary():
    cluster = Gov(4, members=3, epoch_slots=8)
    grant_4 = cluster.propose(0, GrantValidator(4))
    grant_5 = cluster.propose(1, GrantValidator(5))
    raws = [cluster.tx(v, Vote(*grant_4)) for v in (1, 2)] + [cluster.tx(v, Vote(*grant_5)) for v in (0, 2)]
    cluster.block(*raws)  # slot 3 passes both; the block of slot 8 makes it final
    cluster.until(8)
    assert [gov.proposal(cluster.state, *p).slot for p in (grant_4, grant_5)] == [16, 24]
    assert gov.validators_at(cluster.state, 15) == (0, 1, 2, 3)
    assert gov.validators_at(cluster.state, 16) == (0, 1, 2, 3, 4)
    assert gov.validators_at(cluster.state, 24) == (0, 1, 2, 3, 4, 5)


def _pass(cluster: Gov, action, proposer: int = 0, voters=None) -> tuple[int, int]:
    """Propose `action`, pass it with just enough votes (of `voters`, default the other
    validators in order), then add blocks until its effect is scheduled."""
    pid = cluster.propose(proposer, action)
    validators = gov.validators_at(cluster.state, cluster.ledger.head.slot + 1)
    need = 2 * len(validators) // 3 + 1 - (proposer in validators)
    cluster.vote(pid, *[v for v in (voters or validators) if v != proposer][:need])
    assert status(cluster, pid) != "open"
    while status(cluster, pid) == "passed":
        cluster.block()
    return pid


def test_a_device_joins_by_vote_and_signs_once_the_switch_slot_comes():
    cluster = Gov(4, epoch_slots=8)
    device = Identity.from_seed(b"\x77" * 32)
    request = decode_tx(sign_join(device, cluster.genesis.chain_id, "probe-9", ("field",), hardware=43).raw)
    assert cluster.refusal(request.raw) == "join-request"  # never applied itself
    action = gov.join_proposal(cluster.state, request)
    assert action == AddMember(device.public_key, 0, "probe-9", ("field",), 43)
    pid = _pass(cluster, action, proposer=4)  # any member relays it
    switch = gov.proposal(cluster.state, *pid).slot
    index = gov.index_of(cluster.state, device.public_key)
    assert index == 6 and gov.hardware_of(cluster.state, index) == 43
    reading = sign_tx(device, cluster.genesis.chain_id, index, 1, Reading(Sensor.MOISTURE, 250)).raw
    assert cluster.refusal(reading, slot=switch - 1) == "not-member"
    assert gov.member_at(cluster.state, index, switch - 1) is None
    cluster.until(switch - 1)
    assert cluster.block(reading).block.txs == (reading,) and cluster.ledger.head.slot == switch
    assert cluster.state.get("reading", (index, Sensor.MOISTURE)) == (250, switch)
    assert gov.group_at(cluster.state, "field", switch) == (4, 5, 6)
    with pytest.raises(gov.Refused, match="key-in-use"):
        gov.join_proposal(cluster.state, request)


def test_a_forged_join_request_is_refused():
    cluster = Gov(4)
    device = Identity.from_seed(b"\x78" * 32)
    other_chain = sign_join(device, b"\x00" * 32, "probe-9")
    with pytest.raises(InvalidTx, match="bad signature"):
        gov.join_proposal(cluster.state, decode_tx(other_chain.raw))


def test_a_removed_member_is_refused_from_the_switch_slot_on():
    cluster = Gov(4, epoch_slots=8)
    pid = _pass(cluster, RemoveMember(5))
    switch = gov.proposal(cluster.state, *pid).slot
    before = cluster.tx(5, Reading(Sensor.MOISTURE, 1))
    assert cluster.refusal(before, slot=switch - 1) is None
    with pytest.raises(gov.Refused, match="removed"):  # a mempool no longer takes its txs
        cluster.state.check_signature(decode_tx(before))
    cluster.until(switch - 1)
    assert cluster.refusal(before, slot=switch) == "removed"
    assert cluster.block(before).block.txs == ()
    assert gov.member_at(cluster.state, 5, switch) is None and gov.group_at(cluster.state, "field", switch) == (4,)
    assert cluster.refusal(cluster.tx(0, Proposal(9, RemoveMember(5)))) == "not-member"


def test_evidence_lets_any_validator_remove_an_equivocating_validator():
    cluster = Gov(4, epoch_slots=8)
    offender = cluster.genesis.leader_for_slot(1)
    first = cluster.block(slot=1)
    twin = Ledger(cluster.genesis).build_block(cluster.identities[offender], 1, [cluster.tx(4, Reading(1, 2))])
    chain_id = cluster.genesis.chain_id
    evidence = make_evidence(chain_id, 1, proof_of(first, chain_id), proof_of(twin, chain_id))
    cluster.block(cluster.tx(2, EquivocationProof(encode_evidence(evidence))))
    assert cluster.state.tables["equivocation"] == {(offender, 1): (2,)}
    assert cluster.refusal(cluster.tx(3, Proposal(9, RevokeValidator(offender, evidence=2)))) == "no-evidence"
    pid = _pass(cluster, RemoveMember(offender, evidence=1), proposer=3, voters=(0, 2))
    switch = gov.proposal(cluster.state, *pid).slot
    assert offender not in gov.validators_at(cluster.state, switch)
    assert gov.validators_at(cluster.state, switch - 1) == (0, 1, 2, 3)
    assert offender not in {gov.leader_for_slot(cluster.state, s) for s in range(switch, switch + 12)}


def test_revoking_the_last_validator_is_void():
    cluster = Gov(1, epoch_slots=4)
    pid = _pass(cluster, RevokeValidator(0))
    assert status(cluster, pid) == "void" and gov.validators_at(cluster.state, 1000) == (0,)


def test_rules_are_deployed_and_retired_by_vote():
    cluster = Gov(4, epoch_slots=8)
    deploy = _pass(cluster, DeployRule(RULE))
    switch = gov.proposal(cluster.state, *deploy).slot
    assert deploy not in cluster.state.tables["contract"]
    cluster.until(switch)
    assert cluster.state.tables["contract"][deploy] == (RULE,)
    retire = _pass(cluster, RetireRule(*deploy), proposer=1)
    cluster.until(gov.proposal(cluster.state, *retire).slot)
    assert deploy not in cluster.state.tables["contract"] and not cluster.state.tables["gov_due"]


def test_parameters_change_at_the_switch_slot():
    cluster = Gov(4, epoch_slots=8)
    pid = _pass(cluster, SetParam(Param.MAX_BLOCK_TXS, 2))
    switch = gov.proposal(cluster.state, *pid).slot
    assert gov.param_at(cluster.state, Param.MAX_BLOCK_TXS, switch - 1) is None
    assert gov.param_at(cluster.state, Param.MAX_BLOCK_TXS, switch) == 2
    cluster.until(switch - 1)
    readings = [cluster.tx(4, Reading(Sensor.LIGHT, i)) for i in range(3)]
    assert len(cluster.block(*readings).block.txs) == 2  # a leader keeps to the limit
    epoch = _pass(cluster, SetParam(Param.EPOCH_SLOTS, 5))
    since = gov.proposal(cluster.state, *epoch).slot
    assert since % 8 == 0
    assert gov.next_epoch_boundary(cluster.state, since - 1) == since
    assert gov.next_epoch_boundary(cluster.state, since) == since + 5
    assert gov.param_at(cluster.state, Param.SLOT_SECONDS, 10**6) == 30


def test_a_block_over_the_governed_limit_is_refused():
    cluster = Gov(4, epoch_slots=8)
    switch = gov.proposal(cluster.state, *_pass(cluster, SetParam(Param.MAX_BLOCK_TXS, 1))).slot
    cluster.until(switch - 1)
    two = [cluster.tx(4, Reading(Sensor.LIGHT, i)) for i in range(2)]
    leader = cluster.identities[cluster.ledger.leader_for_slot(switch)]
    with pytest.raises(InvalidBlock, match="more than 1"):
        cluster.ledger.apply_block(forge_block(cluster.ledger, leader, switch, two))


def test_slot_start_follows_slot_length_changes():
    cluster = Gov(4, epoch_slots=8)
    pid = _pass(cluster, SetParam(Param.SLOT_SECONDS, 60))
    since = gov.proposal(cluster.state, *pid).slot
    assert gov.slot_start(cluster.state, since) == since * 30
    assert gov.slot_start(cluster.state, since + 3) == since * 30 + 180


def test_an_approved_update_manifest_is_what_devices_check_against():
    cluster = Gov(4, epoch_slots=8)
    image = bytes(range(256)) * 10
    manifest = ApproveUpdate(version=0x020701, hardware=43, size=len(image), chunk=200,
                             digest=gov.image_digest(image, 200))
    pid = _pass(cluster, manifest)
    switch = gov.proposal(cluster.state, *pid).slot
    assert gov.approved_update(cluster.state, 43, 0x020701, switch - 1) is None
    assert gov.approved_update(cluster.state, 43, 0x020701, switch) == manifest
    assert gov.approved_update(cluster.state, 9, 0x020701, switch) is None
    assert gov.image_digest(image[:-1] + b"\x00", 200) != manifest.digest
    assert cluster.refusal(cluster.tx(0, Proposal(9, manifest))) == "update-known"


def test_governance_state_survives_a_restart(tmp_path):
    cluster = Gov(4, epoch_slots=8, store=ChainStore(tmp_path))
    pid = _pass(cluster, GrantValidator(4))
    cluster.propose(1, SetParam(Param.DUTY_CYCLE_BP, 100))
    cluster.ledger.store.close()
    reopened = Ledger(cluster.genesis, ChainStore(tmp_path))
    assert reopened.state.state_root() == cluster.state.state_root()
    assert reopened.state.tables == cluster.state.tables
    switch = gov.proposal(reopened.state, *pid).slot
    assert gov.validators_at(reopened.state, switch) == (0, 1, 2, 3, 4)
    reopened.store.close()


# --- properties ------------------------------------------------------------------------------------


def _reference_final(slots: list[int], n: int) -> list[int | None]:
    """For each block of a chain with these slots, the highest slot it makes final, by the
    consensus rule over the whole chain from the genesis (chain/consensus/finality.py)."""
    q = gov.quorum(n)
    votes: list[finality.Vote] = []
    verdicts = []
    for slot in slots:
        parent_just = votes[-1].just if votes else finality.GENESIS_SLOT
        tail = [v for v in [finality.GENESIS_VOTE, *votes] if v.slot >= slot - n]
        votes.append(finality.vote_of(tail, slot, parent_just, n, q))
        verdicts.append(finality.final_slot(votes, n, q))
    return verdicts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.sampled_from([1, 4, 7]),
    present=st.lists(st.booleans(), min_size=36, max_size=36),
    at=st.integers(0, 12),
)
def test_a_passed_proposal_is_enacted_in_the_block_that_makes_it_final(n, present, at):
    """The ledger follows finality from the passing block on, not from the genesis: it
    must still name the same block as the consensus rule computed over the whole chain."""
    slots = [s for s, keep in zip(range(1, 37), present) if keep]
    assume(len(slots) > at)
    cluster = Gov(n, epoch_slots=8)
    final = _reference_final(slots, n)
    passed_at = slots[at]
    expected = next((i for i in range(at + 1, len(slots)) if final[i] is not None and final[i] >= passed_at), None)
    pid = (0, 1)
    for i, slot in enumerate(slots):
        txs = []
        if i == at:
            txs = [cluster.tx(0, Proposal(50, SetParam(Param.DUTY_CYCLE_BP, 700)))]
            txs += [cluster.tx(v, Vote(*pid)) for v in range(1, 2 * n // 3 + 1)]
        cluster.block(*txs, slot=slot)
        info = gov.proposal(cluster.state, *pid)
        if i < at:
            assert info is None
        elif expected is None or i < expected:
            assert (info.status, info.slot) == ("passed", passed_at)
        else:
            assert (info.status, info.slot) == ("enacted", (slots[expected] // 8 + 1) * 8)
    if expected is not None:
        assert not cluster.state.tables["gov_final"]  # nothing waits: no finality rows kept


_ACTIONS = [
    GrantValidator(4),
    RevokeValidator(1),
    RevokeValidator(3),
    RemoveMember(5),
    RemoveMember(2),
    AddMember(b"\x31" * 32, 0, "new-a", ("field",), 9),
    AddMember(b"\x32" * 32, 0, "new-b"),
    SetParam(Param.EPOCH_SLOTS, 6),
    SetParam(Param.MAX_BLOCK_TXS, 3),
    DeployRule(RULE),
    ApproveUpdate(7, 43, 1000, 100, b"\x05" * 32),
]
_STEP = st.tuples(
    st.sampled_from([1, 1, 1, 1, 2, 3]),  # slots to the next block
    st.lists(
        st.one_of(
            st.tuples(st.just("propose"), st.integers(0, 5), st.integers(0, len(_ACTIONS) - 1)),
            st.tuples(st.just("vote"), st.integers(0, 5), st.integers(0, 2)),  # on one of the last 3 proposals
            st.tuples(st.just("quorum"), st.just(0), st.integers(0, 2)),  # every validator votes on one
            st.tuples(st.just("reading"), st.integers(0, 5), st.integers(0, 100)),
        ),
        max_size=4,
    ),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, min_size=5, max_size=40))
def test_the_same_blocks_give_the_same_state_on_every_ledger(steps):
    """Random proposals, votes and readings over slots: a second ledger applying the first
    one's blocks in order reaches the same state root after every block, and undoing
    every block's diff returns it to the genesis state."""
    cluster = Gov(4, members=2, epoch_slots=4)
    other = Ledger(cluster.genesis)
    genesis_root = other.state.state_root()
    proposals: list[tuple[int, int]] = []
    diffs = []
    for gap, specs in steps:
        txs = []
        for what, sender, arg in specs:
            if what == "propose":
                txs.append(cluster.tx(sender, Proposal(12, _ACTIONS[arg])))
                proposals.append((sender, cluster.nonces[sender]))
            elif what == "vote" and proposals:
                txs.append(cluster.tx(sender, Vote(*proposals[-1 - arg % len(proposals)])))
            elif what == "quorum" and proposals:
                voters = gov.validators_at(cluster.state, cluster.ledger.head.slot + gap)
                txs += [cluster.tx(v, Vote(*proposals[-1 - arg % len(proposals)])) for v in voters]
            elif what == "reading":
                txs.append(cluster.tx(sender, Reading(Sensor.MOISTURE, arg)))
        applied = cluster.block(*txs, slot=cluster.ledger.head.slot + gap)
        replayed = other.apply_block(applied.block.raw)
        assert replayed.state_root == applied.state_root == other.state.state_root()
        diffs.append(replayed.diff)
    assert other.state.tables == cluster.state.tables
    for diff in reversed(diffs):
        other.state.undo(diff)
    assert other.state.state_root() == genesis_root
    for diff in diffs:
        other.state.redo(diff)
    assert other.state.state_root() == cluster.state.state_root()


# --- wire: governance bodies --------------------------------------------------------------------

_NAMES = st.from_regex(r"[A-Za-z0-9_.:-]{1,32}", fullmatch=True)
_INDICES = st.integers(0, 2**14 - 1)
_KEYS = st.binary(min_size=32, max_size=32)
_GROUP_LISTS = st.lists(_NAMES, max_size=MAX_GROUPS, unique=True).map(tuple)
_actions = st.one_of(
    st.builds(AddMember, _KEYS, st.integers(0, 1), st.one_of(st.just(""), _NAMES), _GROUP_LISTS,
              st.integers(0, MAX_HARDWARE)),
    st.builds(RemoveMember, _INDICES, st.one_of(st.none(), st.integers(0, 2**40))),
    st.builds(GrantValidator, _INDICES),
    st.builds(RevokeValidator, _INDICES, st.one_of(st.none(), st.integers(0, 2**40))),
    st.builds(DeployRule, st.binary(max_size=150)),
    st.builds(RetireRule, _INDICES, st.integers(1, 2**40)),
    st.sampled_from(list(PARAM_RANGES)).flatmap(
        lambda p: st.builds(SetParam, st.just(int(p)), st.integers(*PARAM_RANGES[p]))),
    st.builds(ApproveUpdate, st.integers(1, 2**32 - 1), st.integers(0, MAX_HARDWARE), st.integers(1, 2**32 - 1),
              st.integers(1, MAX_UPDATE_CHUNK), _KEYS),
)
_gov_bodies = st.one_of(
    st.builds(Proposal, st.integers(1, MAX_PROPOSAL_TTL), _actions),
    st.builds(Vote, _INDICES, st.integers(1, 2**40)),
)
_SIGNER = Identity.from_seed(b"\x42" * 32)


@settings(max_examples=200, deadline=None)
@given(
    body=_gov_bodies, sender=_INDICES, nonce=st.integers(1, 2**40), cut=st.integers(0, 300), flip=st.integers(0, 2**11)
)
def test_governance_txs_round_trip_and_damage_is_refused(body, sender, nonce, cut, flip):
    tx = sign_tx(_SIGNER, b"\x00" * 32, sender, nonce, body)
    assert decode_tx(tx.raw) == tx
    damaged = bytearray(tx.raw[: cut % (len(tx.raw) + 1)])
    if damaged and flip:
        damaged[flip % len(damaged)] ^= 1 << (flip % 8)
    try:
        decode_tx(bytes(damaged))
    except DecodeError:
        pass


@settings(max_examples=50, deadline=None)
@given(name=st.one_of(st.just(""), _NAMES), groups=_GROUP_LISTS, hardware=st.integers(0, MAX_HARDWARE))
def test_join_requests_round_trip(name, groups, hardware):
    tx = sign_join(_SIGNER, b"\x00" * 32, name, groups, hardware)
    assert decode_tx(tx.raw) == tx and tx.body.key == _SIGNER.public_key


@pytest.mark.parametrize(
    "body",
    [
        Proposal(0, GrantValidator(1)),
        Proposal(MAX_PROPOSAL_TTL + 1, GrantValidator(1)),
        Proposal(5, SetParam(99, 1)),
        Proposal(5, SetParam(Param.EPOCH_SLOTS, 0)),
        Proposal(5, SetParam(Param.DUTY_CYCLE_BP, 10_001)),
        Proposal(5, AddMember(b"\x01" * 31, 0, "x")),
        Proposal(5, AddMember(b"\x01" * 32, 2, "x")),
        Proposal(5, AddMember(b"\x01" * 32, 0, "bad name")),
        Proposal(5, AddMember(b"\x01" * 32, 0, "x", ("a", "a"))),
        Proposal(5, AddMember(b"\x01" * 32, 0, "x", ("a", "b", "c", "d", "e"))),
        Proposal(5, ApproveUpdate(1, 1, 100, MAX_UPDATE_CHUNK + 1, b"\x00" * 32)),
        Proposal(5, ApproveUpdate(1, 1, 100, 10, b"\x00" * 31)),
        Proposal(5, DeployRule(b"\x00" * 200)),  # over the 240 B of one radio frame
        Vote(1, 0),
    ],
)
def test_out_of_range_governance_bodies_are_not_encoded(body):
    with pytest.raises(EncodeError):
        sign_tx(_SIGNER, b"\x00" * 32, 1, 1, body)


def test_a_join_request_has_no_sender_and_no_nonce():
    with pytest.raises(EncodeError, match="no sender"):
        sign_tx(_SIGNER, b"\x00" * 32, 3, 1, JoinRequest(_SIGNER.public_key, "x"))
