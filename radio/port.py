"""`RadioPort`: the thin IO adapter joining a radio driver, a `Link` and the airtime budget.

The sans-IO pieces decide; this class only moves bytes and reads the injected clock:

* `send_message(payload)` cuts the message into link frames (radio/link.py) and
  queues them. Each frame goes out only when the `DutyCycleBudget` allows: the port
  waits (and keeps receiving meanwhile), or refuses with `BudgetExceeded` when a
  frame can never be sent, or when `block=False` and the budget cannot take the
  message now. Nothing is ever sent past the budget, and nothing refused is queued.
* `receive_message(timeout)` and `pump(timeout)` read frames from the driver into the
  link, run its timers, send the repair frames it asks for, and collect whole messages.
* A driver raising `RadioUnavailable` (unplugged, port closed) is reopened with
  exponential backoff (`reconnect_backoff = (first, max)` seconds) for up to
  `reconnect_timeout` seconds. The outbound queue is kept: the frame that failed is
  sent again after the reconnect (the link suppresses any duplicate). When the port
  gives up, the error says how many messages are still queued and `pending()` returns
  them; the next call tries to reconnect again.

Clock, sleep and the link (`port_link`, which takes the link's randomness) are
parameters, so tests run it on exact, simulated time.
"""
from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from blockiot.radio.drivers.base import RadioDriver as Driver
from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.errors import BudgetExceeded, RadioUnavailable
from blockiot.radio.link import Delivered, Dropped, Link, LinkEvent, Transmit
from blockiot.radio.linkframe import repair_request_len

T = TypeVar("T")


@dataclass
class _Outgoing:
    """Frames still to send; `payload` is None for the link's own repair traffic."""

    payload: bytes | None
    frames: deque[bytes] = field(default_factory=deque)


# Share of the airtime budget that link-layer repair requests may take: anyone can forge
# the fragments that cause them, and each is a whole packet on air however short.
REPAIR_REQUEST_SHARE = 0.1


def port_link(driver: Driver, budget: DutyCycleBudget | None, *, rng: random.Random,
              max_message: int = 4096, radio_id: int | None = None, node_id: int | None = None) -> Link:
    """The link layer a port runs: its repair requests paid from `REPAIR_REQUEST_SHARE` of
    the airtime budget (the link's own default rate only without a duty cycle).
    `node_id` is radio_id's old name, kept only for tools/node.py: delete it once that
    passes radio_id."""
    radio_id = radio_id if radio_id is not None else node_id
    link = Link(driver.mtu, max_message=max_message, radio_id=radio_id, rng=rng)
    rate = None if budget is None else budget.share_rate(REPAIR_REQUEST_SHARE, driver.airtime(repair_request_len(link.max_fragments)))
    if rate is not None:
        link.request_rate = rate  # the longest request's airtime: conservative
    return link


