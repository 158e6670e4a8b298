"""The virtual E22 modem: a HIL personality that behaves like an E22-900T22S on its UART.

Sans-IO like every personality: bytes from the host and packets from the simulated
medium come in with `now`, `ToHost` / `ToAir` actions come out. It follows the
vendor manual ("E22-xxxT22S series product user manual") as radio/drivers/e22.py
cites it:

* Working modes ("6. Working Mode") are set by `set_mode()`, the stand-in for the
  M0/M1 pins: a pty has no modem-control lines, so the driver's RTS/DTR toggling
  on a pty is a tolerated no-op and whoever holds the module object sets the mode.
  When REG1 "software mode switching" is on, C0 C1 C2 C3 02 <mode> from the host
  switches modes in-band, as on the real module; the rig's modules have it on,
  which is how a host configures them through a pty.
* Configuration mode ("7.1 Command format"): C0/C2 + start + length + registers
  write (C0 saved, C2 temporary), C1 + start + length reads 00H..08H and the
  product information at 80H..86H; the reply is C1 + start + length + registers and
  a malformed or out-of-range command is answered FF FF FF. CRYPT reads back as 0.
* Transmission mode (transparent): host bytes are buffered and cut into air
  packets at the sub-packet size (REG1 bits 7-6) or when the UART has been idle
  for `uart_idle_chars` character times; one packet is on air at a time, later
  ones wait. The module's buffer holds 1000 bytes ("5.6.2 Wireless transmitting
  indication", E22-230T22D manual); host bytes beyond it are lost and counted in
  `overflowed`, as the manual warns for data sent faster than the air rate. A received packet goes to the host as its bytes, followed by one RSSI
  byte when REG3 bit 7 is set (value = 256 + dBm). With REG1 bit 5 the in-band
  C0 C1 C2 C3 <start> <length> read of the ambient-noise / last-packet RSSI works.
* Filtering: a packet is received when channel and NETID match and the addresses
  match or either is FFFF ("the module will not perform address filtering").

What a real module does that this one does not: WOR, LBT, relay and fixed
transmission are stored but not acted on; the UART baud rate is not enforced on a
pty; the idle timeout that ends a packet is not published by Ebyte (ours is a
parameter); the module's real on-air header is not documented, so ours is an
8-byte stand-in of the measured length carrying channel, NETID and address.
On a rig, a packet's time on air is the medium's (the modulation of the radio's
`RadioSetup.preset`, shared with the rig's other radios of that preset), not the one
REG0's air rate would give.
"""
from __future__ import annotations

from collections import deque

import construct as cs

from blockiot.hil.sim.medium import Delivery
from blockiot.hil.personality import RadioSetup, ToAir, ToHost
from blockiot.radio.airtime import LoRaParams, preset, time_on_air
from blockiot.radio.drivers.e22 import (
    E22,
    UART_IDLE_CHARS,
    E22Config,
    Mode,
    decode_registers,
    encode_registers,
)
from blockiot.radio.codec import decoding
from blockiot.radio.errors import FrameError, RadioError

# Stand-in for the module's own header on air (length as measured, content ours).
AIR_HEADER = cs.Struct(
    "marker" / cs.Const(b"\x2c"),
    "channel" / cs.Int8ub,
    "seq" / cs.Int16ub,
    "net_id" / cs.Int8ub,
    "address" / cs.Int16ub,
    "length" / cs.Int8ub,
)
assert AIR_HEADER.sizeof() == E22.MODULE_HEADER_LEN

BROADCAST_ADDRESS = 0xFFFF
PID_START = 0x80
PID_LEN = 7
NOISE_FLOOR_DBM = -110.0     # what the ambient-noise register reports in the simulation
RSSI_REGISTER_START = 0x00   # "the address can only start from 00"
RSSI_REGISTER_COUNT = 2      # 0x00 ambient noise, 0x01 RSSI of the last packet
BUFFER_BYTES = 1000          # the module's internal buffer


def rssi_byte(dbm: float) -> int:
    """dBm to the module's RSSI byte (inverse of dBm = -(256 - value)), clamped to a byte."""
    return max(0, min(255, round(256 + dbm)))


