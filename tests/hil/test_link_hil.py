"""Link-layer behaviour on real or virtual radios: each test runs once per radio kind.

The blockiot_hil plugin parametrizes every test here over `virtual-meshtastic` and
`virtual-modem` (default) or the radios of a hardware map (`--hil map.toml`). Ports
run on the rig's simulated clock, so timeouts below are simulated seconds.

Real radios outlive a test: a Meshtastic device hands a newly connected host the
packets it queued meanwhile. Each test therefore sends payloads of its own (`salt`)
and waits for those, ignoring what earlier tests left behind (`receive_payload`).

Verdicts do not depend on the host's speed: every node is served at once, as nodes
run side by side (a sender that must answer repairs is pumped in its own thread while
the receiver waits, never one after the other), and what a test does mid-message
(unplug, replug) it does on an event of the simulated air, not after a wall-clock delay.
`test_20_percent_loss_is_repaired_beside_a_cpu_hog` proves it on a busy machine.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time

import pytest

from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.errors import BudgetExceeded, RadioUnavailable

TIMEOUT_S = 600.0   # simulated seconds: a 4 KiB message is ~18 packets of 1-2 s


def payload(size: int, salt: int = 0) -> bytes:
    return bytes((index * 31 + salt) % 256 for index in range(size))


@contextlib.contextmanager
def pumping(port):
    """Pump `port` (send what is due, answer repair requests) in a thread of its own meanwhile."""
    if port is None:
        yield
        return
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            while not stop.is_set():
                port.pump(1.0)
        except BaseException as exc:  # re-raised in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="pump", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if failure:
        raise failure[0]


def receive_payload(port, expected: bytes, timeout: float = TIMEOUT_S, sender=None):
    """Messages until `expected` arrives: (sender, payload), or None at `timeout`.

    Others are skipped (stale traffic of earlier tests on persistent radios); with a
    `sender` port given, it is pumped meanwhile, as it must answer repair requests.
    """
    with pumping(sender):
        deadline = port.clock() + timeout
        while (left := deadline - port.clock()) > 0:
            got = port.receive_message(left)
            if got is not None and got[1] == expected:
                return got
    return None


def on_event(predicate, action, timeout_s: float = 60.0) -> threading.Thread:
    """A thread that runs `action` once `predicate` holds (checked every few ms, for `timeout_s` wall seconds)."""
    def run() -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                return
            time.sleep(0.002)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def no_more(port, payload_: bytes, seconds: float) -> bool:
    """True when no further copy of `payload_` arrives within `seconds`."""
    return receive_payload(port, payload_, seconds) is None


@pytest.mark.hil
def test_messages_of_1b_233b_and_4kib_between_two_radios(radio_pair):
    a, b = radio_pair
    senders = set()
    for size in (1, 233, 4096):
        sent = payload(size, salt=size)
        a.send_message(sent)
        got = receive_payload(b, sent)
        assert got is not None, f"{size} B message not delivered"
        senders.add(got[0])
    assert len(senders) == 1
    assert no_more(b, sent, 5.0)


@pytest.mark.hil
def test_broadcast_reaches_all_three(radio_trio):
    a, b, c = radio_trio
    sent = payload(500, salt=3)
    a.send_message(sent)
    assert receive_payload(b, sent) is not None
    assert receive_payload(c, sent) is not None


def check_loss_is_repaired(a, b, rig) -> None:
    sent = payload(4096, salt=20)
    a.send_message(sent)
    assert receive_payload(b, sent, sender=a) is not None
    assert no_more(b, sent, 5.0)              # exactly once
    assert rig.stats.radios[1].air.lost > 0   # the medium did drop packets


@pytest.mark.hil(loss=0.2, seed=7)
def test_20_percent_loss_is_repaired(radio_pair, hil_rig):
    check_loss_is_repaired(*radio_pair, hil_rig)


@pytest.mark.hil(loss=0.2, seed=7)
def test_20_percent_loss_is_repaired_beside_a_cpu_hog(cpu_hog, radio_pair, hil_rig):
    """The same verdict with every core busy elsewhere: the rig's time runs on regardless."""
    check_loss_is_repaired(*radio_pair, hil_rig)


