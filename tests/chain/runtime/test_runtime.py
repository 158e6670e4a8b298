"""`NodeRuntime` (chain/runtime/runtime.py), without IO: the device's own signed
transactions and their nonces, final commands executed once and reported, evidence
recorded on chain, the store written before anything is queued, peers and link events,
timers; and that the field simulator and `blockiot node` run this one class.

Ported from tests/tools/test_node_commands.py (the old `NodeRunner` of tools/node.py)."""
from __future__ import annotations

import io
import queue
import random
import threading
from types import SimpleNamespace

import pytest
from runtime_helpers import (
    LINK_MTU,
    PROBE,
    T0,
    VAL_A,
    VAL_B,
    VALVE,
    FakeClock,
    ScriptedDriver,
    TestChain,
    drain,
    frames_of,
    make_runtime,
    txs_in,
)

from blockiot.chain.commands import DueCommand
from blockiot.chain.crypto import Identity
from blockiot.chain.consensus.events import (
    PRIORITY_BLOCK,
    PRIORITY_SYNC,
    PRIORITY_TX,
    EvidenceToRecord,
    Finalized,
    Output,
    Rejected,
    Send,
)
from blockiot.chain.consensus.messages import MsgType, TxMsg, encode_message
from blockiot.chain.runtime.actuator import LogActuator
from blockiot.chain.runtime.log import NodeLog
from blockiot.chain.runtime.realtime import RealtimeNode
from blockiot.chain.consensus.recovery import restore
from blockiot.chain.runtime.datadir import DataDir
from blockiot.chain.runtime.runtime import (
    NONCE_RESTART_GAP,
    PEERS_KEPT,
    REJECTIONS_KEPT,
    STARTED_KEPT,
    Execute,
    FinalBlock,
    NodeRuntime,
    Reported,
)
from blockiot.chain.state import LedgerState
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import MAX_BLOCK_TXS, Action, Command, EquivocationProof, Reading, Sensor, TxKind, decode_tx
from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.link import Dropped, Link
from blockiot.radio.linkframe import RepairRequest, decode

OPEN_600 = Command(VALVE, Action.OPEN, (600,))


def recorder():
    events = []
    return events, lambda event, now: events.append((event, now))


@pytest.fixture
def chain(genesis, identities) -> TestChain:
    return TestChain(genesis, identities)


@pytest.fixture
def store(tmp_path):
    store = ChainStore(tmp_path / "data")
    yield store
    store.close()


def final(runtime: NodeRuntime, block, now: float) -> None:
    """Tell the runtime (through its core) that `block` is final."""
    runtime.core.script(Output(persist=[block]))
    runtime.tick(now)


# --- the device's own transactions ----------------------------------------------------


def test_submit_signs_as_this_device_and_queues_one_flood(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE])
    submitted = rt.submit(Reading(Sensor.MOISTURE, 287), T0)
    assert submitted.rejected is None
    frames = drain(rt, T0)
    assert [(f.hop_limit, f.priority, f.kind) for f in frames] == [(None, PRIORITY_TX, "TX")]
    [tx] = txs_in(frames)
    assert (tx.kind, tx.sender, tx.body) == (TxKind.READING, PROBE, Reading(Sensor.MOISTURE, 287))
    assert tx.id == submitted.tx_id
    LedgerState(genesis).check_signature(tx)  # signed by probe-1's key for this chain
    assert submitted.tx_id in rt.core.mempool


def test_submit_says_when_the_core_refused_it(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE])
    refusal = Rejected("tx", "bad-tx", "no")
    rt.core.script_submit(Output(events=[refusal]))
    assert rt.submit(Reading(Sensor.MOISTURE, 1), T0).rejected == refusal
    assert list(rt.rejections) == [refusal]


def test_nonces_count_up_past_the_restart_gap_on_a_fresh_chain(genesis, identities):
    """A node cannot tell a fresh device from one restarted before its first tx was final."""
    rt = make_runtime(genesis, identities[PROBE])
    body = Reading(Sensor.MOISTURE, 1)
    gap = NONCE_RESTART_GAP
    assert [decode_tx(rt.sign(body)).nonce for _ in range(3)] == [gap + 1, gap + 2, gap + 3]
    rt.submit(body, T0)
    assert rt.last_nonce == gap + 4


