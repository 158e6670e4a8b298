"""Tests of the simulated RF medium: timing, range, loss, collisions, half duplex, path loss, scale."""
from __future__ import annotations

import math
import random
import time

import pytest

from blockiot.hil.sim.medium import (
    CAD_SYMBOLS,
    PREAMBLE_LOCK_SYMBOLS,
    Delivery,
    Field,
    LinkGraph,
    LogDistance,
    Medium,
    MediumError,
    RadioBusyError,
    RadioDownError,
    UnknownRadioError,
    noise_floor_dbm,
    sensitivity_dbm,
)
from blockiot.radio.airtime import preset, time_on_air

LONG_FAST = preset("LongFast")
PACKET = b"p" * 20


def graph_medium(links, **kwargs) -> Medium:
    medium = Medium(LONG_FAST, topology=LinkGraph(links), **kwargs)
    ids = set(links) | {rx for hearers in links.values() for rx in hearers}
    for radio_id in sorted(ids):
        medium.add_radio(radio_id)
    return medium


def test_delivery_at_exactly_start_plus_airtime():
    medium = graph_medium({1: {2}})
    end = medium.transmit(1, PACKET, 10.0)
    assert end == 10.0 + time_on_air(len(PACKET), LONG_FAST)
    assert medium.next_deadline() == end
    assert medium.poll(end - 1e-6) == []
    snr = -90.0 - noise_floor_dbm(LONG_FAST.bw_hz)
    assert medium.poll(end) == [Delivery(receiver=2, sender=1, packet=PACKET, rssi=-90.0, snr=snr, at=end)]
    assert medium.next_deadline() is None
    assert medium.poll(end + 100.0) == []


def test_overhead_bytes_count_in_airtime():
    medium = graph_medium({1: {2}}, overhead_bytes=16)
    assert medium.transmit(1, PACKET, 0.0) == time_on_air(len(PACKET) + 16, LONG_FAST)


def test_out_of_range_hears_nothing():
    medium = graph_medium({1: {2}, 3: set()})
    end = medium.transmit(1, PACKET, 0.0)
    assert [d.receiver for d in medium.poll(end)] == [2]
    assert medium.stats[3].received == 0


def test_link_below_sensitivity_is_not_received():
    medium = graph_medium({1: {2: medium_sensitivity() - 1.0}})
    medium.poll(medium.transmit(1, PACKET, 0.0))
    assert medium.stats[2].received == 0


def medium_sensitivity() -> float:
    return sensitivity_dbm(LONG_FAST.sf, LONG_FAST.bw_hz)


def test_sensitivity_table():
    assert sensitivity_dbm(7, 125e3) == pytest.approx(-124.5, abs=0.05)
    assert sensitivity_dbm(12, 125e3) == pytest.approx(-137.0, abs=0.05)
    assert sensitivity_dbm(7, 250e3) == pytest.approx(-121.5, abs=0.05)
    assert sensitivity_dbm(11, 250e3) == pytest.approx(-131.5, abs=0.05)


def test_symmetric_and_directed_links():
    both = graph_medium({1: {2: -100.0}, 2: {1: -95.0}, 3: {1}})
    assert (both.link_rssi(1, 2), both.link_rssi(2, 1)) == (-100.0, -95.0)
    assert both.link_rssi(1, 3) == both.link_rssi(3, 1) == -90.0
    directed = Medium(LONG_FAST, topology=LinkGraph({1: {2}}, symmetric=False))
    directed.add_radio(1)
    directed.add_radio(2)
    assert directed.link_rssi(1, 2) == -90.0
    assert directed.link_rssi(2, 1) is None


def test_loss_one_delivers_nothing():
    medium = graph_medium({1: {2}}, loss=1.0)
    now = 0.0
    for _ in range(50):
        now = medium.transmit(1, PACKET, now)
        assert medium.poll(now) == []
    assert medium.stats[2].lost == 50


def run_lossy(seed: int, n: int = 1000) -> list[Delivery]:
    medium = graph_medium({1: {2}}, loss=0.2, seed=seed)
    out: list[Delivery] = []
    now = 0.0
    for _ in range(n):
        now = medium.transmit(1, PACKET, now)
        out += medium.poll(now)
    return out


def test_loss_fraction_and_determinism():
    first = run_lossy(seed=7)
    assert 0.17 <= 1 - len(first) / 1000 <= 0.23
    assert run_lossy(seed=7) == first
    assert [d.at for d in run_lossy(seed=8)] != [d.at for d in first]


