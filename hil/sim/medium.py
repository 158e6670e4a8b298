"""The simulated LoRa RF channel shared by the HIL virtual radios and the field simulator.

Sans-IO and deterministic: the caller passes time in (`now`, float seconds, never
decreasing) and gets deliveries out; the same seed and the same calls give the same
deliveries, however often `poll` is called.

Physical model (one channel: one frequency, one SF/BW for every radio):

- Airtime comes from `blockiot.radio.airtime.time_on_air` for `len(packet) + overhead_bytes`.
- Link budget from the topology: an explicit `LinkGraph` (who hears whom, optional per-link
  RSSI) or a `Field` of positions with log-distance path loss
  PL(d) = PL(d0) + 10·γ·log10(d/d0) (LoRaSim / Meshtasticator defaults: d0 = 40 m,
  PL(d0) = 127.41 dB, γ = 2.08) plus optional log-normal shadowing fixed per link.
- Noise floor -174 + 10·log10(BW) + NF dBm; SNR = RSSI - noise floor. A packet is
  decodable when its SNR reaches the demodulator limit of its SF (-7.5 dB at SF7 down to
  -20 dB at SF12), i.e. RSSI >= sensitivity: SF7/125 kHz -124.5 dBm ... SF12/125 kHz
  -137 dBm, 3 dB less sensitive per doubling of bandwidth (the Semtech figures
  Meshtasticator uses).
- Collisions are pairwise at each receiver, as in LoRaSim (Bor et al. 2016) and
  Meshtasticator (lib/phy.py): of two overlapping signals the one at least `capture_db`
  stronger survives (capture effect), both are lost otherwise. Timing first: a signal
  that ends before the last `PREAMBLE_LOCK_SYMBOLS` preamble symbols of a newer one
  does not touch it (the receiver locks on those symbols), so the two do not collide.
  A signal that lost as it arrived is never locked on and no longer interferes with
  signals arriving after it; one spoilt later by a stronger newcomer still does. A
  signal more than `capture_db` below sensitivity can never win or spoil a decodable
  one, so links that weak are not tracked at all.
- Channel activity detection (`busy`) sees a signal from its first instant, unless
  `cad_symbols` is set: then a signal younger than that many symbols is not detected
  yet (a CAD needs the preamble for its whole duration; the firmware's CAD takes 2.5
  symbols, `CAD_SYMBOLS`), so two radios may start within that window of each other.
- Half duplex: a radio cannot receive while it transmits, and starting to transmit spoils
  what it was receiving.
- Random loss: each otherwise good reception is dropped with probability `loss`.
- A radio that goes down (`set_alive(False)`, `remove_radio`) loses what it was receiving,
  and what it was sending reaches nobody; that cut-off signal still counts as
  interference until its scheduled end.
"""
from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol

from blockiot.radio.airtime import MAX_LORA_PAYLOAD, LoRaParams, time_on_air
from blockiot.radio.errors import BlockIoTError

