"""`VirtualRig`: N virtual radios on pseudo-terminals, joined by a simulated LoRa medium.

Each radio is a `PtyPair` (the serial port a host opens, hil/pty.py) plus a
personality (its firmware, hil/personality.py). One background thread does all the IO:
it selects on the pty masters, feeds host bytes to the personalities, carries out
their actions (bytes to the host, packets to the air, tuning, flash writes, resets),
hands the media's deliveries back, and wakes for the earliest deadline of the media,
the personalities and the radios that are booting. Nothing else touches ptys,
personalities or media; `unplug`, `replug` and `stats` run on that thread too.

The air: one `Medium` (hil/sim/medium.py) per `AirChannel` (a frequency and a
modulation) that some radio is tuned to. A medium times every packet with one
modulation and cannot tell frequencies apart, so radios on different channels are
kept on different media, as on real hardware a board on another preset, region or
frequency slot neither hears nor disturbs the others. Each radio is on every medium
and alive on at most the one it is tuned to; its counters are the sum over them. A
Meshtastic board tunes itself from its settings (so `presets=` / `regions=` give each
board its own, and admin changes retune it); a personality that never tunes (the
E22 modem) stays on a channel of its preset's modulation, shared by all radios of that
preset.

Time: the media and the personalities run in medium time = wall seconds since start
/ `time_scale`. With `time_scale=0.01` a 0.85 s LongFast packet is on air for 8.5 ms
of wall time. The host side (a driver, the meshtastic CLI) keeps real time.

Flash: what a board's firmware writes (`Persist`) is kept per radio for the life of the
rig and handed back whenever it boots; with `state_dir`, also in files under
state_dir/radio<i>/ (the firmware's own paths, e.g. radio0/prefs/config.proto), read at
start, so a new rig on the same directory boots its boards with their settings.

Power: `unplug` is a power cut as well as a pulled cable (USB powers these boards):
the pty goes away (the host's port fails, the stable path disappears), the radio
leaves the air, and what the firmware had not written to flash is lost. `replug` boots
a fresh personality from the flash behind a new pty at the same stable path:
`rig.ports[i]`, a symlink in the rig's temporary directory, like /dev/serial/by-id/.
A board that reboots itself (`Reboot`) does the same on its own: port and air gone for
its boot time, then back on the same path; one that shuts down (`Shutdown`) stays off
until `replug`.

Personalities are registered in `PERSONALITIES` (name -> factory taking a `RadioSetup`).
"""
from __future__ import annotations

import os
import select
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, fields
from pathlib import Path
from queue import Empty, SimpleQueue
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

from blockiot.hil.sim.medium import LinkGraph, Medium, MediumError, RadioStats, Topology
from blockiot.hil.meshtastic_device import MeshtasticDevice
from blockiot.hil.meshtastic_settings import FlashError, board_preset
from blockiot.hil.modem_device import virtual_e22
from blockiot.hil.personality import (
    AirChannel,
    DeviceAction,
    Persist,
    Personality,
    PersonalityFactory,
    RadioSetup,
    Reboot,
    Shutdown,
    ToAir,
    ToHost,
    Tune,
)
from blockiot.hil.pty import PtyPair
from blockiot.radio.airtime import preset as lora_preset
from blockiot.radio.errors import BlockIoTError
from blockiot.radio.errors import ConfigError

PERSONALITIES: MappingProxyType[str, PersonalityFactory] = MappingProxyType(
    {
        "meshtastic": MeshtasticDevice,
        "modem": virtual_e22,
    }
)

MAX_IDLE_S = 1.0  # longest sleep of the rig thread when nothing is due
DEFAULT_REGION = "EU_868"
_T = TypeVar("_T")


class RigError(BlockIoTError):
    """A rig that cannot be built as asked, or whose thread has failed."""


@dataclass(frozen=True)
class RadioReport:
    """One radio of a rig: its port, whether it is plugged in, and its counters."""

    port: str
    plugged: bool  # the port is there (not while unplugged, rebooting or shut down)
    air: RadioStats  # the media's view, summed over channels: airtime, sent, received, collided, lost, missed
    bytes_from_host: int
    bytes_to_host: int
    dropped_to_host: int  # bytes the host did not read in time (pty buffer full) or lost to unplug
    tx_refused: int  # transmissions the medium refused (radio busy, down or off the air, packet too large)
    boots: int  # times the personality has booted (the first boot counts)
    back_at: float | None  # rebooting: the medium time at which it boots again
    channel: AirChannel | None  # where its radio is tuned now, None when off the air


