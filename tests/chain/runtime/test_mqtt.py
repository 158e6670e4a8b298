"""The MQTT bridge (chain/runtime/mqtt.py).

Pure: a final block's topics and payloads (names from the genesis, readings in their
units, what is retained), submit payloads to control requests or to error answers, broker
URLs. Against a real Mosquitto broker that the `broker` fixture starts on a free port
(installing Debian's package when it is missing and the tests run as root): published
blocks reach a subscriber, a submit reaches the node loop as a `control.Request` and its
answer comes back on the result topic, malformed and retained submits are answered,
credentials work, and the bridge comes back by itself after the broker restarts. Waits
are failure guards.
"""
from __future__ import annotations

import io
import json
import os
import pwd
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from paho.mqtt.client import CallbackAPIVersion, Client
from runtime_helpers import PROBE, T0, VAL_A, VALVE, FakeClock, FakeStop, ScriptedDriver, TestChain, make_runtime, txs_in

from blockiot.chain.consensus.events import Finalized
from blockiot.chain.runtime.actuator import LogActuator
from blockiot.chain.runtime.log import NodeLog
from blockiot.chain.runtime.mqtt import (
    BrokerUrl,
    MqttBridge,
    MqttError,
    MqttFormat,
    Publication,
    SubmitError,
    parse_broker_url,
)
from blockiot.chain.runtime.realtime import RealtimeNode
from blockiot.chain.runtime.runtime import FinalBlock
from blockiot.chain.wire import Action, Command, Reading, Sensor

GUARD_S = 30.0
INSTALL_TIMEOUT_S = 600
ROOT = "blockiot/test-cluster"
READING = {"kind": "reading", "sensor": "moisture", "value": 28.7}


# --- pure: what goes on the broker -----------------------------------------------------------


@pytest.fixture
def block(genesis, identities, signers):
    """Block 1 (slot 1): probe-1's moisture 28.7 % and temperature 21.5 °C, val-a's command to
    valve-1 to open for 600 s, valve-1's report of an earlier one."""
    txs = [signers.sign(PROBE, Reading(Sensor.MOISTURE, 287)), signers.sign(PROBE, Reading(Sensor.TEMPERATURE, 2150)),
           signers.sign(VAL_A, Command(VALVE, Action.OPEN, (600,))), signers.sign(VALVE, Command(VALVE, Action.CLOSE))]
    return FinalBlock(TestChain(genesis, identities).block(*(tx.raw for tx in txs))), txs


def test_a_final_block_is_published_as_block_readings_and_commands(genesis, block):
    event, (moisture, temperature, command, report) = block
    when = {"height": 1, "slot": 1, "time": "2025-11-24T16:00:30Z"}  # genesis time + 1 slot of 30 s
    published = MqttFormat(genesis, PROBE).publications(event)
    assert [(p.topic, p.retain) for p in published] == [
        (f"{ROOT}/block", True),
        (f"{ROOT}/reading/probe-1/moisture", True),
        (f"{ROOT}/reading/probe-1/temperature", True),
        (f"{ROOT}/command/valve-1", False),
        (f"{ROOT}/command/valve-1", False),
    ]
    assert [json.loads(p.payload) for p in published] == [
        {"height": 1, "id": event.applied.id.hex(), "slot": 1, "time": when["time"], "leader": "val-b", "txs": 4},
        {"device": "probe-1", "sensor": "moisture", "value": 28.7, "unit": "%", **when, "tx": moisture.id.hex()},
        {"device": "probe-1", "sensor": "temperature", "value": 21.5, "unit": "°C", **when, "tx": temperature.id.hex()},
        {"device": "valve-1", "issuer": "val-a", "kind": "command", "action": "open", "args": [600], **when,
         "tx": command.id.hex()},
        {"device": "valve-1", "issuer": "valve-1", "kind": "report", "action": "close", "args": [], **when,
         "tx": report.id.hex()},
    ]
    assert "°C" in published[2].payload  # UTF-8 as it is, not \u escapes


def test_other_events_publish_nothing(genesis):
    assert MqttFormat(genesis, PROBE).publications(Finalized(b"\x01" * 32, 1, 1, T0)) == []


def test_topics_and_client_id_name_the_cluster_and_this_device(genesis):
    fmt = MqttFormat(genesis, VALVE)
    assert (fmt.submit_topic, fmt.result_topic, fmt.availability_topic, fmt.client_id) == (
        f"{ROOT}/valve-1/submit", f"{ROOT}/valve-1/submit/result", f"{ROOT}/valve-1/availability",
        "blockiot-test-cluster-valve-1")


