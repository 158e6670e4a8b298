"""Sans-IO link layer: fragmentation, reassembly, CRC, duplicate suppression and repair.

One `Link` per node per radio. `send(payload, now)` returns the frames to put on air
(each at most `mtu` bytes); `receive(frame, sender, now)` and `poll(now)` return events:
`Delivered` (a whole message, exactly once), `Transmit` (a frame the link itself wants
sent: a repair request or the fragments it answers) and `Dropped` (why a frame or a
message was given up). Frames are declared in `linkframe`; read it for the bit layout.

- A message that fits one frame goes as a SINGLE frame with a 2-byte header and no CRC.
  Longer ones get a CRC-32C appended and are cut into FRAGMENT frames with 4-byte
  headers, all full but the last (a 2048 B message over a 233 B MTU: 9 frames, 2088 B).
- Reassembly is keyed by (radio sender, message id). A message finished (delivered or
  dropped) is remembered for `dedupe_window` seconds (at most `dedupe_size` of them), so
  the copies a mesh rebroadcasts are ignored and a message is delivered exactly once.
- Repair: when a reassembly has been quiet for `repair_delay` seconds (plus up to 50 %
  random jitter), the receiver broadcasts ONE repair request naming the missing
  fragments and the original sender's radio id; it asks again every `repair_interval`
  seconds while nothing new arrives, at most `max_repair_rounds` times in all. A receiver
  that hears another node ask for the same message waits one more interval for that
  answer instead of asking too (at most `max_repair_rounds` times). The sender keeps its
  last `send_cache` fragmented messages and answers with exactly the fragments named.
- Timeout: once no repair round is left (or with `repair=False`), a reassembly that has
  had no new fragment and sent no request for `reassembly_timeout` seconds is dropped
  with reason "timeout". SINGLE frames are not repairable: they carry no state.
- Give the link its own radio id (`radio_id`) so it answers only requests addressed to
  it; without one it answers any request for a message id and fragment count it has
  cached, which can waste airtime when two senders' ids collide.
- Randomness (the first message id, the repair jitter) comes from the `rng` the caller
  passes: seeded in tests and simulations, `random.Random()` made at the IO edge.

Hostile traffic. Frames are not authenticated (anyone can forge a sender, a fragment or
a repair request), so nothing a frame asks for is granted beyond these bounds:

- Answers (sender side). A repair request is answered only for a message this link sent
  less than `repair_horizon` seconds ago, with only the fragments it names (each at most
  once per `repair_interval / 2`), for at most `2 * max_repair_rounds` requests per
  message, and from a byte allowance of `repair_share` times the message's own frames.
  Requests, forged or not, can therefore make a node resend at most `repair_share` bytes
  per byte of fragmented message it sent in the last `repair_horizon` seconds, and
  nothing for anything older (before: every cached fragment again every 2.5 s for 600 s,
  418 B per forged request byte). The default 2.0 is what honest repair needs with five
  receivers at 30 % loss (97 % delivered; 1.0 gives 54 %); one receiver needs < 0.5.
- Requests (receiver side). A reassembly holding a single fragment may send one repair
  request (more once a second fragment vouches for the message), and its requests may
  total at most the bytes of the fragments it received: one fake fragment costs at most
  one request, no larger than itself (before: up to 8), and a fake fragment smaller than
  the request it would cause costs none. All requests share
  a token bucket of `request_rate` per second (default `max_requests_per_interval` per
  `repair_interval`; `RadioPort` sets it from the airtime budget, since every request is a
  whole packet on air whatever its bytes), bursts of `max_requests_per_interval` (a
  request without a token waits for one), and one radio sender holds at most `max_pending_per_sender`
  reassemblies (a new one evicts that sender's oldest, not another sender's).
- Memory is bounded: at most `max_pending` reassemblies (the oldest is evicted), each
  of at most `max_fragments` frames of at most `mtu` bytes; the fragment count is
  checked against `max_message` before anything is buffered; `send_cache` messages
  sent, `dedupe_size` messages finished. Untrusted frames never raise: they become
  `Dropped` events.
"""
from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

import crcmod.predefined

from .errors import FrameError, MessageTooLarge
from .linkframe import (
    CRC_LEN,
    FRAGMENT_HEADER_LEN,
    MAX_FRAGMENTS,
    MSG_ID_MODULO,
    SINGLE_HEADER_LEN,
    FragmentFrame,
    RepairRequest,
    SingleFrame,
    decode,
    encode,
    repair_request_len,
)

