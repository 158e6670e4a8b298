"""The link layer at its edges (issue 13): which configurations a link refuses, that a message
finished any way (delivered, dropped, timed out, evicted) is finished for good, how long
and how many finished and sent messages are remembered, and the bounds on repair answers."""
from __future__ import annotations

import math
import random

import pytest

from blockiot.radio.errors import MessageTooLarge
from blockiot.radio.link import Delivered, Dropped, DropReason, Link, Transmit
from blockiot.radio.linkframe import MAX_FRAGMENTS, MSG_ID_MODULO, FragmentFrame, RepairRequest, SingleFrame, decode, encode

MTU = 233


def link(radio_id: int = 2, **kwargs) -> Link:
    return Link(MTU, radio_id=radio_id, rng=random.Random(radio_id), **kwargs)


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def ask_all(frames: list[bytes], target: int = 1) -> bytes:
    """A repair request naming every fragment of a message `target` sent."""
    return encode(RepairRequest(decode(frames[0]).msg_id, target, len(frames), frozenset(range(len(frames)))))


def answered(events) -> int:
    return sum(1 for event in events if isinstance(event, Transmit))


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mtu=4), "mtu must exceed the 4 B fragment header"),
        (dict(max_message=-1), "max_message must be >= 0"),
        (dict(max_message=MAX_FRAGMENTS * 229 - 3), "needs 257 fragments"),
        (dict(mtu=10, max_message=150), r"a repair request for 26 fragments \(11 B\) does not fit the 10 B MTU"),
        (dict(reassembly_timeout=0), "reassembly_timeout must be positive"),
        (dict(repair_delay=math.nan), "repair_delay must be positive"),
        (dict(repair_interval=-1.0), "repair_interval must be positive"),
        (dict(dedupe_window=0), "dedupe_window must be positive"),
        (dict(repair_horizon=0), "repair_horizon must be positive"),
        (dict(send_cache=0), "send_cache must be >= 1"),
        (dict(dedupe_size=0), "dedupe_size must be >= 1"),
        (dict(max_pending_per_sender=0), "max_pending_per_sender must be >= 1"),
        (dict(max_requests_per_interval=0), "max_requests_per_interval must be >= 1"),
        (dict(max_repair_rounds=-1), "max_repair_rounds must be >= 0"),
        (dict(repair_share=-0.5), "repair_share must be in 0..16"),
        (dict(repair_share=16.5), "repair_share must be in 0..16"),
        (dict(request_rate=0.0), "request_rate must be positive"),
    ],
)
def test_a_link_that_could_not_work_is_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Link(**{"mtu": MTU, "rng": random.Random(0), **kwargs})


def test_the_limits_themselves_are_accepted():
    assert Link(MTU, max_message=MAX_FRAGMENTS * 229 - 4, rng=random.Random(0)).max_fragments == MAX_FRAGMENTS
    assert Link(10, max_message=140, rng=random.Random(0)).max_fragments == 24  # a request of exactly 10 B
    assert Link(10, max_message=150, repair=False, rng=random.Random(0)).max_fragments == 26  # no request
    Link(MTU, max_message=0, max_repair_rounds=0, repair_share=0, send_cache=1, dedupe_size=1,
         max_pending=1, max_pending_per_sender=1, max_requests_per_interval=1, rng=random.Random(0))
    Link(MTU, repair_share=16, request_rate=0.01, rng=random.Random(0))


def test_a_link_for_empty_messages_only_sends_and_delivers_them():
    a, b = Link(MTU, max_message=0, radio_id=1, rng=random.Random(1)), link(max_message=0)
    with pytest.raises(MessageTooLarge, match="1 B exceeds the link's max_message of 0 B"):
        a.send(b"x", 0.0)
    (frame,) = a.send(b"", 0.0)
    assert b.receive(frame, 1, 0.0) == [Delivered(1, b"")]


def test_one_byte_more_than_a_single_frame_holds_goes_in_two_fragments():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link()
    assert len(a.send(payload(MTU - 2), 0.0)) == 1
    frames = a.send(payload(MTU - 1), 0.0)
    assert len(frames) == 2 and all(len(f) <= MTU for f in frames)
    assert [e for f in frames for e in b.receive(f, 1, 0.0)] == [Delivered(1, payload(MTU - 1))]


