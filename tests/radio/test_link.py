"""Link layer behaviour: fragmentation, reassembly in any order, dedupe, CRC, repair under
loss, bounded memory under garbage. Links are joined by an in-memory broadcast medium."""
from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockiot.radio.errors import MessageTooLarge
from blockiot.radio.link import Delivered, Dropped, DropReason, Link, LinkEvent, Transmit
from blockiot.radio.linkframe import FragmentFrame, RepairRequest, decode, encode

MTU = 233  # Meshtastic data payload


class Medium:
    """Broadcast medium joining Links in memory (like h11's ConnectionPair), with seeded loss.

    Frames are heard instantly by every other link; `Transmit` events are broadcast in
    turn; `run` advances a virtual clock from deadline to deadline, polling every link.
    """

    def __init__(self, links: dict[int, Link], loss: float = 0.0, seed: int = 0) -> None:
        self.links = links
        self.loss = loss
        self.rng = random.Random(seed)
        self.now = 0.0
        self.delivered: dict[int, list[Delivered]] = {node: [] for node in links}
        self.dropped: dict[int, list[Dropped]] = {node: [] for node in links}
        self.transmitted: dict[int, list[bytes]] = {node: [] for node in links}

    def send(self, node: int, payload: bytes) -> list[bytes]:
        frames = self.links[node].send(payload, self.now)
        self.broadcast(node, frames)
        return frames

    def broadcast(self, source: int, frames: list[bytes]) -> None:
        queue = deque((source, frame) for frame in frames)
        while queue:
            sender, frame = queue.popleft()
            for node, link in self.links.items():
                if node != sender and self.rng.random() >= self.loss:
                    self._handle(node, link.receive(frame, sender, self.now), queue)

    def run(self, until: float = 10_000.0) -> None:
        while True:
            deadlines = [d for link in self.links.values() if (d := link.next_deadline()) is not None]
            if not deadlines or min(deadlines) > until:
                return
            self.now = max(self.now, min(deadlines))
            for node, link in self.links.items():
                queue: deque[tuple[int, bytes]] = deque()
                self._handle(node, link.poll(self.now), queue)
                self.broadcast_queue(queue)

    def broadcast_queue(self, queue: deque[tuple[int, bytes]]) -> None:
        while queue:
            sender, frame = queue.popleft()
            self.broadcast(sender, [frame])

    def _handle(self, node: int, events: list[LinkEvent], queue: deque) -> None:
        for event in events:
            if isinstance(event, Delivered):
                self.delivered[node].append(event)
            elif isinstance(event, Dropped):
                self.dropped[node].append(event)
            else:
                self.transmitted[node].append(event.frame)
                queue.append((node, event.frame))


def pair(**kwargs) -> tuple[Link, Link]:
    a = Link(MTU, radio_id=1, rng=random.Random(1), **kwargs)
    b = Link(MTU, radio_id=2, rng=random.Random(2), **kwargs)
    return a, b


def message(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("size", [0, 1, MTU - 2, MTU - 1, MTU, 2048, 4096])
def test_message_crosses_intact_and_once(size):
    medium = Medium({1: Link(MTU, radio_id=1, rng=random.Random(1)), 2: Link(MTU, radio_id=2, rng=random.Random(2))})
    payload = message(size)
    frames = medium.send(1, payload)
    assert all(len(frame) <= MTU for frame in frames)
    assert medium.delivered[2] == [Delivered(1, payload)]
    assert medium.delivered[1] == [] and medium.dropped == {1: [], 2: []}


def test_single_frame_costs_two_header_bytes():
    a, _ = pair()
    for size in (0, 1, 80, MTU - 2):
        (frame,) = a.send(message(size), 0.0)
        assert len(frame) == size + 2


def test_fragmented_message_overhead_meets_efficiency_target():
    a, _ = pair()
    for mtu_link, size in ((a, 2048), (Link(231, rng=random.Random(0)), 2048), (Link(200, rng=random.Random(0)), 2048)):
        frames = mtu_link.send(message(size), 0.0)
        assert size / sum(map(len, frames)) >= 0.95
    frames = a.send(message(2048), 0.0)
    # 2048 B + 4 B CRC over 229 B fragment payloads: 9 frames, 4 B header each.
    assert len(frames) == 9
    assert sum(map(len, frames)) == 2048 + 4 + 9 * 4


def test_too_large_message_is_refused_before_sending():
    a, _ = pair()
    with pytest.raises(MessageTooLarge, match="4097 B"):
        a.send(bytes(4097), 0.0)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 4096),
    order=st.randoms(use_true_random=False),
    copies=st.integers(1, 3),
)
def test_any_order_with_duplicates_delivers_exactly_once(size, order, copies):
    a, b = pair()
    payload = message(size, seed=size)
    frames = a.send(payload, 0.0) * copies
    order.shuffle(frames)
    events = [event for frame in frames for event in b.receive(frame, 1, 0.5)]
    assert events == [Delivered(1, payload)]
    assert b.pending_reassemblies == 0