class RadioPort:
    """One radio, its link layer and its airtime budget, behind a blocking message API."""

    def __init__(
        self,
        driver: Driver,
        link: Link,
        *,
        budget: DutyCycleBudget | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        reconnect_backoff: tuple[float, float] = (0.5, 10.0),
        reconnect_timeout: float = 60.0,
        poll_interval: float = 0.05,
        dropped_history: int = 64,
    ) -> None:
        first, most = reconnect_backoff
        if not 0 < first <= most:
            raise ValueError(f"reconnect_backoff must be (first, max) with 0 < first <= max, not {reconnect_backoff}")
        self.driver = driver
        self.budget = budget
        self.link = link
        self.reconnect_backoff = (first, most)
        self.reconnect_timeout = reconnect_timeout
        self.poll_interval = poll_interval
        self.reconnects = 0
        self.dropped: deque[Dropped] = deque(maxlen=dropped_history)
        self.clock = clock
        self._sleep = sleep
        self._queue: deque[_Outgoing] = deque()
        self._inbox: deque[tuple[int, bytes]] = deque()

    # -- public API ---------------------------------------------------------------
    def send_message(self, payload: bytes, *, block: bool = True) -> None:
        """Queue `payload` and send its frames as the budget allows.

        With `block` (default) this returns once every frame is on air, waiting for
        the budget if it must. Raises `BudgetExceeded` (nothing queued) when a frame
        can never fit the budget, or, with `block=False`, when the budget cannot
        take the whole message now; `MessageTooLarge` above the link's max_message.
        """
        now = self.clock()
        frames = self.link.send(bytes(payload), now)
        airtimes = [self.driver.airtime(len(frame)) for frame in frames]
        if self.budget is not None:
            for airtime in set(airtimes):
                self.budget.check(airtime, now)  # raises when a frame can never be sent
            if not block:
                queued = sum(self.driver.airtime(len(f)) for item in self._queue for f in item.frames)
                total = queued + sum(airtimes)
                try:
                    wait = self.budget.check(total, now)
                except BudgetExceeded as exc:
                    raise BudgetExceeded(
                        f"message needs {total:.2f} s on air, more than the budget allows at once "
                        f"({self.budget.describe()}); send it with block=True to spread it out", math.inf,
                    ) from exc
                if wait > 0:
                    raise BudgetExceeded(
                        f"message needs {total:.2f} s on air but only {self.budget.remaining(now):.2f} s "
                        f"of budget is left ({self.budget.describe()})", wait,
                    )
        item = _Outgoing(bytes(payload), deque(frames))
        self._queue.append(item)
        while item.frames:
            if not self._send_due(wait_for_budget=block) and not block:
                break

    def receive_message(self, timeout: float) -> tuple[int, bytes] | None:
        """The next whole message as (sender, payload), or None after `timeout` seconds."""
        deadline = self.clock() + timeout
        while not self._inbox:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return None
            self._step(remaining)
        return self._inbox.popleft()

    def pump(self, timeout: float) -> None:
        """Send what the budget allows and process receptions for `timeout` seconds."""
        deadline = self.clock() + timeout
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            self._step(remaining)

    def pending(self) -> list[bytes]:
        """Messages queued and not yet completely on air, oldest first."""
        return [item.payload for item in self._queue if item.payload is not None]

    def close(self) -> None:
        self.driver.close()

    # -- internals ------------------------------------------------------------------
    def _step(self, budget_s: float) -> None:
        """One round: due sends, link timers, then one receive of at most `budget_s`."""
        while self._queue and self._send_due(wait_for_budget=False):
            pass
        self._handle(self.link.poll(self.clock()))
        wait = min(budget_s, self.poll_interval)
        deadline = self.link.next_deadline()
        if deadline is not None:
            wait = min(wait, max(deadline - self.clock(), 0.0))
        received = self._with_radio(lambda: self.driver.receive(wait))
        if received is not None:
            self._handle(self.link.receive(received.frame, received.sender, self.clock()))

    def _send_due(self, *, wait_for_budget: bool) -> bool:
        """Send the head frame if the budget allows (waiting, receiving meanwhile, if asked)."""
        item = self._queue[0]
        frame = item.frames[0]
        airtime = self.driver.airtime(len(frame))
        if self.budget is not None:
            while (wait := self.budget.check(airtime, self.clock())) > 0:
                if not wait_for_budget:
                    return False
                self._receive_for(wait)
        self._with_radio(lambda: self.driver.send(frame))
        if self.budget is not None:
            self.budget.record(airtime, self.clock())
        item.frames.popleft()
        if not item.frames:
            self._queue.remove(item)
        return True

    def _receive_for(self, seconds: float) -> None:
        deadline = self.clock() + seconds
        while (remaining := deadline - self.clock()) > 0:
            received = self._with_radio(lambda: self.driver.receive(min(remaining, self.poll_interval)))
            if received is not None:
                self._handle(self.link.receive(received.frame, received.sender, self.clock()))
            self._handle(self.link.poll(self.clock()))

    def _handle(self, events: list[LinkEvent]) -> None:
        for event in events:
            if isinstance(event, Delivered):
                self._inbox.append((event.sender, event.payload))
            elif isinstance(event, Transmit):
                # Link traffic (repairs) goes before queued messages, after the frame in flight.
                position = 1 if self._queue and self._queue[0].payload is not None else 0
                self._queue.insert(min(position, len(self._queue)), _Outgoing(None, deque([event.frame])))
            else:
                self.dropped.append(event)

    def _with_radio(self, operation: Callable[[], T]) -> T:
        while True:
            try:
                return operation()
            except RadioUnavailable as exc:
                self._reconnect(exc)

    def _reconnect(self, cause: RadioUnavailable) -> None:
        delay, most = self.reconnect_backoff
        started = self.clock()
        attempts = 0
        self.driver.close()
        while True:
            self._sleep(delay)
            attempts += 1
            try:
                self.driver.open()
            except RadioUnavailable as exc:
                cause = exc
            else:
                self.reconnects += 1
                return
            elapsed = self.clock() - started
            if elapsed >= self.reconnect_timeout:
                queued = len(self.pending())
                raise RadioUnavailable(
                    f"{self.driver.name} radio unavailable ({cause}); gave up reconnecting after "
                    f"{attempts} attempt(s) over {elapsed:.1f} s; {queued} message(s) still queued, "
                    "nothing dropped (RadioPort.pending() lists them, the next call retries)"
                ) from cause
            delay = min(delay * 2, most)