def test_nonces_continue_from_the_last_one_the_caller_knows(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE], last_nonce=41)
    assert decode_tx(rt.sign(Reading(Sensor.MOISTURE, 1))).nonce == 42


def restarted(genesis, identity, store, now: float, data_dir: DataDir | None = None) -> NodeRuntime:
    """A runtime started on what `store` holds, as `blockiot node` starts one (with the
    data dir's nonce reservation when given)."""
    ledger, finalized = restore(genesis, store)
    nonces = {} if data_dir is None else {"last_nonce": data_dir.reserved_nonce(),
                                          "reserve_nonces": data_dir.reserve_nonce}
    return make_runtime(genesis, identity, now=now, store=store,
                        core_kwargs={"ledger": ledger, "finalized": finalized, "lock": store.lock()}, **nonces)


def test_after_a_restart_nonces_skip_past_those_in_flight(genesis, identities, chain, store):
    before = restarted(genesis, identities[VALVE], store, T0)
    body = Reading(Sensor.MOISTURE, 1)
    signed = [before.sign(body) for _ in range(5)]
    store.append(chain.block(*signed[:2]))  # the first two final, three still in flight
    after = restarted(genesis, identities[VALVE], store, T0 + 60)
    final = NONCE_RESTART_GAP + 2
    assert after.core.ledger.state.get("nonce", (VALVE,)) == (final,)
    assert decode_tx(after.sign(body)).nonce == final + NONCE_RESTART_GAP + 1


def test_a_stale_last_nonce_never_makes_the_device_sign_a_final_nonce_again(genesis, identities, chain, store):
    """A reservation lost or behind the chain (last_nonce 2 while nonce 66 is final) is
    overruled by the chain: the next tx goes above every final nonce."""
    first = restarted(genesis, identities[VALVE], store, T0)
    body = Reading(Sensor.MOISTURE, 1)
    store.append(chain.block(*(first.sign(body) for _ in range(2))))
    ledger, finalized = restore(genesis, store)
    after = make_runtime(genesis, identities[VALVE], now=T0 + 60, store=store, last_nonce=2,
                         core_kwargs={"ledger": ledger, "finalized": finalized, "lock": store.lock()})
    assert decode_tx(after.sign(body)).nonce == NONCE_RESTART_GAP + 3


def test_nonces_increase_across_a_restart_before_any_is_final(genesis, identities, store, tmp_path):
    with DataDir(tmp_path / "node") as data_dir:
        before = restarted(genesis, identities[VALVE], store, T0, data_dir)
        in_flight = [decode_tx(before.sign(Reading(Sensor.MOISTURE, i))).nonce for i in range(3)]
        assert in_flight == [1, 2, 3]  # small: few bytes on air
        after = restarted(genesis, identities[VALVE], store, T0 + 60, data_dir)
        assert decode_tx(after.sign(Reading(Sensor.MOISTURE, 9))).nonce > max(in_flight)


def test_nonces_are_reserved_on_disk_before_they_are_signed(genesis, identities, store, tmp_path):
    with DataDir(tmp_path / "node") as data_dir:
        rt = restarted(genesis, identities[VALVE], store, T0, data_dir)
        signed = [decode_tx(rt.sign(Reading(Sensor.MOISTURE, i))).nonce for i in range(NONCE_RESTART_GAP + 1)]
        assert max(signed) == NONCE_RESTART_GAP + 1
        assert data_dir.reserved_nonce() >= max(signed)


def test_every_nonce_is_reserved_before_it_is_signed(genesis, identities):
    reserved: list[int] = []
    rt = make_runtime(genesis, identities[VALVE], last_nonce=0, reserve_nonces=reserved.append)
    for _ in range(2 * NONCE_RESTART_GAP + 1):
        nonce = decode_tx(rt.sign(Reading(Sensor.MOISTURE, 1))).nonce
        assert reserved and nonce <= reserved[-1]
    assert reserved == [NONCE_RESTART_GAP, 2 * NONCE_RESTART_GAP, 3 * NONCE_RESTART_GAP]


def test_a_node_without_a_member_identity_signs_nothing_and_executes_nothing(genesis):
    rt = make_runtime(genesis, None)
    with pytest.raises(ValueError, match="member identity"):
        rt.sign(Reading(Sensor.MOISTURE, 1))
    with pytest.raises(ValueError, match="member"):
        make_runtime(genesis, None, actuate=True)


