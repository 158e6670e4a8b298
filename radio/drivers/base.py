"""The radio driver interface: what the link layer needs of any radio (Meshtastic board, UART modem).

A driver moves whole frames between a radio and its caller (the node runtime's real-time
loop, chain/runtime/realtime.py, or a `RadioPort`); it does not fragment, retry or budget
airtime (radio/link.py, chain/runtime/transmit.py and radio/dutycycle.py do). Out goes
a frame with the hop limit it may be relayed over (0: direct neighbours only); in comes
a frame with its sender, the relays it crossed and the signal it arrived with.
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
    """One frame heard: its bytes, the sender's radio id, and, where the radio tells,
    the signal (dBm, dB) and how many relays it crossed (0: heard directly)."""

    frame: bytes
    sender: int
    rssi: float | None = None
    snr: float | None = None
    hops: int | None = None


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

    def send(self, frame: bytes, *, hop_limit: int | None = None) -> None:
        """Broadcast one frame; a mesh radio lets relays repeat it `hop_limit` times (None:
        its configured hop limit; 0: direct neighbours only), a radio without a mesh
        ignores it. `RadioUnavailable` if the device is gone."""
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