def test_equal_power_overlap_collides_both():
    medium = graph_medium({1: {2}, 3: {2}})
    end1 = medium.transmit(1, PACKET, 0.0)
    end3 = medium.transmit(3, PACKET, 0.1)
    assert medium.poll(max(end1, end3)) == []
    assert medium.stats[2].collided == 2


def test_stronger_signal_is_captured():
    medium = graph_medium({1: {2: -80.0}, 3: {2: -90.0}})
    medium.transmit(3, b"weak", 0.0)
    end = medium.transmit(1, b"strong", 0.05)
    assert [(d.sender, d.packet) for d in medium.poll(end)] == [(1, b"strong")]
    assert medium.stats[2].collided == 1


def test_within_capture_threshold_both_lost():
    medium = graph_medium({1: {2: -85.0}, 3: {2: -90.0}})
    medium.transmit(1, PACKET, 0.0)
    assert medium.poll(medium.transmit(3, PACKET, 0.05)) == []


def test_weak_undecodable_interferer_does_not_spoil():
    weak = medium_sensitivity() - 3.0  # tracked for collisions, too weak to decode
    medium = graph_medium({1: {2: -100.0}, 3: {2: weak}})
    medium.transmit(3, PACKET, 0.0)
    end = medium.transmit(1, PACKET, 0.01)
    assert [d.sender for d in medium.poll(end)] == [1]


def test_back_to_back_packets_do_not_collide():
    medium = graph_medium({1: {2}, 3: {2}})
    end1 = medium.transmit(1, PACKET, 0.0)
    end3 = medium.transmit(3, PACKET, end1)
    assert [d.sender for d in medium.poll(end3)] == [1, 3]


SYMBOL = LONG_FAST.symbol_time_s


def test_a_signal_over_within_the_newcomers_early_preamble_spoils_nothing():
    # LoRaSim / Meshtasticator: the receiver locks on the last 5 of 16 preamble symbols.
    medium = graph_medium({1: {2}, 3: {2}})
    end1 = medium.transmit(1, PACKET, 0.0)
    start3 = end1 - (LONG_FAST.preamble_symbols - PREAMBLE_LOCK_SYMBOLS) * SYMBOL + 1e-6
    end3 = medium.transmit(3, PACKET, start3)
    assert [d.sender for d in medium.poll(end3)] == [1, 3]
    medium = graph_medium({1: {2}, 3: {2}})
    end1 = medium.transmit(1, PACKET, 0.0)
    end3 = medium.transmit(3, PACKET, start3 - 2e-6)  # one overlap further: into the lock
    assert medium.poll(max(end1, end3)) == [] and medium.stats[2].collided == 2


def test_a_signal_that_lost_on_arrival_interferes_with_nothing_after_it():
    long = b"x" * 200
    medium = graph_medium({1: {2: -80.0}, 3: {2: -95.0}, 4: {2: -100.0}})
    end1 = medium.transmit(1, PACKET, 0.0)
    medium.transmit(3, long, 0.05)  # lost on arrival: 15 dB below 1
    end4 = medium.transmit(4, PACKET, end1 + 0.1)  # 5 dB below 3, but 3 was never locked on
    assert [d.sender for d in medium.poll(end4)] == [1, 4]
    medium = graph_medium({3: {2: -95.0}, 4: {2: -100.0}})
    medium.transmit(3, long, 0.05)
    end4 = medium.transmit(4, PACKET, end1 + 0.1)
    assert medium.poll(end4) == [] and medium.stats[2].collided == 1  # locked on, 3 does spoil 4


def test_cad_misses_a_signal_younger_than_a_cad():
    medium = graph_medium({1: {2}}, cad_symbols=CAD_SYMBOLS)
    medium.transmit(1, PACKET, 10.0)
    assert not medium.busy(2, 10.0 + CAD_SYMBOLS * SYMBOL - 1e-6)
    assert medium.busy(2, 10.0 + CAD_SYMBOLS * SYMBOL)
    assert medium.busy(1, 10.0)  # its own transmission it always knows of
    instant = graph_medium({1: {2}})
    instant.transmit(1, PACKET, 10.0)
    assert instant.busy(2, 10.0)  # by default a CAD sees a signal from its first instant


def test_half_duplex_transmitter_does_not_receive():
    medium = graph_medium({1: {2}})
    end1 = medium.transmit(1, PACKET, 0.0)
    end2 = medium.transmit(2, PACKET, 0.1)  # 2 was receiving 1's packet: spoilt; 1 is busy sending
    assert medium.poll(max(end1, end2)) == []
    assert medium.stats[1].missed == 1
    assert medium.stats[2].missed == 1


