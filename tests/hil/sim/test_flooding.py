"""Tests of Meshtastic-style managed flooding, alone and over the simulated medium."""
from __future__ import annotations

import random
import statistics

import pytest

from blockiot.hil.sim.flooding import (
    CW_MAX,
    MAX_PAYLOAD,
    FloodingError,
    FloodRouter,
    MeshPacket,
    MeshPacketError,
    Role,
    cw_size,
    relay_delay,
    slot_time,
)
from blockiot.hil.sim.medium import Field, LinkGraph, Medium
from blockiot.radio.airtime import preset

LONG_FAST = preset("LongFast")
SLOT = slot_time(LONG_FAST)


def router(radio_id: int = 7, **kwargs) -> FloodRouter:
    return FloodRouter(radio_id, params=LONG_FAST, rng=random.Random(radio_id), **kwargs)


# -- packet codec ---------------------------------------------------------------------


def test_packet_round_trip_has_meshtastic_header_layout():
    packet = MeshPacket(origin=0x0A0B0C0D, packet_id=0x01020304, hop_limit=3, payload=b"hello")
    wire = packet.to_bytes()
    assert wire.hex() == "ffffffff" "0d0c0b0a" "04030201" "03" "000000" + b"hello".hex()
    assert MeshPacket.from_bytes(wire) == packet


def test_header_carries_destination_want_ack_hop_start_channel_and_relay_node():
    # firmware RadioInterface.h PacketHeader: flags = hop_limit | want_ack << 3 | via_mqtt << 4 | hop_start << 5
    packet = MeshPacket(0x0A0B0C0D, 0x01020304, 2, b"hi", to=0xB10C0001, want_ack=True, hop_start=3, channel=8, relay_node=0x0D)
    wire = packet.to_bytes()
    assert wire.hex() == "01000cb1" "0d0c0b0a" "04030201" "6a" "08" "00" "0d" + b"hi".hex()
    assert len(wire) == 16 + 2  # no byte more than the firmware's header for a unicast
    assert MeshPacket.from_bytes(wire) == packet
    assert packet.key == (0x0A0B0C0D, 0x01020304)


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        bytes.fromhex("ffffffff0100000001000000"),  # truncated header
        bytes.fromhex("00000000" "01000000" "01000000" "03" "000000"),  # to 0
        bytes.fromhex("ffffffff" "00000000" "01000000" "03" "000000"),  # origin 0
    ],
)
def test_malformed_packets_raise_typed_error(wire):
    with pytest.raises(MeshPacketError):
        MeshPacket.from_bytes(wire)


@pytest.mark.parametrize(
    "fields",
    [(1, 1, 8, b""), (1, 1, -1, b""), (0, 1, 3, b""), (1, 2**32, 3, b""), (1, 1, 3, b"x" * (MAX_PAYLOAD + 1))],
)
def test_out_of_range_fields_are_refused(fields):
    with pytest.raises(MeshPacketError):
        MeshPacket(*fields)


@pytest.mark.parametrize("header", [{"to": 0}, {"hop_start": 8}, {"channel": 256}, {"relay_node": -1}])
def test_out_of_range_header_fields_are_refused(header):
    with pytest.raises(MeshPacketError):
        MeshPacket(1, 1, 3, b"", **header)


# -- contention window ----------------------------------------------------------------


def test_slot_time_matches_firmware_for_long_fast():
    assert SLOT == 0.028  # 2.5 x 8.192 ms + 7.6 ms, truncated to whole ms


@pytest.mark.parametrize("snr, cw", [(-20, 3), (-5, 5), (-4.9, 5), (10, 8), (-40, 3), (30, 8)])
def test_cw_size_maps_snr(snr, cw):
    assert cw_size(snr) == cw


def test_lower_snr_relays_sooner():
    rng = random.Random(1)
    far = [relay_delay(-20, Role.CLIENT, SLOT, rng) for _ in range(2000)]
    near = [relay_delay(10, Role.CLIENT, SLOT, rng) for _ in range(2000)]
    assert min(far) == min(near) == 2 * CW_MAX * SLOT
    assert max(far) < (2 * CW_MAX + 8) * SLOT
    assert statistics.mean(far) < statistics.mean(near)
    router_delays = [relay_delay(10, Role.ROUTER, SLOT, rng) for _ in range(200)]
    assert max(router_delays) < 2 * CW_MAX * SLOT


# -- router alone ---------------------------------------------------------------------