def test_send_message_queues_every_link_frame_with_its_hop_limit_priority_and_kind(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE])
    rt.send_message(bytes(3 * LINK_MTU), hop_limit=0, priority=PRIORITY_SYNC, kind="BLOCKS", now=T0)
    frames = drain(rt, T0)
    assert len(frames) == 4
    assert {(f.hop_limit, f.priority, f.kind) for f in frames} == {(0, PRIORITY_SYNC, "BLOCKS")}
    link = Link(LINK_MTU, rng=random.Random(0))
    delivered = [e for f in frames for e in link.receive(f.data, 5, T0)]
    assert [e.payload for e in delivered] == [bytes(3 * LINK_MTU)]


# --- final commands: executed once, reported --------------------------------------------


def test_a_final_command_to_the_device_is_exactly_one_execute_action(genesis, identities, signers, chain, store):
    rt = make_runtime(genesis, identities[VALVE], store=store, actuate=True)
    order = signers.sign(VAL_A, OPEN_600).raw
    final(rt, chain.block(order), T0)
    assert rt.take_actions() == [Execute(DueCommand("tx", VAL_A, 1, Action.OPEN, (600,)))]
    assert rt.take_actions() == []
    # More blocks final while it is not yet reported: nothing runs twice.
    final(rt, chain.block(signers.sign(PROBE, Reading(Sensor.MOISTURE, 250)).raw), T0 + 30)
    final(rt, chain.block(), T0 + 60)
    assert rt.take_actions() == []


def test_a_block_told_final_twice_runs_its_command_once(genesis, identities, signers, chain):
    rt = make_runtime(genesis, identities[VALVE], actuate=True)
    block = chain.block(signers.sign(VAL_A, OPEN_600).raw)
    final(rt, block, T0)
    final(rt, block, T0 + 1)
    assert len(rt.take_actions()) == 1


def test_the_commands_remembered_as_started_are_the_newest(genesis, identities, signers, chain):
    """At most STARTED_KEPT commands are remembered against running one twice; the oldest goes first."""
    rt = make_runtime(genesis, identities[VALVE], actuate=True)
    orders = [signers.sign(VAL_A, Command(VALVE, Action.OPEN, (n,))).raw for n in range(STARTED_KEPT + 1)]
    rest = orders[2:]
    blocks = [chain.block(orders[0]), chain.block(orders[1])]
    blocks += [chain.block(*rest[i:i + MAX_BLOCK_TXS]) for i in range(0, len(rest), MAX_BLOCK_TXS)]
    for n, block in enumerate(blocks):
        final(rt, block, T0 + n)
    assert len(rt.take_actions()) == STARTED_KEPT + 1
    final(rt, blocks[-1], T0 + 10)  # the newest: remembered
    final(rt, blocks[1], T0 + 11)  # the second oldest: remembered
    assert rt.take_actions() == []
    final(rt, blocks[0], T0 + 12)  # the oldest was forgotten: it runs again
    assert [action.command.args for action in rt.take_actions()] == [(0,)]


def test_a_command_to_another_device_is_not_executed(genesis, identities, signers, chain):
    rt = make_runtime(genesis, identities[PROBE], actuate=True)
    final(rt, chain.block(signers.sign(VAL_A, OPEN_600).raw), T0)
    assert rt.take_actions() == []


def test_a_runtime_that_does_not_actuate_executes_nothing(genesis, identities, signers, chain):
    rt = make_runtime(genesis, identities[VALVE])
    final(rt, chain.block(signers.sign(VAL_A, OPEN_600).raw), T0)
    assert rt.take_actions() == [] and rt.final is None


def test_a_new_command_after_one_executed_is_executed_once_too(genesis, identities, signers, chain):
    rt = make_runtime(genesis, identities[VALVE], actuate=True)
    final(rt, chain.block(signers.sign(VAL_A, OPEN_600).raw), T0)
    [first] = rt.take_actions()
    final(rt, chain.block(signers.sign(VAL_B, Command(VALVE, Action.CLOSE, ())).raw), T0 + 30)
    assert rt.take_actions() == [Execute(DueCommand("tx", VAL_B, 2, Action.CLOSE, ()))]
    final(rt, chain.block(), T0 + 60)
    assert rt.take_actions() == []


