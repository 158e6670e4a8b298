"""Meshtastic-style managed flooding, pure: dedupe, hop limit, SNR-weighted relay delay, cancellation.

Follows the firmware's FloodingRouter / RadioInterface (src/mesh/FloodingRouter.cpp,
RadioInterface.cpp, firmware 2.7):

- A packet is known by (origin, packet_id); the first copy is delivered, later ones are
  duplicates. The node's own packets are marked seen when it originates them.
- A first copy with hop_limit > 0 that is not addressed to this node is relayed with
  hop_limit - 1 after a contention delay weighted by the SNR it arrived with: CWsize =
  map(SNR, -20..10 dB -> 3..8) and a CLIENT waits 2·CWmax slots plus random(0, 2^CWsize)
  slots, so the farthest (lowest SNR) node tends to relay first. A ROUTER waits
  random(0, 2·CWsize) slots and never cancels.
- Managed flooding: a CLIENT that hears a duplicate while its relay is still waiting
  cancels it, someone else already covered the area.
- A duplicate with more hops left than any copy seen before replaces the waiting relay
  (or schedules a new one), as the firmware's hop-limit upgrade does.
- A duplicate that is the originator's own retransmission (hop_start == hop_limit) is
  relayed again if no relay of it is waiting (FloodingRouter "Repeated reliable tx"), so
  a want-ack retransmission earns its implicit ACK.
- When the relay's time comes and the channel is busy, it is delayed again afresh
  (RadioLibInterface's listen-before-talk).

Where relays wait is a `RelayQueue`: by default `TimedRelays`, each relay on its own
weighted timer (the field simulator's model); the virtual Meshtastic board passes the
firmware's shared TX queue instead (hil/txqueue.py), which holds its own packets too.

Deliberate differences: the SNR is clamped to -20..10 dB before the map (a real SX126x
rarely reports more than ~+10 dB, a simulated link can, and the unclamped map would give
minutes of delay); an upgraded duplicate is relayed but not delivered a second time.

Slot time is the firmware's: 2.5 CAD symbols + 7.6 ms (propagation, turnaround, MAC),
truncated to whole milliseconds like the firmware's integer arithmetic.

`MeshPacket.to_bytes` lays the packet out exactly as the firmware's 16-byte
`PacketHeader` (src/mesh/RadioInterface.h): to, from, id, flags (hop_limit bits 0-2,
want_ack bit 3, via_mqtt bit 4, hop_start bits 5-7), channel hash, next_hop, relay_node;
then the payload, so airtime on the simulated medium is realistic.
"""
from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, replace
from enum import Enum
from typing import NamedTuple, Protocol

from construct import BitsInteger, BitStruct, Flag, GreedyBytes, Int8ul, Int32ul, Struct

from blockiot.radio.airtime import MAX_LORA_PAYLOAD, MESHTASTIC_HEADER_LEN, LoRaParams
from blockiot.radio.codec import decoding
from blockiot.radio.errors import BlockIoTError

BROADCAST = 0xFFFFFFFF
MAX_PAYLOAD = MAX_LORA_PAYLOAD - MESHTASTIC_HEADER_LEN
HOP_MAX = 7  # three bits on air
CW_MIN = 3
CW_MAX = 8
SNR_MIN_DB = -20
SNR_MAX_DB = 10
NUM_SYM_CAD = 2
SLOT_OVERHEAD_MS = 0.2 + 0.4 + 7.0  # propagation + Tx/Rx turnaround + MAC processing
# Firmware PACKETHISTORY_MAX: 2 x MAX_NUM_NODES (250 on ESP32).
DEFAULT_SEEN_CAPACITY = 500

_PACKET = Struct(
    "to" / Int32ul,
    "origin" / Int32ul,
    "packet_id" / Int32ul,
    "flags"
    / BitStruct(
        "hop_start" / BitsInteger(3),
        "via_mqtt" / Flag,
        "want_ack" / Flag,
        "hop_limit" / BitsInteger(3),
    ),
    "channel" / Int8ul,
    "next_hop" / Int8ul,
    "relay_node" / Int8ul,
    "payload" / GreedyBytes,
)


class FloodingError(BlockIoTError):
    """Base of the flooding errors."""


class MeshPacketError(FloodingError):
    """A mesh packet that is malformed, or fields out of range."""