def test_busy_is_channel_activity_and_own_transmission():
    medium = graph_medium({1: {2}, 3: set()})
    end = medium.transmit(1, PACKET, 0.0)
    assert medium.busy(1, 0.1) and medium.busy(2, 0.1)
    assert not medium.busy(3, 0.1)
    medium.poll(end)
    assert not medium.busy(1, end) and not medium.busy(2, end)


def test_transmit_while_transmitting_is_refused():
    medium = graph_medium({1: {2}})
    medium.transmit(1, PACKET, 0.0)
    with pytest.raises(RadioBusyError):
        medium.transmit(1, PACKET, 0.1)


def test_dead_receiver_misses_and_dead_sender_reaches_nobody():
    medium = graph_medium({1: {2, 3}})
    medium.set_alive(2, False)
    end = medium.transmit(1, PACKET, 0.0)
    medium.set_alive(2, True)  # back up mid-packet: missed its start
    assert [d.receiver for d in medium.poll(end)] == [3]
    end = medium.transmit(1, PACKET, end)
    medium.set_alive(1, False)
    assert medium.poll(end) == []
    assert medium.stats[3].missed == 1
    with pytest.raises(RadioDownError):
        medium.transmit(1, PACKET, end)
    assert not medium.busy(1, end)


def test_receiver_crashing_mid_packet_loses_it():
    medium = graph_medium({1: {2}})
    end = medium.transmit(1, PACKET, 0.0)
    medium.set_alive(2, False)
    medium.set_alive(2, True)
    assert medium.poll(end) == []
    assert medium.stats[2].missed == 1


def test_removed_radio_is_gone():
    medium = graph_medium({1: {2, 3}})
    medium.remove_radio(2)
    assert [d.receiver for d in medium.poll(medium.transmit(1, PACKET, 0.0))] == [3]
    with pytest.raises(UnknownRadioError):
        medium.transmit(2, PACKET, 1.0)
    medium.add_radio(2)
    assert [d.receiver for d in medium.poll(medium.transmit(1, PACKET, 5.0))] == [2, 3]


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.transmit(1, b"", 0.0),
        lambda m: m.transmit(1, b"x" * 256, 0.0),
        lambda m: m.add_radio(1),
        lambda m: m.add_radio(9, (0.0, 0.0)),
        lambda m: m.busy(42, 0.0),
    ],
)
def test_bad_calls_raise_typed_errors(call):
    with pytest.raises(MediumError):
        call(graph_medium({1: {2}}))


def test_time_cannot_go_backwards():
    medium = graph_medium({1: {2}})
    medium.poll(5.0)
    with pytest.raises(MediumError):
        medium.transmit(1, PACKET, 4.0)


@pytest.mark.parametrize("links", [{1: {1}}, {1: {"2"}}, {1: {2: math.inf}}, {1: {2: "strong"}}])
def test_bad_link_graph_raises(links):
    with pytest.raises(MediumError):
        LinkGraph(links)


@pytest.mark.parametrize("kwargs", [{"loss": 1.5}, {"capture_db": -1.0}, {"overhead_bytes": -1}, {"cad_symbols": -1.0}])
def test_bad_settings_raise(kwargs):
    with pytest.raises(MediumError):
        Medium(LONG_FAST, topology=LinkGraph({}), **kwargs)


def field_medium(**kwargs) -> Medium:
    return Medium(LONG_FAST, topology=Field(**kwargs))


def test_path_loss_at_reference_distance_and_one_km():
    medium = field_medium()
    medium.add_radio(1, (0.0, 0.0))
    medium.add_radio(2, (40.0, 0.0))
    medium.add_radio(3, (0.0, 1000.0), tx_power_dbm=27.0)
    assert medium.link_rssi(1, 2) == pytest.approx(20.0 - 127.41)
    expected_1km = 27.0 - (127.41 + 10 * 2.08 * math.log10(1000 / 40))
    assert expected_1km == pytest.approx(-129.49, abs=0.01)
    end = medium.transmit(3, PACKET, 0.0)
    heard = {d.receiver: d for d in medium.poll(end)}
    assert heard[1].rssi == pytest.approx(expected_1km, abs=1e-9)
    assert heard[1].snr == pytest.approx(expected_1km - noise_floor_dbm(LONG_FAST.bw_hz))


