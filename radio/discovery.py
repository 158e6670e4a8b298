"""Finding attached LoRa radios: USB ids from pyusb and serial ports from pyserial.

`discover()` joins two views: `serial.tools.list_ports.comports()` (ports a driver
can open, with their USB VID:PID) and `usb.core.find(find_all=True)` (every USB
device, including a board whose serial driver is missing or that sits in its
bootloader). Without libusb, pyusb raises `NoBackendError`; discovery then falls
back to pyserial alone and says so in `notes`. Both enumerations are parameters,
so tests pass fakes and need no hardware.

`KNOWN_BOARDS` maps VID:PID to a board guess and the personality it most likely
speaks. Ids are those Meshtastic's own device table uses
(meshtastic/supported_device.py, python package 2.7) plus common USB-UART bridges;
several boards share a bridge chip, so the guess names them all.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable

from blockiot.radio.errors import RadioError, RadioUnavailable

MESHTASTIC = "meshtastic"
MODEM = "modem"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Board:
    """What a VID:PID most likely is."""

    guess: str
    personality: str


KNOWN_BOARDS: MappingProxyType[tuple[int, int], Board] = MappingProxyType({
    (0x239A, 0x8029): Board("RAK4631 (nRF52840, Meshtastic firmware)", MESHTASTIC),
    (0x239A, 0x0029): Board("nRF52840 board, Adafruit bootloader id (RAK4631, T-Echo)", MESHTASTIC),
    (0x10C4, 0xEA60): Board("CP210x bridge: Heltec V1/V2/V3, T-Lora 1.3, Meshtastic DIY", MESHTASTIC),
    (0x1A86, 0x55D4): Board("CH9102 bridge: LilyGO T-Beam, T-Lora V2, Nano G1", MESHTASTIC),
    (0x303A, 0x1001): Board("ESP32-S3 native USB: Heltec tracker, T-Deck, Station G2", MESHTASTIC),
    (0x2886, 0x0059): Board("Seeed XIAO ESP32-S3", MESHTASTIC),
    (0x1A86, 0x7523): Board("CH340 bridge: Ebyte E22-900T22U dongle (or a RAK11200)", MODEM),
    (0x0403, 0x6001): Board("FTDI FT232R USB-UART: a bare E22 module on an adapter?", MODEM),
})

WHAT_TO_PLUG_IN = (
    "plug in a Meshtastic board (Heltec V3, RAK4631, T-Beam) or an Ebyte E22-900T22U "
    "USB dongle; on Linux check `dmesg` and that you may open serial ports (group dialout)"
)


class DiscoveryError(RadioError):
    """`--port auto` could not choose one radio: none attached, or several."""


class NoRadioFound(DiscoveryError, RadioUnavailable):
    """`--port auto` found nothing to open."""


@dataclass(frozen=True)
class Candidate:
    """One attached device that may be a radio. `port` is None when no serial port is bound."""

    port: str | None
    vid: int | None
    pid: int | None
    description: str
    board: str
    personality: str

    @property
    def vid_pid(self) -> str:
        if self.vid is None or self.pid is None:
            return "-"
        return f"{self.vid:04x}:{self.pid:04x}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"vid_pid": self.vid_pid}


@dataclass(frozen=True)
class Discovery:
    candidates: tuple[Candidate, ...]
    notes: tuple[str, ...]

    @property
    def openable(self) -> tuple[Candidate, ...]:
        """Candidates with a serial port."""
        return tuple(c for c in self.candidates if c.port is not None)


def _serial_ports() -> Iterable[Any]:
    from serial.tools import list_ports

    return list_ports.comports()


def _usb_devices() -> Iterable[Any]:
    import usb.core

    return list(usb.core.find(find_all=True))


def classify(vid: int | None, pid: int | None) -> Board:
    board = KNOWN_BOARDS.get((vid, pid)) if vid is not None and pid is not None else None
    return board or Board("unknown USB serial device", UNKNOWN)


def discover(
    *,
    comports: Callable[[], Iterable[Any]] = _serial_ports,
    usb_devices: Callable[[], Iterable[Any]] = _usb_devices,
) -> Discovery:
    """Every USB serial port, plus known radios that have a USB id but no port."""
    notes: list[str] = []
    candidates: list[Candidate] = []
    seen: set[tuple[int, int]] = set()
    for info in sorted(comports(), key=lambda p: p.device):
        if info.vid is None:
            continue  # a built-in UART (ttyS*), not a USB radio
        board = classify(info.vid, info.pid)
        seen.add((info.vid, info.pid))
        description = info.description if info.description and info.description != "n/a" else ""
        candidates.append(Candidate(info.device, info.vid, info.pid, description, board.guess, board.personality))
    try:
        devices = list(usb_devices())
    except Exception as exc:  # pyusb's NoBackendError, or a libusb access error
        if type(exc).__name__ == "NoBackendError":
            notes.append("libusb not found (pyusb has no backend): listing serial ports from pyserial only")
        else:
            notes.append(f"USB enumeration failed ({exc}): listing serial ports from pyserial only")
        devices = []
    for device in devices:
        key = (device.idVendor, device.idProduct)
        if key in KNOWN_BOARDS and key not in seen:
            seen.add(key)
            board = KNOWN_BOARDS[key]
            candidates.append(Candidate(None, key[0], key[1], "", board.guess, board.personality))
            notes.append(
                f"{key[0]:04x}:{key[1]:04x} ({board.guess}) is on USB but has no serial port: "
                "its driver is missing, or it is in its bootloader"
            )
    return Discovery(tuple(candidates), tuple(notes))


def resolve_port(port: str, *, personality: str | None = None, discovery: Discovery | None = None) -> str:
    """`port` itself, or for "auto" the one attached radio (of `personality`, if given).

    Raises `DiscoveryError` listing the candidates when there is none or more than one.
    """
    if port != "auto":
        return port
    found = discovery if discovery is not None else discover()
    openable = [c for c in found.openable if personality is None or c.personality in (personality, UNKNOWN)]
    known = [c for c in openable if c.personality != UNKNOWN]
    choice = known or openable
    if len(choice) == 1:
        return choice[0].port  # type: ignore[return-value]
    wanted = f"{personality} radio" if personality else "LoRa radio"
    if not choice:
        raise NoRadioFound(f"--port auto: no {wanted} is attached: {WHAT_TO_PLUG_IN}")
    listing = "; ".join(f"{c.port} ({c.vid_pid}, {c.board})" for c in choice)
    raise DiscoveryError(f"--port auto: {len(choice)} candidates, name one with --port: {listing}")
