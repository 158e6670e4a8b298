"""Ebyte E22-900T22S / E22-900T22U (SX1262) UART LoRa modem: register codec and driver.

Everything here follows the vendor's "E22-xxxT22S series product user manual"
(Chengdu Ebyte, 2012-2024); section names are quoted where a rule comes from:

* "6. Working Mode": pins M1/M0 select the mode: 00 transmission (transparent),
  01 WOR, 10 configuration, 11 deep sleep. "6.1 Precautions for mode switching":
  a switch takes effect about 1 ms after the module is idle (AUX high); the manual
  recommends waiting 2 ms after AUX rises.
* "7.1 Command format": only in configuration mode and only at 9600 8N1.
  C0 + start + length + registers sets and saves registers, C2 the same without
  saving, C1 + start + length reads; the reply is C1 + start + length + registers;
  a malformed command is answered FF FF FF.
* "7.2 E22-400/900T22S register description": 00H ADDH, 01H ADDL, 02H NETID,
  03H REG0 (UART baud, parity, air data rate), 04H REG1 (sub-packet size, ambient
  noise RSSI enable, software mode switching, transmit power), 05H REG2 (channel,
  frequency = 850.125 + CH MHz on the 900 band, CH 0..80), 06H REG3 (RSSI byte
  enable, fixed/transparent transmission, relay, LBT, WOR role and cycle),
  07H/08H CRYPT_H/CRYPT_L (write only, read back as 0).
  REG3 bit 7: "the module receives wireless data and it will follow an RSSI
  strength byte after output via the serial port TXD"; dBm = -(256 - value).
  REG1 bits 7-6: data longer than the sub-packet size is cut into several air
  packets; the receiver's UART shows one byte stream.
  REG1 bit 4 "Software mode switching": C0 C1 C2 C3 02 <mode> switches the mode
  without the pins and is answered C1 C2 C3 02 <mode>.

Not in the datasheet (marked where used): the LoRa spreading factor and bandwidth
behind each "air data rate", and the header the module adds on air. An E22-900T
with factory settings was captured with an SX1302 concentrator and decoded as
SF11 / BW 500 kHz / LDRO on for "2.4k", sync word 0x55, and an 8-byte module
header before the payload (public reverse-engineering notes, "Roher LoRa-Kanal
neben der LoRaWAN-Kette", 2026). Only 2.4k was measured; the other rates are our
estimate along the same BW 500 ladder and are flagged `measured=False`.

Our transport on the modem: transparent mode is binary-safe but the receiver sees
a byte stream cut at sub-packet boundaries, so each link frame travels as one
`StreamFramer` frame (radio/streamframe.py) whose payload is the sender's 2-byte radio
id followed by the link frame, sized to fit one sub-packet, and written one frame per
air packet (the driver waits for the module to finish sending before the next).
"""
from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import construct as cs
import serial

from blockiot.radio.airtime import LoRaParams, time_on_air
from blockiot.radio.drivers.base import Received
from blockiot.radio.codec import decoding, encoding
from blockiot.radio.errors import (
    ConfigError, FrameEncodeError, FrameError, MessageTooLarge, RadioError, RadioUnavailable,
)
from blockiot.radio.streamframe import StreamFramer


class Mode(enum.IntEnum):
    """Working modes, value = (M1 << 1) | M0 ("6. Working Mode")."""

    TRANSMISSION = 0
    WOR = 1
    CONFIGURATION = 2
    DEEP_SLEEP = 3

    @property
    def m0(self) -> int:
        return self.value & 1

    @property
    def m1(self) -> int:
        return self.value >> 1


@dataclass(frozen=True)
class AirRate:
    """One REG0 air data rate and the LoRa modulation behind it."""

    label: str
    sf: int
    bw_hz: int
    measured: bool