def test_position_beyond_sensitivity_gets_nothing():
    medium = field_medium()
    medium.add_radio(1, (0.0, 0.0))
    medium.add_radio(2, (2000.0, 0.0))  # 20 dBm - 156.5 dB - ... below -131.5 dBm
    assert 20.0 - LogDistance().loss_db(2000.0) < medium.sensitivity_dbm
    assert medium.poll(medium.transmit(1, PACKET, 0.0)) == []
    medium.add_radio(3, (10_000.0, 0.0))
    assert medium.link_rssi(1, 3) is None  # too weak even to interfere: not tracked


def test_shadowing_is_per_link_deterministic_and_symmetric():
    def rssi(seed: int) -> tuple[float | None, float | None]:
        medium = Medium(LONG_FAST, topology=Field(path_loss=LogDistance(sigma_db=6.0)), seed=seed)
        medium.add_radio(1, (0.0, 0.0))
        medium.add_radio(2, (200.0, 0.0))
        return medium.link_rssi(1, 2), medium.link_rssi(2, 1)

    a, b = rssi(1)
    assert a == b == rssi(1)[0]
    assert a != pytest.approx(20.0 - LogDistance().loss_db(200.0))
    assert rssi(2)[0] != a


def test_field_needs_positions_and_graph_refuses_them():
    with pytest.raises(MediumError):
        field_medium().add_radio(1)
    for bad in [(0.0,), ("a", 1.0), (math.nan, 0.0)]:
        with pytest.raises(MediumError):
            field_medium().add_radio(1, bad)
    with pytest.raises(MediumError):
        Medium(LONG_FAST, topology=LinkGraph({})).add_radio(1, (0.0, 0.0))


def random_traffic(medium: Medium, rng: random.Random, radios: list[int], packets: int, span: float, step_poll: bool):
    times = sorted(rng.uniform(0.0, span) for _ in range(packets))
    out: list[Delivery] = []
    for now in times:
        if step_poll:
            out += medium.poll(now)
        for sender in rng.sample(radios, len(radios)):
            if not medium.busy(sender, now):
                medium.transmit(sender, rng.randbytes(rng.randint(10, 200)), now)
                break
    out += medium.poll(math.inf)
    return out


def field_of(n: int, seed: int, loss: float = 0.0) -> tuple[Medium, list[int]]:
    rng = random.Random(seed)
    medium = Medium(LONG_FAST, topology=Field(path_loss=LogDistance(sigma_db=3.0)), loss=loss, seed=seed)
    for radio_id in range(1, n + 1):
        medium.add_radio(radio_id, (rng.uniform(0, 3000), rng.uniform(0, 3000)))
    return medium, list(range(1, n + 1))


def test_same_seed_same_deliveries_whatever_the_poll_cadence():
    medium_a, radios = field_of(20, seed=3, loss=0.3)
    medium_b, _ = field_of(20, seed=3, loss=0.3)
    a = random_traffic(medium_a, random.Random(9), radios, 300, 600.0, step_poll=True)
    b = random_traffic(medium_b, random.Random(9), radios, 300, 600.0, step_poll=False)
    assert a and a == b
    assert medium_a.stats == medium_b.stats
    assert medium_a.next_deadline() is None


def test_scale_100_radios_3000_packets():
    medium, radios = field_of(100, seed=1)
    started = time.perf_counter()
    deliveries = random_traffic(medium, random.Random(2), radios, 3000, 3600.0, step_poll=True)
    elapsed = time.perf_counter() - started
    stats = medium.stats
    print(f"\n100 radios x 3000 packets: {len(deliveries)} deliveries in {elapsed:.2f} s wall")
    assert sum(s.sent for s in stats.values()) == 3000
    assert sum(s.received for s in stats.values()) == len(deliveries) > 0
    assert medium.next_deadline() is None


def test_busy_until_says_when_the_sensed_activity_ends_at_the_earliest():
    medium = graph_medium({1: {2}, 3: {2}})  # 2 hears 1 and 3; they do not hear each other
    assert medium.busy_until(2, 5.0) == 5.0 and not medium.busy(2, 5.0)  # idle: now
    first = medium.transmit(1, PACKET, 10.0)
    longer = medium.transmit(3, PACKET * 3, 10.1)
    assert first < longer
    for t in (10.2, first - 1e-3):
        assert medium.busy_until(2, t) == longer and medium.busy(2, t)  # both sensed: the later end
    assert medium.busy_until(1, 10.2) == first  # its own transmission only
    assert all(medium.busy(2, t) for t in (first + 1e-3, longer - 1e-3))  # busy all the way, as promised
    assert medium.busy_until(2, longer) == longer and not medium.busy(2, longer)