class VirtualE22:
    """One simulated E22 module: register file, mode, UART buffer and transmit queue."""

    name = "modem"

    def __init__(
        self,
        config: E22Config | None = None,
        *,
        mode: Mode = Mode.TRANSMISSION,
        uart_idle_chars: float = UART_IDLE_CHARS,
        product_info: bytes = bytes(PID_LEN),
        modulation: LoRaParams | None = None,
    ) -> None:
        if len(product_info) != PID_LEN:
            raise RadioError(f"E22 product information is {PID_LEN} bytes")
        self.saved = config or E22Config()
        self.config = self.saved
        self.mode = Mode(mode)
        self.uart_idle_chars = uart_idle_chars
        self.product_info = bytes(product_info)
        self.modulation = modulation
        self.overflowed = 0
        self.last_rssi_dbm: float | None = None
        self._uart = bytearray()          # host bytes not yet cut into a packet
        self._last_host_at: float | None = None
        self._outbox: deque[bytes] = deque()
        self._busy_until = 0.0
        self._seq = 0

    # -- the pins -------------------------------------------------------------------
    def set_mode(self, mode: Mode, now: float | None = None) -> list:
        """Change mode as M0/M1 would; buffered host data is sent first, as the manual says."""
        if self.mode in (Mode.TRANSMISSION, Mode.WOR) and self._uart:
            self._cut_all()
        self.mode = Mode(mode)
        self._last_host_at = None
        return self.poll(now) if now is not None else []

    def power_cycle(self) -> None:
        """Lose temporary (C2) registers and every buffer, as a power-off would."""
        self.config = self.saved
        self._uart.clear()
        self._outbox.clear()
        self._last_host_at = None
        self._busy_until = 0.0

    # -- Personality ----------------------------------------------------------------
    def from_host(self, data: bytes, now: float) -> list:
        room = BUFFER_BYTES - self._buffered()
        if len(data) > room and self.mode != Mode.CONFIGURATION:
            self.overflowed += len(data) - max(room, 0)
            data = data[:max(room, 0)]
        self._uart += data
        self._last_host_at = now
        if self.mode == Mode.CONFIGURATION:
            actions = self._run_commands()
        else:
            actions = self._in_band_commands()
            if self.mode == Mode.CONFIGURATION:   # switched in-band: the rest are commands
                actions += self._run_commands()
            elif self.mode == Mode.DEEP_SLEEP:    # the UART is off: bytes are lost
                self._uart.clear()
            else:
                while len(self._uart) >= self.config.sub_packet:
                    self._cut(self.config.sub_packet)
        return actions + self.poll(now)

    def from_air(self, delivery: Delivery, now: float) -> list:
        if self.mode not in (Mode.TRANSMISSION, Mode.WOR):
            return []
        try:
            with decoding("E22 air packet", FrameError):
                header = AIR_HEADER.parse(delivery.packet)
        except FrameError:
            return []  # not a module's packet: the module does not hear it
        payload = delivery.packet[E22.MODULE_HEADER_LEN:]
        if header.length != len(payload) or not self._accepts(header):
            return []
        self.last_rssi_dbm = delivery.rssi
        if self.config.rssi_byte:
            payload += bytes([rssi_byte(delivery.rssi)])
        return [ToHost(payload)]

    def poll(self, now: float) -> list:
        if self._uart and self._last_host_at is not None and self.mode in (Mode.TRANSMISSION, Mode.WOR):
            if now >= self._last_host_at + self._idle_s:
                self._cut_all()
        actions: list = []
        if self._outbox and now >= self._busy_until:
            packet = self._outbox.popleft()
            self._busy_until = now + time_on_air(len(packet), self.modulation or self.config.lora_params())
            actions.append(ToAir(packet))
        return actions

    def next_deadline(self) -> float | None:
        deadlines = []
        if self._outbox:
            deadlines.append(self._busy_until)
        if self._uart and self._last_host_at is not None and self.mode in (Mode.TRANSMISSION, Mode.WOR):
            deadlines.append(self._last_host_at + self._idle_s)
        return min(deadlines) if deadlines else None

    # -- transmission ---------------------------------------------------------------
    def _buffered(self) -> int:
        """Host bytes not yet on air: the UART buffer and the packets waiting their turn."""
        return len(self._uart) + sum(len(p) - E22.MODULE_HEADER_LEN for p in self._outbox)

    @property
    def _idle_s(self) -> float:
        return self.uart_idle_chars * 10 / self.config.uart_baudrate

    def _cut_all(self) -> None:
        while self._uart:
            self._cut(min(len(self._uart), self.config.sub_packet))

    def _cut(self, count: int) -> None:
        payload = bytes(self._uart[:count])
        del self._uart[:count]
        self._seq = (self._seq + 1) & 0xFFFF
        header = AIR_HEADER.build(dict(
            channel=self.config.channel, seq=self._seq, net_id=self.config.net_id,
            address=self.config.address, length=len(payload),
        ))
        self._outbox.append(header + payload)

    def _accepts(self, header: cs.Container) -> bool:
        if header.channel != self.config.channel or header.net_id != self.config.net_id:
            return False
        return BROADCAST_ADDRESS in (header.address, self.config.address) or header.address == self.config.address

    # -- commands -------------------------------------------------------------------
    def _in_band_commands(self) -> list:
        """C0 C1 C2 C3 ... at the head of the UART buffer: software switch or RSSI read."""
        prefix = E22.SOFTWARE_SWITCH[:4]
        if not self._uart.startswith(prefix) or len(self._uart) < 6:
            return []
        if self.config.software_mode_switch and self._uart[4] == 0x02 and self._uart[5] <= Mode.DEEP_SLEEP:
            mode = Mode(self._uart[5])
            del self._uart[:6]
            self.mode = mode
            return [ToHost(E22.SOFTWARE_SWITCH_REPLY + bytes([mode]))]
        if self.config.ambient_noise_rssi and self.mode != Mode.CONFIGURATION:
            start, length = self._uart[4], self._uart[5]
            del self._uart[:6]
            if start != RSSI_REGISTER_START or not 1 <= length <= RSSI_REGISTER_COUNT:
                return [ToHost(E22.WRONG_FORMAT)]
            last = self.last_rssi_dbm if self.last_rssi_dbm is not None else NOISE_FLOOR_DBM
            values = bytes([rssi_byte(NOISE_FLOOR_DBM), rssi_byte(last)])[:length]
            return [ToHost(bytes([E22.CMD_READ, start, length]) + values)]
        return []

    def _run_commands(self) -> list:
        actions: list = []
        while self._uart:
            if self._uart.startswith(E22.SOFTWARE_SWITCH[:4]):
                if len(self._uart) < 6:
                    break
                switched = self._in_band_commands()
                if not switched:
                    del self._uart[:6]
                    switched = [ToHost(E22.WRONG_FORMAT)]
                actions += switched
                if self.mode != Mode.CONFIGURATION:
                    break
                continue
            head = self._uart[0]
            if head not in (E22.CMD_SET, E22.CMD_READ, E22.CMD_SET_TEMP):
                self._uart.clear()
                actions.append(ToHost(E22.WRONG_FORMAT))
                break
            if len(self._uart) < 3:
                break
            start, length = self._uart[1], self._uart[2]
            needed = 3 if head == E22.CMD_READ else 3 + length
            if len(self._uart) < needed:
                break
            command = bytes(self._uart[:needed])
            del self._uart[:needed]
            actions.append(ToHost(self._execute(head, start, length, command[3:])))
        return actions

    def _execute(self, head: int, start: int, length: int, values: bytes) -> bytes:
        if head == E22.CMD_READ:
            data = self._read_registers(start, length)
            return E22.WRONG_FORMAT if data is None else bytes([E22.CMD_READ, start, length]) + data
        if length == 0 or start + length > E22.REGISTER_COUNT:
            return E22.WRONG_FORMAT
        registers = bytearray(encode_registers(self.config))
        registers[start:start + length] = values
        try:
            config = decode_registers(bytes(registers))
        except RadioError:
            return E22.WRONG_FORMAT
        self.config = config
        if head == E22.CMD_SET:
            self.saved = config
        return bytes([E22.CMD_READ, start, length]) + values

    def _read_registers(self, start: int, length: int) -> bytes | None:
        if length == 0:
            return None
        if start + length <= E22.REGISTER_COUNT:
            registers = bytearray(encode_registers(self.config))
            registers[7:9] = b"\x00\x00"   # CRYPT_H/CRYPT_L: "write only, read returns 0"
            return bytes(registers[start:start + length])
        if PID_START <= start and start + length <= PID_START + PID_LEN:
            return self.product_info[start - PID_START:start - PID_START + length]
        return None


def virtual_e22(setup: RadioSetup) -> VirtualE22:
    """The rig's factory: a factory-configured E22 in transmission mode, on the rig's modulation.

    One register differs from the factory's: REG1 software mode switching is on (as if
    enabled once with Ebyte's tool), so a host can reach configuration mode over the
    pty with `E22Driver(mode_pins="software")`; the rig has no pins to drive.
    """
    return VirtualE22(E22Config(software_mode_switch=True), modulation=preset(setup.preset))