def test_a_member_without_a_name_goes_by_its_index(genesis):
    unnamed = replace(genesis, members=(*genesis.members[:VALVE], replace(genesis.members[VALVE], name="")))
    fmt = MqttFormat(unnamed, VALVE)
    assert (fmt.name(PROBE), fmt.name(VALVE), fmt.submit_topic) == ("probe-1", "member-3", f"{ROOT}/member-3/submit")


# --- pure: what comes in --------------------------------------------------------------------


def test_a_reading_to_submit_becomes_the_control_sockets_submit_request(genesis):
    fmt = MqttFormat(genesis, PROBE)
    assert fmt.submit_request(json.dumps(READING).encode()) == ({"op": "submit", "body": READING}, None)
    assert fmt.submit_request(json.dumps({**READING, "id": "r1"}).encode()) == ({"op": "submit", "body": READING}, "r1")


def test_a_retained_submit_is_refused_it_would_come_again_at_each_reconnect(genesis):
    with pytest.raises(SubmitError, match="publish it without retain"):
        MqttFormat(genesis, PROBE).submit_request(json.dumps(READING).encode(), retained=True)


def test_the_result_carries_the_answer_and_the_submits_id(genesis):
    fmt = MqttFormat(genesis, PROBE)
    assert fmt.result({"ok": True, "tx": "ab"}, "r1") == Publication(
        f"{ROOT}/probe-1/submit/result", '{"ok":true,"tx":"ab","id":"r1"}', False)
    assert json.loads(fmt.result({"ok": False, "error": "no"}, None).payload) == {"ok": False, "error": "no"}


@pytest.mark.parametrize(("payload", "error", "request_id"), [
    (b"not json", "a submit message is JSON", None),
    (b"\xff\xfe", "a submit message is JSON", None),
    (b"[" * 4000, "a submit message is JSON", None),  # nested deeper than the parser recurses
    (b"[1, 2]", "a submit message is a JSON object", None),
    (b"{" + b" " * 5000 + b"}", "a submit message is at most 4096 B, not 5002 B", None),
    (b'{"kind": "reading", "id": 7}', "`id` is a string", None),
    (b'{"sensor": "moisture", "value": 1, "id": "r2"}', "submits readings (\"kind\": \"reading\"), not None", "r2"),
    (b'{"kind": "command", "to": "valve-1", "action": "open", "id": "c1"}', "not 'command'", "c1"),
])
def test_anything_but_a_reading_is_refused_with_a_reason(genesis, payload, error, request_id):
    with pytest.raises(SubmitError) as caught:
        MqttFormat(genesis, PROBE).submit_request(payload)
    assert error in str(caught.value) and caught.value.request_id == request_id


@pytest.mark.parametrize(("url", "broker"), [
    ("mqtt://broker.local", BrokerUrl("broker.local", 1883)),
    ("mqtt://10.0.0.5:1884/", BrokerUrl("10.0.0.5", 1884)),
    ("mqtts://gw:s%40cret%3A1@broker.example:8884", BrokerUrl("broker.example", 8884, "gw", "s@cret:1", True)),
    ("mqtts://broker.example", BrokerUrl("broker.example", 8883, tls=True)),
    ("mqtt://gw@[::1]:1883", BrokerUrl("::1", 1883, "gw")),
])
def test_broker_urls(url, broker):
    assert parse_broker_url(url) == broker


@pytest.mark.parametrize(("url", "error"), [
    ("broker.local:1883", "starts with mqtt:// or mqtts://"),
    ("http://secret@broker.local", "starts with mqtt:// or mqtts://"),
    ("mqtt://:1883", "names no host"),
    ("mqtt://u:secret@broker:http", "port is a number"),
    ("mqtt://broker:70000", "port is a number"),
    ("mqtt://broker:0", "port is a number"),
    ("mqtt://broker/blockiot", "no path or query"),
    ("mqtt://broker?x=1", "no path or query"),
])
def test_a_bad_broker_url_says_what_is_wrong_without_the_password(url, error):
    with pytest.raises(MqttError) as caught:
        parse_broker_url(url)
    assert error in str(caught.value) and "secret" not in str(caught.value) and caught.value.user_facing


def test_the_broker_url_in_log_lines_has_no_password():
    assert str(parse_broker_url("mqtt://gw:secret@broker")) == "mqtt://gw@broker:1883"


def test_without_paho_the_bridge_says_how_to_install_it(genesis, monkeypatch):
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)  # what an install without the extra sees
    with pytest.raises(MqttError, match=r"pip install 'blockiot\[mqtt\]'"):
        MqttBridge("mqtt://127.0.0.1", genesis, queue.Queue(), member=PROBE)


# --- a real broker ------------------------------------------------------------------------