def test_a_successful_report_floods_the_same_action_to_itself(genesis, identities, signers, chain):
    events, on_event = recorder()
    rt = make_runtime(genesis, identities[VALVE], actuate=True, on_event=on_event)
    final(rt, chain.block(signers.sign(VAL_A, OPEN_600).raw), T0)
    [action] = rt.take_actions()
    drain(rt, T0)
    submitted = rt.report(action.command, True, 0, T0 + 1)
    [tx] = txs_in(drain(rt, T0 + 1))
    assert (tx.sender, tx.body) == (VALVE, Command(VALVE, Action.OPEN, (600,)))
    assert tx.id == submitted.tx_id and submitted.rejected is None
    assert (Reported(Action.OPEN, (600,), True, 0), T0 + 1) in events
    # Once the report is final, nothing is due for the valve any more.
    final(rt, chain.block(tx.raw), T0 + 30)
    assert rt.final.get("command", (VALVE,))[0] == VALVE
    assert rt.take_actions() == []


def test_a_failed_report_is_a_report_action_with_the_exit_status(genesis, identities, signers, chain):
    events, on_event = recorder()
    rt = make_runtime(genesis, identities[VALVE], actuate=True, on_event=on_event)
    final(rt, chain.block(signers.sign(VAL_A, OPEN_600).raw), T0)
    [action] = rt.take_actions()
    drain(rt, T0)
    rt.report(action.command, False, 3, T0 + 1)
    [tx] = txs_in(drain(rt, T0 + 1))
    assert (tx.sender, tx.body) == (VALVE, Command(VALVE, Action.REPORT, (Action.OPEN, 3)))
    assert (Reported(Action.OPEN, (600,), False, 3), T0 + 1) in events
    final(rt, chain.block(tx.raw), T0 + 30)
    assert rt.take_actions() == []  # a failure is reported, not retried in this process


def test_a_command_final_but_not_reported_before_a_restart_runs_again_after_it(genesis, identities, signers, chain, store):
    before = make_runtime(genesis, identities[VALVE], store=store, actuate=True)
    final(before, chain.block(signers.sign(VAL_A, OPEN_600).raw), T0)
    assert len(before.take_actions()) == 1  # ... and the node dies before it reports
    after = make_runtime(genesis, identities[VALVE], store=store, actuate=True, now=T0 + 60)
    final(after, chain.block(), T0 + 60)  # (the start may find it, or the next final block)
    assert after.take_actions() == [Execute(DueCommand("tx", VAL_A, 1, Action.OPEN, (600,)))]
    final(after, chain.block(), T0 + 90)
    assert after.take_actions() == []


def test_every_command_of_a_block_is_executed(genesis, identities, signers, chain):
    rt = make_runtime(genesis, identities[VALVE], actuate=True)
    final(rt, chain.block(signers.sign(VAL_A, OPEN_600).raw, signers.sign(VAL_B, Command(VALVE, Action.CLOSE, ())).raw), T0)
    assert rt.take_actions() == [Execute(DueCommand("tx", VAL_A, 1, Action.OPEN, (600,))),
                                 Execute(DueCommand("tx", VAL_B, 1, Action.CLOSE, ()))]


def test_a_command_overwritten_by_a_report_final_with_it_is_still_executed(genesis, identities, signers, chain):
    rt = make_runtime(genesis, identities[VALVE], actuate=True)
    final(rt, chain.block(signers.sign(VAL_A, OPEN_600).raw), T0)
    [opened] = rt.take_actions()
    rt.report(opened.command, True, 0, T0 + 1)
    [report] = txs_in(drain(rt, T0 + 1))
    close = signers.sign(VAL_B, Command(VALVE, Action.CLOSE, ())).raw
    # Both final at once: the close, then the open's report (the latest `command` entry).
    rt.core.script(Output(persist=[chain.block(close), chain.block(report.raw)]))
    rt.tick(T0 + 60)
    assert rt.take_actions() == [Execute(DueCommand("tx", VAL_B, 2, Action.CLOSE, ()))]


def test_a_command_reported_before_a_restart_does_not_run_again(genesis, identities, signers, chain, store):
    before = make_runtime(genesis, identities[VALVE], store=store, actuate=True)
    final(before, chain.block(signers.sign(VAL_A, OPEN_600).raw), T0)
    [action] = before.take_actions()
    before.report(action.command, True, 0, T0 + 1)
    [report] = txs_in(drain(before, T0 + 1))
    final(before, chain.block(report.raw), T0 + 30)
    after = make_runtime(genesis, identities[VALVE], store=store, actuate=True, now=T0 + 60)
    final(after, chain.block(), T0 + 60)
    assert after.take_actions() == []


