"""LoRa time on air (Semtech AN1200.13) and the Meshtastic modem presets.

`time_on_air(payload_len, params)` is the exact formula of the Semtech application
note "LoRa Modem Designer's Guide" (AN1200.13), the same one the Meshtastic firmware
uses (`RadioInterface::getPacketTime`):

    Tsym          = 2^SF / BW
    Tpreamble     = (n_preamble + 4.25) * Tsym
    payloadSymbNb = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) * cr, 0)
    T             = Tpreamble + payloadSymbNb * Tsym

with PL the PHY payload in bytes, IH = 1 for implicit header, DE = 1 with low data
rate optimisation and `cr` the coding-rate denominator (5..8 for 4/5..4/8). The
formula is for SX127x-style modems at SF6..SF12; SX126x SF5/SF6 differ and are not
covered.

Meshtastic presets are transcribed from the firmware's `modemPresetToParams()`
(src/mesh/MeshRadio.h; in firmware 2.7 the switch in RadioInterface::applyModemConfig),
non-wide (sub-GHz) LoRa, with the firmware's 16-symbol preamble
(`preambleLengthDefault`), explicit header and CRC on. Which firmware each row follows:

- SHORT_*, MEDIUM_FAST/SLOW, LONG_FAST/MODERATE/SLOW: firmware 2.7 (v2.7.11), unchanged since.
- LONG_TURBO: firmware 2.7.17 and later (2.7.11 has no case for it and runs LONG_FAST).
- VERY_LONG_SLOW: as firmware 2.7 treats it, LONG_FAST (no case in the switch: the
  default branch); firmware before 2.5 ran it as SF12 / 62.5 kHz / 4/8.
- LITE_FAST/SLOW, NARROW_FAST/SLOW: firmware 2.8 (develop, MeshRadio.h), the EU narrow
  presets; firmware 2.7.23-2.7.26 knows their names but runs them as LONG_FAST.

MEDIUM_TURBO and TINY_FAST/SLOW (firmware 2.8) are left out: the pinned meshtastic
library has no ModemPreset value for them, so no device config can name them.

A Meshtastic packet on air is the 16 B `PacketHeader` followed by the encrypted
`Data` protobuf (AES-CTR for channel traffic: no growth). `meshtastic_packet_len(n)`
counts that protobuf exactly for an n-byte payload on a given port number, including
the `bitfield` field that current firmware (`Router::perhapsEncode`) adds to every
packet a node originates.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType

from .errors import ConfigError, MessageTooLarge

# Above this symbol time the modem must use low data rate optimisation (AN1200.13).
LDRO_SYMBOL_TIME_S = 16e-3

# Largest LoRa PHY payload of the SX12xx modems (Meshtastic MAX_LORA_PAYLOAD_LEN).
MAX_LORA_PAYLOAD = 255

MESHTASTIC_PREAMBLE_SYMBOLS = 16
MESHTASTIC_HEADER_LEN = 16  # PacketHeader: to, from, id (3 x 4 B), flags, channel, next_hop, relay_node
PRIVATE_APP_PORTNUM = 256  # meshtastic.portnums_pb2.PRIVATE_APP: the port BlockIoT traffic uses

# Field tags (field number << 3 | wire type) of meshtastic.Data as encoded on air.
_TAG_LEN = 1  # portnum (1), payload (2) and bitfield (9) all have one-byte tags
_BITFIELD_LEN = _TAG_LEN + 1  # bitfield value < 128: one varint byte


@dataclass(frozen=True)
class LoRaParams:
    """The modem settings that decide time on air.

    `cr` is the coding-rate denominator: 5..8 for 4/5..4/8. `low_data_rate_optimize`
    None means what the modem does by default: on when the symbol time exceeds 16 ms.
    """

    sf: int
    bw_hz: float
    cr: int
    preamble_symbols: int
    explicit_header: bool = True
    crc: bool = True
    low_data_rate_optimize: bool | None = None

    def __post_init__(self) -> None:
        if not 6 <= self.sf <= 12:
            raise ConfigError(f"spreading factor must be 6..12, not {self.sf}")
        if not self.bw_hz > 0:
            raise ConfigError(f"bandwidth must be positive, not {self.bw_hz} Hz")
        if not 5 <= self.cr <= 8:
            raise ConfigError(f"coding rate must be 5..8 (4/5..4/8), not {self.cr}")
        if self.preamble_symbols < 0:
            raise ConfigError(f"preamble must be >= 0 symbols, not {self.preamble_symbols}")

    @property
    def symbol_time_s(self) -> float:
        return 2**self.sf / self.bw_hz

    @property
    def ldro(self) -> bool:
        """Whether low data rate optimisation is in effect."""
        if self.low_data_rate_optimize is None:
            return self.symbol_time_s > LDRO_SYMBOL_TIME_S
        return self.low_data_rate_optimize


def payload_symbols(payload_len: int, params: LoRaParams) -> int:
    """Number of payload symbols (payloadSymbNb) for a PHY payload of `payload_len` bytes."""
    if not 0 <= payload_len <= MAX_LORA_PAYLOAD:
        raise MessageTooLarge(f"a LoRa payload is 0..{MAX_LORA_PAYLOAD} bytes, not {payload_len}")
    numerator = (
        8 * payload_len - 4 * params.sf + 28 + 16 * params.crc - 20 * (not params.explicit_header)
    )
    denominator = 4 * (params.sf - 2 * params.ldro)
    blocks = -(-numerator // denominator)  # exact integer ceil
    return 8 + max(blocks * params.cr, 0)


def time_on_air(payload_len: int, params: LoRaParams) -> float:
    """Seconds on air of one LoRa packet with a PHY payload of `payload_len` bytes."""
    symbols = params.preamble_symbols + 4.25 + payload_symbols(payload_len, params)
    return symbols * params.symbol_time_s


def _meshtastic(sf: int, bw_hz: float, cr: int) -> LoRaParams:
    return LoRaParams(sf=sf, bw_hz=bw_hz, cr=cr, preamble_symbols=MESHTASTIC_PREAMBLE_SYMBOLS)


PRESETS: MappingProxyType[str, LoRaParams] = MappingProxyType(
    {
        "SHORT_TURBO": _meshtastic(7, 500e3, 5),
        "SHORT_FAST": _meshtastic(7, 250e3, 5),
        "SHORT_SLOW": _meshtastic(8, 250e3, 5),
        "MEDIUM_FAST": _meshtastic(9, 250e3, 5),
        "MEDIUM_SLOW": _meshtastic(10, 250e3, 5),
        "LONG_TURBO": _meshtastic(11, 500e3, 8),
        "LONG_FAST": _meshtastic(11, 250e3, 5),
        "LONG_MODERATE": _meshtastic(11, 125e3, 8),
        "LONG_SLOW": _meshtastic(12, 125e3, 8),
        "VERY_LONG_SLOW": _meshtastic(11, 250e3, 5),  # firmware 2.7: the default branch, LONG_FAST
        "LITE_FAST": _meshtastic(9, 125e3, 5),  # firmware 2.8
        "LITE_SLOW": _meshtastic(10, 125e3, 5),  # firmware 2.8
        "NARROW_FAST": _meshtastic(7, 62.5e3, 6),  # firmware 2.8
        "NARROW_SLOW": _meshtastic(8, 62.5e3, 6),  # firmware 2.8
    }
)


def canonical_preset_name(name: str) -> str:
    """`LongFast`, `long_fast`, `LONG-FAST` and `longfast` all -> `LONG_FAST`."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    snake = re.sub(r"[\s-]+", "_", snake).upper()
    if snake in PRESETS:
        return snake
    squashed = snake.replace("_", "")
    for key in PRESETS:
        if key.replace("_", "") == squashed:
            return key
    raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(preset_display_names())}")


