"""Pseudo-terminal plumbing (PtyPair), the VirtualRig around it (channels, flash, reboots), and `blockiot radio virtual`."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType

import threading

import pytest
import serial
from meshtastic.protobuf import config_pb2
from meshtastic.serial_interface import SerialInterface
from pubsub import pub

import blockiot.hil.rig as rig_module
from blockiot.hil.meshtastic_device import MeshtasticDevice
from blockiot.hil.pty import PtyError, PtyPair
from blockiot.hil.rig import RigError, VirtualRig
from blockiot.radio.airtime import meshtastic_packet_len, preset, time_on_air
from blockiot.radio.drivers.meshtastic import LOST_TOPIC, MeshtasticDriver
from blockiot.tools.cli import main

pytestmark = pytest.mark.timeout(60)

TIME_SCALE = 0.01


def read_exactly(port: serial.Serial, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = port.read(count - len(data))
        assert chunk, f"only {len(data)} of {count} bytes arrived"
        data += chunk
    return data


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def drain(pty: PtyPair, count: int) -> bytes:
    data = b""
    while len(data) < count:
        data += pty.read()
    return data


# -- PtyPair ------------------------------------------------------------------------------


def test_pyserial_opens_the_pty_and_bytes_pass_unchanged(tmp_path):
    every_byte = bytes(range(256))  # raw mode: no echo, no CR/LF or control-character handling
    with PtyPair(tmp_path / "radio") as pty, serial.Serial(pty.path, 115200, timeout=2, exclusive=True) as host:
        with pytest.raises(OSError):  # no modem-control lines; pyserial ignores this only inside open()
            host.dtr = False
        host.write(every_byte)
        assert drain(pty, 256) == every_byte
        assert pty.write(every_byte)
        assert read_exactly(host, 256) == every_byte
        assert (pty.bytes_from_host, pty.bytes_to_host) == (256, 256)


def test_stable_link_points_at_the_current_pty(tmp_path):
    link = tmp_path / "radio"
    with PtyPair(link) as pty:
        assert pty.path == str(link) and os.readlink(link) == pty.device_path
        first = pty.device_path
        pty.unplug()
        assert not link.exists() and pty.device_path is None and not pty.plugged
        pty.replug()
        assert os.readlink(link) == pty.device_path and Path(pty.device_path).exists()
        assert not Path(first).exists() or first == pty.device_path  # the kernel may reuse the number
    assert not link.exists()


def test_unplug_fails_the_host_and_replug_serves_it_again(tmp_path):
    with PtyPair(tmp_path / "radio") as pty:
        host = serial.Serial(pty.path, timeout=2)
        pty.unplug()
        with pytest.raises(serial.SerialException):
            host.read(1)
        with pytest.raises(serial.SerialException):
            host.write(b"x")
        host.close()
        assert not pty.write(b"lost") and pty.dropped_to_host == 4
        pty.replug()
        with serial.Serial(pty.path, timeout=2) as host:
            host.write(b"hello")
            assert drain(pty, 5) == b"hello"


def test_bytes_for_a_host_that_does_not_read_are_dropped_whole(tmp_path):
    chunk = bytes(range(256)) * 16
    with PtyPair(tmp_path / "radio", max_pending=len(chunk)) as pty, serial.Serial(pty.path, timeout=0.5) as host:
        accepted = 0
        while pty.write(chunk):  # the host reads nothing yet: the pty fills, then our buffer
            accepted += 1
        assert accepted > 1 and pty.dropped_to_host == len(chunk)
        received = b""
        while True:
            pty.flush()
            data = host.read(65536)
            if not data and not pty.wants_write:
                break
            received += data
    assert received == chunk * accepted


def test_pty_misuse():
    with pytest.raises(PtyError):
        PtyPair(max_pending=0)
    pty = PtyPair()
    assert pty.path == pty.device_path
    with pytest.raises(PtyError, match="already plugged in"):
        pty.replug()
    pty.close()
    with pytest.raises(PtyError, match="closed"):
        pty.replug()


def test_link_in_a_missing_directory(tmp_path):
    with pytest.raises(PtyError, match="cannot set up the pty"):
        PtyPair(tmp_path / "no-such-dir" / "radio")


# -- VirtualRig ---------------------------------------------------------------------------


def test_rig_ports_exist_and_vanish_with_the_rig():
    with VirtualRig(3, time_scale=TIME_SCALE) as rig:
        ports = rig.ports
        assert len(ports) == 3 and all(Path(port).resolve().exists() for port in ports)
        assert [r.port for r in rig.stats.radios] == ports
    assert not any(os.path.lexists(port) for port in ports)
    rig.close()  # idempotent
    with pytest.raises(RigError, match="closed"):
        rig.stats


def test_unplug_and_replug_keep_the_path():
    with VirtualRig(2, time_scale=TIME_SCALE) as rig:
        port = rig.ports[1]
        rig.unplug(1)
        assert not os.path.lexists(port) and not rig.stats.radios[1].plugged
        rig.unplug(1)  # already out: nothing happens
        rig.replug(1)
        assert Path(port).resolve().exists() and rig.stats.radios[1].plugged
        with pytest.raises(RigError, match="already plugged in"):
            rig.replug(1)
        with pytest.raises(RigError, match="0..1"):
            rig.unplug(2)


def test_unplugged_radio_is_off_the_air():
    with VirtualRig(2, time_scale=TIME_SCALE) as rig:
        a = MeshtasticDriver(rig.ports[0], timeout=5)
        a.open()
        try:
            rig.unplug(1)
            heard = rig.stats.radios[1].air.received  # the boards' NodeInfo may have crossed before
            sent = rig.stats.radios[0].air.sent
            a.send(b"anyone?")
            wait_until(lambda: rig.stats.radios[0].air.sent > sent)
            on_air_until = rig.now() + a.airtime(a.mtu)
            wait_until(lambda: rig.now() > on_air_until)
            assert rig.stats.radios[1].air.received == heard
        finally:
            a.close()


@contextlib.contextmanager
def two_drivers(rig: VirtualRig):
    drivers = [MeshtasticDriver(port, timeout=5) for port in rig.ports]
    try:
        for driver in drivers:
            driver.open()
        yield drivers
    finally:
        for driver in drivers:
            driver.close()


def test_medium_counts_airtime_of_real_meshtastic_packets():
    # One radio in real time: nothing answers it, and its own NodeInfo is 30 s away.
    with VirtualRig(1, preset="ShortFast", time_scale=1.0) as rig, two_drivers(rig) as (a,):
        a.send(bytes(100))
        wait_until(lambda: rig.stats.radios[0].air.sent >= 1)
        radio0 = rig.stats.radios[0].air
        assert radio0.sent == 1
        assert radio0.airtime == pytest.approx(time_on_air(meshtastic_packet_len(100), preset("ShortFast")))
        assert a.airtime(100) == pytest.approx(radio0.airtime)


def test_total_loss_delivers_nothing():
    with VirtualRig(2, loss=1.0, time_scale=TIME_SCALE) as rig, two_drivers(rig) as (a, b):
        a.send(b"into the void")
        assert b.receive(1.0) is None
        assert rig.stats.radios[1].air.lost >= 1 and rig.stats.radios[1].air.received == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 0}, "at least one radio"),
    ({"count": 2, "personality": "lorawan"}, "unknown personality 'lorawan'"),
    ({"count": 2, "time_scale": 0}, "time_scale must be positive"),
    ({"count": 2, "loss": 1.5}, "loss must be within"),
    ({"count": 2, "positions": [(0, 0)]}, "2 radios need 2 positions"),
    ({"count": 2, "presets": ["LongFast"]}, "2 radios need 2 presets"),
    ({"count": 1, "regions": ["XX"]}, "unknown region 'XX'"),
    ({"count": 1, "preset": "ShortTurbo"}, "ShortTurbo is 500 kHz wide, the EU_868 band"),
    ({"count": 1, "presets": ["MediumTurbo"]}, "newer than 2.7.26; the pinned meshtastic library"),
    ({"count": 1, "personality": "modem", "preset": "TinyFast"}, "newer than 2.7.26"),
])
def test_bad_rig_settings(kwargs, message):
    with pytest.raises(RigError, match=message):
        VirtualRig(**kwargs)


def open_all(rig: VirtualRig) -> list[MeshtasticDriver]:
    drivers = [MeshtasticDriver(port, timeout=5) for port in rig.ports]
    for driver in drivers:
        driver.open()
    return drivers


def test_boards_on_another_preset_region_or_channel_do_not_hear_each_other():
    presets = ["LongFast", "LongFast", "ShortFast", "ShortFast", "LongFast"]
    regions = ["EU_868", "EU_868", "EU_868", "EU_868", "US"]
    with VirtualRig(5, time_scale=TIME_SCALE, presets=presets, regions=regions) as rig:
        drivers = open_all(rig)
        try:
            channels = [radio.channel for radio in rig.stats.radios]
            assert channels[0] == channels[1] and channels[2] == channels[3]
            assert channels[2].modulation == preset("ShortFast") and channels[4].frequency_hz == 906_875_000
            assert [d.lora for d in drivers] == [preset(name) for name in presets]
            drivers[0].send(b"long fast")
            drivers[2].send(b"short fast")
            assert drivers[1].receive(5.0).frame == b"long fast"
            assert drivers[3].receive(5.0).frame == b"short fast"
            on_air_until = rig.now() + drivers[0].airtime(20)
            wait_until(lambda: rig.now() > on_air_until)
            for other in (2, 3, 4):
                assert all(got.frame != b"long fast" for got in iter(lambda: drivers[other].receive(0.05), None))
            assert rig.stats.radios[4].air.received == 0  # nobody else in the US band
        finally:
            for driver in drivers:
                driver.close()


def set_lora(iface: SerialInterface, **fields) -> None:
    lora = iface.localNode.localConfig.lora
    for name, value in fields.items():
        setattr(lora, name, value)
    iface.localNode.writeConfig("lora")


def test_an_admin_preset_change_retunes_the_board_and_survives_a_new_rig(tmp_path):
    state = tmp_path / "flash"
    with VirtualRig(2, time_scale=TIME_SCALE, state_dir=state) as rig:
        iface = SerialInterface(rig.ports[1], timeout=10)
        try:
            iface.localNode.setOwner("Dora")
            set_lora(iface, modem_preset=config_pb2.Config.LoRaConfig.MEDIUM_SLOW)
            wait_until(lambda: rig.stats.radios[1].channel.modulation == preset("MediumSlow"))
        finally:
            iface.close()
    assert (state / "radio1" / "prefs" / "config.proto").is_file()  # firmware 2.7.11's file names
    assert not (state / "radio0").exists()  # radio 0 never saved anything
    with VirtualRig(2, time_scale=TIME_SCALE, state_dir=state) as again:
        assert [r.channel.modulation for r in again.stats.radios] == [preset("LongFast"), preset("MediumSlow")]
        iface = SerialInterface(again.ports[1], timeout=10)
        try:
            assert iface.getLongName() == "Dora"
        finally:
            iface.close()


def test_an_admin_reboot_drops_the_port_and_brings_the_board_back_with_its_settings():
    with VirtualRig(1, time_scale=0.05) as rig:  # 3 s of boot: 150 ms without a port
        iface = SerialInterface(rig.ports[0], timeout=10)
        lost = threading.Event()

        def on_lost(interface) -> None:
            if interface is iface:
                lost.set()

        pub.subscribe(on_lost, LOST_TOPIC)
        try:
            iface.localNode.setOwner("Zed")
            iface.localNode.reboot(10)  # what `meshtastic --reboot` sends: 10 s, 0.5 s of wall time
            assert lost.wait(5.0)  # the client sees the disconnect
            wait_until(lambda: rig.stats.radios[0].boots == 2)
        finally:
            pub.unsubscribe(on_lost, LOST_TOPIC)
            iface.close()
        assert Path(rig.ports[0]).resolve().exists()  # the same path
        again = SerialInterface(rig.ports[0], timeout=10)
        try:
            assert again.getLongName() == "Zed"
        finally:
            again.close()


class SlowBoot(MeshtasticDevice):
    boot_s = 1e6  # a reboot that never ends by itself


def test_a_board_that_shut_down_or_is_unplugged_while_rebooting_stays_off_until_replugged(monkeypatch):
    monkeypatch.setattr(rig_module, "PERSONALITIES", MappingProxyType({"slow-boot": SlowBoot}))
    with VirtualRig(2, personality="slow-boot", time_scale=TIME_SCALE) as rig:
        ifaces = [SerialInterface(port, timeout=10) for port in rig.ports]
        try:  # 2 s: the library finishes its write before the board goes, as it would on hardware
            ifaces[0].localNode.shutdown(2)
            ifaces[1].localNode.reboot(2)
            wait_until(lambda: [r.plugged for r in rig.stats.radios] == [False, False])
        finally:
            for iface in ifaces:
                iface.close()
        assert [r.back_at is None for r in rig.stats.radios] == [True, False]  # off / rebooting
        rig.unplug(1)  # while it boots: the boot never comes
        assert [(r.plugged, r.boots, r.back_at) for r in rig.stats.radios] == [(False, 1, None), (False, 1, None)]
        rig.replug(0)
        rig.replug(1)
        assert [(r.plugged, r.boots) for r in rig.stats.radios] == [(True, 2), (True, 2)]


def test_a_failing_personality_stops_the_rig_loudly(monkeypatch):
    class Broken(MeshtasticDevice):
        def from_host(self, data, now):
            raise RuntimeError("firmware crash")

    monkeypatch.setattr(rig_module, "PERSONALITIES", MappingProxyType({"broken": Broken}))
    rig = VirtualRig(1, personality="broken", time_scale=TIME_SCALE)
    with serial.Serial(rig.ports[0]) as host:
        host.write(b"boom")
        with pytest.raises(RigError, match="stopped"):
            while True:
                rig.stats
    with pytest.raises(RigError, match="firmware crash"):
        rig.close()


# -- blockiot radio virtual ---------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "argument --count: must be a whole number >= 1, not '0'"),
    (["--preset", "Fastest"], "unknown preset 'Fastest'"),
    (["--loss", "2"], "argument --loss: must be a finite number from 0 to 1, not '2'"),
])
def test_cli_refuses_bad_settings(capsys, args, message):
    assert main(["radio", "virtual", *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_runs_until_sigterm():
    blockiot = Path(sys.executable).with_name("blockiot")  # the installed console script
    command = [str(blockiot), "radio", "virtual", "--count", "2", "--time-scale", "0.01"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ports = [proc.stdout.readline().strip() for _ in range(2)]
        assert all(Path(port).resolve().exists() for port in ports), ports
        driver = MeshtasticDriver(ports[1], timeout=5)
        driver.open()
        driver.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
        assert not any(os.path.lexists(port) for port in ports)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