_crc32c = crcmod.predefined.mkPredefinedCrcFun("crc-32c")


class DropReason(StrEnum):
    """Stable codes for `Dropped.reason` (they compare equal to the plain strings)."""

    MALFORMED = "malformed"  # the frame does not decode
    OVERSIZE = "oversize"  # a frame longer than the MTU
    TOO_LARGE = "too large"  # a message longer than max_message
    CONFLICT = "conflict"  # frames that contradict a reassembly in progress
    CRC = "crc"  # the reassembled message fails its CRC-32C
    TIMEOUT = "timeout"  # fragments still missing after the repair rounds
    EVICTED = "evicted"  # pushed out by max_pending newer reassemblies


@dataclass(frozen=True)
class Delivered:
    sender: int
    payload: bytes


@dataclass(frozen=True)
class Transmit:
    """A frame the link itself wants put on air (repair request or repair answer)."""

    frame: bytes


@dataclass(frozen=True)
class Dropped:
    """A frame or message given up: `reason` is a `DropReason` code, `detail` says more
    for logs (and is left out of equality, so tests and callers match on the code)."""

    sender: int
    reason: str
    detail: str = field(default="", compare=False)


LinkEvent = Delivered | Transmit | Dropped


@dataclass
class _Reassembly:
    count: int
    last_activity: float  # the last new fragment or own repair request
    repair_at: float  # the next repair round; math.inf when none is left
    fragments: dict[int, bytes] = field(default_factory=dict)
    rounds: int = 0  # repair requests sent
    deferrals: int = 0  # rounds put off because another node asked first
    received: int = 0  # frame bytes of the fragments held: what requests may cost at most
    asked: int = 0  # frame bytes of the repair requests sent


@dataclass
class _Sent:
    frames: list[bytes]
    sent_at: float
    allowance: int  # bytes still allowed for repair answers (repair_share of the frames)
    answers: int = 0  # repair requests answered
    resent_at: dict[int, float] = field(default_factory=dict)


