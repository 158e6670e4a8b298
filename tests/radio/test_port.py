"""RadioPort on fake drivers and an exact fake clock: budget, queueing, repair, reconnect."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest

from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.errors import BudgetExceeded, RadioUnavailable
from blockiot.radio.port import RadioPort, port_link

AIRTIME_PER_BYTE = 0.01  # seconds: a 64 B frame is 0.64 s on air


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.events: list[tuple[float, object]] = []  # (time, callable) run when time passes

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        for event in [e for e in self.events if e[0] <= self.now]:
            self.events.remove(event)
            event[1]()

    def at(self, when: float, action) -> None:
        self.events.append((when, action))


@dataclass(frozen=True)
class Heard:
    frame: bytes
    sender: int
    rssi: float | None = None
    snr: float | None = None


class FakeAir:
    """Every frame a driver sends reaches every other driver, unless `drop` says no."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.drivers: list[FakeDriver] = []
        self.drop = lambda sender, frame, count: False
        self.sent: list[tuple[float, int, bytes]] = []

    def transmit(self, sender: FakeDriver, frame: bytes) -> None:
        self.sent.append((self.clock(), sender.radio_id, frame))
        if self.drop(sender.radio_id, frame, len(self.sent)):
            return
        for driver in self.drivers:
            if driver is not sender:
                driver.inbox.append(Heard(frame, sender.radio_id))


class FakeDriver:
    name = "fake"
    mtu = 64

    def __init__(self, air: FakeAir, radio_id: int) -> None:
        self.air = air
        self.radio_id = radio_id
        self.inbox: list[Heard] = []
        self.plugged = True
        self.is_open = False
        self.opens = 0
        air.drivers.append(self)

    def open(self) -> None:
        if not self.plugged:
            raise RadioUnavailable("fake radio unplugged")
        self.is_open = True
        self.opens += 1

    def close(self) -> None:
        self.is_open = False

    def _check(self) -> None:
        if not (self.plugged and self.is_open):
            raise RadioUnavailable("fake radio gone")

    def send(self, frame: bytes, *, hop_limit: int | None = None) -> None:
        self._check()
        assert len(frame) <= self.mtu
        self.air.transmit(self, frame)
        self.air.clock.sleep(self.airtime(len(frame)))

    def receive(self, timeout: float):
        self._check()
        if self.inbox:
            return self.inbox.pop(0)
        self.air.clock.sleep(timeout)
        return None

    def airtime(self, frame_len: int) -> float:
        return frame_len * AIRTIME_PER_BYTE


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def air(clock: FakeClock) -> FakeAir:
    return FakeAir(clock)


def make_port(air: FakeAir, radio_id: int, budget=None, **kwargs) -> RadioPort:
    driver = FakeDriver(air, radio_id)
    driver.open()
    link = port_link(driver, budget, rng=random.Random(radio_id), radio_id=radio_id)
    return RadioPort(driver, link, budget=budget, clock=air.clock, sleep=air.clock.sleep, **kwargs)


def exchange(sender: RadioPort, receiver: RadioPort, rounds: int = 200, step: float = 1.0):
    """Pump both ends alternately until the receiver has a message."""
    for _ in range(rounds):
        got = receiver.receive_message(step)
        if got is not None:
            return got
        sender.pump(step)
    return None


def test_small_message_arrives_once_with_its_sender(air):
    a, b = make_port(air, 1), make_port(air, 2)
    a.send_message(b"x")
    assert b.receive_message(1.0) == (1, b"x")
    assert b.receive_message(1.0) is None
    assert a.pending() == []


def test_2k_message_is_fragmented_and_reassembled(air):
    a, b = make_port(air, 1), make_port(air, 2)
    payload = bytes(range(256)) * 8
    a.send_message(payload)
    assert len(air.sent) == math.ceil((len(payload) + 4) / (FakeDriver.mtu - 4))
    assert b.receive_message(1.0) == (1, payload)


