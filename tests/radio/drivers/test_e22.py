"""E22 driver: datasheet known answers, register codec, and the driver against the virtual module."""
from __future__ import annotations

import os
import pty

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from blockiot.hil.sim.medium import Delivery
from blockiot.hil.modem_device import VirtualE22
from blockiot.hil.personality import ToAir, ToHost
from blockiot.radio.airtime import preset, time_on_air
from blockiot.radio.drivers.e22 import (
    COMMAND,
    E22,
    E22Config,
    E22Driver,
    Mode,
    build_read,
    build_write,
    decode_registers,
    encode_registers,
    link_mtu,
    modem_airtime,
    new_framer,
    parse_reply,
    parse_rssi,
)
from blockiot.radio.errors import FrameError, MessageTooLarge, RadioError, RadioUnavailable


# -- known answers from the manual ---------------------------------------------------

def test_factory_registers():
    # "7.3 Factory default parameters" layout: 00 00 00 62 00 <ch> 03 00 00
    assert encode_registers(E22Config()).hex() == "000000620012030000"
    assert build_write(E22Config()).hex() == "c00009000000620012030000"


def test_manual_example_set_and_read():
    # "7.1 Command format", example 2: address 0x1234, NETID 0, 9600 8N1, air rate code 001
    command = COMMAND.build(dict(head=E22.CMD_SET, start=0, length=4, registers=bytes.fromhex("12340061")))
    assert command.hex() == "c0000412340061"
    config = E22Config(address=0x1234, air_rate=1)
    assert encode_registers(config)[:4].hex() == "12340061"
    # example 1 of "Read register": C1 05 01 -> C1 05 01 09
    assert build_read(5, 1).hex() == "c10501"
    assert parse_reply(bytes.fromhex("c1050109")) == (5, b"\x09")


def test_wrong_format_reply_is_a_clear_error():
    with pytest.raises(RadioError, match="configuration mode"):
        parse_reply(b"\xff\xff\xff")
    with pytest.raises(FrameError):
        parse_reply(b"\xc1\x00")


def test_rssi_byte_formula():
    assert parse_rssi(0xA0) == -96          # dBm = -(256 - value)
    assert parse_rssi(255) == -1


def test_frequency_and_air_rate():
    config = E22Config(channel=18)
    assert config.frequency_hz == 868_125_000   # 850.125 + 18 MHz
    assert config.air.label == "2.4k" and config.air.measured
    assert config.lora_params().sf == 11 and config.lora_params().bw_hz == 500_000
    assert not E22Config(air_rate=7).air.measured


@given(st.binary(min_size=9, max_size=9).filter(lambda b: b[5] <= E22.MAX_CHANNEL))
def test_register_file_round_trips(data):
    assert encode_registers(decode_registers(data)) == data


def test_out_of_range_registers_are_refused():
    with pytest.raises(FrameError):
        decode_registers(bytes.fromhex("000000620051030000"))  # channel 81
    with pytest.raises(FrameError):
        decode_registers(b"\x00" * 8)
    with pytest.raises(RadioError):
        E22Config(channel=81)


def test_mtu_and_airtime_count_our_framing():
    assert link_mtu(240) == 240 - 4 - 2          # StreamFramer start+length, source id
    framed = new_framer(240).frame(bytes(2 + link_mtu(240)))
    assert len(framed) == 240                    # one link frame is exactly one sub-packet
    config = E22Config()
    params = config.lora_params()
    assert modem_airtime(100, params) == time_on_air(E22.MODULE_HEADER_LEN + 6 + 100, params)
    assert E22Driver("/dev/x", radio_id=1).airtime(100) == modem_airtime(100, params)
    longfast = preset("LongFast")
    assert E22Driver("/dev/x", radio_id=1, modulation=longfast).airtime(100) == modem_airtime(100, longfast)


# -- the driver against virtual modules on an in-memory wire ---------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