# --- evidence ---------------------------------------------------------------------------


def test_evidence_to_record_becomes_a_signed_evidence_tx(genesis, identities):
    events, on_event = recorder()
    rt = make_runtime(genesis, identities[VAL_B], on_event=on_event)
    rt.core.script(Output(events=[EvidenceToRecord(b"\x07proof")]))
    rt.tick(T0)
    [tx] = txs_in(drain(rt, T0))
    assert (tx.kind, tx.sender, tx.body) == (TxKind.EVIDENCE, VAL_B, EquivocationProof(b"\x07proof"))
    assert (EvidenceToRecord(b"\x07proof"), T0) in events


def test_evidence_is_not_recorded_when_the_runtime_is_told_not_to(genesis, identities):
    events, on_event = recorder()
    rt = make_runtime(genesis, identities[VAL_B], record_evidence=False, on_event=on_event)
    rt.core.script(Output(events=[EvidenceToRecord(b"\x07proof")]))
    rt.tick(T0)
    assert drain(rt, T0) == []
    assert (EvidenceToRecord(b"\x07proof"), T0) in events


def test_a_node_without_an_identity_records_no_evidence(genesis):
    rt = make_runtime(genesis, None)
    rt.core.script(Output(events=[EvidenceToRecord(b"\x07proof")]))
    rt.tick(T0)
    assert drain(rt, T0) == []


# --- order of effects -------------------------------------------------------------------


class SpyStore:
    """Records each write with how many frames were queued when it happened."""

    def __init__(self) -> None:
        self.runtime: NodeRuntime | None = None
        self.calls: list[tuple] = []

    def set_lock(self, slot: int) -> None:
        self.calls.append(("lock", slot, len(self.runtime.transmit)))

    def append(self, applied) -> None:
        self.calls.append(("append", applied.block.header.height, len(self.runtime.transmit)))


def test_the_lock_and_finalized_blocks_reach_the_store_before_any_frame_is_queued(genesis, identities, chain):
    spy = SpyStore()
    events, on_event = recorder()
    rt = make_runtime(genesis, identities[VAL_A], store=spy, on_event=on_event)
    spy.runtime = rt
    blocks = [chain.block(), chain.block()]
    sends = [Send(b"\x02block", MsgType.BLOCK, None, PRIORITY_BLOCK), Send(b"\x04txs", MsgType.TXS, 0, PRIORITY_SYNC)]
    rt.core.script(Output(sends=sends, persist=blocks, lock=7))
    rt.tick(T0)
    assert spy.calls == [("lock", 7, 0), ("append", 1, 0), ("append", 2, 0)]
    assert events == [(FinalBlock(blocks[0]), T0), (FinalBlock(blocks[1]), T0)]  # told once stored
    assert [(f.hop_limit, f.priority, f.kind) for f in drain(rt, T0)] == [(None, PRIORITY_BLOCK, "BLOCK"),
                                                                          (0, PRIORITY_SYNC, "TXS")]


def test_core_events_reach_on_event_with_the_time(genesis, identities, chain):
    events, on_event = recorder()
    rt = make_runtime(genesis, identities[VAL_A], on_event=on_event)
    done = Finalized(b"\x01" * 32, 1, 1, T0)
    rt.core.script(Output(events=[done]))
    rt.tick(T0 + 2)
    assert events == [(done, T0 + 2)]


# --- what the radio heard ---------------------------------------------------------------


def test_a_delivered_message_reaches_the_core_with_its_origin_and_hops(genesis, identities, signers):
    rt = make_runtime(genesis, identities[VALVE])
    tx = signers.sign(PROBE, Reading(Sensor.MOISTURE, 287))
    payload = encode_message(TxMsg(tx))
    [frame] = frames_of(payload)
    rt.receive(frame, 0x33, T0, hops=2, rssi=-97.0, snr=-3.5)
    assert rt.core.received == [(payload, T0, 0x33, 2)]
    assert tx.id in rt.core.mempool