@dataclass(frozen=True)
class RigStats:
    """A snapshot of the whole rig at medium time `now`."""

    now: float
    radios: tuple[RadioReport, ...]


def full_mesh(count: int) -> LinkGraph:
    """Every radio hears every other one (at the link graph's default RSSI)."""
    return LinkGraph({i: [j for j in range(count) if j != i] for i in range(count)})


def _sum_stats(stats: Sequence[RadioStats]) -> RadioStats:
    return RadioStats(*(sum(getattr(s, f.name) for s in stats) for f in fields(RadioStats)))


class VirtualRig:
    """`count` virtual radios of one personality, running until `close()`.

    `preset` and `region` are every board's when factory new; `presets` / `regions` (one
    per radio) set them radio by radio. `state_dir` keeps the boards' flash across rigs.
    """

    def __init__(
        self,
        count: int,
        personality: str = "meshtastic",
        preset: str = "LongFast",
        loss: float = 0.0,
        time_scale: float = 1.0,
        seed: int = 0,
        topology: Topology | None = None,
        *,
        positions: Sequence[tuple[float, float]] | None = None,
        region: str = DEFAULT_REGION,
        presets: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if count < 1:
            raise RigError(f"a rig needs at least one radio, got {count}")
        if personality not in PERSONALITIES:
            raise RigError(f"unknown personality {personality!r}; known: {', '.join(sorted(PERSONALITIES))}")
        if not time_scale > 0:
            raise RigError(f"time_scale must be positive, got {time_scale}")
        for name, values in (("positions", positions), ("presets", presets), ("regions", regions)):
            if values is not None and len(values) != count:
                raise RigError(f"{count} radios need {count} {name}, got {len(values)}")
        if not 0.0 <= loss <= 1.0:
            raise RigError(f"loss must be within [0, 1], got {loss}")
        try:
            self._presets = [board_preset(name) for name in (presets or [preset] * count)]
        except ConfigError as exc:
            raise RigError(str(exc)) from exc
        self.count = count
        self.personality = personality
        self.preset = preset
        self.time_scale = time_scale
        self.seed = seed
        self._regions = list(regions or [region] * count)
        self._topology = topology or full_mesh(count)
        self._positions = positions
        self._loss = loss
        self._media: dict[AirChannel, Medium] = {}
        self._factory = PERSONALITIES[personality]
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._flash = [self._read_flash(i) for i in range(count)]
        self._dir = Path(tempfile.mkdtemp(prefix="blockiot-radios-"))
        self._ptys: list[PtyPair] = []
        self._personalities: list[Personality | None] = [None] * count
        self._tuned: list[AirChannel | None] = [None] * count
        self._back_at: list[float | None] = [None] * count  # rebooting: boots again at this medium time
        self._boots = [0] * count
        self._tx_refused = [0] * count
        self._commands: SimpleQueue[tuple[Callable[[], object], Future]] = SimpleQueue()
        self._stopping = False
        self._failure: BaseException | None = None
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._epoch = time.time()
        self._t0 = time.monotonic()
        try:
            self._ptys = [PtyPair(self._dir / f"radio{i}") for i in range(count)]
            for i in range(count):
                self._boot(i, 0.0)
        except (ConfigError, MediumError, FlashError) as exc:
            self._release()
            raise RigError(f"radio {i}: {exc}") from exc
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(target=self._run, name="virtual-rig", daemon=True)
        self._thread.start()

    # -- public API -----------------------------------------------------------------------

    @property
    def ports(self) -> list[str]:
        """The stable serial port path of each radio (valid again after a replug or a reboot)."""
        return [pty.path for pty in self._ptys]

    def now(self) -> float:
        """The current medium time."""
        return (time.monotonic() - self._t0) / self.time_scale

    def unplug(self, i: int) -> None:
        """Pull radio `i`'s cable: its port fails and disappears, and it leaves the air (a reboot under way stops)."""
        self._check_index(i)
        self._call(lambda: self._unplug(i))

    def replug(self, i: int) -> None:
        """Plug radio `i` back in (or power a board that shut down): booted from its flash, at the same path."""
        self._check_index(i)
        self._call(lambda: self._replug(i))

    @property
    def stats(self) -> RigStats:
        """Counters of every radio, taken on the rig thread."""
        return self._call(self._collect_stats)

    def close(self) -> None:
        """Stop the thread, close every pty, remove the port links. Raises `RigError` if the thread had failed."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake()
        self._thread.join()
        self._release()
        if self._failure is not None:
            raise RigError(f"the rig thread failed: {self._failure!r}") from self._failure

    def __enter__(self) -> VirtualRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands (run on the rig thread) ----------------------------------------------

    def _call(self, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise RigError("the rig is closed")
        future: Future = Future()
        self._commands.put((fn, future))
        self._wake()
        while True:
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                if not self._thread.is_alive():
                    raise RigError(f"the rig thread has stopped: {self._failure!r}") from self._failure

    def _queued_commands(self) -> Iterator[tuple[Callable[[], object], Future]]:
        while True:
            try:
                yield self._commands.get_nowait()
            except Empty:
                return

    def _run_commands(self) -> None:
        for fn, future in self._queued_commands():
            try:
                future.set_result(fn())
            except Exception as exc:
                future.set_exception(exc)

    def _unplug(self, i: int) -> None:
        self._back_at[i] = None
        self._power_off(i)

    def _replug(self, i: int) -> None:
        if self._personalities[i] is not None:
            raise RigError(f"radio {i} is already plugged in")
        if self._back_at[i] is not None:
            raise RigError(f"radio {i} is plugged in and rebooting")
        self._boot(i, self.now())

    def _collect_stats(self) -> RigStats:
        air = [medium.stats for medium in self._media.values()]
        radios = tuple(
            RadioReport(
                port=pty.path,
                plugged=pty.plugged,
                air=_sum_stats([stats[i] for stats in air]),
                bytes_from_host=pty.bytes_from_host,
                bytes_to_host=pty.bytes_to_host,
                dropped_to_host=pty.dropped_to_host,
                tx_refused=self._tx_refused[i],
                boots=self._boots[i],
                back_at=self._back_at[i],
                channel=self._tuned[i],
            )
            for i, pty in enumerate(self._ptys)
        )
        return RigStats(self.now(), radios)

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._run_commands()
                self._step(self.now())
                self._wait_and_serve()
        except BaseException as exc:  # surfaced by _call and close
            self._failure = exc
        finally:
            self._fail_pending_commands()

    def _step(self, now: float) -> None:
        """Boot the radios whose time has come, hand out what the media delivered by `now`,
        then run every personality's timers."""
        for i, back_at in enumerate(self._back_at):
            if back_at is not None and back_at <= now:
                self._boot(i, now)
        for medium in list(self._media.values()):
            for delivery in medium.poll(now):
                personality = self._personalities[delivery.receiver]
                if personality is not None:
                    self._apply(delivery.receiver, personality.from_air(delivery, now), now)
        for i, personality in enumerate(self._personalities):
            if personality is not None:
                self._apply(i, personality.poll(now), now)

    def _wait_and_serve(self) -> None:
        readers = {pty.master_fd: i for i, pty in enumerate(self._ptys) if pty.master_fd is not None}
        writers = [pty.master_fd for pty in self._ptys if pty.wants_write]
        readable, writable, _ = select.select([self._wake_r, *readers], writers, [], self._idle_time())
        if self._wake_r in readable:
            os.read(self._wake_r, 4096)
        for fd in writable:
            self._ptys[readers[fd]].flush()
        now = self.now()
        for fd in readable:
            i = readers.get(fd)
            personality = self._personalities[i] if i is not None else None
            if personality is None:
                continue
            data = self._ptys[i].read()
            if data:
                self._apply(i, personality.from_host(data, now), now)

    def _idle_time(self) -> float:
        deadlines = [medium.next_deadline() for medium in self._media.values()]
        deadlines += [p.next_deadline() for p in self._personalities if p is not None]
        deadlines += self._back_at
        due = min((d for d in deadlines if d is not None), default=None)
        if due is None:
            return MAX_IDLE_S
        return min(max((due - self.now()) * self.time_scale, 0.0), MAX_IDLE_S)

    def _apply(self, i: int, actions: list[DeviceAction], now: float) -> None:
        for action in actions:
            if isinstance(action, ToHost):
                self._ptys[i].write(action.data)
            elif isinstance(action, ToAir):
                self._transmit(i, action.packet, now)
            elif isinstance(action, Tune):
                self._tune(i, action.channel)
            elif isinstance(action, Persist):
                self._persist(i, action.files)
            elif isinstance(action, Reboot):
                self._power_off(i)
                self._back_at[i] = now + action.boot_s
            elif isinstance(action, Shutdown):
                self._power_off(i)
            else:
                raise RigError(f"radio {i}: a personality returned {action!r}, not a DeviceAction")

    def _transmit(self, i: int, packet: bytes, now: float) -> None:
        channel = self._tuned[i]
        try:
            if channel is None:
                raise MediumError(f"radio {i} is off the air")
            self._media[channel].transmit(i, packet, now)
        except MediumError:
            self._tx_refused[i] += 1

    # -- radios -------------------------------------------------------------------------

    def _boot(self, i: int, now: float) -> None:
        """Power radio `i` on: its port, a personality booted from its flash, on the channel of its
        preset until it tunes itself (at once, in its first poll)."""
        self._back_at[i] = None
        if not self._ptys[i].plugged:
            self._ptys[i].replug()
        setup = RadioSetup(
            radio_id=i,
            preset=self._presets[i],
            seed=self.seed,
            epoch=self._epoch,
            carrier_sense=lambda at, i=i: self._busy(i, at),
            region=self._regions[i],
            flash=MappingProxyType(dict(self._flash[i])),
            booted_at=now,
        )
        personality = self._factory(setup)
        self._personalities[i] = personality
        self._boots[i] += 1
        self._tune(i, AirChannel(0, lora_preset(self._presets[i])))
        self._apply(i, personality.poll(now), now)

    def _power_off(self, i: int) -> None:
        """Radio `i` loses power: port gone, off the air, RAM lost (its flash stays)."""
        self._ptys[i].unplug()
        self._tune(i, None)
        self._personalities[i] = None

    def _tune(self, i: int, channel: AirChannel | None) -> None:
        if channel == self._tuned[i]:
            return
        if self._tuned[i] is not None:
            self._media[self._tuned[i]].set_alive(i, False)
        self._tuned[i] = channel
        if channel is not None:
            self._medium(channel).set_alive(i, True)

    def _medium(self, channel: AirChannel) -> Medium:
        """The medium of `channel`, with every radio on it, down until tuned to it."""
        medium = self._media.get(channel)
        if medium is None:
            medium = Medium(channel.modulation, topology=self._topology, loss=self._loss, seed=self.seed)
            for i in range(self.count):
                medium.add_radio(i, None if self._positions is None else self._positions[i])
                medium.set_alive(i, False)
            self._media[channel] = medium
        return medium

    def _busy(self, i: int, now: float) -> bool:
        channel = self._tuned[i]
        return channel is not None and self._media[channel].busy(i, now)

    # -- flash --------------------------------------------------------------------------

    def _flash_dir(self, i: int) -> Path:
        assert self._state_dir is not None
        return self._state_dir / f"radio{i}"

    def _read_flash(self, i: int) -> dict[str, bytes]:
        if self._state_dir is None:
            return {}
        root = self._flash_dir(i)
        try:
            return {
                "/" + path.relative_to(root).as_posix(): path.read_bytes()
                for path in root.rglob("*")
                if path.is_file() and not path.name.startswith(".")  # a staging file a crash left behind
            }
        except OSError as exc:
            raise RigError(f"cannot read the flash of radio {i} in {root}: {exc}") from exc

    def _persist(self, i: int, files: Mapping[str, bytes]) -> None:
        self._flash[i].update(files)
        if self._state_dir is None:
            return
        for name, data in files.items():
            path = self._flash_dir(i) / name.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f".{path.name}.new")
            staging.write_bytes(data)
            os.replace(staging, path)  # a power cut never leaves half a file

    # -- helpers ------------------------------------------------------------------------

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.count:
            raise RigError(f"radio index must be 0..{self.count - 1}, got {i}")

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def _fail_pending_commands(self) -> None:
        for _, future in self._queued_commands():
            future.set_exception(RigError("the rig has stopped"))

    def _release(self) -> None:
        for pty in self._ptys:
            pty.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        shutil.rmtree(self._dir, ignore_errors=True)