@dataclass(frozen=True, slots=True)
class MeshPacket:
    """A mesh packet as on air: who made it, its id, hops left, the payload, and the rest of the header.

    `to` is BROADCAST or a node number; `hop_start` is the hop limit the originator set
    (0 from firmware older than 2.3); `channel` the channel hash; `relay_node` the last
    byte of the node that put this copy on air; `next_hop` is always 0 here (no preference).
    """

    origin: int
    packet_id: int
    hop_limit: int
    payload: bytes
    to: int = BROADCAST
    want_ack: bool = False
    hop_start: int = 0
    channel: int = 0
    relay_node: int = 0
    via_mqtt: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.origin < BROADCAST:
            raise MeshPacketError(f"origin must be a node number in 1..{BROADCAST - 1:#x}, got {self.origin}")
        if not 0 < self.to <= BROADCAST:
            raise MeshPacketError(f"to must be a node number or BROADCAST, got {self.to}")
        if not 0 <= self.packet_id <= 0xFFFFFFFF:
            raise MeshPacketError(f"packet_id must fit 32 bits, got {self.packet_id}")
        for name in ("hop_limit", "hop_start"):
            if not 0 <= getattr(self, name) <= HOP_MAX:
                raise MeshPacketError(f"{name} must be within 0..{HOP_MAX}, got {getattr(self, name)}")
        for name in ("channel", "relay_node"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise MeshPacketError(f"{name} is one byte, got {getattr(self, name)}")
        if not isinstance(self.payload, bytes):
            raise MeshPacketError("payload must be bytes")
        if len(self.payload) > MAX_PAYLOAD:
            raise MeshPacketError(f"payload of {len(self.payload)} B exceeds {MAX_PAYLOAD} B")

    @property
    def key(self) -> tuple[int, int]:
        """What identifies a packet in the mesh: (origin, packet_id)."""
        return (self.origin, self.packet_id)

    def to_bytes(self) -> bytes:
        """The packet as it goes on air: 16-byte header then payload."""
        return _PACKET.build(
            {
                "to": self.to,
                "origin": self.origin,
                "packet_id": self.packet_id,
                "flags": {
                    "hop_start": self.hop_start,
                    "via_mqtt": self.via_mqtt,
                    "want_ack": self.want_ack,
                    "hop_limit": self.hop_limit,
                },
                "channel": self.channel,
                "next_hop": 0,
                "relay_node": self.relay_node,
                "payload": self.payload,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> MeshPacket:
        """Parse an on-air packet; raises MeshPacketError on anything malformed."""
        with decoding("mesh packet", MeshPacketError):
            parsed = _PACKET.parse(data)
        flags = parsed.flags
        return cls(
            parsed.origin,
            parsed.packet_id,
            flags.hop_limit,
            bytes(parsed.payload),
            to=parsed.to,
            want_ack=flags.want_ack,
            hop_start=flags.hop_start,
            channel=parsed.channel,
            relay_node=parsed.relay_node,
            via_mqtt=flags.via_mqtt,
        )


class Role(Enum):
    """Device roles that change relaying (Meshtastic Config.DeviceConfig.Role)."""

    CLIENT = "client"  # relays late, cancels when another node relays first
    CLIENT_MUTE = "client_mute"  # never relays
    ROUTER = "router"  # relays early, never cancels


class RxVerdict(NamedTuple):
    """What to do with a received packet: hand it up (`deliver`), and when a relay is scheduled."""

    deliver: bool
    rebroadcast_at: float | None


@dataclass(frozen=True, slots=True)
class FloodStats:
    """Counters of one router."""

    delivered: int = 0
    duplicates: int = 0
    relayed: int = 0
    cancelled: int = 0


def slot_time(params: LoRaParams) -> float:
    """The contention slot in seconds: CAD duration plus propagation, turnaround and MAC time."""
    symbol_ms = (1 << params.sf) / (params.bw_hz / 1000.0)
    return int(max(2.25, NUM_SYM_CAD + 0.5) * symbol_ms + SLOT_OVERHEAD_MS) / 1000.0


def cw_size(snr: float) -> int:
    """Contention window exponent for an SNR: 3 at -20 dB up to 8 at +10 dB (integer map, as the firmware)."""
    clamped = int(min(max(snr, SNR_MIN_DB), SNR_MAX_DB))
    return (clamped - SNR_MIN_DB) * (CW_MAX - CW_MIN) // (SNR_MAX_DB - SNR_MIN_DB) + CW_MIN


def relay_delay(snr: float, role: Role, slot: float, rng: random.Random) -> float:
    """Seconds to wait before relaying a packet heard at `snr` (firmware getTxDelayMsecWeighted)."""
    cw = cw_size(snr)
    if role is Role.ROUTER:
        return rng.randrange(2 * cw) * slot
    return (2 * CW_MAX + rng.randrange(1 << cw)) * slot


class RelayQueue(Protocol):
    """Where relays wait for their turn on air."""

    def hold(self, packet: MeshPacket, snr: float, now: float) -> float | None:
        """Keep a relay heard at `snr`; when it may go, or None if it was refused (queue full)."""
        ...

    def cancel(self, key: tuple[int, int]) -> bool:
        """Drop the waiting relay of packet `key`; whether there was one."""
        ...

    def holds(self, key: tuple[int, int]) -> bool:
        """Whether a relay of packet `key` is waiting."""
        ...

    def pop_due(self, now: float, *, channel_busy: bool) -> MeshPacket | None:
        """The packet to put on air now, or None."""
        ...

    def next_deadline(self) -> float | None:
        """When `pop_due` may next return something, or None."""
        ...


class _Timed:
    __slots__ = ("at", "seq", "packet", "snr")

    def __init__(self, at: float, seq: int, packet: MeshPacket, snr: float) -> None:
        self.at = at
        self.seq = seq
        self.packet = packet
        self.snr = snr


class TimedRelays:
    """Each relay on its own SNR-weighted timer; the earliest due goes first. Unbounded."""

    def __init__(self, role: Role, slot: float, rng: random.Random) -> None:
        self.role = role
        self.slot = slot
        self._rng = rng
        self._pending: dict[tuple[int, int], _Timed] = {}
        self._seq = 0

    def hold(self, packet: MeshPacket, snr: float, now: float) -> float | None:
        at = now + relay_delay(snr, self.role, self.slot, self._rng)
        self._seq += 1
        self._pending[packet.key] = _Timed(at, self._seq, packet, snr)
        return at

    def cancel(self, key: tuple[int, int]) -> bool:
        return self._pending.pop(key, None) is not None

    def holds(self, key: tuple[int, int]) -> bool:
        return key in self._pending

    def pop_due(self, now: float, *, channel_busy: bool) -> MeshPacket | None:
        due = [p for p in self._pending.values() if p.at <= now]
        if not due:
            return None
        if channel_busy:
            for pending in due:
                pending.at = now + relay_delay(pending.snr, self.role, self.slot, self._rng)
            return None
        first = min(due, key=lambda p: (p.at, p.seq))
        del self._pending[first.packet.key]
        return first.packet

    def next_deadline(self) -> float | None:
        return min((p.at for p in self._pending.values()), default=None)


class FloodRouter:
    """The flooding logic of one node. Time comes in as `now`; relays come out of `pop_due`."""

    def __init__(
        self,
        radio_id: int,
        *,
        params: LoRaParams,
        rng: random.Random,
        hop_limit: int = 3,
        role: Role = Role.CLIENT,
        seen_capacity: int = DEFAULT_SEEN_CAPACITY,
        relays: RelayQueue | None = None,
    ) -> None:
        if not 0 < radio_id < BROADCAST:
            raise FloodingError(f"radio_id must be in 1..{BROADCAST - 1:#x}, got {radio_id}")
        if not 0 <= hop_limit <= HOP_MAX:
            raise FloodingError(f"hop_limit must be within 0..{HOP_MAX}, got {hop_limit}")
        if seen_capacity < 1:
            raise FloodingError(f"seen_capacity must be >= 1, got {seen_capacity}")
        self.radio_id = radio_id
        self.hop_limit = hop_limit
        self.role = role
        self.slot = slot_time(params)
        self.relays = relays if relays is not None else TimedRelays(role, self.slot, rng)
        self._seen_capacity = seen_capacity
        self._seen: OrderedDict[tuple[int, int], int] = OrderedDict()  # key -> highest hop_limit heard
        self._delivered = self._duplicates = self._relayed = self._cancelled = 0

    @property
    def relay_id(self) -> int:
        """The last byte of this node's radio id: what `relay_node` says of copies it sends."""
        return self.radio_id & 0xFF

    def originate(self, packet_id: int, payload: bytes, **header: object) -> MeshPacket:
        """A new packet of ours, hop_start = hop_limit; its echoes will be ignored.

        `header` sets the other MeshPacket fields (to, want_ack, channel, hop_limit).
        """
        fields = {"hop_limit": self.hop_limit, **header}
        fields["hop_start"] = fields["hop_limit"]
        packet = MeshPacket(self.radio_id, packet_id, payload=payload, relay_node=self.relay_id, **fields)
        self.sent(packet)
        return packet

    def sent(self, packet: MeshPacket) -> None:
        """Mark a packet this node puts on air as seen (firmware FloodingRouter::send)."""
        self._remember(packet.key, max(packet.hop_limit, self._seen.get(packet.key, 0)))

    def on_receive(
        self, packet_id: int, origin: int, hop_limit: int, payload: bytes, snr: float, now: float
    ) -> RxVerdict:
        """Handle a broadcast heard on air at `snr` dB (see `receive` for a whole packet)."""
        return self.receive(MeshPacket(origin, packet_id, hop_limit, payload), snr, now)

    def receive(self, packet: MeshPacket, snr: float, now: float) -> RxVerdict:
        """Handle a packet heard on air at `snr` dB."""
        key = packet.key
        highest = self._seen.get(key)
        if highest is None:
            self._remember(key, packet.hop_limit)
            if packet.origin == self.radio_id:  # our own packet from before a restart: never relay it
                return RxVerdict(False, None)
            self._delivered += 1
            return RxVerdict(True, self._schedule(packet, snr, now))
        self._duplicates += 1
        if packet.origin == self.radio_id:
            return RxVerdict(False, None)
        if packet.hop_limit > highest:
            self._seen[key] = packet.hop_limit
            self.relays.cancel(key)
            return RxVerdict(False, self._schedule(packet, snr, now))
        if 0 < packet.hop_start == packet.hop_limit:  # the originator retransmits: relay it again
            if self.relays.holds(key):
                return RxVerdict(False, None)
            return RxVerdict(False, self._schedule(packet, snr, now))
        if self.role is Role.CLIENT and self.relays.cancel(key):
            self._cancelled += 1
        return RxVerdict(False, None)

    def cancel_relay(self, key: tuple[int, int]) -> bool:
        """Drop a waiting relay (a direct message already answered); whether there was one."""
        if self.relays.cancel(key):
            self._cancelled += 1
            return True
        return False

    def _remember(self, key: tuple[int, int], hop_limit: int) -> None:
        self._seen[key] = hop_limit
        self._seen.move_to_end(key)
        if len(self._seen) > self._seen_capacity:
            self._seen.popitem(last=False)

    def _schedule(self, packet: MeshPacket, snr: float, now: float) -> float | None:
        if (
            packet.hop_limit == 0
            or packet.packet_id == 0
            or packet.to == self.radio_id
            or self.role is Role.CLIENT_MUTE
        ):
            return None
        relay = replace(packet, hop_limit=packet.hop_limit - 1, relay_node=self.relay_id)
        return self.relays.hold(relay, snr, now)

    def pop_due(
        self, now: float, *, channel_busy: bool = False, busy_until: float | None = None
    ) -> MeshPacket | None:
        """The packet whose time has come, to transmit now, or None.

        With `channel_busy` (channel activity detected, or this radio still transmitting)
        every due relay gets a fresh weighted delay instead, as the firmware does.

        `busy_until` (later than `now`: the channel is busy and stays so at least until
        then) also waits out that busy period at once: the firmware would find the channel
        busy at every retry before it and draw a fresh delay each time, so those retries
        are drawn here, in the order they would come, and each relay is next due at its
        first retry at or after `busy_until`, where the channel is sensed again. Nothing
        is polled in between.
        """
        if busy_until is not None:
            if busy_until > now:
                self._wait_out(now, busy_until)
                return None
            channel_busy = False
        packet = self.relays.pop_due(now, channel_busy=channel_busy)
        if packet is not None and packet.origin != self.radio_id:
            self._relayed += 1
        return packet

    def _wait_out(self, now: float, busy_until: float) -> None:
        relays = self.relays
        at: float | None = now
        while at is not None and at < busy_until:
            relays.pop_due(at, channel_busy=True)  # every relay due by `at` draws afresh
            at = relays.next_deadline()

    def next_deadline(self) -> float | None:
        """When the earliest waiting relay is due, or None."""
        return self.relays.next_deadline()

    @property
    def stats(self) -> FloodStats:
        """A snapshot of the router's counters."""
        return FloodStats(self._delivered, self._duplicates, self._relayed, self._cancelled)