def test_peers_are_tracked_with_hops_and_signal(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE])
    sender = Link(LINK_MTU, rng=random.Random(5))
    [first] = sender.send(b"\x09one", T0)
    [second] = sender.send(b"\x09two", T0)
    rt.receive(first, 0x42, T0, hops=2, rssi=-97.0, snr=-3.5)
    peer = rt.peers[0x42]
    assert (peer.last_heard, peer.hops, peer.rssi, peer.snr, peer.frames) == (T0, 2, -97.0, -3.5, 1)
    rt.receive(second, 0x42, T0 + 5, hops=0, rssi=-80.0, snr=6.0)
    peer = rt.peers[0x42]
    assert (peer.last_heard, peer.hops, peer.rssi, peer.snr, peer.frames) == (T0 + 5, 0, -80.0, 6.0, 2)
    rt.receive(first, 0x43, T0 + 6, hops=1)
    assert (rt.peers[0x43].rssi, rt.peers[0x43].snr) == (None, None)


def test_peers_kept_are_bounded_and_the_longest_silent_goes_first(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE])
    junk = b"\xc0\x00"  # a reserved frame type: dropped by the link, but its sender was heard
    for i in range(PEERS_KEPT):
        rt.receive(junk, 1000 + i, T0 + i, hops=0)
    rt.receive(junk, 1000, T0 + 100, hops=0)  # the oldest speaks again
    rt.receive(junk, 5000, T0 + 101, hops=1)  # one more than is kept
    assert len(rt.peers) == PEERS_KEPT
    assert 1000 in rt.peers and 5000 in rt.peers and 1001 not in rt.peers


def test_link_drops_are_counted_and_told(genesis, identities):
    events, on_event = recorder()
    rt = make_runtime(genesis, identities[PROBE], on_event=on_event)
    rt.receive(b"\xc0\x00", 7, T0, hops=0)
    rt.receive(bytes(LINK_MTU + 1), 7, T0, hops=0)
    rt.receive(b"\xc0\x01", 8, T0, hops=0)
    assert rt.link_drops == {"malformed": 2, "oversize": 1}
    assert [(e.sender, e.reason) for e, _ in events if isinstance(e, Dropped)] == [(7, "malformed"), (7, "oversize"), (8, "malformed")]


def test_rejections_are_kept_newest_and_bounded(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE])
    sender = Link(LINK_MTU, rng=random.Random(5))
    for i in range(REJECTIONS_KEPT + 4):
        [frame] = sender.send(bytes([0x70, i]), T0)  # no consensus message type
        rt.receive(frame, 9, T0, hops=0)
    assert len(rt.rejections) == REJECTIONS_KEPT
    assert all(r.what == "message" and r.reason == "malformed" for r in rt.rejections)


def test_a_link_repair_request_goes_to_neighbours_only_as_an_answer(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE])
    sender = Link(LINK_MTU, rng=random.Random(5), radio_id=0x33)
    frames = sender.send(bytes(500), T0)  # three fragments
    assert len(frames) == 3
    rt.receive(frames[0], 0x33, T0, hops=0)
    due = rt.next_deadline()
    assert due is not None and T0 < due < T0 + 60
    rt.tick(due - 1.0)
    assert drain(rt, due - 1.0) == []
    rt.tick(due)
    [request] = drain(rt, due)
    assert (request.hop_limit, request.priority, request.kind) == (0, PRIORITY_SYNC, "link-repair")
    parsed = decode(request.data)
    assert isinstance(parsed, RepairRequest) and parsed.target == 0x33 and parsed.missing == {1, 2}


# --- timers -----------------------------------------------------------------------------


def test_next_deadline_is_the_earliest_of_the_core_and_the_link(genesis, identities):
    rt = make_runtime(genesis, identities[VAL_A], scripted=False)
    core_due = rt.core.next_deadline()
    assert core_due is not None and rt.next_deadline() == core_due  # nothing else pending
    rt.receive(Link(LINK_MTU, rng=random.Random(5)).send(bytes(500), T0)[0], 0x33, T0, hops=0)
    link_due = rt.link.next_deadline()
    assert link_due is not None and link_due != core_due
    assert rt.next_deadline() == min(core_due, link_due)


def test_a_member_with_nothing_pending_has_no_deadline(genesis, identities):
    assert make_runtime(genesis, identities[PROBE], scripted=False).next_deadline() is None


def test_tick_runs_the_core_only_when_its_deadline_is_due(genesis, identities):
    rt = make_runtime(genesis, identities[VAL_A])
    rt.core.deadline = 100.0
    rt.tick(99.9)
    assert rt.core.ticks == []
    rt.tick(100.0 - 1e-10)  # a clock conversion a hair early still counts
    rt.tick(100.0)
    assert rt.core.ticks == [100.0 - 1e-10, 100.0]