class Wire:
    """Virtual modules joined directly: every ToAir reaches every other module."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.ends: list[FakeSerial] = []

    def route(self, source: FakeSerial, actions: list) -> None:
        for action in actions:
            if isinstance(action, ToHost):
                source.rx += action.data
            elif isinstance(action, ToAir):
                for end in self.ends:
                    if end is not source:
                        delivery = Delivery(0, 0, action.packet, -70.0, 8.0, self.clock())
                        self.route(end, end.device.from_air(delivery, self.clock()))

    def run(self) -> None:
        for end in self.ends:
            self.route(end, end.device.poll(self.clock()))


class FakeSerial:
    """pyserial's surface as the driver uses it, backed by a VirtualE22."""

    def __init__(self, wire: Wire, device: VirtualE22, *, lines: bool = True) -> None:
        self.wire = wire
        self.device = device
        self.lines = lines
        self.rx = bytearray()
        self.baudrate = 9600
        self.pin_log: list[tuple[str, bool]] = []
        self.broken = False
        wire.ends.append(self)

    def __call__(self, port, **kwargs):
        self.baudrate = kwargs.get("baudrate", 9600)
        return self

    def write(self, data: bytes) -> int:
        if self.broken:
            raise serial.SerialException("device disconnected")
        self.wire.route(self, self.device.from_host(bytes(data), self.wire.clock()))
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        self.wire.run()
        return len(self.rx)

    def read(self, size: int = 1) -> bytes:
        if self.broken:
            raise serial.SerialException("device reports readiness to read but returned no data")
        self.wire.run()
        data = bytes(self.rx[:size])
        del self.rx[:size]
        return data

    def reset_input_buffer(self) -> None:
        self.rx.clear()

    def close(self) -> None:
        pass

    def _pin(self, name: str, value: bool) -> None:
        if not self.lines:
            raise OSError(25, "Inappropriate ioctl for device")
        self.pin_log.append((name, value))
        mode = Mode(((not self.dtr_state) << 1) | (not self.rts_state))
        self.device.set_mode(mode)

    rts_state = True
    dtr_state = True

    @property
    def rts(self) -> bool:
        return self.rts_state

    @rts.setter
    def rts(self, value: bool) -> None:
        self.rts_state = value
        self._pin("rts", value)

    @property
    def dtr(self) -> bool:
        return self.dtr_state

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self.dtr_state = value
        self._pin("dtr", value)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def wire(clock: Clock) -> Wire:
    return Wire(clock)


def make(wire: Wire, radio_id: int, config: E22Config | None = None, *, mode_pins=None, lines=True,
         device: VirtualE22 | None = None) -> tuple[E22Driver, FakeSerial]:
    device = device or VirtualE22(config)
    end = FakeSerial(wire, device, lines=lines)
    driver = E22Driver("/dev/fake", radio_id=radio_id, config=config, mode_pins=mode_pins,
                       clock=wire.clock, sleep=wire.clock.sleep, serial_factory=end)
    driver.open()
    return driver, end


def test_frame_crosses_with_sender_and_rssi(wire):
    config = E22Config(rssi_byte=True)
    a, _ = make(wire, 0x0101, config)
    b, _ = make(wire, 0x0202, config)
    a.send(b"\x00\x01hello")
    got = b.receive(1.0)
    assert (got.frame, got.sender, got.rssi) == (b"\x00\x01hello", 0x0101, -70)
    assert b.receive(0.1) is None


def test_frames_are_paced_one_packet_at_a_time(wire, clock):
    a, _ = make(wire, 1)
    b, _ = make(wire, 2)
    frames = [bytes([i]) * a.mtu for i in range(3)]
    for frame in frames:
        a.send(frame)
    assert clock() >= 2 * a.airtime(a.mtu)   # waited for the module before each next write
    assert [b.receive(1.0).frame for _ in frames] == frames


def test_stray_bytes_and_foreign_packets_are_ignored(wire):
    a, end_a = make(wire, 1)
    b, end_b = make(wire, 2)
    end_b.rx += b"junk from the module\xb1"
    a.send(b"payload")
    assert b.receive(1.0).frame == b"payload"


def test_other_channel_is_not_heard(wire):
    a, _ = make(wire, 1, E22Config(channel=1))
    b, _ = make(wire, 2, E22Config(channel=2))
    a.send(b"x")
    assert b.receive(0.5) is None


def test_oversize_frame_is_refused(wire):
    a, _ = make(wire, 1)
    with pytest.raises(MessageTooLarge):
        a.send(bytes(a.mtu + 1))