@pytest.mark.hil
def test_rebroadcast_duplicates_are_delivered_once(radio_pair):
    """Each frame reaches the receiver twice, as a rebroadcast the radio passes up would."""
    a, b = radio_pair
    sent = payload(700, salt=9)
    for frame in a.link.send(sent, a.clock()):
        a.driver.send(frame)
        a.driver.send(frame)
    assert receive_payload(b, sent) is not None
    assert no_more(b, sent, 30.0)


@pytest.mark.hil
def test_duty_cycle_budget_delays_or_refuses_with_a_reason(radio_pair):
    a, b = radio_pair
    frame_airtime = a.driver.airtime(a.driver.mtu)
    window = 25 * frame_airtime
    # Smaller than one full frame: such a frame can never go out.
    a.budget = DutyCycleBudget("NONE", fraction=0.5 * frame_airtime / window, window_s=window)
    refused_payload = payload(2000, salt=5)
    with pytest.raises(BudgetExceeded, match="budget") as refused:
        a.send_message(refused_payload)
    assert refused.value.wait_s == math.inf
    assert a.pending() == []
    assert no_more(b, refused_payload, 10.0)  # nothing went on air
    # Room for about two full frames per window: a 4-frame message must wait.
    a.budget = DutyCycleBudget("NONE", fraction=2.2 * frame_airtime / window, window_s=window)
    big = payload(3 * a.driver.mtu, salt=1)
    with pytest.raises(BudgetExceeded) as later:
        a.send_message(big, block=False)
    assert 0 < later.value.wait_s
    assert a.pending() == []
    started = a.clock()
    a.send_message(big)                       # blocking: delayed, never over budget
    assert a.clock() - started >= window - 3 * frame_airtime
    assert a.budget.used(a.clock()) <= a.budget.allowance_s
    assert receive_payload(b, big) is not None


@pytest.mark.hil
def test_unplugged_mid_message_then_back(radio_pair, hil_rig):
    a, b = radio_pair
    a.reconnect_backoff = (0.5, 2.0)
    sent = payload(4096, salt=42)
    # Unplug the sender's radio once 4 of its frames are on air, plug it back 8 frames' airtime later.
    airtime = a.driver.airtime(a.driver.mtu)
    on_air = hil_rig.stats.radios[0].air.sent
    unplugged_at = []

    def unplug() -> None:
        hil_rig.unplug(0)
        unplugged_at.append(hil_rig.now())

    unplugging = on_event(lambda: hil_rig.stats.radios[0].air.sent >= on_air + 4, unplug)
    replugging = on_event(lambda: unplugged_at and hil_rig.now() > unplugged_at[0] + 8 * airtime,
                          lambda: hil_rig.replug(0))
    try:
        a.send_message(sent)
    finally:
        unplugging.join()
        replugging.join()
    assert a.reconnects >= 1
    assert receive_payload(b, sent, sender=a) is not None
    # Unplugged for good: a clear error, and the message is still queued, not lost.
    hil_rig.unplug(0)
    a.reconnect_timeout = 20.0
    with pytest.raises(RadioUnavailable, match=r"1 message\(s\) still queued"):
        a.send_message(b"kept")
    assert a.pending() == [b"kept"]
    hil_rig.replug(0)
    a.pump(5.0)
    assert a.pending() == []
    assert receive_payload(b, b"kept", sender=a) is not None


REBOOT_IN_S = 5  # whole seconds (AdminMessage.reboot_seconds): within the first few frames of a 4 KiB message
@pytest.mark.hil
def test_a_board_rebooting_mid_message_loses_nothing_the_port_queued(radio_pair, hil_kind):
    """An admin reboot (what `meshtastic --reboot` sends) while a message goes out: the board's
    port disappears for its boot, the port reconnects when it is back and sends every frame
    still queued; the frames the board held in RAM are repaired; the message arrives once."""
    if hil_kind.personality != "meshtastic":
        pytest.skip(f"{hil_kind.name}: an E22 modem has no admin reboot")
    a, b = radio_pair
    a.reconnect_backoff = (0.5, 2.0)
    sent = payload(4096, salt=77)
    a.driver.reboot(REBOOT_IN_S)
    a.send_message(sent)
    assert a.reconnects >= 1  # the board went away while the message was going out
    assert a.pending() == []
    assert receive_payload(b, sent, sender=a) is not None
    assert no_more(b, sent, 5.0)
    a.send_message(b"after the reboot")
    assert receive_payload(b, b"after the reboot") is not None