# -- a finished message is finished for good ------------------------------------------------


def test_a_message_too_large_for_the_receiver_is_dropped_once_whether_single_or_fragmented():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link(max_message=100)
    (single,) = a.send(payload(150), 0.0)
    assert b.receive(single, 1, 0.0) == [Dropped(1, DropReason.TOO_LARGE)]
    assert b.receive(single, 1, 1.0) == []
    frames = a.send(payload(400), 0.0)  # 2 fragments: within b's fragment count, not its size
    events = [e for f in frames for e in b.receive(f, 1, 2.0)]
    assert events == [Dropped(1, DropReason.TOO_LARGE)]
    assert [e for f in frames for e in b.receive(f, 1, 3.0)] == []


def test_a_message_refused_for_its_fragment_count_stays_refused():
    b = link(max_message=1000)
    frames = [encode(FragmentFrame(7, index, 9, bytes(229))) for index in range(9)]
    assert b.receive(frames[0], 1, 0.0) == [Dropped(1, DropReason.TOO_LARGE)]
    assert [e for f in frames[1:] for e in b.receive(f, 1, 0.0)] == []
    assert b.pending_reassemblies == 0


def test_a_message_that_failed_its_crc_is_not_assembled_again_from_copies():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link()
    frames = a.send(payload(500), 0.0)
    broken = bytearray(frames[0])
    broken[-1] ^= 0xFF
    assert [e for f in [bytes(broken), *frames[1:]] for e in b.receive(f, 1, 0.0)] == [Dropped(1, DropReason.CRC)]
    assert [e for f in frames for e in b.receive(f, 1, 1.0)] == []


def test_a_one_fragment_message_is_checked_and_delivered_at_once():
    b = link()
    assert b.receive(encode(FragmentFrame(3, 0, 1, b"ab")), 1, 0.0) == [Dropped(1, DropReason.CRC)]
    crc_only = encode(FragmentFrame(4, 0, 1, b"\x00\x00\x00\x00"))  # CRC-32C of nothing is 0
    assert b.receive(crc_only, 1, 0.0) == [Delivered(1, b"")]
    assert b.pending_reassemblies == 0 and b.next_deadline() is None


def test_a_single_frame_reusing_an_id_being_reassembled_is_a_conflict_and_harms_nothing():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link()
    frames = a.send(payload(600), 0.0)
    msg_id = decode(frames[0]).msg_id
    b.receive(frames[0], 1, 0.0)
    assert b.receive(encode(SingleFrame(msg_id, b"hi")), 1, 0.0) == [Dropped(1, DropReason.CONFLICT)]
    wrong_count = encode(FragmentFrame(msg_id, 1, len(frames) + 1, bytes(10)))
    assert b.receive(wrong_count, 1, 0.0) == [Dropped(1, DropReason.CONFLICT)]
    assert [e for f in frames[1:] for e in b.receive(f, 1, 0.0)] == [Delivered(1, payload(600))]


def test_an_evicted_reassembly_is_finished_its_late_fragments_ignored():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link(max_pending_per_sender=2)
    messages = [a.send(payload(600, seed), 0.0) for seed in range(3)]
    for frames in messages:
        b.receive(frames[0], 1, 0.0)
    assert b.pending_reassemblies == 2
    assert [e for f in messages[0][1:] for e in b.receive(f, 1, 1.0)] == []  # evicted: not restarted
    assert [e for f in messages[2][1:] for e in b.receive(f, 1, 1.0)] == [Delivered(1, payload(600, 2))]


def test_a_message_finished_is_remembered_for_the_dedupe_window_only():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link(dedupe_window=60.0)
    (frame,) = a.send(b"reading", 0.0)
    assert b.receive(frame, 1, 0.0) == [Delivered(1, b"reading")]
    assert b.receive(frame, 1, 59.0) == []
    assert b.receive(frame, 1, 60.0) == [Delivered(1, b"reading")]  # forgotten: a new message