class E22:
    """The module's constants, named as the datasheet names them."""

    CMD_SET = 0xC0          # "Set register" (saved)
    CMD_READ = 0xC1         # "Read register"; also the head of every reply
    CMD_SET_TEMP = 0xC2     # "Set temporary registers" (lost at power-off)
    WRONG_FORMAT = b"\xff\xff\xff"
    SOFTWARE_SWITCH = b"\xc0\xc1\xc2\xc3\x02"   # + mode; reply C1 C2 C3 02 + mode
    SOFTWARE_SWITCH_REPLY = b"\xc1\xc2\xc3\x02"
    CONFIG_BAUDRATE = 9600  # "7.1 Command format": configuration only at 9600 8N1
    REGISTER_COUNT = 9      # 00H..08H
    BASE_FREQUENCY_MHZ = 850.125   # 900 band: frequency = 850.125 + CH * 1 MHz
    MAX_CHANNEL = 80
    UART_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
    PARITIES = ("8N1", "8O1", "8E1", "8N1")          # 11 is "8N1 (equal to 00)"
    SUB_PACKET_SIZES = (240, 128, 64, 32)
    POWERS_DBM = (22, 17, 13, 10)
    # REG0 bits 2-0. Only "2.4k" was measured (SF11/BW500, LDRO on); the others are
    # our estimate, one SF step per code along the same BW 500 ladder. Each estimate
    # is at or below its nominal bit rate (SF10/BW500 = 3.9 kb/s for "4.8k" ...
    # SF6/BW500 = 37.5 kb/s for "62.5k"), so airtime is over-, never under-estimated.
    AIR_RATES = (
        AirRate("2.4k", 11, 500_000, True),    # 000: "2.4k"
        AirRate("2.4k", 11, 500_000, True),    # 001: "2.4k"
        AirRate("2.4k", 11, 500_000, True),    # 010: "2.4k (default)"
        AirRate("4.8k", 10, 500_000, False),
        AirRate("9.6k", 9, 500_000, False),
        AirRate("19.2k", 8, 500_000, False),
        AirRate("38.4k", 7, 500_000, False),
        AirRate("62.5k", 6, 500_000, False),
    )
    # Reverse-engineered, not in the datasheet: bytes the module puts on air
    # before the user's data ("2C <ch> <seq:2> 00 FF FF <len>" on the capture).
    MODULE_HEADER_LEN = 8
    PREAMBLE_SYMBOLS = 8    # assumed SX126x default; not published by Ebyte


