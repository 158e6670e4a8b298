"""The HIL hardware map: which real radios are attached, read from a TOML file.

Modelled on Zephyr twister's hardware map: one `[[radio]]` table per attached
board, naming its serial port, the personality it speaks and, optionally, the
board and a free-text role::

    [[radio]]
    port = "/dev/serial/by-id/usb-Heltec_V3-if00"
    personality = "meshtastic"      # or "modem"
    board = "heltec-v3"
    role = "gateway"

Parsing is pure (`parse_hardware_map(text, source)`); `load_hardware_map(path)`
only adds the file read. Every mistake raises `HardwareMapError` naming the file,
the entry and the field, never a bare KeyError or TOML traceback.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from blockiot.radio.errors import BlockIoTError

PERSONALITY_NAMES = ("meshtastic", "modem")
_KNOWN_KEYS = frozenset({"port", "personality", "board", "role", "baudrate"})


class HardwareMapError(BlockIoTError):
    """The hardware map file is missing, not TOML, or has a bad `[[radio]]` entry."""


@dataclass(frozen=True)
class HardwareRadio:
    """One attached radio as the map declares it."""

    port: str
    personality: str
    board: str = ""
    role: str = ""
    baudrate: int | None = None

    def describe(self) -> str:
        board = f" ({self.board})" if self.board else ""
        return f"{self.personality} radio{board} on {self.port}"


def parse_hardware_map(text: str, source: str = "<hardware map>") -> tuple[HardwareRadio, ...]:
    """Parse hardware-map TOML text into radios, in file order."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareMapError(f"{source}: not valid TOML: {exc}") from exc
    unknown_tables = sorted(set(data) - {"radio"})
    if unknown_tables:
        raise HardwareMapError(
            f"{source}: unknown top-level key(s) {', '.join(unknown_tables)}; "
            "declare radios as [[radio]] tables"
        )
    entries = data.get("radio", [])
    if not isinstance(entries, list):
        raise HardwareMapError(f"{source}: 'radio' must be an array of tables: write [[radio]]")
    return tuple(_parse_entry(entry, index, source) for index, entry in enumerate(entries, 1))


def load_hardware_map(path: str | Path) -> tuple[HardwareRadio, ...]:
    """Read and parse a hardware map file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise HardwareMapError(
            f"hardware map {path} does not exist (use --hil virtual for virtual radios)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise HardwareMapError(f"cannot read hardware map {path}: {exc}") from exc
    return parse_hardware_map(text, str(path))


def _parse_entry(entry: object, index: int, source: str) -> HardwareRadio:
    where = f"{source}: radio #{index}"
    if not isinstance(entry, dict):
        raise HardwareMapError(f"{where}: must be a table")
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise HardwareMapError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN_KEYS))}"
        )
    port = entry.get("port")
    if not isinstance(port, str) or not port:
        raise HardwareMapError(f"{where}: 'port' is required, e.g. port = \"/dev/ttyUSB0\"")
    personality = entry.get("personality")
    if personality not in PERSONALITY_NAMES:
        raise HardwareMapError(
            f"{where}: 'personality' must be one of {', '.join(PERSONALITY_NAMES)}, "
            f"got {personality!r}"
        )
    for key in ("board", "role"):
        if not isinstance(entry.get(key, ""), str):
            raise HardwareMapError(f"{where}: {key!r} must be a string")
    baudrate = entry.get("baudrate")
    if baudrate is not None and (not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate <= 0):
        raise HardwareMapError(f"{where}: 'baudrate' must be a positive integer")
    return HardwareRadio(
        port=port,
        personality=personality,
        board=entry.get("board", ""),
        role=entry.get("role", ""),
        baudrate=baudrate,
    )
