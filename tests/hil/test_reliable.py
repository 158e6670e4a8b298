"""Want-ack retransmissions: timing after the firmware, three tries, then give up."""
from __future__ import annotations

import pytest

from blockiot.hil.sim.flooding import MeshPacket, slot_time
from blockiot.hil.reliable import PROCESSING_TIME_S, Retransmissions, retransmission_delay
from blockiot.radio.airtime import preset

SLOT = slot_time(preset("LongFast"))
AIRTIME = 0.5
PACKET = MeshPacket(7, 1, 3, b"x", to=9, want_ack=True, hop_start=3)


def airtime(packet: MeshPacket) -> float:
    return AIRTIME


def test_delay_is_the_firmware_formula():
    # RadioInterface::getRetransmissionMsec at low channel use: 2 x airtime + (8 + 16 + 32) slots + 4.5 s
    assert retransmission_delay(AIRTIME, SLOT) == pytest.approx(2 * AIRTIME + 56 * SLOT + PROCESSING_TIME_S)


def test_two_retransmissions_then_give_up():
    r = Retransmissions(SLOT)
    r.start(PACKET, 70, AIRTIME, 0.0)
    wait = retransmission_delay(AIRTIME, SLOT)
    assert r.due(wait - 1e-6, airtime) == ([], [])
    assert r.due(wait, airtime) == ([(PACKET, 70)], [])
    assert r.due(2 * wait, airtime) == ([(PACKET, 70)], [])
    assert r.due(3 * wait, airtime) == ([], [PACKET])
    assert r.next_deadline() is None and PACKET.key not in r


def test_ack_stops_and_airtime_heard_meanwhile_delays():
    r = Retransmissions(SLOT)
    r.start(PACKET, 70, AIRTIME, 0.0)
    other = MeshPacket(7, 2, 3, b"y", to=9, want_ack=True, hop_start=3)
    r.start(other, 70, AIRTIME, 0.0)
    r.deaf_for(1.0, except_key=other.key)
    assert r.next_deadline() == pytest.approx(retransmission_delay(AIRTIME, SLOT))
    assert r.stop(other.key) and not r.stop(other.key)
    assert r.next_deadline() == pytest.approx(retransmission_delay(AIRTIME, SLOT) + 1.0)