# --- the runtime on a real cluster ------------------------------------------------------


class RuntimeNet:
    """Runtimes of real cores, every frame heard by every other runtime at once."""

    def __init__(self, runtimes: list[NodeRuntime], now: float) -> None:
        self.runtimes = runtimes
        self.now = now
        self.executed: list[list[Execute]] = [[] for _ in runtimes]

    def run(self, until: float, step: float = 0.5) -> None:
        while self.now < until:
            self.now += step
            for i, rt in enumerate(self.runtimes):
                rt.tick(self.now)
                for action in rt.take_actions():
                    self.executed[i].append(action)
                    rt.report(action.command, True, 0, self.now)
                for frame in drain(rt, self.now):
                    for other in self.runtimes:
                        if other is not rt:
                            other.receive(frame.data, rt.core.radio_id, self.now, hops=0, rssi=-90.0, snr=5.0)


def test_on_a_cluster_a_final_command_runs_once_and_its_report_becomes_final(genesis, identities, tmp_path):
    runtimes = [make_runtime(genesis, identities[i], scripted=False, actuate=(i == VALVE),
                             store=ChainStore(tmp_path / f"n{i}") if i == VALVE else None) for i in range(4)]
    net = RuntimeNet(runtimes, T0)
    runtimes[VAL_A].submit(OPEN_600, T0)
    net.run(T0 + 12 * genesis.params.slot_seconds)
    valve = runtimes[VALVE]
    assert [a.command.action for a in net.executed[VALVE]] == [Action.OPEN]
    assert [a.command.args for a in net.executed[VALVE]] == [(600,)]
    assert all(not executed for i, executed in enumerate(net.executed) if i != VALVE)
    issuer, action, _slot, *args = valve.final.get("command", (VALVE,))
    assert (issuer, action, args) == (VALVE, Action.OPEN, [600])  # its report is final
    assert valve.store.head()[0] == valve.core.finalized.height > 0
    valve.store.close()


# --- one runtime class for the simulator and the CLI -------------------------------------


def test_the_field_simulator_runs_node_runtime():
    from blockiot.hil.sim.fieldsim import FieldSim, SimConfig

    sim = FieldSim(SimConfig(nodes=4, hours=0.05))
    report = sim.run()
    assert all(type(node.runtime) is NodeRuntime for node in sim.nodes)
    assert report["blocks_proposed"] > 0  # the runtimes ran: blocks were signed and flooded
    assert all(node.runtime.core.head.height > 0 for node in sim.nodes)


def test_blockiot_node_runs_node_runtime(genesis, identities, tmp_path):
    from blockiot.tools.node import _node

    clock = FakeClock(T0)
    driver = ScriptedDriver(clock, node_id=0x2002)
    store = ChainStore(tmp_path / "data")
    budget = DutyCycleBudget("EU868", frequency_hz=869.525e6)
    control = SimpleNamespace(requests=queue.Queue())
    stop = threading.Event()
    node = _node(genesis, identities[VALVE], driver, 0x2002, store, budget, NodeLog(genesis, stream=io.StringIO()),
                 LogActuator(), control, stop, DataDir(tmp_path / "data"))
    try:
        assert isinstance(node, RealtimeNode) and type(node.runtime) is NodeRuntime
        rt = node.runtime
        assert (rt.core.member, rt.core.radio_id) == (VALVE, 0x2002)
        assert rt.store is store and rt.final is not None  # it executes commands
        assert rt.transmit.budget is budget and rt.link.mtu == driver.mtu
        assert node.requests is control.requests and node.stop is stop
    finally:
        store.close()


def test_blockiot_node_gives_its_link_its_own_radio_id(genesis, identities, tmp_path):
    from blockiot.tools.node import _node

    driver = ScriptedDriver(FakeClock(T0), node_id=0x2002)
    store = ChainStore(tmp_path / "data")
    try:
        node = _node(genesis, identities[VALVE], driver, 0x2002, store, DutyCycleBudget("EU868"),
                     NodeLog(genesis, stream=io.StringIO()), LogActuator(),
                     SimpleNamespace(requests=None), threading.Event(), DataDir(tmp_path / "data"))
        assert node.runtime.link.radio_id == 0x2002
    finally:
        store.close()
