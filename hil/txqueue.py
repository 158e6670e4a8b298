"""The firmware's transmit queue and its single transmit timer, pure: one shared queue for own packets and relays.

After Meshtastic firmware 2.7 (src/mesh/MeshPacketQueue.cpp, RadioLibInterface.cpp):

- One queue of `capacity` (MAX_TX_QUEUE = 16) packets, ordered by priority (higher
  first); at equal priority a relay goes before the node's own packet, otherwise first
  come first served (`CompareMeshPacketFunc` with `upper_bound` insertion).
- A full queue takes a new packet only by evicting the packet at its back when that one
  has a strictly lower priority (`replaceLowerPriorityPacket`); otherwise it refuses and
  the caller reports ERRNO_UNKNOWN (32) to the host.
- One timer (`TRANSMIT_DELAY_COMPLETED`), armed by `setTransmitDelay` whenever a packet
  is queued, a reception ends or a transmission ends, and only if it is not armed
  already (`notifyLater(..., overwrite=false)`). Its delay depends on the packet at the
  front: the node's own packet waits random(0, 2^CWmin) slots (`getTxDelayMsec` at low
  channel utilisation), a relay the SNR-weighted delay (`getTxDelayMsecWeighted`).
- When the timer fires: if the radio is transmitting, receiving or channel activity
  detection finds a signal (`channel_busy`), the timer is armed afresh; otherwise the
  front packet goes on air.

It is a `RelayQueue` (hil/sim/flooding.py), so a `FloodRouter` holds its relays here and
`FloodRouter.pop_due` hands out own packets and relays alike. Not modelled: the late
rebroadcast window of ROUTER_LATE (`tx_after`) and channel-utilisation-scaled windows.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from blockiot.hil.sim.flooding import CW_MIN, MeshPacket, Role, relay_delay

MAX_TX_QUEUE = 16  # firmware RadioInterface.h


@dataclass(frozen=True)
class _Entry:
    packet: MeshPacket
    priority: int
    snr: float | None  # None: the node's own packet (firmware: rx_snr == rx_rssi == 0)

    def before(self, other: _Entry) -> bool:
        """Firmware CompareMeshPacketFunc: higher priority first; at equal priority, relays before own packets."""
        if self.priority != other.priority:
            return self.priority > other.priority
        return self.snr is not None and other.snr is None


class TxQueue:
    """A node's transmit queue in firmware order, with the transmit timer. Time comes in as `now`."""

    def __init__(
        self,
        *,
        slot: float,
        rng: random.Random,
        priority: Callable[[MeshPacket], int],
        role: Role = Role.CLIENT,
        capacity: int = MAX_TX_QUEUE,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.slot = slot
        self.role = role
        self.capacity = capacity
        self._rng = rng
        self._priority = priority
        self._entries: list[_Entry] = []
        self._timer: float | None = None
        self.evicted = 0  # packets dropped to make room for a higher-priority one

    # -- the queue ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def free(self) -> int:
        """Free places, as QueueStatus reports them."""
        return self.capacity - len(self._entries)

    def push(self, packet: MeshPacket, priority: int, now: float) -> bool:
        """Queue one of the node's own packets; False when the queue is full (nothing queued)."""
        return self._enqueue(_Entry(packet, priority, None), now)

    def hold(self, packet: MeshPacket, snr: float, now: float) -> float | None:
        """Queue a relay heard at `snr`; when the transmit timer fires, or None if the queue is full."""
        if not self._enqueue(_Entry(packet, self._priority(packet), snr), now):
            return None
        return self._timer

    def cancel(self, key: tuple[int, int]) -> bool:
        for i, entry in enumerate(self._entries):
            if entry.packet.key == key:
                del self._entries[i]
                return True
        return False

    def holds(self, key: tuple[int, int]) -> bool:
        return any(entry.packet.key == key for entry in self._entries)

    def _enqueue(self, entry: _Entry, now: float) -> bool:
        if len(self._entries) >= self.capacity:
            back = self._entries[-1]
            if back.priority >= entry.priority:
                return False
            self._entries.pop()
            self.evicted += 1
        index = next((i for i, other in enumerate(self._entries) if entry.before(other)), len(self._entries))
        self._entries.insert(index, entry)
        self.wake(now)
        return True

    # -- the transmit timer -------------------------------------------------------------

    def wake(self, now: float) -> None:
        """setTransmitDelay: arm the timer for the front packet, unless it is armed already.

        Called by the queue when a packet is queued, and by the radio when a reception or
        a transmission ends.
        """
        if self._timer is not None or not self._entries:
            return
        front = self._entries[0]
        if front.snr is None:
            delay = self._rng.randrange(1 << CW_MIN) * self.slot
        else:
            delay = relay_delay(front.snr, self.role, self.slot, self._rng)
        self._timer = now + delay

    def pop_due(self, now: float, *, channel_busy: bool) -> MeshPacket | None:
        """The front packet if the timer has fired and the channel is free; re-arms while it is busy."""
        if self._timer is None or now < self._timer:
            return None
        self._timer = None
        if not self._entries:
            return None
        if channel_busy:
            self.wake(now)
            return None
        return self._entries.pop(0).packet

    def next_deadline(self) -> float | None:
        return self._timer if self._entries else None