def test_first_copy_delivered_and_relayed_with_one_hop_less():
    r = router()
    deliver, at = r.on_receive(5, 1, 3, b"data", -10.0, 100.0)
    assert deliver and at is not None and at >= 100.0 + 2 * CW_MAX * SLOT
    assert r.next_deadline() == at
    assert r.pop_due(at - 1e-6) is None
    assert r.pop_due(at) == MeshPacket(1, 5, 2, b"data", relay_node=7)
    assert r.next_deadline() is None
    assert r.stats.relayed == 1


def test_duplicate_cancels_waiting_relay():
    r = router()
    _, at = r.on_receive(5, 1, 3, b"data", -10.0, 0.0)
    assert r.on_receive(5, 1, 2, b"data", -3.0, 0.5) == (False, None)
    assert r.pop_due(at) is None
    assert r.stats.cancelled == 1 and r.stats.delivered == 1 and r.stats.duplicates == 1


def test_router_role_never_cancels_and_mute_never_relays():
    r = router(role=Role.ROUTER)
    _, at = r.on_receive(5, 1, 3, b"data", -10.0, 0.0)
    r.on_receive(5, 1, 2, b"data", -3.0, 0.01)
    assert r.pop_due(at) is not None
    mute = router(role=Role.CLIENT_MUTE)
    assert mute.on_receive(5, 1, 3, b"data", -10.0, 0.0) == (True, None)


def test_hop_limit_zero_is_delivered_not_relayed():
    assert router().on_receive(5, 1, 0, b"data", 0.0, 0.0) == (True, None)


def test_own_packets_are_never_delivered_or_relayed():
    r = router(7)
    packet = r.originate(9, b"mine")
    assert packet == MeshPacket(7, 9, 3, b"mine", hop_start=3, relay_node=7)
    assert r.on_receive(9, 7, 2, b"mine", 0.0, 1.0) == (False, None)
    assert r.on_receive(10, 7, 2, b"old", 0.0, 1.0) == (False, None)  # from before a restart
    assert r.next_deadline() is None


def test_copy_with_more_hops_left_replaces_waiting_relay():
    r = router()
    r.on_receive(5, 1, 1, b"data", -10.0, 0.0)
    deliver, at = r.on_receive(5, 1, 3, b"data", -10.0, 0.2)
    assert not deliver and at is not None
    assert r.pop_due(at) == MeshPacket(1, 5, 2, b"data", relay_node=7)
    assert r.next_deadline() is None


def test_busy_channel_delays_relay_afresh():
    r = router()
    _, at = r.on_receive(5, 1, 3, b"data", -10.0, 0.0)
    assert r.pop_due(at, channel_busy=True) is None
    later = r.next_deadline()
    assert later >= at + 2 * CW_MAX * SLOT
    assert r.pop_due(later) == MeshPacket(1, 5, 2, b"data", relay_node=7)


def test_originate_sets_hop_start_and_the_header():
    r = router(7, hop_limit=4)
    packet = r.originate(9, b"dm", to=12, want_ack=True, channel=8)
    assert (packet.to, packet.want_ack, packet.hop_limit, packet.hop_start, packet.channel) == (12, True, 4, 4, 8)
    assert r.originate(10, b"x", hop_limit=2).hop_start == 2


def test_packet_for_this_node_is_delivered_not_relayed():
    r = router(7)
    assert r.receive(MeshPacket(1, 5, 3, b"dm", to=7, hop_start=3), -10.0, 0.0) == (True, None)
    deliver, at = r.receive(MeshPacket(1, 6, 3, b"dm", to=8, hop_start=3), -10.0, 0.0)
    assert deliver and at is not None  # for someone else: delivered to the node (it sniffs) and relayed


def test_originator_repeat_is_relayed_again_once_the_first_relay_went():
    r = router(7)
    first = MeshPacket(1, 5, 3, b"data", hop_start=3)
    _, at = r.receive(first, -10.0, 0.0)
    assert r.receive(first, -10.0, 0.1) == (False, None)  # still waiting: nothing new
    assert r.pop_due(at) is not None
    deliver, again = r.receive(first, -10.0, at + 10.0)  # a want-ack retransmission
    assert not deliver and again is not None and r.pop_due(again).hop_limit == 2
    relayed = MeshPacket(1, 5, 2, b"data", hop_start=3)
    assert r.receive(relayed, -10.0, again + 1.0) == (False, None)


def test_an_answered_direct_message_is_not_relayed():
    r = router(7)
    r.receive(MeshPacket(1, 5, 3, b"dm", to=8, hop_start=3), -10.0, 0.0)
    assert r.cancel_relay((1, 5)) and not r.cancel_relay((1, 5))
    assert r.next_deadline() is None and r.stats.cancelled == 1