def test_rebroadcast_copies_after_delivery_are_ignored():
    a, b = pair()
    single, multi = a.send(b"reading", 0.0), a.send(message(1000), 0.0)
    first = [e for f in single + multi for e in b.receive(f, 1, 1.0)]
    again = [e for f in single + multi for e in b.receive(f, 1, 60.0)]
    assert [type(e) for e in first] == [Delivered, Delivered]
    assert again == [] and b.pending_reassemblies == 0


def test_reassembly_is_keyed_by_sender():
    # Same rng seed: both senders pick the same message ids.
    s1, s2 = Link(MTU, rng=random.Random(7)), Link(MTU, rng=random.Random(7))
    _, receiver = pair()
    m1, m2 = message(900, 1), message(900, 2)
    f1, f2 = s1.send(m1, 0.0), s2.send(m2, 0.0)
    assert decode(f1[0]).msg_id == decode(f2[0]).msg_id
    events = [e for x, y in zip(f1, f2) for e in receiver.receive(x, 10, 0) + receiver.receive(y, 20, 0)]
    assert events == [Delivered(10, m1), Delivered(20, m2)]


def test_corrupted_fragment_fails_the_message_crc():
    a, b = pair()
    frames = a.send(message(500), 0.0)
    broken = bytearray(frames[1])
    broken[10] ^= 0x01
    events = [e for f in [frames[0], bytes(broken), frames[2]] for e in b.receive(f, 1, 0.0)]
    assert events == [Dropped(1, DropReason.CRC)]


def test_missing_fragment_times_out_without_repair():
    a, b = pair(repair=False)
    frames = a.send(message(1000), 0.0)
    for frame in frames[1:]:
        assert b.receive(frame, 1, 2.0) == []
    assert b.next_deadline() == 2.0 + b.reassembly_timeout
    assert b.poll(31.9) == []
    assert b.poll(32.0) == [Dropped(1, "timeout")]
    assert b.next_deadline() is None
    assert b.receive(frames[0], 1, 33.0) == []  # a late fragment does not restart it


def test_repair_request_names_missing_fragments_and_sender_answers_exactly_them():
    a, b = pair()
    frames = a.send(message(2000), 0.0)
    for index, frame in enumerate(frames):
        if index not in (2, 5):
            b.receive(frame, 1, 0.0)
    deadline = b.next_deadline()
    assert b.repair_delay <= deadline <= 1.5 * b.repair_delay
    assert b.poll(deadline - 0.01) == []
    (request,) = b.poll(deadline)
    assert decode(request.frame) == RepairRequest(decode(frames[0]).msg_id, 1, len(frames), frozenset({2, 5}))
    answer = a.receive(request.frame, 2, deadline)
    assert answer == [Transmit(frames[2]), Transmit(frames[5])]
    assert a.receive(request.frame, 2, deadline + 0.1) == []  # just resent: held off
    delivered = [e for t in answer for e in b.receive(t.frame, 1, deadline + 1)]
    assert delivered == [Delivered(1, message(2000))]


