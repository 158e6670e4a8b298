"""The real-time adapter: runs a `NodeRuntime` on a radio driver and the wall clock, with the
control socket's requests and the actuator's results, in one thread that never waits on
more than one of them for longer than `POLL_S`.

Each turn: run the timers that are due; answer control requests; start final commands
and report finished ones; put every frame the transmit queue lets out on air; then wait
for a frame from the radio until the next deadline (at most `POLL_S`). A radio that goes
away (`RadioUnavailable`: unplugged, crashed) is reopened with backoff while the node
goes on keeping time and answering its socket; frames wait in the transmit queue, stale
answers are dropped there.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from blockiot.chain.errors import ChainError
from blockiot.radio.drivers.base import RadioDriver
from blockiot.radio.errors import RadioUnavailable

from .bodies import body_from_request
from .control import Request
from .log import NodeLog
from .runtime import NodeRuntime
from .status import status_of

POLL_S = 0.2
RECONNECT_BACKOFF_S = (1.0, 30.0)
BUDGET_WARNING = 0.8  # warn once the budget is this much used


class RealtimeNode:
    """One node on a radio, driven by the wall clock until `stop` is set or `until`."""

    def __init__(
        self,
        runtime: NodeRuntime,
        driver: RadioDriver,
        *,
        log: NodeLog,
        actuator,
        requests: queue.Queue[Request] | None = None,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        on_event: Callable[[object, float], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.driver = driver
        self.log = log
        self.actuator = actuator
        self.requests = requests
        self.clock = clock
        self.stop = stop if stop is not None else threading.Event()
        self.started = clock()
        self._radio_up = True
        self._retry_at = 0.0
        self._backoff = RECONNECT_BACKOFF_S[0]
        self._budget_warned = False
        self.on_event = on_event  # also told each runtime event, after the log (the MQTT bridge)
        runtime.on_event = self._event

    def run(self, until: float = float("inf")) -> None:
        while not self.stop.is_set() and (now := self.clock()) < until:
            self.runtime.tick(now)
            self._answer_requests(now)
            self._actuate(now)
            self._transmit(now)
            self._check_budget(now)
            self._receive(now)

    def _event(self, event, now: float) -> None:
        self.log.event(event, now)
        if self.on_event is not None:
            self.on_event(event, now)

    # --- one turn ------------------------------------------------------------------------

    def _answer_requests(self, now: float) -> None:
        if self.requests is None:
            return
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            request.reply.put(self.answer(request.message, now))

    def answer(self, message: dict, now: float) -> dict:
        """The answer to one control request (chain/runtime/control.py lists them)."""
        op = message.get("op")
        if op == "status":
            return {"ok": True, **status_of(self.runtime, now, radio=self.driver.name, started=self.started)}
        if op == "submit":
            core = self.runtime.core
            try:
                body = body_from_request(core.genesis, message.get("body"), validator=core.is_validator)
                submitted = self.runtime.submit(body, now)
            except (ChainError, ValueError, TypeError, OverflowError) as exc:  # a client's bad request
                return {"ok": False, "error": str(exc) or type(exc).__name__}
            if submitted.rejected is not None:
                return {"ok": False, "error": f"{submitted.rejected.reason}: {submitted.rejected.detail}".rstrip(": ")}
            return {"ok": True, "tx": submitted.tx_id.hex(), "sender": core.member, "nonce": self.runtime.last_nonce}
        return {"ok": False, "error": f"unknown op {op!r}; known: status, submit"}

    def _actuate(self, now: float) -> None:
        for action in self.runtime.take_actions():
            self.log.event(action, now)
            self.actuator.start(action.command)
        for command, ok, status in self.actuator.finished():
            self.runtime.report(command, ok, status, now)

    def _transmit(self, now: float) -> None:
        if not self._radio_up:
            return
        while (frame := self.runtime.next_frame(now)) is not None:
            sent, _ = self._with_radio(lambda: self.driver.send(frame.data, hop_limit=frame.hop_limit), now)
            if not sent:
                return  # that frame is lost with the radio; the protocol asks again

    def _receive(self, now: float) -> None:
        timers = self.runtime.next_deadline()
        if not self._radio_up:
            self._reopen(now)
            if not self._radio_up:  # frames wait in the queue: only timers and the retry matter
                deadlines = [t for t in (timers, self._retry_at) if t is not None]
                self.stop.wait(max(min([POLL_S, *(t - now for t in deadlines)]), 0.0))
                return
        deadlines = [t for t in (timers, self.runtime.transmit.ready_at()) if t is not None]
        wait = min([POLL_S, *(t - now for t in deadlines)])
        _, received = self._with_radio(lambda: self.driver.receive(max(wait, 0.0)), now)
        if received is not None:
            hops = received.hops if received.hops is not None else 0
            self.runtime.receive(received.frame, received.sender, self.clock(), hops=hops,
                                 rssi=received.rssi, snr=received.snr)

    def _check_budget(self, now: float) -> None:
        budget = self.runtime.transmit.budget
        if budget is None or not budget.allowance_s:
            return
        share = budget.used(now) / budget.allowance_s
        if share >= BUDGET_WARNING and not self._budget_warned:
            self.log.info(f"airtime budget {share:.0%} used ({budget.describe()}): answers to neighbours "
                          "are dropped first, own blocks wait", event="BudgetLow", used_share=round(share, 3))
        self._budget_warned = share >= BUDGET_WARNING

    # --- the radio going away and coming back ---------------------------------------------

    def _with_radio(self, operation, now: float) -> tuple[bool, object]:
        """(True, its result), or (False, None) when the radio went away."""
        try:
            return True, operation()
        except RadioUnavailable as exc:
            self._radio_up = False
            self._retry_at = now + self._backoff
            self.log.info(f"radio lost: {exc}; retrying in {self._backoff:g} s", event="RadioLost")
            return False, None

    def _reopen(self, now: float) -> None:
        if now < self._retry_at:
            return
        try:
            self.driver.open()
        except RadioUnavailable as exc:
            self._backoff = min(self._backoff * 2, RECONNECT_BACKOFF_S[1])
            self._retry_at = now + self._backoff
            self.log.info(f"radio still unavailable: {exc}; retrying in {self._backoff:g} s", event="RadioLost")
            return
        self._radio_up = True
        self._backoff = RECONNECT_BACKOFF_S[0]
        self.log.info(f"radio back: {self.driver.name}", event="RadioBack")
