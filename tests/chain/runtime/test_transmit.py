"""The transmit queue (chain/runtime/transmit.py): priority then arrival order, strict
priority against the airtime budget, stale answers dropped, frames that can never fit
dropped, a bounded queue, and `ready_at` saying when to ask again."""
from __future__ import annotations

import random

import pytest

from blockiot.chain.consensus.events import PRIORITY_BLOCK, PRIORITY_EVIDENCE, PRIORITY_SYNC, PRIORITY_TX
from blockiot.chain.runtime.transmit import Frame, TransmitQueue
from blockiot.radio.dutycycle import DutyCycleBudget


def frame(name: str, priority: int, size: int = 10, kind: str | None = None) -> Frame:
    """A frame whose bytes name it; with `seconds_per_byte` airtime its airtime is `size` x that."""
    return Frame(name.encode().ljust(size, b"."), None, priority, kind or name.rstrip("0123456789"))


def per_byte(seconds: float):
    return lambda frame_len: seconds * frame_len


def names(frames) -> list[str]:
    return [f.data.rstrip(b".").decode() for f in frames]


def pop_all(queue: TransmitQueue, now: float) -> list[Frame]:
    out = []
    while (f := queue.pop(now)) is not None:
        out.append(f)
    return out


def budget_of(allowance_s: float) -> DutyCycleBudget:
    """A self-imposed budget of `allowance_s` seconds of airtime per 100 s window."""
    return DutyCycleBudget("NONE", fraction=allowance_s / 100.0, window_s=100.0)


def test_most_urgent_first_then_first_in_first_out():
    queue = TransmitQueue(per_byte(0.001), None)
    for f in (frame("tx1", PRIORITY_TX), frame("sync1", PRIORITY_SYNC), frame("tx2", PRIORITY_TX),
              frame("block1", PRIORITY_BLOCK), frame("evidence1", PRIORITY_EVIDENCE), frame("block2", PRIORITY_BLOCK)):
        queue.push(f)
    assert len(queue) == 6
    assert names(pop_all(queue, 0.0)) == ["block1", "block2", "evidence1", "sync1", "tx1", "tx2"]
    assert len(queue) == 0 and queue.pop(0.0) is None


def test_a_frame_never_overtakes_a_more_urgent_one_waiting_for_budget():
    budget = budget_of(10.0)
    queue = TransmitQueue(per_byte(0.1), budget)
    queue.push(frame("block1", PRIORITY_BLOCK, size=80))  # 8 s of the 10 s
    assert names([queue.pop(0.0)]) == ["block1"]
    queue.push(frame("block2", PRIORITY_BLOCK, size=50))  # 5 s: waits until block1 leaves the window
    queue.push(frame("tx1", PRIORITY_TX, size=10))  # 1 s: the budget could pay it now
    assert queue.pop(1.0) is None
    assert budget.used(1.0) == pytest.approx(8.0)  # nothing more was spent
    ready = queue.ready_at()
    assert ready == pytest.approx(108.0)  # block1 (0..8 s) counts until 8 + 100
    assert queue.pop(ready - 0.5) is None
    assert names(pop_all(queue, ready)) == ["block2", "tx1"]


def test_an_answer_the_budget_cannot_pay_now_is_dropped_while_own_transactions_wait():
    drops = []
    budget = budget_of(10.0)
    queue = TransmitQueue(per_byte(0.1), budget, on_drop=drops.append)
    queue.push(frame("fill", PRIORITY_BLOCK, size=90))
    queue.pop(0.0)  # 9 s spent
    queue.push(frame("tx1", PRIORITY_TX, size=20))
    queue.push(frame("answer1", PRIORITY_SYNC, size=20, kind="TXS"))
    assert queue.pop(1.0) is None
    assert queue.dropped == {"TXS": 1} and drops == ["TXS"]
    assert len(queue) == 1 and queue.queued_by_kind() == {"tx": 1}  # the own tx waits
    assert names([queue.pop(queue.ready_at())]) == ["tx1"]
    assert queue.dropped == {"TXS": 1}


def test_an_answer_the_budget_can_pay_goes_out():
    queue = TransmitQueue(per_byte(0.1), budget_of(10.0))
    queue.push(frame("answer1", PRIORITY_SYNC, size=20))
    assert names([queue.pop(0.0)]) == ["answer1"]
    assert not queue.dropped


def test_an_answer_behind_a_waiting_block_is_kept_until_its_turn():
    budget = budget_of(10.0)
    queue = TransmitQueue(per_byte(0.1), budget)
    queue.push(frame("fill", PRIORITY_BLOCK, size=90))
    queue.pop(0.0)
    queue.push(frame("block1", PRIORITY_BLOCK, size=20))
    queue.push(frame("answer1", PRIORITY_SYNC, size=5))
    assert queue.pop(1.0) is None
    assert not queue.dropped and len(queue) == 2


def test_popping_spends_the_frames_airtime():
    budget = budget_of(10.0)
    queue = TransmitQueue(per_byte(0.1), budget)
    queue.push(frame("tx1", PRIORITY_TX, size=30))
    queue.pop(5.0)
    assert budget.used(5.0) == pytest.approx(3.0)


