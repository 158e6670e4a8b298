"""The firmware's shared TX queue: priority order, eviction, and the single transmit timer."""
from __future__ import annotations

import random

import pytest

from blockiot.hil.sim.flooding import CW_MAX, CW_MIN, FloodRouter, MeshPacket, slot_time
from blockiot.hil.txqueue import MAX_TX_QUEUE, TxQueue
from blockiot.radio.airtime import preset

LONG_FAST = preset("LongFast")
SLOT = slot_time(LONG_FAST)
DEFAULT, RELIABLE, HIGH = 64, 70, 100


def own(packet_id: int, origin: int = 7) -> MeshPacket:
    return MeshPacket(origin, packet_id, 3, b"own", hop_start=3)


def relay(packet_id: int, origin: int = 1) -> MeshPacket:
    return MeshPacket(origin, packet_id, 2, b"relay", hop_start=3)


def queue(priority=lambda packet: DEFAULT, **kwargs) -> TxQueue:
    return TxQueue(slot=SLOT, rng=random.Random(1), priority=priority, **kwargs)


def drain(q: TxQueue, now: float = 0.0) -> list[int]:
    """Packet ids in the order the queue sends them, the channel always free."""
    sent = []
    while len(q):
        now = q.next_deadline()
        packet = q.pop_due(now, channel_busy=False)
        sent.append(packet.packet_id)
        q.wake(now)  # the transmission ends at once: setTransmitDelay
    return sent


def test_higher_priority_first_then_relays_before_own_then_arrival_order():
    priorities = {11: DEFAULT, 12: HIGH}
    q = queue(priority=lambda packet: priorities[packet.packet_id])
    q.push(own(1), DEFAULT, 0.0)
    q.push(own(2), RELIABLE, 0.0)
    q.hold(relay(11), -5.0, 0.0)
    q.push(own(3), DEFAULT, 0.0)
    q.hold(relay(12), -5.0, 0.0)
    assert drain(q) == [12, 2, 11, 1, 3]


def test_full_queue_refuses_unless_the_back_has_lower_priority():
    q = queue()
    for i in range(MAX_TX_QUEUE):
        assert q.push(own(i), DEFAULT, 0.0)
    assert q.free == 0
    assert not q.push(own(100), DEFAULT, 0.0)
    assert q.hold(relay(101), -5.0, 0.0) is None  # a relay of equal priority is refused too
    assert q.push(own(102), HIGH, 0.0)  # evicts the newest DEFAULT packet
    assert q.evicted == 1 and not q.holds((7, MAX_TX_QUEUE - 1)) and q.holds((7, 102))
    assert drain(q)[0] == 102


def test_own_packet_waits_up_to_seven_slots_and_a_relay_its_weighted_delay():
    delays = set()
    for seed in range(200):
        q = TxQueue(slot=SLOT, rng=random.Random(seed), priority=lambda p: DEFAULT)
        q.push(own(1), DEFAULT, 10.0)
        delays.add(round((q.next_deadline() - 10.0) / SLOT))
    assert delays == set(range(1 << CW_MIN))
    q = queue()
    at = q.hold(relay(1), -20.0, 10.0)
    assert at == q.next_deadline() and 10.0 + 2 * CW_MAX * SLOT <= at < 10.0 + (2 * CW_MAX + 8) * SLOT


def test_one_timer_armed_only_when_idle_and_rearmed_while_busy():
    q = queue()
    q.push(own(1), DEFAULT, 0.0)
    first = q.next_deadline()
    q.push(own(2), DEFAULT, 0.5)
    assert q.next_deadline() == first  # notifyLater(..., overwrite=false)
    q.wake(0.6)
    assert q.next_deadline() == first
    assert q.pop_due(first - 1e-9, channel_busy=False) is None
    assert q.pop_due(first, channel_busy=True) is None  # CAD: busy, armed afresh
    later = q.next_deadline()
    assert later >= first and len(q) == 2
    assert q.pop_due(later, channel_busy=False).packet_id == 1
    assert q.next_deadline() is None  # nothing armed until the transmission ends
    q.wake(later + 1.0)
    assert q.pop_due(q.next_deadline(), channel_busy=False).packet_id == 2


def test_cancel_and_holds():
    q = queue()
    q.hold(relay(1), -5.0, 0.0)
    assert q.holds((1, 1)) and q.cancel((1, 1)) and not q.cancel((1, 1))
    assert q.next_deadline() is None and q.free == MAX_TX_QUEUE


def test_router_relays_share_the_queue_with_own_packets():
    q = queue(capacity=2)
    router = FloodRouter(7, params=LONG_FAST, rng=random.Random(1), relays=q)
    q.push(own(1), DEFAULT, 0.0)
    assert router.receive(relay(5, origin=1), -5.0, 0.0).rebroadcast_at is not None
    assert q.free == 0
    assert router.receive(relay(6, origin=2), -5.0, 0.0) == (True, None)  # delivered, but no room to relay
    sent = []
    now = 0.0
    while (deadline := router.next_deadline()) is not None:
        now = max(now, deadline)
        packet = router.pop_due(now, channel_busy=False)
        if packet is not None:
            sent.append(packet.key)
        q.wake(now)
    assert sent == [(1, 5), (7, 1)] and router.stats.relayed == 1


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        queue(capacity=0)