def test_seen_history_is_bounded():
    r = router(seen_capacity=3)
    for packet_id in range(1, 5):
        r.on_receive(packet_id, 1, 0, b"", 0.0, 0.0)
    assert r.on_receive(1, 1, 0, b"", 0.0, 0.0).deliver  # forgotten: oldest evicted
    assert not r.on_receive(4, 1, 0, b"", 0.0, 0.0).deliver


@pytest.mark.parametrize("kwargs", [{"hop_limit": 8}, {"seen_capacity": 0}])
def test_bad_router_settings_raise(kwargs):
    with pytest.raises(FloodingError):
        router(**kwargs)


# -- flooding over the medium ---------------------------------------------------------


def flood(medium: Medium, routers: dict[int, FloodRouter], origin: int) -> dict[int, list[MeshPacket]]:
    """Run one broadcast from `origin` to quiescence; what each node delivered."""
    delivered: dict[int, list[MeshPacket]] = {node: [] for node in routers}
    now = 0.0
    medium.transmit(origin, routers[origin].originate(1, b"block").to_bytes(), now)
    while True:
        deadlines = [medium.next_deadline(), *(r.next_deadline() for r in routers.values())]
        pending = [d for d in deadlines if d is not None]
        if not pending:
            return delivered
        now = max(now, min(pending))
        for d in medium.poll(now):
            p = MeshPacket.from_bytes(d.packet)
            if routers[d.receiver].on_receive(p.packet_id, p.origin, p.hop_limit, p.payload, d.snr, now).deliver:
                delivered[d.receiver].append(p)
        for node, r in routers.items():
            relay = r.pop_due(now, channel_busy=medium.busy(node, now))
            if relay is not None:
                medium.transmit(node, relay.to_bytes(), now)


def line(n: int, hop_limit: int) -> tuple[Medium, dict[int, FloodRouter]]:
    medium = Medium(LONG_FAST, topology=LinkGraph({i: {i + 1} for i in range(1, n)}), seed=1)
    routers = {}
    for node in range(1, n + 1):
        medium.add_radio(node)
        routers[node] = router(node, hop_limit=hop_limit)
    return medium, routers


def test_line_hop_limit_two_reaches_three_hops_not_four():
    medium, routers = line(5, hop_limit=2)
    delivered = flood(medium, routers, origin=1)
    assert [node for node, got in delivered.items() if got] == [2, 3, 4]


def test_line_hop_limit_three_is_three_relays():
    # Meshtastic semantics: hop_limit counts relays, so 3 lets the packet travel 4 links.
    medium, routers = line(6, hop_limit=3)
    delivered = flood(medium, routers, origin=1)
    assert [node for node, got in delivered.items() if got] == [2, 3, 4, 5]
    assert delivered[5][0].hop_limit == 0


def cluster(role: Role, seed: int, n: int = 12) -> tuple[Medium, dict[int, FloodRouter]]:
    rng = random.Random(seed)
    medium = Medium(LONG_FAST, topology=Field(), seed=seed)
    routers = {}
    for node in range(1, n + 1):
        medium.add_radio(node, (rng.uniform(0, 300), rng.uniform(0, 300)))
        routers[node] = FloodRouter(node, params=LONG_FAST, rng=random.Random(seed * 1000 + node), role=role)
    return medium, routers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_node_delivers_once(seed):
    medium, routers = cluster(Role.CLIENT, seed)
    delivered = flood(medium, routers, origin=1)
    assert delivered[1] == []
    assert all(len(got) == 1 for node, got in delivered.items() if node != 1)


def test_cancellation_cuts_relays_in_dense_cluster():
    managed = plain = 0
    for seed in (1, 2, 3):
        medium, routers = cluster(Role.CLIENT, seed)
        flood(medium, routers, origin=1)
        managed += sum(r.stats.relayed for r in routers.values())
        assert sum(r.stats.cancelled for r in routers.values()) > 0
        medium, routers = cluster(Role.ROUTER, seed)
        flood(medium, routers, origin=1)
        plain += sum(r.stats.relayed for r in routers.values())
    assert plain == 3 * 11  # routers never cancel: every node relays
    assert managed <= plain // 3


def test_a_known_busy_period_is_waited_out_at_once():
    r = router()
    _, at = r.on_receive(5, 1, 3, b"data", -10.0, 0.0)
    busy_until = at + 10.0
    assert r.pop_due(at, busy_until=busy_until) is None
    assert r.next_deadline() >= busy_until  # sensed again only once the busy period can be over
    assert r.pop_due(r.next_deadline(), busy_until=r.next_deadline()) == MeshPacket(1, 5, 2, b"data", relay_node=7)
