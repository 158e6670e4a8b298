"""`RealtimeNode` (chain/runtime/realtime.py) on a scripted in-memory driver and a fake
clock: control requests answered between radio operations, frames put on air, frames
heard handed to the runtime with their signal, final commands run and reported, a radio
that goes away reopened with backoff while the node goes on, and `stop` or `until`
ending `run`. Time passes only through the node's own waits; real-time waits are
failure guards."""
from __future__ import annotations

import io
import json
import queue
import threading
import time

import pytest
from runtime_helpers import (
    PROBE,
    T0,
    VAL_A,
    VALVE,
    FakeClock,
    FakeStop,
    MemoryAir,
    ScriptedDriver,
    TestChain,
    frames_of,
    make_runtime,
    txs_in,
)

from blockiot.chain.consensus.events import Output, Rejected
from blockiot.chain.consensus.messages import TxMsg, encode_message
from blockiot.chain.runtime.actuator import LogActuator
from blockiot.chain.runtime.control import Request
from blockiot.chain.runtime.log import NodeLog
from blockiot.chain.runtime.realtime import POLL_S, RECONNECT_BACKOFF_S, RealtimeNode
from blockiot.chain.wire import Action, Command, Reading, Sensor
from blockiot.radio.drivers.base import Received
from blockiot.radio.dutycycle import DutyCycleBudget

GUARD_S = 30.0
EPS = 1e-6
READING = {"kind": "reading", "sensor": "moisture", "value": 28.7}


def make_node(genesis, identity, *, clock: FakeClock | None = None, driver: ScriptedDriver | None = None,
              actuator=None, requests=None, stop=None, json_lines: bool = False, **runtime_kwargs) -> RealtimeNode:
    clock = clock if clock is not None else FakeClock(T0)
    driver = driver if driver is not None else ScriptedDriver(clock)
    runtime = make_runtime(genesis, identity, now=clock.now, **runtime_kwargs)
    log = NodeLog(genesis, json_lines=json_lines, stream=io.StringIO())
    return RealtimeNode(runtime, driver, log=log, actuator=actuator if actuator is not None else LogActuator(),
                        requests=requests, clock=clock, stop=stop if stop is not None else FakeStop(clock))


def log_text(node: RealtimeNode) -> str:
    return node.log.stream.getvalue()


def log_events(node: RealtimeNode) -> list[dict]:
    return [json.loads(line) for line in log_text(node).splitlines()]


def sent_txs(driver: ScriptedDriver):
    return txs_in([frame for _, frame, _ in driver.sent])


def run_in_thread(node: RealtimeNode, until: float = float("inf")) -> None:
    """`node.run(until)` in a thread, its exception re-raised here; the join is a guard."""
    failure = []

    def target():
        try:
            node.run(until)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failure.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    assert not thread.is_alive(), "run() did not return"
    if failure:
        raise failure[0]


# --- control requests -------------------------------------------------------------------


def test_status_and_submit_requests_are_answered_and_the_tx_goes_on_air(genesis, identities):
    requests = queue.Queue()
    status, submit = Request({"op": "status"}), Request({"op": "submit", "body": READING})
    requests.put(status)
    requests.put(submit)
    node = make_node(genesis, identities[PROBE], requests=requests)
    node.run(T0 + 1.0)
    answer = status.reply.get_nowait()
    assert answer["ok"] is True and answer["radio"] == node.driver.name and answer["name"] == "probe-1"
    answer = submit.reply.get_nowait()
    assert answer["ok"] is True
    [tx] = sent_txs(node.driver)
    assert tx.id.hex() == answer["tx"] and (tx.sender, tx.body) == (PROBE, Reading(Sensor.MOISTURE, 287))
    assert [hop_limit for _, _, hop_limit in node.driver.sent] == [None]  # a flood


@pytest.mark.parametrize(("message", "error"), [
    ({"op": "submit", "body": {"kind": "reading", "sensor": "soil", "value": 1}}, "unknown sensor 'soil'"),
    ({"op": "submit", "body": "reading"}, "a transaction request is a JSON object"),
    ({"op": "submit"}, "a transaction request is a JSON object"),
    ({"op": "submit", "body": {"kind": "deploy", "code": "00"}}, "only a validator deploys rules"),
    ({"op": "reboot"}, "unknown op 'reboot'; known: status, submit"),
    ({}, "unknown op None"),
])
def test_a_bad_request_is_an_error_answer(genesis, identities, message, error):
    node = make_node(genesis, identities[PROBE])
    answer = node.answer(message, T0)
    assert answer["ok"] is False and error in answer["error"]
    assert node.driver.sent == [] and len(node.runtime.transmit) == 0


def test_a_validator_may_deploy(genesis, identities):
    node = make_node(genesis, identities[VAL_A])
    assert node.answer({"op": "submit", "body": {"kind": "deploy", "code": "00"}}, T0)["ok"] is True