def test_a_copy_refreshes_nothing_the_window_runs_from_when_the_message_finished():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link(dedupe_window=60.0)
    (frame,) = a.send(b"reading", 0.0)
    b.receive(frame, 1, 0.0)
    b.receive(frame, 1, 50.0)
    assert b.receive(frame, 1, 61.0) == [Delivered(1, b"reading")]


def test_at_most_dedupe_size_finished_messages_are_remembered():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link(dedupe_size=2)
    frames = [a.send(bytes([n]), 0.0)[0] for n in range(3)]
    for frame in frames:
        b.receive(frame, 1, 0.0)
    assert b.receive(frames[2], 1, 1.0) == [] and b.receive(frames[1], 1, 1.0) == []
    assert b.receive(frames[0], 1, 1.0) == [Delivered(1, bytes([0]))]  # the oldest was forgotten


def test_a_timed_out_reassembly_is_dropped_after_its_last_fragment_not_its_first():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link(repair=False, reassembly_timeout=30.0)
    frames = a.send(payload(1000), 0.0)
    b.receive(frames[0], 1, 0.0)
    b.receive(frames[1], 1, 20.0)
    assert b.poll(49.0) == [] and b.pending_reassemblies == 1
    (dropped,) = b.poll(50.0)
    assert dropped == Dropped(1, DropReason.TIMEOUT)
    assert "3 of 5 fragments missing after 0 repair rounds" in dropped.detail
    assert b.buffered_bytes == 0


# -- what a sender keeps for repair --------------------------------------------------------


def test_a_request_is_answered_until_the_repair_horizon_and_not_at_it():
    a = Link(MTU, radio_id=1, repair_horizon=100.0, rng=random.Random(1))
    frames = a.send(payload(700), 0.0)
    one = encode(RepairRequest(decode(frames[0]).msg_id, 1, len(frames), frozenset({1})))
    assert a.receive(one, 2, 99.0) == [Transmit(frames[1])]
    assert a.receive(ask_all(frames), 2, 100.0) == []


def test_only_the_last_send_cache_messages_are_kept_for_repair():
    a = Link(MTU, radio_id=1, send_cache=2, rng=random.Random(1))
    sent = [a.send(payload(700, seed), 0.0) for seed in range(3)]
    assert a.receive(ask_all(sent[0]), 2, 1.0) == []
    assert answered(a.receive(ask_all(sent[1]), 2, 1.0)) == len(sent[1])
    assert answered(a.receive(ask_all(sent[2]), 2, 1.0)) == len(sent[2])


def test_a_link_that_does_not_repair_keeps_nothing_and_answers_nothing():
    a = Link(MTU, radio_id=1, repair=False, rng=random.Random(1))
    frames = a.send(payload(700), 0.0)
    assert a.receive(ask_all(frames), 2, 1.0) == []


def test_without_a_radio_id_a_link_answers_a_request_for_any_target():
    a = Link(MTU, rng=random.Random(0))
    frames = a.send(payload(700), 0.0)
    assert answered(a.receive(ask_all(frames, target=12345), 2, 1.0)) == len(frames)


def test_each_fragment_is_resent_at_most_once_per_half_repair_interval():
    a = Link(MTU, radio_id=1, repair_interval=10.0, repair_share=16, rng=random.Random(1))
    frames = a.send(payload(700), 0.0)
    assert answered(a.receive(ask_all(frames), 2, 1.0)) == len(frames)
    assert a.receive(ask_all(frames), 2, 5.9) == []
    assert answered(a.receive(ask_all(frames), 2, 6.0)) == len(frames)


def test_a_message_answers_at_most_twice_its_repair_rounds_requests():
    a = Link(MTU, radio_id=1, max_repair_rounds=1, repair_share=16, rng=random.Random(1))
    frames = a.send(payload(700), 0.0)
    counts = [answered(a.receive(ask_all(frames), 2, 10.0 * step)) for step in range(4)]
    assert counts == [len(frames), len(frames), 0, 0]


