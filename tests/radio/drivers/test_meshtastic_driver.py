"""MeshtasticDriver through the official library, against virtual Meshtastic devices on ptys (and TCP)."""
from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
import serial
from meshtastic.protobuf import config_pb2
from pubsub import pub

from blockiot.hil.meshtastic_device import MeshtasticDevice, node_num
from blockiot.hil.personality import RadioSetup, ToHost
from blockiot.hil.pty import PtyPair
from blockiot.hil.rig import VirtualRig
from blockiot.radio.airtime import meshtastic_max_payload, meshtastic_time_on_air, preset
from blockiot.radio.drivers.base import Received
from blockiot.radio.drivers.meshtastic import LOST_TOPIC, MTU, RECEIVE_TOPIC, MeshtasticDriver, lora_params
from blockiot.radio.errors import ConfigError, MessageTooLarge, RadioUnavailable

pytestmark = pytest.mark.timeout(60)

TIME_SCALE = 0.01
OPEN_TIMEOUT_S = 5.0
ARRIVAL_S = 5.0  # longest wait for a frame that must arrive


def wait_until(predicate, timeout: float = ARRIVAL_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def opened(port: str, **options) -> MeshtasticDriver:
    driver = MeshtasticDriver(port, timeout=OPEN_TIMEOUT_S, **options)
    driver.open()
    return driver


@contextlib.contextmanager
def opened_pair(rig: VirtualRig, **b_options):
    """Drivers opened on radios 0 and 1 of `rig`, closed afterwards."""
    a, b = opened(rig.ports[0]), opened(rig.ports[1], **b_options)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(scope="module")
def pair():
    """Two opened drivers on a three-radio virtual rig (radio 2 has no host)."""
    with VirtualRig(3, time_scale=TIME_SCALE) as rig, opened_pair(rig) as drivers:
        yield drivers


@pytest.fixture
def rig():
    with VirtualRig(2, time_scale=TIME_SCALE) as rig:
        yield rig


def test_frame_crosses_to_the_other_radio(pair):
    a, b = pair
    assert (a.node_num, b.node_num) == (node_num(0), node_num(1))
    a.send(b"block 1")
    got = b.receive(ARRIVAL_S)
    assert got == Received(b"block 1", node_num(0), -90, got.snr)
    assert got.sender != 0 and got.snr > 0
    assert a.receive(0.2) is None  # not our own, not a relay of it


def test_mtu_is_what_the_firmware_takes_on_private_app(pair):
    a, b = pair
    assert a.mtu == MTU == meshtastic_max_payload() == 231
    largest = bytes(range(231))
    a.send(largest)
    assert b.receive(ARRIVAL_S).frame == largest


@pytest.mark.parametrize("size", [232, 234])
def test_oversized_frame_is_refused_before_sending(pair, size):
    a, b = pair
    with pytest.raises(MessageTooLarge, match=f"{size} B exceeds the Meshtastic MTU of 231 B"):
        a.send(bytes(size))
    a.send(b"after")
    assert b.receive(ARRIVAL_S).frame == b"after"


def test_burst_arrives_in_order(pair):
    a, b = pair
    for i in range(20):  # more than the device's 16-packet TX queue
        a.send(bytes([i]) * 40)
    assert [b.receive(ARRIVAL_S).frame[0] for _ in range(20)] == list(range(20))


def test_airtime_follows_the_device_preset(pair):
    a, _ = pair
    assert a.lora == preset("LongFast")
    assert a.airtime(100) == meshtastic_time_on_air(100, "LongFast")


def test_lora_params_without_a_preset_use_sf_bw_cr():
    lora = config_pb2.Config.LoRaConfig(use_preset=False, spread_factor=10, bandwidth=62, coding_rate=6)
    params = lora_params(lora)
    assert (params.sf, params.bw_hz, params.cr) == (10, 62500.0, 6)
    named = config_pb2.Config.LoRaConfig(use_preset=True, modem_preset=config_pb2.Config.LoRaConfig.SHORT_FAST)
    assert lora_params(named) == preset("ShortFast")


def test_receive_queue_is_bounded_and_counts_drops(rig):
    with opened_pair(rig, rx_queue=2) as (a, b):
        for i in range(4):
            a.send(bytes([i]))
        wait_until(lambda: b.dropped == 2)
        assert [b.receive(0).frame for _ in range(2)] == [b"\x02", b"\x03"]


def test_unplug_raises_and_replug_reconnects(rig):
    with opened_pair(rig) as (a, b):
        rig.unplug(1)
        with pytest.raises(RadioUnavailable, match="lost"):
            b.send(b"x")
        with pytest.raises(RadioUnavailable, match="lost"):
            b.receive(ARRIVAL_S)
        with pytest.raises(RadioUnavailable, match="no such serial port"):
            b.open()
        rig.replug(1)
        b.open()
        a.send(b"welcome back")
        assert b.receive(ARRIVAL_S).frame == b"welcome back"
        b.send(b"thanks")
        assert a.receive(ARRIVAL_S).frame == b"thanks"


def test_frames_heard_before_the_loss_are_handed_out_first(rig):
    with opened_pair(rig) as (a, b):
        a.send(b"last words")
        wait_until(lambda: b.queued == 1)
        rig.unplug(1)
        assert b.receive(ARRIVAL_S).frame == b"last words"
        with pytest.raises(RadioUnavailable):
            b.receive(ARRIVAL_S)


def test_close_unsubscribes_from_the_process_wide_bus(rig):
    driver = opened(rig.ports[0])
    subscriptions = [(driver._on_receive, RECEIVE_TOPIC), (driver._on_lost, LOST_TOPIC)]
    assert all(pub.isSubscribed(listener, topic) for listener, topic in subscriptions)
    driver.close()
    assert not any(pub.isSubscribed(listener, topic) for listener, topic in subscriptions)
    with pytest.raises(RadioUnavailable, match="not open"):
        driver.receive(0)


def test_missing_port():
    with pytest.raises(RadioUnavailable, match="no such serial port"):
        MeshtasticDriver("/dev/does-not-exist-meshtastic").open()


def test_busy_port(rig):
    with serial.Serial(rig.ports[0], exclusive=True):
        with pytest.raises(RadioUnavailable, match="busy"):
            MeshtasticDriver(rig.ports[0], timeout=OPEN_TIMEOUT_S).open()


def test_silent_device_is_not_a_meshtastic_device(tmp_path):
    with PtyPair(tmp_path / "silent") as pty:
        driver = MeshtasticDriver(pty.path, timeout=1.0)
        with pytest.raises(RadioUnavailable, match="no Meshtastic config reply within 1 s"):
            driver.open()
        assert pty.read().count(b"\xc3") >= 32  # the library's wake-up bytes did arrive


def test_airtime_needs_the_device_config():
    with pytest.raises(RadioUnavailable, match="open it first"):
        MeshtasticDriver("/dev/ttyACM0").airtime(10)


@pytest.mark.parametrize("kwargs", [{}, {"port": "/dev/x", "host": "h"}, {"host": "h:port"}, {"port": "/dev/x", "timeout": 0}])
def test_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        MeshtasticDriver(**kwargs)


@pytest.fixture
def tcp_device():
    """A meshtasticd stand-in: one TCP connection served by a virtual device (no air)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    stop = threading.Event()

    def serve() -> None:
        device = MeshtasticDevice(RadioSetup(5))
        conn, _ = server.accept()
        with conn:
            conn.settimeout(0.05)
            while not stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    return
                for action in device.from_host(data, 0.0):
                    if isinstance(action, ToHost):
                        conn.sendall(action.data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(5)


def test_tcp_interface(tcp_device):
    driver = MeshtasticDriver(host=f"127.0.0.1:{tcp_device}", timeout=OPEN_TIMEOUT_S)
    assert driver.name == f"meshtastic:tcp://127.0.0.1:{tcp_device}"
    driver.open()
    try:
        assert driver.node_num == node_num(5)
        driver.send(b"over tcp")
    finally:
        driver.close()


def test_tcp_refused():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(RadioUnavailable, match="cannot connect"):
        MeshtasticDriver(host="127.0.0.1", tcp_port=port, timeout=OPEN_TIMEOUT_S).open()