def _mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@pytest.fixture(scope="session")
def mosquitto() -> str:
    """The broker binary: Debian's `mosquitto`, installed here when missing and we are root."""
    found = _mosquitto_path()
    if found is not None:
        return found
    if os.geteuid() != 0:
        pytest.fail("the MQTT bridge tests start a real broker: install it (apt-get install mosquitto); "
                    "tools/run-tests does when it runs as root", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "mosquitto"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=INSTALL_TIMEOUT_S)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    found = _mosquitto_path()
    if found is None:
        pytest.fail(f"could not install mosquitto for the MQTT bridge tests: {done.stderr.strip()[-500:]}", pytrace=False)
    return found


class Broker:
    """A Mosquitto on 127.0.0.1:`port`, its config and log in `directory`; `users` is
    {name: password} (none: anonymous clients allowed)."""

    def __init__(self, binary: str, directory: Path, users: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.log = directory / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_type all",
                 f"user {pwd.getpwuid(os.geteuid()).pw_name}"]  # as root: stay root, to read the files here
        if users:
            passwords = directory / "passwords"
            for name, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b",
                                *(["-c"] if not passwords.exists() else []), str(passwords), name, password],
                               check=True, capture_output=True, timeout=GUARD_S)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                return
            except OSError:
                time.sleep(0.02)
        pytest.fail(f"mosquitto did not listen on port {self.port} within {GUARD_S:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(GUARD_S)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broker(mosquitto, tmp_path):
    broker = Broker(mosquitto, tmp_path)
    broker.start()
    yield broker
    broker.stop()


class Subscriber:
    """A test client on `blockiot/#`: what it receives lands in `messages` as (topic, payload)."""

    def __init__(self, port: int, *, client_id: str = "test-subscriber", username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: queue.Queue[tuple[str, str]] = queue.Queue()
        self.subscribed = threading.Event()
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda client, *_: client.subscribe("blockiot/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda client, userdata, m: self.messages.put((m.topic, m.payload.decode(errors="replace")))
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(GUARD_S), "the test subscriber did not subscribe"

    def next_on(self, topic: str) -> str:
        """The payload of the next message on `topic` (others before it are passed over)."""
        deadline = time.monotonic() + GUARD_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                got, payload = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if got == topic:
                return payload
        pytest.fail(f"nothing arrived on {topic} within {GUARD_S:g} s")

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(GUARD_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker):
    client = Subscriber(broker.port)
    yield client
    client.close()


@pytest.fixture
def bridges(genesis, broker):
    """Makes bridges of members of the test cluster to `broker`, each with its own log; closes them."""
    made: list[MqttBridge] = []

    def make(member: int = PROBE, *, url: str | None = None, requests: queue.Queue | None = None) -> MqttBridge:
        log = NodeLog(genesis, json_lines=True, stream=io.StringIO())
        bridge = MqttBridge(url or f"mqtt://127.0.0.1:{broker.port}", genesis,
                            requests if requests is not None else queue.Queue(), member=member, log=log)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.close()


def logged(bridge: MqttBridge) -> list[str]:
    return [json.loads(line)["event"] for line in bridge.log.stream.getvalue().splitlines()]


def wait_logged(bridge: MqttBridge, event: str, count: int = 1) -> None:
    deadline = time.monotonic() + GUARD_S
    while logged(bridge).count(event) < count:
        assert time.monotonic() < deadline, f"no {event} logged within {GUARD_S:g} s: {logged(bridge)}"
        time.sleep(0.02)


@pytest.mark.timeout(INSTALL_TIMEOUT_S)
def test_a_final_block_reaches_a_subscriber_and_the_latest_reading_stays(genesis, broker, subscriber, bridges, block):
    event, _ = block
    bridge = bridges()
    assert subscriber.next_on(f"{ROOT}/probe-1/availability") == "online"
    bridge.on_event(event, T0)
    expected = MqttFormat(genesis, PROBE).publications(event)
    for publication in expected:
        assert json.loads(subscriber.next_on(publication.topic)) == json.loads(publication.payload)

    # A client that comes later is handed what is retained: the block, the readings, the
    # availability; no command (the marker comes after whatever the broker retained).
    late = Subscriber(broker.port, client_id="test-late")
    try:
        late.publish("blockiot/test-marker", "end")
        received = []
        while (message := late.messages.get(timeout=GUARD_S))[0] != "blockiot/test-marker":
            received.append(message)
        assert sorted(received) == sorted([(f"{ROOT}/probe-1/availability", "online")] + [
            (p.topic, p.payload) for p in expected if p.retain])
    finally:
        late.close()


@pytest.mark.timeout(INSTALL_TIMEOUT_S)
def test_a_submit_reaches_the_node_loop_and_its_answer_the_result_topic(genesis, identities, subscriber, bridges):
    requests: queue.Queue = queue.Queue()
    bridges(requests=requests)
    assert subscriber.next_on(f"{ROOT}/probe-1/availability") == "online"
    subscriber.publish(f"{ROOT}/probe-1/submit", json.dumps({**READING, "id": "r1"}))

    request = requests.get(timeout=GUARD_S)
    assert request.message == {"op": "submit", "body": READING}

    requests.put(request)  # back for the node's loop to answer, as it answers the control socket's
    clock = FakeClock(T0)
    node = RealtimeNode(make_runtime(genesis, identities[PROBE]), ScriptedDriver(clock),
                        log=NodeLog(genesis, stream=io.StringIO()), actuator=LogActuator(), requests=requests,
                        clock=clock, stop=FakeStop(clock))
    node.run(T0 + 1.0)
    [tx] = txs_in([frame for _, frame, _ in node.driver.sent])
    assert (tx.sender, tx.body) == (PROBE, Reading(Sensor.MOISTURE, 287))
    assert json.loads(subscriber.next_on(f"{ROOT}/probe-1/submit/result")) == {
        "ok": True, "tx": tx.id.hex(), "sender": PROBE, "nonce": tx.nonce, "id": "r1"}


@pytest.mark.timeout(INSTALL_TIMEOUT_S)
def test_malformed_submits_are_answered_and_the_bridge_goes_on(subscriber, bridges):
    subscriber.publish(f"{ROOT}/probe-1/submit", json.dumps(READING), retain=True)  # waiting for the bridge
    requests: queue.Queue = queue.Queue()
    bridge = bridges(requests=requests)
    assert subscriber.next_on(f"{ROOT}/probe-1/availability") == "online"
    for payload in (b"\xff\xfe", b"[" * 4000, b'{"kind": "deploy", "code": "00", "id": "d1"}'):
        subscriber.publish(f"{ROOT}/probe-1/submit", payload)
    answers = [json.loads(subscriber.next_on(f"{ROOT}/probe-1/submit/result")) for _ in range(4)]
    assert [(a["ok"], a.get("id")) for a in answers] == [(False, None), (False, None), (False, None), (False, "d1")]
    assert "without retain" in answers[0]["error"] and "is JSON" in answers[1]["error"]
    assert "submits readings" in answers[3]["error"]
    assert requests.empty()

    subscriber.publish(f"{ROOT}/probe-1/submit", json.dumps(READING))
    assert requests.get(timeout=GUARD_S).message == {"op": "submit", "body": READING}
    assert bridge.client.is_connected()


@pytest.mark.timeout(INSTALL_TIMEOUT_S)
def test_the_bridge_reconnects_after_the_broker_restarts_and_sends_what_waited(broker, subscriber, bridges, block):
    requests: queue.Queue = queue.Queue()
    bridge = bridges(requests=requests)
    assert subscriber.next_on(f"{ROOT}/probe-1/availability") == "online"
    broker.stop()
    wait_logged(bridge, "MqttLost")

    event, _ = block
    bridge.on_event(event, T0)  # while the broker is away: held, sent once it is back
    broker.start()
    wait_logged(bridge, "MqttConnected", 2)
    assert json.loads(subscriber.next_on(f"{ROOT}/block"))["id"] == event.applied.id.hex()
    subscriber.publish(f"{ROOT}/probe-1/submit", json.dumps(READING))
    assert requests.get(timeout=GUARD_S).message == {"op": "submit", "body": READING}


@pytest.mark.timeout(INSTALL_TIMEOUT_S)
def test_credentials_from_the_url_are_used(genesis, mosquitto, tmp_path):
    secured = Broker(mosquitto, tmp_path, users={"gw": "p@ss:w/rd", "test": "test"})
    secured.start()
    watcher = Subscriber(secured.port, username="test", password="test")
    bridge = refused = None
    try:
        bridge = MqttBridge(f"mqtt://gw:p%40ss%3Aw%2Frd@127.0.0.1:{secured.port}", genesis, queue.Queue(),
                            member=PROBE, log=NodeLog(genesis, json_lines=True, stream=io.StringIO()))
        assert watcher.next_on(f"{ROOT}/probe-1/availability") == "online"
        refused = MqttBridge(f"mqtt://gw:wrong@127.0.0.1:{secured.port}", genesis, queue.Queue(),
                             member=VALVE, log=NodeLog(genesis, json_lines=True, stream=io.StringIO()))
        wait_logged(refused, "MqttRefused")
        assert not refused.client.is_connected()
    finally:
        for made in (bridge, refused):
            if made is not None:
                made.close()
        watcher.close()
        secured.stop()


@pytest.mark.timeout(INSTALL_TIMEOUT_S)
def test_a_clean_stop_says_offline(subscriber, bridges):
    bridge = bridges()
    assert subscriber.next_on(f"{ROOT}/probe-1/availability") == "online"
    bridge.close()
    assert subscriber.next_on(f"{ROOT}/probe-1/availability") == "offline"