def test_sender_answers_only_requests_addressed_to_it():
    a, b = pair()
    frames = a.send(message(700), 0.0)
    msg_id = decode(frames[0]).msg_id
    for_someone_else = encode(RepairRequest(msg_id, 99, len(frames), frozenset({0})))
    assert a.receive(for_someone_else, 2, 1.0) == []
    wrong_count = encode(RepairRequest(msg_id, 1, len(frames) + 1, frozenset({0})))
    assert a.receive(wrong_count, 2, 1.0) == []


def test_receiver_that_hears_another_request_waits_for_its_answer():
    a, b = pair()
    c = Link(MTU, radio_id=3, rng=random.Random(3))
    frames = a.send(message(1500), 0.0)
    for link in (b, c):
        for frame in frames[1:]:
            link.receive(frame, 1, 0.0)
    first = min(b.next_deadline(), c.next_deadline())
    asker, other = (b, c) if b.next_deadline() == first else (c, b)
    (request,) = asker.poll(first)
    other_before = other.next_deadline()
    other.receive(request.frame, 2, first)
    assert other.next_deadline() > other_before
    (answer,) = a.receive(request.frame, 2, first)
    for link in (b, c):
        assert link.receive(answer.frame, 1, first + 1) == [Delivered(1, message(1500))]


@pytest.mark.parametrize("seed", range(20))
def test_twenty_percent_loss_is_repaired_until_delivered(seed):
    links = {1: Link(MTU, radio_id=1, rng=random.Random(seed)), 2: Link(MTU, radio_id=2, rng=random.Random(-seed))}
    medium = Medium(links, loss=0.2, seed=seed)
    payloads = [message(4096, seed), message(1200, seed + 1)]
    for payload in payloads:
        medium.send(1, payload)
    medium.run()
    assert sorted(e.payload for e in medium.delivered[2]) == sorted(payloads)
    assert medium.dropped[2] == []
    repair_requests = [f for f in medium.transmitted[2] if isinstance(decode(f), RepairRequest)]
    assert len(repair_requests) <= 2 * links[2].max_repair_rounds


def _run_timers(link: Link) -> list[Transmit]:
    """Poll `link` from deadline to deadline until nothing is pending; its requests."""
    requests = []
    while (deadline := link.next_deadline()) is not None:
        for event in link.poll(deadline):
            if isinstance(event, Transmit):
                requests.append(event)
            else:
                assert isinstance(event, Dropped) and event.reason == DropReason.TIMEOUT
    return requests


def test_repair_rounds_are_bounded_then_timeout():
    a, b = pair()
    frames = a.send(message(1000), 0.0)
    for frame in frames[:2]:
        b.receive(frame, 1, 0.0)
    assert len(_run_timers(b)) == b.max_repair_rounds


def test_a_lone_fragment_earns_one_repair_request_at_most():
    # One fragment (real or forged: the link cannot tell) vouches for one request only.
    a, b = pair()
    frames = a.send(message(1000), 0.0)
    b.receive(frames[0], 1, 0.0)
    (request,) = _run_timers(b)
    assert len(request.frame) <= len(frames[0])
    # A forged fragment smaller than the request it would cause earns none.
    _, c = pair()
    tiny = encode(FragmentFrame(msg_id=9, index=3, count=18, data=b"x"))
    assert c.receive(tiny, 66, 0.0) == []
    assert _run_timers(c) == []


def test_oldest_reassembly_is_evicted_beyond_max_pending():
    a, b = pair(max_pending=2)
    firsts = [a.send(message(600, i), 0.0)[0] for i in range(3)]
    assert b.receive(firsts[0], 1, 0.0) == []
    assert b.receive(firsts[1], 1, 0.0) == []
    assert b.receive(firsts[2], 1, 0.0) == [Dropped(1, "evicted")]
    assert b.pending_reassemblies == 2