def test_configure_with_confirmation_writes_and_reads_back(wire):
    driver, end = make(wire, 1)
    end.device.set_mode(Mode.CONFIGURATION)     # the user flipped the dongle's switch
    wanted = E22Config(address=0x0102, net_id=7, channel=5, rssi_byte=True, crypt_key=0xBEEF)
    assert driver.configure(wanted, confirm_config_mode=True) == wanted
    assert end.device.saved == wanted
    assert driver.read_config(confirm_config_mode=True) == E22Config(
        address=0x0102, net_id=7, channel=5, rssi_byte=True)   # CRYPT reads back as 0
    assert end.baudrate == wanted.uart_baudrate


def test_configure_without_pins_or_confirmation_is_refused(wire):
    driver, _ = make(wire, 1)
    with pytest.raises(RadioError, match="configuration mode"):
        driver.configure(E22Config(channel=3))


def test_temporary_write_is_lost_at_power_cycle(wire):
    driver, end = make(wire, 1)
    end.device.set_mode(Mode.CONFIGURATION)
    driver.configure(E22Config(channel=9), persistent=False, confirm_config_mode=True)
    assert end.device.config.channel == 9
    end.device.power_cycle()
    assert end.device.config.channel == E22Config().channel


def test_rts_dtr_pins_drive_config_mode_and_back(wire):
    driver, end = make(wire, 1, mode_pins="rts-dtr")
    assert driver.pins_work
    driver.configure(E22Config(channel=4))
    assert end.device.mode == Mode.TRANSMISSION
    assert end.device.saved.channel == 4
    # configuration: M1=1 (DTR deasserted), M0=0 (RTS asserted)
    assert ("dtr", False) in end.pin_log and end.rts_state and end.dtr_state


def test_rts_dtr_on_a_line_less_port_needs_confirmation(wire):
    driver, end = make(wire, 1, mode_pins="rts-dtr", lines=False)
    assert not driver.pins_work
    with pytest.raises(RadioError, match="RTS/DTR"):
        driver.configure(E22Config(channel=4))
    end.device.set_mode(Mode.CONFIGURATION)
    assert driver.configure(E22Config(channel=4), confirm_config_mode=True).channel == 4


def test_software_mode_switching(wire):
    device = VirtualE22(E22Config(software_mode_switch=True))
    driver, end = make(wire, 1, E22Config(software_mode_switch=True), mode_pins="software", device=device)
    driver.configure(E22Config(software_mode_switch=True, channel=6))
    assert device.mode == Mode.TRANSMISSION and device.saved.channel == 6


def test_software_switch_disabled_is_a_clear_error(wire):
    driver, _ = make(wire, 1, mode_pins="software")
    with pytest.raises(RadioError, match="software mode switching"):
        driver.read_config()


def test_lost_port_raises_radio_unavailable(wire):
    driver, end = make(wire, 1)
    end.broken = True
    with pytest.raises(RadioUnavailable):
        driver.receive(0.1)
    with pytest.raises(RadioUnavailable, match="not open"):
        driver.send(b"x")


def test_open_failure_is_radio_unavailable():
    def refuse(port, **kwargs):
        raise serial.SerialException(f"could not open port {port}")

    driver = E22Driver("/dev/ttyUSB9", radio_id=1, serial_factory=refuse)
    with pytest.raises(RadioUnavailable, match="/dev/ttyUSB9"):
        driver.open()


def test_bad_arguments():
    with pytest.raises(RadioError):
        E22Driver("/dev/x", radio_id=70000)
    with pytest.raises(RadioError):
        E22Driver("/dev/x", radio_id=1, mode_pins="gpio")


def test_rts_dtr_on_a_real_pty_is_a_tolerated_no_op():
    master, slave = pty.openpty()
    try:
        driver = E22Driver(os.ttyname(slave), radio_id=1, mode_pins="rts-dtr")
        driver.open()
        assert driver.pins_work is False
        driver.close()
    finally:
        os.close(master)
        os.close(slave)


# -- the virtual module on its own (hil/modem_device.py) ---------------------------------

def to_host(actions: list) -> bytes:
    return b"".join(action.data for action in actions if isinstance(action, ToHost))


def transmitted(actions: list) -> list[bytes]:
    return [action.packet for action in actions if isinstance(action, ToAir)]