def preset(name: str) -> LoRaParams:
    """The LoRa parameters of a Meshtastic preset, by any spelling of its name."""
    return PRESETS[canonical_preset_name(name)]


def preset_display_name(name: str) -> str:
    """A preset's name as Meshtastic shows it: LONG_FAST -> LongFast."""
    return canonical_preset_name(name).title().replace("_", "")


def preset_display_names() -> list[str]:
    """All preset names as Meshtastic shows them: ShortTurbo, ShortFast, ..."""
    return [preset_display_name(key) for key in PRESETS]


def _varint_len(value: int) -> int:
    return max(1, math.ceil(value.bit_length() / 7))


def meshtastic_packet_len(payload_len: int, portnum: int = PRIVATE_APP_PORTNUM) -> int:
    """PHY payload bytes of a Meshtastic packet carrying `payload_len` bytes of Data payload.

    16 B header + Data protobuf: portnum (tag + varint), payload (tag + varint length
    + bytes, omitted when empty, as proto3 does) and bitfield (tag + 1 B).
    Raises `MessageTooLarge` when the packet exceeds the 255 B LoRa limit.
    """
    if payload_len < 0:
        raise MessageTooLarge(f"payload length cannot be negative ({payload_len})")
    data = _TAG_LEN + _varint_len(portnum) + _BITFIELD_LEN
    if payload_len:
        data += _TAG_LEN + _varint_len(payload_len) + payload_len
    total = MESHTASTIC_HEADER_LEN + data
    if total > MAX_LORA_PAYLOAD:
        raise MessageTooLarge(
            f"{payload_len} B does not fit one Meshtastic packet "
            f"(max {meshtastic_max_payload(portnum)} B on port {portnum})"
        )
    return total


def meshtastic_max_payload(portnum: int = PRIVATE_APP_PORTNUM) -> int:
    """Largest Data payload that fits one Meshtastic packet on `portnum` (231 B on PRIVATE_APP)."""
    fixed = MESHTASTIC_HEADER_LEN + _TAG_LEN + _varint_len(portnum) + _BITFIELD_LEN + _TAG_LEN
    room = MAX_LORA_PAYLOAD - fixed  # for the length varint and the payload bytes
    size = room - 1
    while size + _varint_len(size) > room:
        size -= 1
    return size


# Bytes Meshtastic adds to a Data payload of 128 B or more on PRIVATE_APP (one fewer below 128 B).
MESHTASTIC_OVERHEAD = meshtastic_packet_len(128) - 128


def meshtastic_time_on_air(
    payload_len: int, preset_name: str, portnum: int = PRIVATE_APP_PORTNUM
) -> float:
    """Seconds on air of one Meshtastic packet carrying `payload_len` bytes of Data payload."""
    return time_on_air(meshtastic_packet_len(payload_len, portnum), preset(preset_name))
