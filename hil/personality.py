"""The firmware side of a virtual radio, sans-IO: what a personality is and what it may do.

A personality is the firmware of one virtual radio (a Meshtastic device, a UART
modem). It never touches a port, a clock, a file or the medium: bytes the host wrote to
the serial port and packets the medium delivered come in with `now` (medium time, float
seconds, never decreasing); actions come out, and the rig (hil/rig.py) carries them out:

- `ToHost`: bytes written to the radio's pty; `ToAir`: a packet put on the air.
- `Tune`: the radio now listens and sends on an `AirChannel` (frequency and modulation);
  it hears, and is heard by, only radios tuned to the same one. A personality that never
  tunes stays on the rig's channel.
- `Persist`: the firmware wrote files to its flash; the rig keeps them (in memory, and in
  its state directory if it has one) and hands the whole flash back in `RadioSetup.flash`
  at the next boot.
- `Reboot`: the board resets. Its serial port disappears (a board whose USB is the MCU's
  own, as ESP32-S3 and nRF52840 boards are, loses its USB CDC port with the MCU) and it
  leaves the air; after `boot_s` it comes back on the same path, booted afresh from its
  flash. `Shutdown`: the same, but it stays off until powered again (`VirtualRig.replug`).
  The object that returned either is done: the rig drops it.

The rig calls `poll` when `next_deadline` comes (and right after a boot).

A personality is built by a factory from a `RadioSetup`; `VirtualRig` keeps the
factories in `PERSONALITIES` (hil/rig.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Union

from blockiot.hil.sim.medium import Delivery
from blockiot.radio.airtime import LoRaParams


@dataclass(frozen=True)
class ToHost:
    """Bytes the device writes to its serial port, towards the host."""

    data: bytes


@dataclass(frozen=True)
class ToAir:
    """A packet to put on air through the medium, as its PHY payload bytes."""

    packet: bytes


@dataclass(frozen=True)
class AirChannel:
    """Where a radio's modem listens and sends: a centre frequency (Hz) and a modulation.

    Radios hear each other only on the same channel. Not modelled: two radios on one
    frequency, spreading factor and bandwidth but different coding rates would decode
    each other (the explicit header carries the rate); signals of another spreading
    factor or an overlapping frequency do not interfere.
    """

    frequency_hz: int
    modulation: LoRaParams


@dataclass(frozen=True)
class Tune:
    """The radio now listens and sends on `channel`; None: it neither listens nor sends."""

    channel: AirChannel | None


@dataclass(frozen=True)
class Persist:
    """Flash files the firmware wrote: path -> contents (the other files are unchanged)."""

    files: Mapping[str, bytes]


@dataclass(frozen=True)
class Reboot:
    """The board resets now; its port and radio are back after `boot_s` seconds."""

    boot_s: float


@dataclass(frozen=True)
class Shutdown:
    """The board turns itself off now; it stays off until powered again."""


DeviceAction = Union[ToHost, ToAir, Tune, Persist, Reboot, Shutdown]


def _never_busy(now: float) -> bool:
    return False


@dataclass(frozen=True)
class RadioSetup:
    """What a rig tells a personality about the radio it runs on.

    `radio_id`: the radio's id on the medium (0, 1, ... in a rig); personalities derive
    their addresses from it, so they are the same in every run.
    `preset`, `region`: the Meshtastic modem preset (any spelling
    `blockiot.radio.airtime.preset` accepts) and region a factory-new board starts
    with; a board whose flash says otherwise follows its flash.
    `seed`: seeds the personality's own randomness (packet ids, backoffs).
    `epoch`: wall-clock (Unix) seconds at medium time 0, for timestamps the device shows.
    `carrier_sense(now)`: channel activity detection at this radio (the medium's view:
    it is transmitting or hears a signal on its channel); a pure query, never IO.
    `flash`: the files the board's firmware persisted before (empty: factory new).
    `booted_at`: the medium time at which it boots (0 for a rig's first boot).
    """

    radio_id: int
    preset: str = "LongFast"
    seed: int = 0
    epoch: float = 0.0
    carrier_sense: Callable[[float], bool] = _never_busy
    region: str = "EU_868"
    flash: Mapping[str, bytes] = field(default_factory=dict)
    booted_at: float = 0.0


class Personality(Protocol):
    """The firmware of one virtual radio."""

    def from_host(self, data: bytes, now: float) -> list[DeviceAction]:
        """Bytes the host wrote to the serial port."""
        ...

    def from_air(self, delivery: Delivery, now: float) -> list[DeviceAction]:
        """A packet the medium delivered to this radio."""
        ...

    def poll(self, now: float) -> list[DeviceAction]:
        """Timers: called at (or after) `next_deadline`, and whenever the rig wakes up."""
        ...

    def next_deadline(self) -> float | None:
        """The medium time at which `poll` has something to do, or None."""
        ...


PersonalityFactory = Callable[[RadioSetup], Personality]