def test_virtual_config_mode_commands():
    device = VirtualE22(mode=Mode.CONFIGURATION, product_info=bytes(range(1, 8)))
    assert to_host(device.from_host(bytes.fromhex("c0050109"), 0.0)) == bytes.fromhex("c1050109")
    assert device.saved.channel == 9
    assert to_host(device.from_host(bytes.fromhex("c10501"), 0.0)) == bytes.fromhex("c1050109")
    assert to_host(device.from_host(bytes.fromhex("c18002"), 0.0)) == bytes.fromhex("c180020102")  # PID
    assert to_host(device.from_host(bytes.fromhex("c0"), 0.0)) == b""          # waits for the rest
    assert to_host(device.from_host(bytes.fromhex("0001"), 0.0)) == b""
    assert to_host(device.from_host(bytes.fromhex("02"), 0.0)) == bytes.fromhex("c1000102")
    assert device.config.address == 0x0200


@pytest.mark.parametrize("command", ["55", "c00a0101", "c0050151", "c11000", "c00500"])
def test_virtual_wrong_format(command):
    device = VirtualE22(mode=Mode.CONFIGURATION)
    assert to_host(device.from_host(bytes.fromhex(command), 0.0)) == E22.WRONG_FORMAT
    assert device.config == E22Config()


def test_virtual_cuts_at_sub_packet_and_idle():
    device = VirtualE22(E22Config(sub_packet=32))
    actions = device.from_host(bytes(70), 0.0)
    packets = transmitted(actions)
    assert [len(p) - E22.MODULE_HEADER_LEN for p in packets] == [32]       # one on air, one waiting
    deadline = device.next_deadline()
    later = device.poll(deadline + 10.0)
    assert [len(p) - E22.MODULE_HEADER_LEN for p in transmitted(later)] == [32]
    last = device.poll(device.next_deadline() + 10.0)
    assert [len(p) - E22.MODULE_HEADER_LEN for p in transmitted(last)] == [6]   # cut on idle
    assert device.next_deadline() is None


def test_virtual_buffer_overflow_is_counted():
    device = VirtualE22()
    device.from_host(bytes(1500), 0.0)
    assert device.overflowed == 500


def test_virtual_filters_and_rssi_byte():
    sender = VirtualE22(E22Config(address=0x0001))
    packet = transmitted(sender.from_host(b"abc", 0.0) + sender.poll(1.0))[0]
    heard = lambda device: to_host(device.from_air(Delivery(1, 0, packet, -96.0, 5.0, 1.0), 1.0))
    assert heard(VirtualE22(E22Config(address=0x0001))) == b"abc"
    assert heard(VirtualE22(E22Config(address=0xFFFF))) == b"abc"               # listens to all
    assert heard(VirtualE22(E22Config(address=0x0002))) == b""
    assert heard(VirtualE22(E22Config(address=0x0001, net_id=1))) == b""
    assert heard(VirtualE22(E22Config(address=0x0001, rssi_byte=True))) == b"abc\xa0"
    assert heard(VirtualE22(E22Config(address=0x0001), mode=Mode.DEEP_SLEEP)) == b""


def test_virtual_in_band_rssi_read():
    device = VirtualE22(E22Config(ambient_noise_rssi=True))
    assert to_host(device.from_host(bytes.fromhex("c0c1c2c30002"), 0.0)) == bytes.fromhex("c1000292") + b"\x92"
    assert to_host(device.from_host(bytes.fromhex("c0c1c2c30502"), 0.0)) == E22.WRONG_FORMAT


def test_virtual_deep_sleep_drops_host_bytes():
    device = VirtualE22(mode=Mode.DEEP_SLEEP)
    assert device.from_host(b"lost", 0.0) == []
    assert device.next_deadline() is None


def test_configure_a_rig_module_over_its_pty():
    """The rig's virtual E22 is reached through a real pty with the in-band mode switch."""
    from blockiot.hil.rig import VirtualRig

    with VirtualRig(1, personality="modem", time_scale=0.01) as rig:
        driver = E22Driver(rig.ports[0], radio_id=1, config=E22Config(software_mode_switch=True),
                           mode_pins="software")
        driver.open()
        try:
            wanted = E22Config(software_mode_switch=True, channel=23, net_id=4, rssi_byte=True)
            driver.configure(wanted)
            assert driver.read_config() == wanted
        finally:
            driver.close()