def test_fragment_count_beyond_max_message_is_refused_before_buffering():
    _, b = pair(max_message=1000)
    frame = encode(FragmentFrame(msg_id=5, index=0, count=200, data=bytes(229)))
    assert b.receive(frame, 1, 0.0) == [Dropped(1, "too large")]
    assert b.buffered_bytes == 0 and b.next_deadline() is None


def test_oversize_and_malformed_frames_are_dropped_not_raised():
    _, b = pair()
    assert b.receive(bytes(MTU + 1), 1, 0.0) == [Dropped(1, "oversize")]
    assert b.receive(b"\xc0\x01", 1, 0.0) == [Dropped(1, "malformed")]
    assert b.receive(b"", 1, 0.0) == [Dropped(1, "malformed")]


@pytest.mark.parametrize(
    "kwargs",
    [dict(mtu=4), dict(mtu=15), dict(mtu=40, max_message=20_000), dict(mtu=233, max_pending=0)],
)
def test_unusable_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):
        Link(**kwargs, rng=random.Random(0))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.binary(max_size=MTU + 8),
                st.builds(
                    lambda i, n, d: encode(FragmentFrame(i, min(n - 1, 3), n, d)),
                    st.integers(0, 40),
                    st.integers(4, 40),
                    st.binary(min_size=1, max_size=MTU - 4),
                ),
            ),
            st.integers(0, 5),
            st.floats(0, 20),
        ),
        max_size=80,
    )
)
def test_garbage_never_raises_and_memory_stays_bounded(inputs):
    link = Link(MTU, radio_id=1, max_pending=4, rng=random.Random(0))
    now = 0.0
    for frame, sender, step in inputs:
        now += step
        events = link.receive(frame, sender, now) + link.poll(now)
        assert all(isinstance(e, (Delivered, Transmit, Dropped)) for e in events)
        assert all(len(e.frame) <= MTU for e in events if isinstance(e, Transmit))
        assert link.pending_reassemblies <= 4
        assert link.buffered_bytes <= 4 * link.max_fragments * MTU


# -- hostile traffic: repair cannot be turned into an amplifier ---------------------------


def _forged_request(frames: list[bytes], target: int = 1) -> bytes:
    return encode(RepairRequest(decode(frames[0]).msg_id, target, len(frames), frozenset(range(len(frames)))))


def test_forged_repair_requests_earn_at_most_the_repair_share_of_the_message():
    # Before: a 10 B request every 2.5 s for 600 s got all 18 fragments each time (418x).
    a, _ = pair()
    frames = a.send(message(4096), 0.0)
    request = _forged_request(frames)
    answered = received = 0
    for step in range(240):
        events = a.receive(request, 66, step * 2.5)
        received += len(request)
        answered += sum(len(e.frame) for e in events if isinstance(e, Transmit))
    assert 0 < answered <= a.repair_share * sum(map(len, frames))
    assert answered / received < 4  # was 417


def test_repair_answers_only_named_fragments_and_only_for_recent_messages():
    a, _ = pair()
    frames = a.send(message(2000), 0.0)
    msg_id = decode(frames[0]).msg_id
    one = encode(RepairRequest(msg_id, 1, len(frames), frozenset({4})))
    assert a.receive(one, 2, 1.0) == [Transmit(frames[4])]
    assert a.receive(one, 2, 1.0 + a.repair_interval / 4) == []  # just resent: held off
    late = a.repair_horizon + 1.0
    assert a.receive(_forged_request(frames), 2, late) == []


def test_fake_fragments_cost_at_most_one_small_request_each():
    # Before: each fake fragment started a reassembly that asked up to 8 times.
    b = Link(MTU, radio_id=2, rng=random.Random(5))
    rng = random.Random(6)
    fragment_bytes = request_bytes = requests = 0
    for step in range(300):
        fake = encode(FragmentFrame(rng.randrange(1 << 14), rng.randrange(18), 18, rng.randbytes(rng.randrange(1, 229))))
        fragment_bytes += len(fake)
        events = b.receive(fake, 100 + step % 7, float(step)) + b.poll(float(step))
        sent = [e.frame for e in events if isinstance(e, Transmit)]
        requests += len(sent)
        request_bytes += sum(map(len, sent))
    sent = [e.frame for e in _run_timers(b)]
    requests += len(sent)
    request_bytes += sum(map(len, sent))
    assert requests <= 300
    assert request_bytes <= fragment_bytes