def test_a_submit_the_core_refused_is_an_error_answer_with_its_reason(genesis, identities):
    node = make_node(genesis, identities[PROBE])
    node.runtime.core.script_submit(Output(events=[Rejected("tx", "bad-tx", "bad signature")]))
    node.runtime.core.script_submit(Output(events=[Rejected("tx", "bad-tx")]))
    assert node.answer({"op": "submit", "body": READING}, T0) == {"ok": False, "error": "bad-tx: bad signature"}
    assert node.answer({"op": "submit", "body": READING}, T0) == {"ok": False, "error": "bad-tx"}


def test_a_huge_number_in_a_request_does_not_stop_the_node(genesis, identities):
    requests = queue.Queue()
    bad = Request({"op": "submit", "body": {"kind": "reading", "sensor": "moisture", "value": 10**400}})
    requests.put(bad)
    node = make_node(genesis, identities[PROBE], requests=requests)
    node.run(T0 + 1.0)
    assert bad.reply.get_nowait()["ok"] is False


# --- the radio --------------------------------------------------------------------------


def test_frames_heard_reach_the_runtime_with_sender_hops_and_signal(genesis, identities, signers):
    node = make_node(genesis, identities[VALVE])
    tx = signers.sign(PROBE, Reading(Sensor.MOISTURE, 250))
    [frame] = frames_of(encode_message(TxMsg(tx)))
    node.driver.inbox.append(Received(frame, 0x42, rssi=-97.0, snr=4.25))  # hops unknown: 0
    node.driver.inbox.append(Received(b"\xc0\x00", 0x77, rssi=-120.0, snr=-9.0, hops=3))
    node.run(T0 + 1.0)
    peer = node.runtime.peers[0x42]
    assert (peer.hops, peer.rssi, peer.snr) == (0, -97.0, 4.25)
    assert node.runtime.peers[0x77].hops == 3
    assert [(origin, hops) for _, _, origin, hops in node.runtime.core.received] == [(0x42, 0)]
    assert tx.id in node.runtime.core.mempool


def test_runtime_events_are_logged(genesis, identities):
    node = make_node(genesis, identities[VALVE])
    [frame] = frames_of(b"\x70not a message")
    node.driver.inbox.append(Received(frame, 0x42))
    node.run(T0 + 1.0)
    assert "rejected message: malformed" in log_text(node)


def test_a_final_command_is_run_and_reported_with_its_status(genesis, identities, signers):
    class Failing:
        def __init__(self):
            self.started, self._done = [], []

        def start(self, command):
            self.started.append(command)
            self._done.append((command, False, 3))

        def finished(self):
            done, self._done = self._done, []
            return done

    actuator = Failing()
    node = make_node(genesis, identities[VALVE], actuator=actuator, actuate=True)
    chain = TestChain(genesis, identities)
    node.runtime.core.script(Output(persist=[chain.block(signers.sign(VAL_A, Command(VALVE, Action.OPEN, (600,))).raw)]))
    node.run(T0 + 2.0)
    assert [(c.action, c.args) for c in actuator.started] == [(Action.OPEN, (600,))]
    [report] = sent_txs(node.driver)
    assert (report.sender, report.body) == (VALVE, Command(VALVE, Action.REPORT, (Action.OPEN, 3)))
    text = log_text(node)
    assert "executing open 600 (final command from val-a, slot 1)" in text
    assert "reported open FAILED with status 3" in text


def test_a_lost_radio_is_reopened_with_backoff_while_the_node_answers(genesis, identities):
    clock = FakeClock(T0)
    driver = ScriptedDriver(clock)
    driver.send_failures, driver.open_failures = 1, 1
    requests = queue.Queue()
    status, later = Request({"op": "status"}), Request({"op": "submit", "body": READING})
    answered_while_down = []
    clock.at(T0 + 0.5, lambda: requests.put(status))
    clock.at(T0 + 0.9, lambda: answered_while_down.append(status.reply.qsize()))
    clock.at(T0 + 4.0, lambda: requests.put(later))
    node = make_node(genesis, identities[PROBE], clock=clock, driver=driver, requests=requests)
    node.runtime.submit(Reading(Sensor.MOISTURE, 1), T0)  # goes out first, and the radio is gone
    node.run(T0 + 6.0)
    first, backoff = RECONNECT_BACKOFF_S[0], 2 * RECONNECT_BACKOFF_S[0]
    assert len(driver.opens) == 2
    assert T0 + first <= driver.opens[0] <= T0 + first + POLL_S + EPS
    assert backoff <= driver.opens[1] - driver.opens[0] <= backoff + POLL_S + EPS
    assert answered_while_down == [1]
    answer = later.reply.get_nowait()
    assert answer["ok"] is True
    [tx] = sent_txs(driver)  # the frame in flight when the radio went is lost; the later one went
    assert tx.id.hex() == answer["tx"] and tx.body == Reading(Sensor.MOISTURE, 287)
    text = log_text(node)
    assert "radio lost: fake radio unplugged; retrying in 1 s" in text
    assert "radio still unavailable: fake radio still unplugged; retrying in 2 s" in text
    assert f"radio back: {driver.name}" in text