# Thermal noise density at 290 K, dBm/Hz.
THERMAL_NOISE_DBM_HZ = -174.0
# SX126x/SX127x receiver noise figure used for the noise floor, dB.
DEFAULT_NOISE_FIGURE_DB = 6.0
# Lowest SNR the LoRa demodulator decodes, per spreading factor (Semtech SX1276 datasheet
# table 13; the SX1262 sensitivities agree).
DEMOD_SNR_LIMIT_DB = {6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
# Channel activity detection sees a preamble this far below sensitivity (Meshtasticator).
CAD_MARGIN_DB = 3.0
# Symbols a CAD takes (firmware RadioInterface: NUM_SYM_CAD = 2, its slot time counts 2.5).
CAD_SYMBOLS = 2.5
# The receiver locks on the last preamble symbols; a signal over before them does no harm
# (LoRaSim / Meshtasticator timingCollision: NPREAM - 5).
PREAMBLE_LOCK_SYMBOLS = 5
# Log-distance path loss never extrapolates below this distance.
MIN_DISTANCE_M = 1.0


class MediumError(BlockIoTError):
    """A call the medium cannot honour (bad argument, unknown radio, time going backwards)."""


class UnknownRadioError(MediumError):
    """The radio id was never added, or was removed."""


class RadioDownError(MediumError):
    """The radio is down (`set_alive(False)`) and cannot transmit."""


class RadioBusyError(MediumError):
    """The radio is still transmitting its previous packet."""


def noise_floor_dbm(bw_hz: float, noise_figure_db: float = DEFAULT_NOISE_FIGURE_DB) -> float:
    """Receiver noise floor in dBm for a bandwidth in Hz."""
    return THERMAL_NOISE_DBM_HZ + 10.0 * math.log10(bw_hz) + noise_figure_db


def sensitivity_dbm(sf: int, bw_hz: float, noise_figure_db: float = DEFAULT_NOISE_FIGURE_DB) -> float:
    """Weakest decodable signal in dBm: noise floor plus the demodulator SNR limit of `sf`."""
    if sf not in DEMOD_SNR_LIMIT_DB:
        raise MediumError(f"no demodulator SNR limit known for SF{sf}")
    return noise_floor_dbm(bw_hz, noise_figure_db) + DEMOD_SNR_LIMIT_DB[sf]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A packet that `receiver` decoded from `sender`; `at` is the end of its airtime."""

    receiver: int
    sender: int
    packet: bytes
    rssi: float
    snr: float
    at: float


@dataclass(frozen=True, slots=True)
class RadioStats:
    """Counters of one radio: its own sending, and the fate of decodable packets reaching its antenna.

    `collided`: lost to another signal; `lost`: dropped by the random loss draw; `missed`:
    the radio was transmitting or down, or the sender went down mid-packet.
    """

    airtime: float = 0.0
    sent: int = 0
    received: int = 0
    collided: int = 0
    lost: int = 0
    missed: int = 0


@dataclass(frozen=True, slots=True)
class RadioSite:
    """What a topology knows about a radio."""

    radio_id: int
    position: tuple[float, float] | None
    tx_power_dbm: float


class Topology(Protocol):
    """Who hears whom, and how strongly."""

    needs_positions: bool

    def link_rssi(self, tx: RadioSite, rx: RadioSite, seed: int) -> float | None:
        """RSSI in dBm at `rx` of a transmission by `tx`, or None if `rx` cannot hear `tx` at all."""
        ...


class LinkGraph:
    """An explicit link graph: `{a: {b, c}}` or, with per-link RSSI, `{a: {b: -95.0}}`.

    `links[a]` lists the radios that hear `a`. With `symmetric` (the default) every link
    also runs the other way, with the same RSSI unless that direction is given too.
    Links without an RSSI get `default_rssi_dbm`. RSSIs are taken as given, whatever the
    radios' transmit power.
    """

    needs_positions = False

    def __init__(
        self,
        links: Mapping[int, Iterable[int] | Mapping[int, float]],
        *,
        symmetric: bool = True,
        default_rssi_dbm: float = -90.0,
    ) -> None:
        self._rssi: dict[tuple[int, int], float] = {}
        explicit: set[tuple[int, int]] = set()
        for tx, hearers in links.items():
            items = hearers.items() if isinstance(hearers, Mapping) else ((rx, default_rssi_dbm) for rx in hearers)
            for rx, rssi in items:
                if not (isinstance(tx, int) and isinstance(rx, int)):
                    raise MediumError(f"link graph: radio ids are ints, got {tx!r} -> {rx!r}")
                if rx == tx:
                    raise MediumError(f"link graph: radio {tx} linked to itself")
                if not isinstance(rssi, (int, float)) or not math.isfinite(rssi):
                    raise MediumError(f"link graph: RSSI of {tx} -> {rx} must be a finite number, got {rssi!r}")
                self._rssi[(tx, rx)] = float(rssi)
                explicit.add((tx, rx))
        if symmetric:
            for (tx, rx), rssi in list(self._rssi.items()):
                if (rx, tx) not in explicit:
                    self._rssi[(rx, tx)] = rssi

    def link_rssi(self, tx: RadioSite, rx: RadioSite, seed: int) -> float | None:
        return self._rssi.get((tx.radio_id, rx.radio_id))


@dataclass(frozen=True)
class LogDistance:
    """Log-distance path loss PL(d) = PL(d0) + 10·γ·log10(d/d0), plus shadowing of std-dev `sigma_db`.

    Defaults are LoRaSim's (Bor et al.), also Meshtasticator's model 0.
    """

    d0_m: float = 40.0
    loss_d0_db: float = 127.41
    gamma: float = 2.08
    sigma_db: float = 0.0

    def loss_db(self, distance_m: float) -> float:
        """Mean path loss in dB at `distance_m` (no shadowing)."""
        d = max(distance_m, MIN_DISTANCE_M)
        return self.loss_d0_db + 10.0 * self.gamma * math.log10(d / self.d0_m)


@dataclass(frozen=True)
class Field:
    """Radios at (x, y) positions in metres; links follow `path_loss`, antenna gain on both ends.

    Shadowing (if `path_loss.sigma_db` > 0) is drawn once per pair of radios from the
    medium's seed, the same both ways, so a link is stable for the whole run.
    """

    path_loss: LogDistance = LogDistance()
    antenna_gain_db: float = 0.0
    needs_positions = True

    def link_rssi(self, tx: RadioSite, rx: RadioSite, seed: int) -> float | None:
        assert tx.position is not None and rx.position is not None
        distance = math.dist(tx.position, rx.position)
        loss = self.path_loss.loss_db(distance)
        if self.path_loss.sigma_db > 0.0:
            a, b = sorted((tx.radio_id, rx.radio_id))
            loss += random.Random(f"shadowing:{seed}:{a}:{b}").gauss(0.0, self.path_loss.sigma_db)
        return tx.tx_power_dbm + 2.0 * self.antenna_gain_db - loss


# Fates of a reception, in the order they are decided.
_COLLIDED = "collided"
_MISSED = "missed"


class _Tx:
    __slots__ = ("seq", "sender", "packet", "start", "end", "receptions", "aborted")

    def __init__(self, seq: int, sender: int, packet: bytes, start: float, end: float) -> None:
        self.seq = seq
        self.sender = sender
        self.packet = packet
        self.start = start
        self.end = end
        self.receptions: list[_Rx] = []
        self.aborted = False


class _Rx:
    __slots__ = ("tx", "receiver", "rssi", "decodable", "fate", "interferes")

    def __init__(self, tx: _Tx, receiver: int, rssi: float, decodable: bool) -> None:
        self.tx = tx
        self.receiver = receiver
        self.rssi = rssi
        self.decodable = decodable
        self.fate: str | None = None
        self.interferes = True  # False once it lost as it arrived


class _Stats:
    __slots__ = ("airtime", "sent", "received", "collided", "lost", "missed")

    def __init__(self) -> None:
        self.airtime = 0.0
        self.sent = self.received = self.collided = self.lost = self.missed = 0

    def frozen(self) -> RadioStats:
        return RadioStats(self.airtime, self.sent, self.received, self.collided, self.lost, self.missed)


def _position(radio_id: int, position: tuple[float, float]) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in position)
    except (TypeError, ValueError) as exc:
        raise MediumError(f"radio {radio_id}: a position is (x, y) in metres, got {position!r}") from exc
    if not (math.isfinite(x) and math.isfinite(y)):
        raise MediumError(f"radio {radio_id}: position {position!r} is not finite")
    return x, y


class Medium:
    """A discrete-event LoRa channel: `transmit` starts a packet, `poll` hands out what arrived."""

    def __init__(
        self,
        params: LoRaParams,
        *,
        topology: Topology,
        loss: float = 0.0,
        seed: int = 0,
        capture_db: float = 6.0,
        overhead_bytes: int = 0,
        noise_figure_db: float = DEFAULT_NOISE_FIGURE_DB,
        cad_symbols: float = 0.0,
    ) -> None:
        if not 0.0 <= loss <= 1.0:
            raise MediumError(f"loss must be within [0, 1], got {loss}")
        if capture_db < 0.0:
            raise MediumError(f"capture_db must be >= 0, got {capture_db}")
        if overhead_bytes < 0:
            raise MediumError(f"overhead_bytes must be >= 0, got {overhead_bytes}")
        if cad_symbols < 0.0:
            raise MediumError(f"cad_symbols must be >= 0, got {cad_symbols}")
        self.params = params
        self.topology = topology
        self.loss = loss
        self.seed = seed
        self.capture_db = capture_db
        self.overhead_bytes = overhead_bytes
        self.noise_floor_dbm = noise_floor_dbm(params.bw_hz, noise_figure_db)
        self.sensitivity_dbm = sensitivity_dbm(params.sf, params.bw_hz, noise_figure_db)
        self._track_dbm = self.sensitivity_dbm - capture_db  # weaker signals never matter
        self._cad_dbm = self.sensitivity_dbm - CAD_MARGIN_DB
        self._cad_s = cad_symbols * params.symbol_time_s
        self._lock_s = max(params.preamble_symbols - PREAMBLE_LOCK_SYMBOLS, 0) * params.symbol_time_s
        self._rng = random.Random(seed)
        self._now = -math.inf
        self._seq = 0
        self._radios: dict[int, RadioSite] = {}
        self._alive: dict[int, bool] = {}
        self._hears: dict[int, list[tuple[int, float]]] = {}  # sender -> [(receiver, rssi)], by receiver id
        self._active: dict[int, list[_Rx]] = {}  # receiver -> receptions whose airtime may not have ended
        self._sending: dict[int, _Tx | None] = {}
        self._stats: dict[int, _Stats] = {}
        self._pending: list[tuple[float, int, _Tx]] = []  # heap of (end, seq, tx)
        self._airtime_by_len: dict[int, float] = {}

    # -- radios -------------------------------------------------------------------------

    def add_radio(
        self, radio_id: int, position: tuple[float, float] | None = None, *, tx_power_dbm: float = 20.0
    ) -> None:
        """Add a radio (alive); `position` (x, y) in metres is required by a `Field`, refused by a `LinkGraph`."""
        if radio_id in self._radios:
            raise MediumError(f"radio {radio_id} is already on the medium")
        if self.topology.needs_positions and position is None:
            raise MediumError(f"radio {radio_id}: this topology places radios by position; give one")
        if not self.topology.needs_positions and position is not None:
            raise MediumError(f"radio {radio_id}: a link graph takes no positions")
        pos = None if position is None else _position(radio_id, position)
        radio = RadioSite(radio_id, pos, float(tx_power_dbm))
        self._hears[radio_id] = []
        for other in self._radios.values():
            self._link(radio, other)
            self._link(other, radio)
        self._radios[radio_id] = radio
        self._alive[radio_id] = True
        self._active[radio_id] = []
        self._sending[radio_id] = None
        self._stats[radio_id] = _Stats()

    def _link(self, tx: RadioSite, rx: RadioSite) -> None:
        rssi = self.topology.link_rssi(tx, rx, self.seed)
        if rssi is not None and rssi >= self._track_dbm:
            hears = self._hears[tx.radio_id]
            hears.append((rx.radio_id, rssi))
            hears.sort()

    def remove_radio(self, radio_id: int) -> None:
        """Take a radio off the medium: like `set_alive(False)`, then it and its stats are forgotten."""
        self.set_alive(radio_id, False)
        del self._radios[radio_id], self._alive[radio_id], self._active[radio_id]
        del self._sending[radio_id], self._stats[radio_id], self._hears[radio_id]
        for hears in self._hears.values():
            hears[:] = [link for link in hears if link[0] != radio_id]

    def set_alive(self, radio_id: int, alive: bool) -> None:
        """Crash (`False`) or revive (`True`) a radio. Going down cuts its reception and its transmission."""
        self._require(radio_id)
        if not alive and self._alive[radio_id]:
            for rx in self._active[radio_id]:
                if rx.fate is None:
                    rx.fate = _MISSED
            self._active[radio_id] = []
            sending = self._sending[radio_id]
            if sending is not None:
                sending.aborted = True
            self._sending[radio_id] = None
        self._alive[radio_id] = bool(alive)

    def _require(self, radio_id: int) -> None:
        if radio_id not in self._radios:
            raise UnknownRadioError(f"radio {radio_id} is not on the medium")

    def _advance(self, now: float) -> None:
        if now < self._now:
            raise MediumError(f"time went backwards: {now} < {self._now}")
        self._now = now

    def airtime(self, packet_len: int) -> float:
        """Seconds on air of a packet of `packet_len` bytes (plus `overhead_bytes`)."""
        airtime = self._airtime_by_len.get(packet_len)
        if airtime is None:
            airtime = time_on_air(packet_len + self.overhead_bytes, self.params)
            self._airtime_by_len[packet_len] = airtime
        return airtime

    # -- the channel --------------------------------------------------------------------

    def transmit(self, sender: int, packet: bytes, now: float) -> float:
        """Start sending `packet` from `sender` at `now`; returns when its airtime ends."""
        self._require(sender)
        if not isinstance(packet, (bytes, bytearray)) or not packet:
            raise MediumError("a packet is non-empty bytes")
        if len(packet) + self.overhead_bytes > MAX_LORA_PAYLOAD:
            raise MediumError(
                f"packet of {len(packet)} B + {self.overhead_bytes} B overhead "
                f"exceeds the LoRa limit of {MAX_LORA_PAYLOAD} B"
            )
        self._advance(now)
        if not self._alive[sender]:
            raise RadioDownError(f"radio {sender} is down")
        current = self._sending[sender]
        if current is not None and current.end > now:
            raise RadioBusyError(f"radio {sender} is transmitting until {current.end}")
        end = now + self.airtime(len(packet))
        self._seq += 1
        tx = _Tx(self._seq, sender, bytes(packet), now, end)
        self._sending[sender] = tx
        stats = self._stats[sender]
        stats.sent += 1
        stats.airtime += end - now
        # Half duplex: whatever the sender was receiving is spoilt.
        for rx in self._active[sender]:
            if rx.tx.end > now and rx.fate is None:
                rx.fate = _MISSED
        capture = self.capture_db
        for receiver, rssi in self._hears[sender]:
            if not self._alive[receiver]:
                continue
            rx = _Rx(tx, receiver, rssi, rssi >= self.sensitivity_dbm)
            receiving = self._sending[receiver]
            if receiving is not None and receiving.end > now:
                rx.fate = _MISSED
            active = [other for other in self._active[receiver] if other.tx.end > now]
            lock = now + self._lock_s
            for other in active:
                if not other.interferes or other.tx.end <= lock:
                    continue  # lost on arrival, or over before this packet's receiver locks on
                margin = rssi - other.rssi  # the stronger survives only `capture` dB clear
                if margin > -capture and other.fate is None:
                    other.fate = _COLLIDED
                if margin < capture and rx.fate is None:
                    rx.fate = _COLLIDED
            rx.interferes = rx.fate != _COLLIDED
            active.append(rx)
            self._active[receiver] = active
            tx.receptions.append(rx)
        heapq.heappush(self._pending, (end, tx.seq, tx))
        return end

    def poll(self, now: float) -> list[Delivery]:
        """Deliveries whose airtime ended at or before `now`, in order of (end time, start order, receiver)."""
        self._advance(now)
        out: list[Delivery] = []
        pending = self._pending
        while pending and pending[0][0] <= now:
            _, _, tx = heapq.heappop(pending)
            if self._sending.get(tx.sender) is tx:
                self._sending[tx.sender] = None
            for rx in tx.receptions:
                if not rx.decodable:
                    continue
                stats = self._stats.get(rx.receiver)
                if stats is None:  # receiver removed meanwhile
                    continue
                if tx.aborted or rx.fate == _MISSED:
                    stats.missed += 1
                elif rx.fate == _COLLIDED:
                    stats.collided += 1
                elif self.loss and self._rng.random() < self.loss:
                    stats.lost += 1
                else:
                    stats.received += 1
                    snr = rx.rssi - self.noise_floor_dbm
                    out.append(Delivery(rx.receiver, tx.sender, tx.packet, rx.rssi, snr, tx.end))
        return out

    def next_deadline(self) -> float | None:
        """When the earliest transmission on air ends (the next time `poll` can return something)."""
        return self._pending[0][0] if self._pending else None

    def busy(self, radio_id: int, now: float) -> bool:
        """Channel activity at `radio_id`: it is transmitting, or it senses a signal on air for a CAD's time.

        A radio that is down senses nothing and is never busy.
        """
        return self.busy_until(radio_id, now) > now

    def busy_until(self, radio_id: int, now: float) -> float:
        """When the channel activity `busy` senses at `radio_id` now ends at the earliest: `now` if it senses none.

        Every signal sensed now is still sensed until its airtime ends (one cut off by its
        sender going down too), so `busy` stays true until the returned time whatever else
        happens, short of this radio going down; signals that start meanwhile may make
        the channel busy for longer.
        """
        if radio_id not in self._radios:
            self._require(radio_id)
        if not self._alive[radio_id]:
            return now
        until = now
        sending = self._sending[radio_id]
        if sending is not None and sending.start <= now < sending.end:
            until = sending.end
        detected = now - self._cad_s  # a younger signal is still under way through the CAD
        cad_dbm = self._cad_dbm
        for rx in self._active[radio_id]:
            tx = rx.tx
            if tx.end > until and tx.start <= detected and rx.rssi >= cad_dbm:
                until = tx.end
        return until

    def link_rssi(self, sender: int, receiver: int) -> float | None:
        """RSSI at `receiver` of `sender`, or None when it is too weak to matter."""
        self._require(sender)
        self._require(receiver)
        return dict(self._hears[sender]).get(receiver)

    @property
    def stats(self) -> dict[int, RadioStats]:
        """A snapshot of every radio's counters."""
        return {radio_id: stats.frozen() for radio_id, stats in self._stats.items()}
