"""Want-ack retransmissions of the node's own packets, pure: when to send again, when to give up.

After Meshtastic firmware 2.7 (src/mesh/ReliableRouter.cpp, NextHopRouter.cpp,
RadioInterface::getRetransmissionMsec):

- A packet sent with want_ack is kept with NUM_RELIABLE_RETX - 1 = 2 retransmissions
  left, so it goes on air at most three times. The record is made before the packet is
  queued, so a packet a full TX queue refused is still sent again later.
- The next try is due 2 x airtime + (2^CWmin + 2·CWmax + 2^((CWmin+CWmax)/2)) slots +
  4.5 s (PROCESSING_TIME_MSEC) after the last; the airtime of every packet the node sends
  or receives meanwhile is added, since it could not hear an ACK during it.
- An ACK or NAK (a Routing packet whose request_id names the packet), or for a broadcast
  any relay of it heard on air (implicit ACK), stops the retransmissions.
- When no try is left the firmware gives up and tells the host with a Routing NAK
  MAX_RETRANSMIT.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from blockiot.hil.sim.flooding import CW_MAX, CW_MIN, MeshPacket

NUM_RELIABLE_RETX = 3  # firmware NextHopRouter.h: first send plus two retransmissions
PROCESSING_TIME_S = 4.5  # firmware RadioInterface::PROCESSING_TIME_MSEC
_WAIT_SLOTS = (1 << CW_MIN) + 2 * CW_MAX + (1 << ((CW_MIN + CW_MAX) // 2))


def retransmission_delay(airtime: float, slot: float) -> float:
    """Seconds to wait for an (implicit) ACK of a packet of `airtime` before sending it again."""
    return 2 * airtime + _WAIT_SLOTS * slot + PROCESSING_TIME_S


@dataclass
class _Pending:
    packet: MeshPacket
    priority: int
    tries_left: int
    due: float


class Retransmissions:
    """The node's packets waiting for an ACK. `slot` is the contention slot in seconds."""

    def __init__(self, slot: float) -> None:
        self.slot = slot
        self._pending: dict[tuple[int, int], _Pending] = {}

    def start(self, packet: MeshPacket, priority: int, airtime: float, now: float) -> None:
        """Track a want-ack packet about to be queued with `priority`."""
        due = now + retransmission_delay(airtime, self.slot)
        self._pending[packet.key] = _Pending(packet, priority, NUM_RELIABLE_RETX - 1, due)

    def stop(self, key: tuple[int, int]) -> bool:
        """An ACK or NAK came: forget the packet; whether it was waiting."""
        return self._pending.pop(key, None) is not None

    def deaf_for(self, airtime: float, *, except_key: tuple[int, int] | None = None) -> None:
        """The radio sent or received for `airtime` seconds: every wait gets that much longer."""
        for key, pending in self._pending.items():
            if key != except_key:
                pending.due += airtime

    def due(
        self, now: float, airtime: Callable[[MeshPacket], float]
    ) -> tuple[list[tuple[MeshPacket, int]], list[MeshPacket]]:
        """([(packet, priority) to send again now], [packets given up on]). `airtime(packet)`: its time on air."""
        again: list[tuple[MeshPacket, int]] = []
        failed: list[MeshPacket] = []
        for key, pending in list(self._pending.items()):
            if pending.due > now:
                continue
            if pending.tries_left == 0:
                del self._pending[key]
                failed.append(pending.packet)
            else:
                pending.tries_left -= 1
                pending.due = now + retransmission_delay(airtime(pending.packet), self.slot)
                again.append((pending.packet, pending.priority))
        return again, failed

    def next_deadline(self) -> float | None:
        return min((p.due for p in self._pending.values()), default=None)

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self._pending