def test_reopening_backs_off_doubling_up_to_the_cap_then_starts_over(genesis, identities):
    clock = FakeClock(T0)
    driver = ScriptedDriver(clock)
    driver.receive_failures, driver.open_failures = 1, 8
    node = make_node(genesis, identities[PROBE], clock=clock, driver=driver)
    node.run(T0 + 200.0)
    gaps = [b - a for a, b in zip(driver.opens, driver.opens[1:])]
    expected = [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert len(gaps) == len(expected)
    for gap, want in zip(gaps, expected):
        assert want <= gap <= want + POLL_S + EPS
    # Back: the next loss is retried after the first backoff again.
    back = clock.now
    driver.receive_failures = 1
    node.run(back + 5.0)
    assert back + 1.0 <= driver.opens[-1] <= back + 1.0 + 2 * POLL_S + EPS


def test_while_the_radio_is_down_queued_frames_do_not_make_the_loop_spin(genesis, identities):
    clock = FakeClock(T0)
    driver = ScriptedDriver(clock)
    driver.send_failures = 1
    node = make_node(genesis, identities[PROBE], clock=clock, driver=driver)
    node.runtime.submit(Reading(Sensor.MOISTURE, 1), T0)  # lost with the radio
    node.runtime.submit(Reading(Sensor.MOISTURE, 2), T0)  # waits in the queue
    node.run(T0 + 3.0)  # FakeClock raises `Spinning` when the loop turns without time passing
    assert [tx.body for tx in sent_txs(driver)] == [Reading(Sensor.MOISTURE, 2)]


def test_the_budget_warning_is_logged_once(genesis, identities):
    budget = DutyCycleBudget("NONE", fraction=0.01, window_s=100.0)  # 1 s per 100 s
    budget.record(0.85, T0 - 1.0)
    node = make_node(genesis, identities[PROBE], budget=budget, json_lines=True)
    node.run(T0 + 3.0)
    warnings = [e for e in log_events(node) if e["event"] == "BudgetLow"]
    assert len(warnings) == 1 and warnings[0]["used_share"] == pytest.approx(0.85)


# --- ending `run` -----------------------------------------------------------------------


def test_until_ends_run(genesis, identities):
    node = make_node(genesis, identities[PROBE])
    node.run(T0 + 5.0)
    assert T0 + 5.0 <= node.clock.now <= T0 + 5.0 + POLL_S + EPS


def test_the_stop_event_ends_run(genesis, identities):
    clock = FakeClock(T0)
    node = make_node(genesis, identities[PROBE], clock=clock)
    clock.at(T0 + 3.0, node.stop.set)
    run_in_thread(node)
    assert T0 + 3.0 <= clock.now <= T0 + 3.0 + POLL_S + EPS


def test_a_stop_set_from_another_thread_ends_run_on_the_wall_clock(genesis, identities):
    """As SIGINT does for `blockiot node`: real clock, real event, a driver that listens."""

    class Listening(ScriptedDriver):
        def receive(self, timeout):
            self.receives += 1
            listening.set()
            time.sleep(min(timeout, 0.01))
            return None

    listening = threading.Event()
    stop = threading.Event()
    node = make_node(genesis, identities[PROBE], driver=Listening(FakeClock(T0)), stop=stop)
    node.clock = time.time
    thread = threading.Thread(target=node.run, daemon=True)
    thread.start()
    assert listening.wait(GUARD_S)
    stop.set()
    thread.join(GUARD_S)
    assert not thread.is_alive()


def test_a_set_stop_event_runs_nothing(genesis, identities):
    node = make_node(genesis, identities[PROBE])
    node.stop.set()
    node.run()
    assert node.driver.receives == 0


# --- two nodes --------------------------------------------------------------------------


def test_a_reading_submitted_on_one_node_reaches_the_other(genesis, identities):
    clock, air = FakeClock(T0), MemoryAir(rssi=-91.0, snr=7.25)
    probe_requests = queue.Queue()
    probe = make_node(genesis, identities[PROBE], clock=clock, driver=ScriptedDriver(clock, 0x3003, air=air),
                      requests=probe_requests)
    valve = make_node(genesis, identities[VALVE], clock=clock, driver=ScriptedDriver(clock, 0x4004, air=air))
    submit = Request({"op": "submit", "body": READING})
    probe_requests.put(submit)
    for _ in range(4):  # each runs half a second in turn
        probe.run(clock.now + 0.5)
        valve.run(clock.now + 0.5)
    tx_id = bytes.fromhex(submit.reply.get_nowait()["tx"])
    assert tx_id in valve.runtime.core.mempool
    peer = valve.runtime.peers[0x3003]
    assert (peer.hops, peer.rssi, peer.snr) == (0, -91.0, 7.25)