@dataclass(frozen=True)
class E22Config:
    """The register file 00H..08H as domain values ("7.2 register description")."""

    address: int = 0x0000
    net_id: int = 0x00
    uart_baudrate: int = 9600
    parity: int = 0                   # REG0 bits 4-3, see E22.PARITIES (11 means 8N1 too)
    air_rate: int = 2                 # REG0 bits 2-0, index into E22.AIR_RATES
    sub_packet: int = 240
    ambient_noise_rssi: bool = False
    software_mode_switch: bool = False
    reg1_reserved: int = 0            # REG1 bits 3-2, kept as read
    power_dbm: int = 22
    channel: int = 0x12               # 868.125 MHz, the E22-900T22U factory channel
    rssi_byte: bool = False
    fixed_transmission: bool = False
    relay: bool = False
    lbt: bool = False
    wor_transmitter: bool = False
    wor_cycle_ms: int = 2000
    crypt_key: int = 0x0000

    def __post_init__(self) -> None:
        checks = (
            (0 <= self.address <= 0xFFFF, "address must be 0..0xFFFF"),
            (0 <= self.net_id <= 0xFF, "net_id must be 0..255"),
            (self.uart_baudrate in E22.UART_BAUDRATES, f"uart_baudrate must be one of {E22.UART_BAUDRATES}"),
            (0 <= self.parity < len(E22.PARITIES), "parity must be a REG0 code 0..3 (8N1, 8O1, 8E1, 8N1)"),
            (0 <= self.air_rate < len(E22.AIR_RATES), "air_rate must be a REG0 code 0..7"),
            (self.sub_packet in E22.SUB_PACKET_SIZES, f"sub_packet must be one of {E22.SUB_PACKET_SIZES}"),
            (self.power_dbm in E22.POWERS_DBM, f"power_dbm must be one of {E22.POWERS_DBM}"),
            (0 <= self.channel <= E22.MAX_CHANNEL, f"channel must be 0..{E22.MAX_CHANNEL}"),
            (self.wor_cycle_ms in range(500, 4001, 500), "wor_cycle_ms must be 500..4000 in steps of 500"),
            (0 <= self.crypt_key <= 0xFFFF, "crypt_key must be 0..0xFFFF"),
            (0 <= self.reg1_reserved <= 3, "reg1_reserved is two bits"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"E22 register value out of range: {message}")

    @property
    def frequency_hz(self) -> int:
        return round((E22.BASE_FREQUENCY_MHZ + self.channel) * 1_000_000)

    @property
    def air(self) -> AirRate:
        return E22.AIR_RATES[self.air_rate]

    def lora_params(self) -> LoRaParams:
        """The modulation this configuration puts on air (see module docstring)."""
        air = self.air
        return LoRaParams(
            sf=air.sf,
            bw_hz=air.bw_hz,
            cr=5,  # 4/5 assumed: the capture did not report it
            preamble_symbols=E22.PREAMBLE_SYMBOLS,
            low_data_rate_optimize=True,  # measured on the capture: Ebyte forces LDRO at BW 500
        )


class _RegisterAdapter(cs.Adapter):
    def _decode(self, obj, context, path):
        return E22Config(
            address=obj.address,
            net_id=obj.net_id,
            uart_baudrate=E22.UART_BAUDRATES[obj.reg0.baud],
            parity=obj.reg0.parity,
            air_rate=obj.reg0.air_rate,
            sub_packet=E22.SUB_PACKET_SIZES[obj.reg1.sub_packet],
            ambient_noise_rssi=obj.reg1.ambient_noise_rssi,
            software_mode_switch=obj.reg1.software_mode_switch,
            reg1_reserved=obj.reg1.reserved,
            power_dbm=E22.POWERS_DBM[obj.reg1.power],
            channel=obj.channel,
            rssi_byte=obj.reg3.rssi_byte,
            fixed_transmission=obj.reg3.fixed_transmission,
            relay=obj.reg3.relay,
            lbt=obj.reg3.lbt,
            wor_transmitter=obj.reg3.wor_transmitter,
            wor_cycle_ms=(obj.reg3.wor_cycle + 1) * 500,
            crypt_key=obj.crypt_key,
        )

    def _encode(self, obj, context, path):
        return dict(
            address=obj.address,
            net_id=obj.net_id,
            reg0=dict(
                baud=E22.UART_BAUDRATES.index(obj.uart_baudrate),
                parity=obj.parity,
                air_rate=obj.air_rate,
            ),
            reg1=dict(
                sub_packet=E22.SUB_PACKET_SIZES.index(obj.sub_packet),
                ambient_noise_rssi=obj.ambient_noise_rssi,
                software_mode_switch=obj.software_mode_switch,
                reserved=obj.reg1_reserved,
                power=E22.POWERS_DBM.index(obj.power_dbm),
            ),
            channel=obj.channel,
            reg3=dict(
                rssi_byte=obj.rssi_byte,
                fixed_transmission=obj.fixed_transmission,
                relay=obj.relay,
                lbt=obj.lbt,
                wor_transmitter=obj.wor_transmitter,
                wor_cycle=obj.wor_cycle_ms // 500 - 1,
            ),
            crypt_key=obj.crypt_key,
        )


# Registers 00H..08H, bit by bit as in "7.2 E22-400/900T22S register description".
REGISTERS = _RegisterAdapter(cs.Struct(
    "address" / cs.Int16ub,                        # 00H ADDH, 01H ADDL
    "net_id" / cs.Int8ub,                          # 02H NETID
    "reg0" / cs.BitStruct(                         # 03H REG0
        "baud" / cs.BitsInteger(3),                # 7-5 UART baud rate
        "parity" / cs.BitsInteger(2),              # 4-3 serial parity
        "air_rate" / cs.BitsInteger(3),            # 2-0 air data rate
    ),
    "reg1" / cs.BitStruct(                         # 04H REG1
        "sub_packet" / cs.BitsInteger(2),          # 7-6 sub-packet size
        "ambient_noise_rssi" / cs.Flag,            # 5 RSSI ambient noise enable
        "software_mode_switch" / cs.Flag,          # 4 software mode switching
        "reserved" / cs.BitsInteger(2),            # 3-2 reserved
        "power" / cs.BitsInteger(2),               # 1-0 transmit power
    ),
    "channel" / cs.Int8ub,                         # 05H REG2 channel control
    "reg3" / cs.BitStruct(                         # 06H REG3
        "rssi_byte" / cs.Flag,                     # 7 enable RSSI byte
        "fixed_transmission" / cs.Flag,            # 6 fixed point (1) / transparent (0)
        "relay" / cs.Flag,                         # 5 repeater function
        "lbt" / cs.Flag,                           # 4 listen before talk
        "wor_transmitter" / cs.Flag,               # 3 WOR transceiver control
        "wor_cycle" / cs.BitsInteger(3),           # 2-0 WOR cycle (1 + n) * 500 ms
    ),
    "crypt_key" / cs.Int16ub,                      # 07H CRYPT_H, 08H CRYPT_L (write only)
))

# "7.1 Command format": head, start address, length, then registers (not for a read).
COMMAND = cs.Struct(
    "head" / cs.OneOf(cs.Int8ub, (E22.CMD_SET, E22.CMD_READ, E22.CMD_SET_TEMP)),
    "start" / cs.Int8ub,
    "length" / cs.Int8ub,
    "registers" / cs.If(cs.this.head != E22.CMD_READ, cs.Bytes(cs.this.length)),
)
REPLY = cs.Struct(
    "head" / cs.Const(bytes([E22.CMD_READ])),
    "start" / cs.Int8ub,
    "length" / cs.Int8ub,
    "registers" / cs.Bytes(cs.this.length),
)

# Character times of UART silence after which we assume the module ends a packet and
# starts sending it; Ebyte does not publish the figure (hil/modem_device.py uses the same).
UART_IDLE_CHARS = 3

# Our transport header inside each StreamFramer frame on the modem.
TRANSPORT_HEADER = cs.Struct("source" / cs.Int16ub)
TRANSPORT_HEADER_LEN = TRANSPORT_HEADER.sizeof()
# Start bytes of our frames: never C0..C3 (commands), CF (wireless configuration
# "CF CF + command") or FF, so no air packet of ours starts like a module command.
FRAME_MAGIC = b"\xb1\x07"


def encode_registers(config: E22Config) -> bytes:
    with encoding("E22 registers", FrameEncodeError):
        return REGISTERS.build(config)


def decode_registers(data: bytes) -> E22Config:
    """Decode the 9 register bytes 00H..08H; FrameError if short or out of range."""
    if len(data) != E22.REGISTER_COUNT:
        raise FrameError(f"E22 register file is {E22.REGISTER_COUNT} bytes, got {len(data)}")
    with decoding(f"E22 register bytes {data.hex()}", FrameError):
        return REGISTERS.parse(data)


def build_write(config: E22Config, *, persistent: bool = True) -> bytes:
    """C0 (saved) or C2 (temporary) writing all of 00H..08H."""
    head = E22.CMD_SET if persistent else E22.CMD_SET_TEMP
    registers = encode_registers(config)
    with encoding("E22 write command", FrameEncodeError):
        return COMMAND.build(dict(head=head, start=0, length=len(registers), registers=registers))


def build_read(start: int = 0, length: int = E22.REGISTER_COUNT) -> bytes:
    with encoding("E22 read command", FrameEncodeError):
        return COMMAND.build(dict(head=E22.CMD_READ, start=start, length=length, registers=None))


def reply_length(command: bytes) -> int:
    """How many bytes the module answers to `command` (C1 + start + length + data)."""
    return 3 + command[2]


def parse_reply(data: bytes) -> tuple[int, bytes]:
    """(start, registers) from a C1 reply; RadioError for FF FF FF, FrameError otherwise."""
    if data.startswith(E22.WRONG_FORMAT):
        raise RadioError("E22 answered FF FF FF (wrong command format): is it in configuration mode?")
    with decoding(f"E22 register reply {data.hex() or '(nothing)'}", FrameError):
        reply = REPLY.parse(data)
    return reply.start, reply.registers


def parse_rssi(value: int) -> int:
    """RSSI byte to dBm: dBm = -(256 - value) ("7.2", REG1 bit 5 / REG3 bit 7)."""
    return -(256 - value)


def new_framer(sub_packet: int) -> StreamFramer:
    return StreamFramer(FRAME_MAGIC, sub_packet)


def transport_overhead() -> int:
    """Bytes our framing adds around each link frame on the modem (stream header + radio id)."""
    return len(new_framer(E22.SUB_PACKET_SIZES[0]).frame(b"")) + TRANSPORT_HEADER_LEN


def link_mtu(sub_packet: int) -> int:
    """Largest link frame that fits one air packet with our framing around it."""
    return sub_packet - transport_overhead()


def modem_airtime(frame_len: int, params: LoRaParams) -> float:
    """Seconds on air for one link frame: our framing and the module header counted."""
    return time_on_air(E22.MODULE_HEADER_LEN + transport_overhead() + frame_len, params)


class E22Driver:
    """RadioDriver for an E22 in transparent transmission mode on a serial port.

    `mode_pins` says how the driver reaches M0/M1: None (set by the dongle's
    switch or jumpers), "rts-dtr" (bare module on a USB-UART adapter, RTS# -> M0,
    DTR# -> M1, see hardware/schematics/e22-usb-uart.md) or "software" (REG1
    bit 4 enabled once, modes switched by C0 C1 C2 C3 02 <mode>). A pty has no
    modem-control lines: "rts-dtr" there is a tolerated no-op and `pins_work`
    stays False, so `configure()` then needs `confirm_config_mode=True`.

    `config` must match the module's registers (`read_config()` tells): with REG3
    "RSSI byte" on, the driver takes the byte after each frame as its RSSI.
    `modulation` overrides the LoRa parameters the air-rate table gives, for airtime
    and pacing: for a rate whose SF/BW you measured, or a virtual rig's medium.

    `clock` and `sleep` are injected: a virtual rig passes its simulated clock so
    that pacing (one packet on air at a time) and timeouts are in simulated seconds;
    `poll_s` is how long to sleep between reads of an idle port, in that clock.
    """

    name = "e22"

    def __init__(
        self,
        port: str,
        *,
        radio_id: int | None = None,
        node_id: int | None = None,
        config: E22Config | None = None,
        mode_pins: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        serial_factory: Callable[..., serial.Serial] = serial.Serial,
        mode_settle_s: float = 0.05,
        poll_s: float = 0.005,
        modulation: LoRaParams | None = None,
    ) -> None:
        radio_id = radio_id if radio_id is not None else node_id  # see `node_id` below
        if radio_id is None or not 0 <= radio_id <= 0xFFFF:
            raise RadioError(f"E22 radio_id must be 0..65535, got {radio_id}")
        if mode_pins not in (None, "rts-dtr", "software"):
            raise RadioError(f"mode_pins must be None, 'rts-dtr' or 'software', got {mode_pins!r}")
        self.port = port
        self.radio_id = radio_id
        self.config = config or E22Config()
        self.mode_pins = mode_pins
        self.pins_work = False
        self._clock = clock
        self._sleep = sleep
        self._serial_factory = serial_factory
        self._mode_settle_s = mode_settle_s
        self._poll_s = poll_s
        self.modulation = modulation
        self._serial: serial.Serial | None = None
        self._framer = new_framer(self.config.sub_packet)
        self._received: deque[Received] = deque()
        self._held: bytes | None = None      # frame waiting for its RSSI byte
        self._ready_at = 0.0                 # when the module has sent our last packet

    @property
    def node_id(self) -> int:
        """`radio_id`'s old name (also as a keyword above), kept only for tools/node.py;
        delete both once it passes and reads radio_id."""
        return self.radio_id

    # -- RadioDriver ----------------------------------------------------------------
    @property
    def mtu(self) -> int:
        return link_mtu(self.config.sub_packet)

    def airtime(self, frame_len: int) -> float:
        return modem_airtime(frame_len, self.modulation or self.config.lora_params())

    def open(self) -> None:
        self.close()
        try:
            self._serial = self._serial_factory(
                self.port, baudrate=self.config.uart_baudrate, timeout=0, write_timeout=2
            )
        except (serial.SerialException, OSError) as exc:
            raise RadioUnavailable(f"cannot open E22 modem on {self.port}: {exc}") from exc
        self._framer = new_framer(self.config.sub_packet)
        self._received.clear()
        self._held = None
        try:
            self._serial.reset_input_buffer()  # bytes from before we opened are nobody's frames
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise RadioUnavailable(f"E22 modem on {self.port} went away while opening: {exc}") from exc
        if self.mode_pins == "rts-dtr":
            self.pins_work = self._set_pins(Mode.TRANSMISSION)

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None

    def send(self, frame: bytes, *, hop_limit: int | None = None) -> None:
        """Write one link frame as one air packet, after the module sent the previous one
        (the modem has no mesh: every frame reaches direct neighbours only, `hop_limit`
        changes nothing)."""
        if len(frame) > self.mtu:
            raise MessageTooLarge(f"link frame of {len(frame)} B exceeds the E22 MTU of {self.mtu} B")
        data = self._framer.frame(TRANSPORT_HEADER.build(dict(source=self.radio_id)) + frame)
        wait = self._ready_at - self._clock()
        if wait > 0:
            self._sleep(wait)
        started = self._clock()
        self._write(data)  # flush() returns once the UART has sent it (at once on a pty)
        # The module starts sending after the UART goes idle; the next frame waits until
        # this one has left, so the two never share an air packet.
        char_s = 10 / self.config.uart_baudrate
        self._ready_at = started + (len(data) + UART_IDLE_CHARS) * char_s + self.airtime(len(frame))

    def receive(self, timeout: float) -> Received | None:
        deadline = self._clock() + timeout
        while not self._received:
            self._absorb(self._read())
            if self._received:
                break
            remaining = deadline - self._clock()
            if remaining <= 0:
                return None
            self._sleep(min(remaining, self._poll_s))
        return self._received.popleft()

    # -- configuration ----------------------------------------------------------------
    def set_mode(self, mode: Mode) -> bool:
        """Drive M0/M1 (or the software switch); False when the lines cannot be driven."""
        if self.mode_pins == "rts-dtr":
            self.pins_work = self._set_pins(mode)
            return self.pins_work
        if self.mode_pins == "software":
            command = E22.SOFTWARE_SWITCH + bytes([mode])
            self._write(command)
            reply = self._read_exact(len(E22.SOFTWARE_SWITCH_REPLY) + 1, timeout=1.0)
            if reply != E22.SOFTWARE_SWITCH_REPLY + bytes([mode]):
                raise RadioError(
                    f"E22 on {self.port} did not confirm the switch to {mode.name.lower()} mode "
                    f"(got {reply.hex() or 'nothing'}): is REG1 software mode switching enabled?"
                )
            return True
        return False

    def read_config(self, *, confirm_config_mode: bool = False) -> E22Config:
        """Read 00H..08H (CRYPT reads back as 0)."""
        with self._config_mode(confirm_config_mode):
            start, registers = self._exchange(build_read())
        return decode_registers(registers)

    def configure(
        self, config: E22Config, *, persistent: bool = True, confirm_config_mode: bool = False
    ) -> E22Config:
        """Write all registers with C0 (or C2), check the echo, and adopt the config."""
        command = build_write(config, persistent=persistent)
        with self._config_mode(confirm_config_mode):
            _, echoed = self._exchange(command)
        if echoed != command[3:]:
            raise RadioError(
                f"E22 on {self.port} echoed {echoed.hex()} for {command[3:].hex()}: "
                "registers not written as asked"
            )
        self.config = config
        self._framer = new_framer(config.sub_packet)
        return config

    # -- internals ----------------------------------------------------------------
    def _config_mode(self, confirmed: bool) -> "_ConfigSession":
        return _ConfigSession(self, confirmed)

    def _exchange(self, command: bytes) -> tuple[int, bytes]:
        self._write(command)
        expected = reply_length(command)
        reply = self._read_exact(expected, timeout=1.0)
        if reply.startswith(E22.WRONG_FORMAT) or len(reply) == expected:
            return parse_reply(reply)
        raise RadioError(
            f"E22 on {self.port} gave no complete reply to {command[:3].hex()} "
            f"(got {reply.hex() or 'nothing'}): is it in configuration mode at 9600 baud?"
        )

    def _set_pins(self, mode: Mode) -> bool:
        port = self._require_open()
        try:
            # USB-UART outputs are active low: asserting RTS drives M0 to 0.
            port.rts = not mode.m0
            port.dtr = not mode.m1
        except (serial.SerialException, OSError):
            return False
        self._sleep(self._mode_settle_s)
        return True

    def _require_open(self) -> serial.Serial:
        if self._serial is None:
            raise RadioUnavailable(f"E22 modem on {self.port} is not open")
        return self._serial

    def _write(self, data: bytes) -> None:
        port = self._require_open()
        try:
            port.write(data)
            port.flush()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise RadioUnavailable(f"E22 modem on {self.port} went away while writing: {exc}") from exc

    def _read(self) -> bytes:
        port = self._require_open()
        try:
            return port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise RadioUnavailable(f"E22 modem on {self.port} went away while reading: {exc}") from exc

    def _read_exact(self, count: int, timeout: float) -> bytes:
        deadline = self._clock() + timeout
        data = b""
        while len(data) < count and not data.startswith(E22.WRONG_FORMAT):
            data += self._read()
            if len(data) >= count or self._clock() >= deadline:
                break
            self._sleep(self._poll_s)
        return data

    def _absorb(self, data: bytes) -> None:
        """Feed UART bytes to the framer (stray bytes come out as `Noise` and are dropped).

        With REG3 "RSSI byte" on, the module appends one byte to every received
        packet; we send one frame per packet, so the byte right after a frame is its RSSI.
        """
        if not self.config.rssi_byte:
            for event in self._framer.feed(data):
                if isinstance(event, bytes):
                    self._accept(event, None)
            return
        for byte in data:
            if self._held is not None:
                self._accept(self._held, parse_rssi(byte))
                self._held = None
                continue
            for event in self._framer.feed(bytes([byte])):
                if isinstance(event, bytes):
                    self._held = event

    def _accept(self, payload: bytes, rssi: int | None) -> None:
        if len(payload) < TRANSPORT_HEADER_LEN:
            return  # a frame too short for our header is not ours: the framer resynchronises
        source = TRANSPORT_HEADER.parse(payload).source
        self._received.append(Received(payload[TRANSPORT_HEADER_LEN:], source, rssi, None, 0))


class _ConfigSession:
    """Configuration mode for the duration of a `with`: 9600 8N1, mode switched back after."""

    def __init__(self, driver: E22Driver, confirmed: bool) -> None:
        self.driver = driver
        self.confirmed = confirmed

    def __enter__(self) -> "_ConfigSession":
        driver = self.driver
        port = driver._require_open()
        if driver.mode_pins == "software":
            driver.set_mode(Mode.CONFIGURATION)
        elif not driver.set_mode(Mode.CONFIGURATION) and not self.confirmed:
            raise RadioError(
                f"cannot put the E22 on {driver.port} into configuration mode: "
                + ("its RTS/DTR lines cannot be driven (a pty or an adapter without them)"
                   if driver.mode_pins == "rts-dtr" else "no mode pins are wired (mode_pins=None)")
                + "; set M1=1, M0=0 by switch or jumper, then confirm the module is in configuration mode"
            )
        port.baudrate = E22.CONFIG_BAUDRATE
        port.reset_input_buffer()
        return self

    def __exit__(self, *exc_info: object) -> None:
        driver = self.driver
        if driver._serial is None:
            return
        try:
            if driver.mode_pins is not None:
                driver.set_mode(Mode.TRANSMISSION)
        finally:
            if driver._serial is not None:
                driver._serial.baudrate = driver.config.uart_baudrate