def test_a_full_queue_drops_the_newest_frame_of_the_least_urgent_kind():
    drops = []
    queue = TransmitQueue(per_byte(0.001), None, max_frames=3, on_drop=drops.append)
    queue.push(frame("block1", PRIORITY_BLOCK))
    queue.push(frame("tx1", PRIORITY_TX))
    queue.push(frame("tx2", PRIORITY_TX))
    queue.push(frame("answer1", PRIORITY_SYNC, kind="TXS"))  # full: tx2 makes room
    assert queue.dropped == {"tx": 1} and drops == ["tx"]
    queue.push(frame("tx3", PRIORITY_TX))  # least urgent and newest itself
    assert queue.dropped == {"tx": 2} and drops == ["tx", "tx"]
    assert len(queue) == 3
    assert names(pop_all(queue, 0.0)) == ["block1", "answer1", "tx1"]


def test_a_frame_longer_than_the_dwell_limit_is_dropped_and_the_next_goes():
    drops = []
    queue = TransmitQueue(per_byte(0.002), DutyCycleBudget("US915"), on_drop=drops.append)
    queue.push(frame("big", PRIORITY_BLOCK, size=201, kind="BLOCK"))  # 402 ms > 400 ms
    queue.push(frame("small", PRIORITY_TX, size=200, kind="TX"))  # 400 ms: allowed
    assert names([queue.pop(0.0)]) == ["small"]
    assert queue.dropped == {"BLOCK": 1} and drops == ["BLOCK"]
    assert len(queue) == 0


def test_a_frame_longer_than_the_whole_budget_is_dropped():
    queue = TransmitQueue(per_byte(0.1), budget_of(10.0))
    queue.push(frame("huge", PRIORITY_BLOCK, size=101, kind="BLOCK"))
    assert queue.pop(0.0) is None
    assert queue.dropped == {"BLOCK": 1} and queue.ready_at() is None


def test_ready_at_says_when_to_ask_again():
    queue = TransmitQueue(per_byte(0.1), budget_of(10.0))
    assert queue.ready_at() is None  # nothing queued
    queue.push(frame("block1", PRIORITY_BLOCK, size=90))
    assert queue.ready_at() == 0.0  # ask now
    queue.pop(2.0)  # 9 s spent from t = 2
    assert queue.ready_at() is None
    queue.push(frame("tx1", PRIORITY_TX, size=20))
    assert queue.ready_at() == 0.0
    assert queue.pop(3.0) is None
    assert queue.ready_at() == pytest.approx(111.0)  # an absolute time: 2 + 9 + 100
    assert queue.ready_at() == pytest.approx(111.0)  # asking does not change it
    queue.push(frame("tx2", PRIORITY_TX, size=1))
    assert queue.ready_at() == 0.0  # something new: ask again now
    assert queue.pop(4.0) is None and queue.ready_at() == pytest.approx(111.0)
    assert names(pop_all(queue, 111.0)) == ["tx1", "tx2"]
    assert queue.ready_at() is None


def test_without_a_budget_everything_goes_at_once():
    queue = TransmitQueue(per_byte(10.0), None)
    for i in range(5):
        queue.push(frame(f"tx{i}", PRIORITY_TX, size=200))
    assert len(pop_all(queue, 0.0)) == 5


def test_queued_by_kind_counts_what_waits():
    queue = TransmitQueue(per_byte(0.001), None)
    queue.push(frame("a", PRIORITY_TX, kind="TX"))
    queue.push(frame("b", PRIORITY_TX, kind="TX"))
    queue.push(frame("c", PRIORITY_BLOCK, kind="BLOCK"))
    assert queue.queued_by_kind() == {"TX": 2, "BLOCK": 1}


def test_max_frames_must_be_positive():
    with pytest.raises(ValueError, match="max_frames"):
        TransmitQueue(per_byte(0.001), None, max_frames=0)


def test_a_queue_of_one_frame_keeps_the_most_urgent():
    queue = TransmitQueue(per_byte(0.001), None, max_frames=1)
    for f in (frame("tx1", PRIORITY_TX), frame("block1", PRIORITY_BLOCK), frame("tx2", PRIORITY_TX)):
        queue.push(f)
    assert names(pop_all(queue, 0.0)) == ["block1"]
    assert queue.dropped == {"tx": 2}


def test_by_default_a_queue_holds_64_frames():
    queue = TransmitQueue(per_byte(0.001), None)
    for i in range(64):
        queue.push(frame(f"tx{i}", PRIORITY_TX))
    assert not queue.dropped
    queue.push(frame("tx64", PRIORITY_TX))
    assert queue.dropped == {"tx": 1} and len(queue) == 64


@pytest.mark.parametrize("seed", range(10))
def test_a_full_queue_under_mixed_traffic_lets_out_the_most_urgent_it_kept_first(seed):
    rng = random.Random(seed)
    queue = TransmitQueue(per_byte(0.001), None, max_frames=16)
    kept: list[tuple[int, int]] = []  # (priority, arrival) of what the queue should still hold
    for n in range(200):
        priority = rng.choice((PRIORITY_BLOCK, PRIORITY_EVIDENCE, PRIORITY_SYNC, PRIORITY_TX))
        queue.push(frame(f"f{n}", priority))
        kept.append((priority, n))
        if len(kept) > 16:
            kept.remove(max(kept))  # the least urgent kind's newest frame makes room
    assert names(pop_all(queue, 0.0)) == [f"f{n}" for _, n in sorted(kept)]
