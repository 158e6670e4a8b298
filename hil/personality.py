"""The firmware side of a virtual radio, sans-IO: what a personality is and what it may do.

A personality is the firmware of one virtual radio (a Meshtastic device, a UART
modem). It never touches a port, a clock or the medium: bytes the host wrote to the
serial port and packets the medium delivered come in with `now` (medium time, float
seconds, never decreasing); `ToHost` and `Transmit` actions come out. The rig
(hil/rig.py) runs the IO: it writes `ToHost` bytes to the radio's pty and puts
`Transmit` packets on the medium, and calls `poll` when `next_deadline` comes.

A personality is built by a factory from a `RadioSetup`; `VirtualRig` keeps the
factories in `PERSONALITIES` (hil/rig.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Union

from blockiot.hil.sim.medium import Delivery


@dataclass(frozen=True)
class ToHost:
    """Bytes the device writes to its serial port, towards the host."""

    data: bytes


@dataclass(frozen=True)
class Transmit:
    """A packet to put on air through the medium, as its PHY payload bytes."""

    packet: bytes


Action = Union[ToHost, Transmit]


def _never_busy(now: float) -> bool:
    return False


@dataclass(frozen=True)
class RadioSetup:
    """What a rig tells a personality about the radio it runs on.

    `radio_id`: the radio's id on the medium (0, 1, ... in a rig); personalities derive
    their addresses from it, so they are the same in every run.
    `preset`: the Meshtastic modem preset of the shared channel (any spelling
    `blockiot.radio.airtime.preset` accepts).
    `seed`: seeds the personality's own randomness (packet ids, backoffs).
    `epoch`: wall-clock (Unix) seconds at medium time 0, for timestamps the device shows.
    `carrier_sense(now)`: channel activity detection at this radio (the medium's view:
    it is transmitting or hears a signal); a pure query, never IO.
    """

    radio_id: int
    preset: str = "LongFast"
    seed: int = 0
    epoch: float = 0.0
    carrier_sense: Callable[[float], bool] = _never_busy


class Personality(Protocol):
    """The firmware of one virtual radio."""

    def from_host(self, data: bytes, now: float) -> list[Action]:
        """Bytes the host wrote to the serial port."""
        ...

    def from_air(self, delivery: Delivery, now: float) -> list[Action]:
        """A packet the medium delivered to this radio."""
        ...

    def poll(self, now: float) -> list[Action]:
        """Timers: called at (or after) `next_deadline`, and whenever the rig wakes up."""
        ...

    def next_deadline(self) -> float | None:
        """The medium time at which `poll` has something to do, or None."""
        ...


PersonalityFactory = Callable[[RadioSetup], Personality]