def test_one_sender_cannot_evict_another_senders_reassemblies():
    a, b = pair(max_pending=16, max_pending_per_sender=4)
    honest = a.send(message(1000), 0.0)
    b.receive(honest[0], 1, 0.0)
    for msg_id in range(40):
        b.receive(encode(FragmentFrame(msg_id, 0, 5, bytes(100))), 66, 0.1)
    assert b.pending_reassemblies == 5  # 4 of the flooder's, the honest one
    events = [e for frame in honest[1:] for e in b.receive(frame, 1, 0.2)]
    assert events == [Delivered(1, message(1000))]


def test_repair_requests_share_a_token_bucket():
    _, b = pair(max_pending=32, max_pending_per_sender=32, max_requests_per_interval=4)
    for msg_id in range(20):
        for index in (0, 1):
            b.receive(encode(FragmentFrame(msg_id, index, 5, bytes(229))), 1, 0.0)
    due = 1.5 * b.repair_delay  # every reassembly's first round is due by then
    first = [e for e in b.poll(due) if isinstance(e, Transmit)]
    later = [e for e in b.poll(due + b.repair_interval) if isinstance(e, Transmit)]
    assert len(first) == 4 and len(later) <= 4
    assert len(_run_timers(b)) + len(first) + len(later) == 20 * b.max_repair_rounds


@pytest.mark.parametrize("seed", range(10))
def test_twenty_percent_loss_is_repaired_for_three_receivers(seed):
    links = {node: Link(MTU, radio_id=node, rng=random.Random(seed * 10 + node)) for node in (1, 2, 3, 4)}
    medium = Medium(links, loss=0.2, seed=seed)
    payload = message(4096, seed)
    frames = medium.send(1, payload)
    medium.run()
    for node in (2, 3, 4):
        assert [e.payload for e in medium.delivered[node]] == [payload]
    answers = sum(len(f) for f in medium.transmitted[1])
    assert answers <= links[1].repair_share * sum(map(len, frames))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.binary(max_size=MTU),
                st.builds(
                    lambda i, k, n, d: encode(FragmentFrame(i, min(k, n - 1), n, d)),
                    st.integers(0, 3),
                    st.integers(0, 17),
                    st.integers(2, 18),
                    st.binary(min_size=1, max_size=MTU - 4),
                ),
                st.builds(
                    lambda i, t, n, m: encode(RepairRequest(i, t, n, frozenset(x % n for x in m))),
                    st.integers(0, 3),
                    st.sampled_from([0, 1, 2]),
                    st.integers(1, 18),
                    st.sets(st.integers(0, 17), min_size=1),
                ),
            ),
            st.integers(0, 5),
            st.floats(0, 20),
        ),
        max_size=80,
    )
)
def test_hostile_frames_never_earn_more_than_the_bounds(inputs):
    """Requests sent <= fragment bytes received; answers <= repair_share x own messages."""
    link = Link(MTU, radio_id=1, rng=random.Random(0))
    own = sum(len(f) for i in range(4) for f in link.send(message(4096, i), 0.0))
    received = requested = answered = 0
    now = 0.0
    for frame, sender, step in inputs:
        now += step
        parsed = None if len(frame) > MTU else _try_decode(frame)
        if isinstance(parsed, FragmentFrame):
            received += len(frame)
        for event in link.receive(frame, sender, now) + link.poll(now):
            if isinstance(event, Transmit):
                if isinstance(decode(event.frame), RepairRequest):
                    requested += len(event.frame)
                else:
                    answered += len(event.frame)
    for event in _run_timers(link):
        requested += len(event.frame)
    assert requested <= received
    assert answered <= link.repair_share * own


def _try_decode(frame: bytes):
    try:
        return decode(frame)
    except Exception:
        return None