def test_lost_fragment_is_repaired(air):
    a, b = make_port(air, 1), make_port(air, 2)
    air.drop = lambda sender, frame, count: count == 3  # the third frame ever sent
    payload = bytes(range(200)) * 3
    a.send_message(payload)
    assert exchange(a, b) == (1, payload)
    assert any(sender == 2 for _, sender, _ in air.sent)  # b asked for the repair


def test_frame_larger_than_whole_budget_is_refused_and_not_queued(air):
    budget = DutyCycleBudget("NONE", fraction=0.0001, window_s=3600)  # 0.36 s per hour
    a = make_port(air, 1, budget=budget)
    with pytest.raises(BudgetExceeded) as info:
        a.send_message(bytes(60))  # 62 B frame = 0.62 s on air
    assert info.value.wait_s == math.inf
    assert air.sent == []
    assert a.pending() == []


def test_blocking_send_waits_for_budget_and_never_exceeds_it(air, clock):
    window = 100.0
    budget = DutyCycleBudget("NONE", fraction=0.014, window_s=window)  # 1.4 s: two 0.64 s frames
    a, b = make_port(air, 1, budget=budget), make_port(air, 2)
    start = clock()
    payload = bytes(230)  # 234 B with the CRC: 4 fragments, the last one shorter
    a.send_message(payload)
    sent = [(t, len(frame) * AIRTIME_PER_BYTE) for t, sender, frame in air.sent if sender == 1]
    assert len(sent) == 4
    assert clock() - start >= window  # it had to wait a window for the last two
    for t0, _ in sent:
        in_window = sum(airtime for t, airtime in sent if t0 <= t < t0 + window)
        assert in_window <= budget.allowance_s + 1e-9
    assert b.receive_message(1.0) == (1, payload)


def test_non_blocking_send_refuses_with_the_wait_and_sends_nothing(air):
    budget = DutyCycleBudget("NONE", fraction=0.014, window_s=100.0)
    a = make_port(air, 1, budget=budget)
    a.send_message(bytes(100), block=False)  # 2 frames, 1.12 s of the 1.4 s: fits
    sent = len(air.sent)
    with pytest.raises(BudgetExceeded) as info:
        a.send_message(bytes(40), block=False)  # 0.42 s more: does not fit now
    assert 0 < info.value.wait_s < math.inf
    assert "budget" in str(info.value)
    assert len(air.sent) == sent
    assert a.pending() == []


def test_unplugged_radio_reconnects_and_delivers(air, clock):
    a, b = make_port(air, 1, reconnect_backoff=(0.5, 4.0)), make_port(air, 2)
    a.driver.plugged = False
    clock.at(clock() + 3.0, lambda: setattr(a.driver, "plugged", True))
    a.send_message(b"after replug")
    assert a.reconnects == 1
    assert b.receive_message(1.0) == (1, b"after replug")


def test_unplugged_mid_message_resends_the_failed_frame(air, clock):
    a, b = make_port(air, 1, reconnect_backoff=(0.5, 4.0)), make_port(air, 2)
    original = a.driver.send

    def flaky_send(frame, calls=[0]):
        calls[0] += 1
        if calls[0] == 3:
            a.driver.plugged = False
            clock.at(clock() + 2.0, lambda: setattr(a.driver, "plugged", True))
        original(frame)

    a.driver.send = flaky_send
    payload = bytes(range(250))
    a.send_message(payload)
    assert a.reconnects == 1
    assert b.receive_message(1.0) == (1, payload)


def test_giving_up_keeps_the_queue_and_says_so(air):
    a, b = make_port(air, 1, reconnect_backoff=(0.5, 2.0), reconnect_timeout=10.0), make_port(air, 2)
    a.driver.plugged = False
    with pytest.raises(RadioUnavailable, match=r"1 message\(s\) still queued"):
        a.send_message(b"keep me")
    assert a.pending() == [b"keep me"]
    a.driver.plugged = True
    a.pump(1.0)
    assert a.pending() == []
    assert b.receive_message(1.0) == (1, b"keep me")


def test_bad_backoff_is_refused(air):
    with pytest.raises(ValueError):
        driver = FakeDriver(air, 1)
        RadioPort(driver, port_link(driver, None, rng=random.Random(1)), budget=None, reconnect_backoff=(2.0, 1.0))