def test_repair_answers_stop_when_the_allowance_is_spent():
    a = Link(MTU, radio_id=1, repair_share=1.0, rng=random.Random(1))  # one copy of the frames in all
    frames = a.send(payload(700), 0.0)
    assert answered(a.receive(ask_all(frames), 2, 1.0)) == len(frames)
    assert a.receive(ask_all(frames), 2, 10.0) == []
    assert Link(MTU, radio_id=1, repair_share=0, rng=random.Random(1)).receive(ask_all(frames), 2, 1.0) == []


def test_a_message_sent_again_under_a_wrapped_id_is_kept_as_the_newest():
    a = Link(MTU, radio_id=1, send_cache=2, rng=random.Random(1))
    first = a.send(payload(700, 1), 0.0)
    a.send(b"", 0.0)  # single frames are cached for nothing: they only use ids
    a.send(payload(700, 2), 0.0)
    for _ in range(MSG_ID_MODULO - 3):
        a.send(b"", 0.0)
    again = a.send(payload(700, 3), 0.0)
    assert decode(again[0]).msg_id == decode(first[0]).msg_id  # the 14-bit id came round
    a.send(payload(700, 4), 0.0)  # the cache holds two: the oldest goes, not the newest
    assert [e.frame for e in a.receive(ask_all(again), 2, 1.0)] == again


def test_by_default_a_sender_answers_for_its_last_eight_messages():
    a = Link(MTU, radio_id=1, rng=random.Random(1))
    sent = [a.send(payload(700, seed), 0.0) for seed in range(9)]
    assert a.receive(ask_all(sent[0]), 2, 1.0) == []
    assert all(answered(a.receive(ask_all(frames), 2, 1.0)) == len(frames) for frames in sent[1:])


def test_by_default_one_sender_holds_at_most_eight_reassemblies():
    b = link()
    events = [e for msg_id in range(9) for e in b.receive(encode(FragmentFrame(msg_id, 0, 5, bytes(100))), 66, 0.0)]
    assert events == [Dropped(66, DropReason.EVICTED)] and b.pending_reassemblies == 8


def test_by_default_a_receiver_asks_eight_times_then_gives_up():
    a, b = Link(MTU, radio_id=1, rng=random.Random(1)), link()
    frames = a.send(payload(1000), 0.0)
    for frame in frames[:2]:
        b.receive(frame, 1, 0.0)
    requests, now = 0, 0.0
    while (deadline := b.next_deadline()) is not None:
        now = deadline
        events = b.poll(now)
        requests += answered(events)
    assert requests == 8 and events == [Dropped(1, DropReason.TIMEOUT)]


# -- the shared budget of repair requests --------------------------------------------------------


def test_repair_request_tokens_come_back_at_the_burst_size_per_repair_interval():
    b = link(max_pending_per_sender=8, max_requests_per_interval=4, repair_interval=5.0)
    for msg_id in range(5):
        for index in (0, 1):
            b.receive(encode(FragmentFrame(msg_id, index, 5, bytes(229))), 1, 0.0)
    due = 1.5 * b.repair_delay  # every first round is due by then
    assert answered(b.poll(due)) == 4  # a burst of four
    assert b.next_deadline() == pytest.approx(due + 5.0 / 4)  # one token per 1.25 s after it
    assert answered(b.poll(due + 1.2)) == 0
    assert answered(b.poll(due + 1.25)) == 1


def test_by_default_repair_requests_go_in_bursts_of_eight():
    b = link(max_pending_per_sender=16)
    for msg_id in range(9):
        for index in (0, 1):
            b.receive(encode(FragmentFrame(msg_id, index, 5, bytes(229))), 1, 0.0)
    assert answered(b.poll(1.5 * b.repair_delay)) == 8


def test_a_request_rate_given_sets_how_fast_tokens_come_back():
    b = link(max_pending_per_sender=8, max_requests_per_interval=1, request_rate=0.1, repair_interval=30.0)
    for msg_id in range(2):
        for index in (0, 1):
            b.receive(encode(FragmentFrame(msg_id, index, 5, bytes(229))), 1, 0.0)
    due = 1.5 * b.repair_delay
    assert answered(b.poll(due)) == 1
    assert b.next_deadline() == pytest.approx(due + 10.0)