class Link:
    """Fragmentation, reassembly, dedupe and repair for one node on one radio (sans-IO)."""

    def __init__(
        self,
        mtu: int,
        *,
        max_message: int = 4096,
        reassembly_timeout: float = 30.0,
        max_pending: int = 32,
        repair: bool = True,
        rng: random.Random,
        radio_id: int | None = None,
        node_id: int | None = None,
        repair_delay: float = 5.0,
        repair_interval: float = 5.0,
        max_repair_rounds: int = 8,
        send_cache: int = 8,
        dedupe_window: float = 600.0,
        dedupe_size: int = 1024,
        repair_horizon: float = 300.0,
        repair_share: float = 2.0,
        max_pending_per_sender: int = 8,
        max_requests_per_interval: int = 8,
        request_rate: float | None = None,
    ) -> None:
        if mtu <= FRAGMENT_HEADER_LEN:
            raise ValueError(f"mtu must exceed the {FRAGMENT_HEADER_LEN} B fragment header, not {mtu}")
        if max_message < 0:
            raise ValueError(f"max_message must be >= 0, not {max_message}")
        self.mtu = mtu
        self.max_message = max_message
        self.max_fragments = math.ceil((max_message + CRC_LEN) / (mtu - FRAGMENT_HEADER_LEN))
        if self.max_fragments > MAX_FRAGMENTS:
            raise ValueError(
                f"max_message {max_message} B needs {self.max_fragments} fragments of "
                f"{mtu - FRAGMENT_HEADER_LEN} B; a message has at most {MAX_FRAGMENTS}"
            )
        if repair and repair_request_len(self.max_fragments) > mtu:
            raise ValueError(
                f"a repair request for {self.max_fragments} fragments "
                f"({repair_request_len(self.max_fragments)} B) does not fit the {mtu} B MTU"
            )
        for name, value in (
            ("reassembly_timeout", reassembly_timeout),
            ("repair_delay", repair_delay),
            ("repair_interval", repair_interval),
            ("dedupe_window", dedupe_window),
            ("repair_horizon", repair_horizon),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value}")
        for name, count in (
            ("max_pending", max_pending),
            ("send_cache", send_cache),
            ("dedupe_size", dedupe_size),
            ("max_pending_per_sender", max_pending_per_sender),
            ("max_requests_per_interval", max_requests_per_interval),
        ):
            if count < 1:
                raise ValueError(f"{name} must be >= 1, not {count}")
        if max_repair_rounds < 0:
            raise ValueError(f"max_repair_rounds must be >= 0, not {max_repair_rounds}")
        if not 0 <= repair_share <= 16:
            raise ValueError(f"repair_share must be in 0..16, not {repair_share}")
        self.reassembly_timeout = reassembly_timeout
        self.max_pending = max_pending
        self.repair = repair
        # `node_id` is radio_id's old name, kept only for hil/sim/fieldsim.py: delete it once
        # that passes radio_id.
        self.radio_id = radio_id if radio_id is not None else node_id
        self.repair_delay = repair_delay
        self.repair_interval = repair_interval
        self.max_repair_rounds = max_repair_rounds
        self.send_cache = send_cache
        self.dedupe_window = dedupe_window
        self.dedupe_size = dedupe_size
        self.repair_horizon = repair_horizon
        self.repair_share = repair_share
        self.max_pending_per_sender = min(max_pending_per_sender, max_pending)
        self.max_requests_per_interval = max_requests_per_interval
        if request_rate is not None and not request_rate > 0:
            raise ValueError(f"request_rate must be positive, not {request_rate}")
        # Repair requests per second in the long run (bursts of max_requests_per_interval).
        self.request_rate = max_requests_per_interval / repair_interval if request_rate is None else request_rate
        self._tokens = float(max_requests_per_interval)  # repair requests we may send now
        self._tokens_at = -math.inf
        self._rng = rng
        self._next_id = self._rng.randrange(MSG_ID_MODULO)
        self._pending: OrderedDict[tuple[int, int], _Reassembly] = OrderedDict()
        self._finished: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._sent: OrderedDict[int, _Sent] = OrderedDict()

    # -- sending ---------------------------------------------------------------

    def send(self, payload: bytes, now: float) -> list[bytes]:
        """The frames that carry `payload`, in order, each at most `mtu` bytes."""
        if len(payload) > self.max_message:
            raise MessageTooLarge(
                f"message of {len(payload)} B exceeds the link's max_message of {self.max_message} B"
            )
        self._forget_expired(now)
        msg_id = self._next_id
        self._next_id = (msg_id + 1) % MSG_ID_MODULO
        if SINGLE_HEADER_LEN + len(payload) <= self.mtu:
            return [encode(SingleFrame(msg_id, bytes(payload)))]
        data = bytes(payload) + _crc32c(payload).to_bytes(CRC_LEN, "big")
        chunk = self.mtu - FRAGMENT_HEADER_LEN
        count = math.ceil(len(data) / chunk)
        frames = [
            encode(FragmentFrame(msg_id, index, count, data[index * chunk : (index + 1) * chunk]))
            for index in range(count)
        ]
        if self.repair:
            self._sent.pop(msg_id, None)
            allowance = int(self.repair_share * sum(map(len, frames)))
            self._sent[msg_id] = _Sent(frames, now, allowance)
            while len(self._sent) > self.send_cache:
                self._sent.popitem(last=False)
        return frames

    # -- receiving -------------------------------------------------------------

    def receive(self, frame: bytes, sender: int, now: float) -> list[LinkEvent]:
        """Handle one frame heard from radio source `sender`. Never raises on bad input."""
        if len(frame) > self.mtu:
            detail = f"{len(frame)} B frame exceeds the {self.mtu} B MTU"
            return [Dropped(sender, DropReason.OVERSIZE, detail)]
        try:
            parsed = decode(frame)
        except FrameError as exc:
            return [Dropped(sender, DropReason.MALFORMED, str(exc))]
        self._forget_expired(now)
        if isinstance(parsed, SingleFrame):
            return self._on_single(sender, parsed, now)
        if isinstance(parsed, FragmentFrame):
            return self._on_fragment(sender, parsed, now)
        return self._on_repair(parsed, now)

    def _on_single(self, sender: int, frame: SingleFrame, now: float) -> list[LinkEvent]:
        key = (sender, frame.msg_id)
        if key in self._finished:
            return []
        if key in self._pending:
            detail = f"single frame reuses message id {frame.msg_id} being reassembled"
            return [Dropped(sender, DropReason.CONFLICT, detail)]
        self._finish(key, now)
        if len(frame.payload) > self.max_message:
            return [Dropped(sender, DropReason.TOO_LARGE, self._too_large(len(frame.payload)))]
        return [Delivered(sender, frame.payload)]

    def _on_fragment(self, sender: int, frame: FragmentFrame, now: float) -> list[LinkEvent]:
        key = (sender, frame.msg_id)
        if key in self._finished:
            return []
        events: list[LinkEvent] = []
        entry = self._pending.get(key)
        if entry is None:
            if frame.count > self.max_fragments:
                self._finish(key, now)
                return [
                    Dropped(
                        sender,
                        DropReason.TOO_LARGE,
                        f"message {frame.msg_id} has {frame.count} fragments, "
                        f"max_message allows {self.max_fragments}",
                    )
                ]
            if frame.count == 1:
                return self._assemble(sender, key, [frame.data], now)
            events += self._make_room(sender, now)
            entry = _Reassembly(count=frame.count, last_activity=now, repair_at=math.inf)
            self._pending[key] = entry
        elif entry.count != frame.count:
            return [
                Dropped(
                    sender,
                    DropReason.CONFLICT,
                    f"message {frame.msg_id}: fragment says {frame.count} fragments, "
                    f"earlier ones {entry.count}",
                )
            ]
        if frame.index in entry.fragments:
            return events
        entry.fragments[frame.index] = frame.data
        entry.received += FRAGMENT_HEADER_LEN + len(frame.data)
        entry.last_activity = now
        if self.repair and self._may_ask(entry):
            entry.repair_at = now + self.repair_delay * (1 + 0.5 * self._rng.random())
        if len(entry.fragments) == entry.count:
            del self._pending[key]
            pieces = [entry.fragments[index] for index in range(entry.count)]
            events += self._assemble(sender, key, pieces, now)
        return events

    def _assemble(
        self, sender: int, key: tuple[int, int], pieces: list[bytes], now: float
    ) -> list[LinkEvent]:
        self._finish(key, now)
        data = b"".join(pieces)
        message, crc = data[:-CRC_LEN], data[-CRC_LEN:]
        if len(data) < CRC_LEN or _crc32c(message) != int.from_bytes(crc, "big"):
            return [Dropped(sender, DropReason.CRC, f"message {key[1]} fails its CRC-32C")]
        if len(message) > self.max_message:
            return [Dropped(sender, DropReason.TOO_LARGE, self._too_large(len(message)))]
        return [Delivered(sender, message)]

    def _on_repair(self, request: RepairRequest, now: float) -> list[LinkEvent]:
        if not self.repair:
            return []
        events: list[LinkEvent] = []
        sent = self._sent.get(request.msg_id)
        addressed = self.radio_id is None or request.target == self.radio_id
        if addressed and sent is not None and len(sent.frames) == request.count and self._may_answer(sent, now):
            holdoff = self.repair_interval / 2
            for index in sorted(request.missing):
                frame = sent.frames[index]
                if now - sent.resent_at.get(index, -math.inf) >= holdoff and len(frame) <= sent.allowance:
                    sent.allowance -= len(frame)
                    sent.resent_at[index] = now
                    events.append(Transmit(frame))
            sent.answers += bool(events)
        entry = self._pending.get((request.target, request.msg_id))
        if entry and entry.repair_at != math.inf and entry.deferrals < self.max_repair_rounds:
            # Someone already asked the sender; its answer should fill our gaps too.
            entry.deferrals += 1
            entry.repair_at = max(entry.repair_at, now + self.repair_interval)
        return events

    def _may_answer(self, sent: _Sent, now: float) -> bool:
        """A request for `sent` may be answered: sent recently, answers and allowance left."""
        return (
            now - sent.sent_at < self.repair_horizon
            and sent.answers < 2 * self.max_repair_rounds
            and sent.allowance > 0
        )

    def _may_ask(self, entry: _Reassembly) -> bool:
        """A further repair request is allowed: rounds left (only one while a single fragment
        vouches for the message), and all requests within the bytes received."""
        rounds = self.max_repair_rounds if len(entry.fragments) > 1 else min(1, self.max_repair_rounds)
        return entry.rounds < rounds and entry.asked + repair_request_len(entry.count) <= entry.received

    def _take_token(self, now: float) -> bool:
        """Spend one of the shared repair-request tokens, if one is left."""
        refill = max(0.0, now - self._tokens_at) * self.request_rate
        self._tokens = min(float(self.max_requests_per_interval), self._tokens + refill)
        self._tokens_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _next_token(self, now: float) -> float:
        # at least a microsecond on: a float sum that rounds back to `now` would spin the caller
        return now + max((1 - self._tokens) / self.request_rate, 1e-6)

    # -- timers ----------------------------------------------------------------

    def poll(self, now: float) -> list[LinkEvent]:
        """Run the timers due at `now`: repair requests to send, reassemblies that time out."""
        self._forget_expired(now)
        events: list[LinkEvent] = []
        for key, entry in list(self._pending.items()):
            if now < self._deadline(entry):
                continue
            sender, msg_id = key
            if entry.repair_at != math.inf and not self._may_ask(entry):
                entry.repair_at = math.inf  # the timeout runs from the last activity
            elif entry.repair_at != math.inf:
                if not self._take_token(now):
                    entry.repair_at = self._next_token(now)
                    continue
                request = self._repair_request(sender, msg_id, entry)
                events.append(Transmit(request))
                entry.rounds += 1
                entry.asked += len(request)
                entry.last_activity = now
                entry.repair_at = now + self.repair_interval if self._may_ask(entry) else math.inf
            else:
                del self._pending[key]
                self._finish(key, now)
                missing = entry.count - len(entry.fragments)
                events.append(
                    Dropped(
                        sender,
                        DropReason.TIMEOUT,
                        f"message {msg_id}: {missing} of {entry.count} fragments missing "
                        f"after {entry.rounds} repair rounds",
                    )
                )
        return events

    def _repair_request(self, sender: int, msg_id: int, entry: _Reassembly) -> bytes:
        missing = frozenset(range(entry.count)) - entry.fragments.keys()
        return encode(RepairRequest(msg_id, sender, entry.count, missing))

    def next_deadline(self) -> float | None:
        """When `poll` next has something to do; None when nothing is pending."""
        return min(map(self._deadline, self._pending.values()), default=None)

    def _deadline(self, entry: _Reassembly) -> float:
        """The next repair round or, with none left, when the reassembly times out."""
        if entry.repair_at != math.inf:
            return entry.repair_at
        return entry.last_activity + self.reassembly_timeout

    # -- introspection -----------------------------------------------------------

    @property
    def pending_reassemblies(self) -> int:
        return len(self._pending)

    @property
    def buffered_bytes(self) -> int:
        """Fragment bytes held by reassemblies in progress."""
        return sum(
            len(data) for entry in self._pending.values() for data in entry.fragments.values()
        )

    # -- bookkeeping -------------------------------------------------------------

    def _make_room(self, sender: int, now: float) -> list[LinkEvent]:
        """Room for one more reassembly from `sender`: its own oldest goes when it holds
        `max_pending_per_sender`, then the oldest of all beyond `max_pending`."""
        events: list[LinkEvent] = []
        own = [key for key in self._pending if key[0] == sender]
        for key in own[: max(0, len(own) - self.max_pending_per_sender + 1)]:
            del self._pending[key]
            self._finish(key, now)
            detail = f"message {key[1]} evicted by newer reassemblies from the same sender"
            events.append(Dropped(sender, DropReason.EVICTED, detail))
        while len(self._pending) >= self.max_pending:
            (oldest, msg_id), _ = self._pending.popitem(last=False)
            self._finish((oldest, msg_id), now)
            detail = f"message {msg_id} evicted by newer reassemblies"
            events.append(Dropped(oldest, DropReason.EVICTED, detail))
        return events

    def _too_large(self, size: int) -> str:
        return f"{size} B exceeds max_message {self.max_message} B"

    def _finish(self, key: tuple[int, int], now: float) -> None:
        self._finished.pop(key, None)
        self._finished[key] = now
        while len(self._finished) > self.dedupe_size:
            self._finished.popitem(last=False)

    def _forget_expired(self, now: float) -> None:
        horizon = now - self.dedupe_window
        while self._finished and next(iter(self._finished.values())) <= horizon:
            self._finished.popitem(last=False)
        while self._sent and next(iter(self._sent.values())).sent_at <= now - self.repair_horizon:
            self._sent.popitem(last=False)
