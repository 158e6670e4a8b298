"""The radio driver interface: what the link layer needs of any radio (Meshtastic board, UART modem).

A driver moves whole frames between a port and the caller; it does not fragment,
retry or budget airtime (radio/link.py, radio/port.py and radio/dutycycle.py do).
Failures are typed (`blockiot.radio.errors`): `RadioUnavailable` when the device
cannot be reached (missing, busy, unplugged, not the expected firmware), in which
case `open()` may be called again to reconnect; `MessageTooLarge` for a frame above
`mtu`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Received:
    """One frame heard from the mesh: its bytes, the sender's address, and the signal if known."""

    frame: bytes
    sender: int
    rssi: float | None = None
    snr: float | None = None


class RadioDriver(Protocol):
    """One radio, as the link layer sees it."""

    name: str  # e.g. "meshtastic:/dev/ttyACM0"

    @property
    def mtu(self) -> int:
        """Largest frame `send` accepts, in bytes."""
        ...

    def open(self) -> None:
        """Connect (or reconnect); raises `RadioUnavailable` saying why it cannot."""
        ...

    def send(self, frame: bytes) -> None:
        """Broadcast one frame to the mesh; `RadioUnavailable` if the device is gone."""
        ...

    def receive(self, timeout: float) -> Received | None:
        """The next frame heard, waiting at most `timeout` seconds; None if none came."""
        ...

    def close(self) -> None:
        """Release the port; never raises."""
        ...

    def airtime(self, frame_len: int) -> float:
        """Seconds on air one frame of `frame_len` bytes costs through this radio."""
        ...
