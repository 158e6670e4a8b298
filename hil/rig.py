"""`VirtualRig`: N virtual radios on pseudo-terminals, joined by a simulated LoRa medium.

Each radio is a `PtyPair` (the serial port a host opens, hil/pty.py) plus a
personality (its firmware, hil/personality.py), all on one `Medium` (hil/sim/medium.py).
One background thread does all the IO: it selects on the pty masters, feeds host
bytes to the personalities, puts their `Transmit` packets on the medium, hands the
medium's deliveries back, and wakes for the earliest deadline of the medium and the
personalities. Nothing else touches ptys, personalities or the medium; `unplug`,
`replug` and `stats` run on that thread too.

Time: the medium and the personalities run in medium time = wall seconds since start
/ `time_scale`. With `time_scale=0.01` a 0.85 s LongFast packet is on air for 8.5 ms
of wall time. The host side (a driver, the meshtastic CLI) keeps real time.

Unplug is a power cut as well as a pulled cable (USB powers these boards): the pty
goes away (the host's port fails, the stable path disappears) and the radio leaves the
air. Replug boots a fresh personality behind a new pty at the same stable path:
`rig.ports[i]`, a symlink in the rig's temporary directory, like /dev/serial/by-id/.

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
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from types import MappingProxyType
from typing import Callable, Iterator, Sequence, TypeVar

from blockiot.hil.sim.medium import LinkGraph, Medium, MediumError, RadioStats, Topology
from blockiot.hil.meshtastic_device import MeshtasticDevice
from blockiot.hil.modem_device import virtual_e22
from blockiot.hil.personality import Action, Personality, PersonalityFactory, RadioSetup, ToHost, Transmit
from blockiot.hil.pty import PtyPair
from blockiot.radio.airtime import preset as lora_preset

PERSONALITIES: MappingProxyType[str, PersonalityFactory] = MappingProxyType(
    {
        "meshtastic": MeshtasticDevice,
        "modem": virtual_e22,
    }
)

MAX_IDLE_S = 1.0  # longest sleep of the rig thread when nothing is due
_T = TypeVar("_T")


class RigError(Exception):
    """A rig that cannot be built as asked, or whose thread has failed."""

    user_facing = True


@dataclass(frozen=True)
class RadioReport:
    """One radio of a rig: its port, whether it is plugged in, and its counters."""

    port: str
    plugged: bool
    air: RadioStats  # the medium's view: airtime, sent, received, collided, lost, missed
    bytes_from_host: int
    bytes_to_host: int
    dropped_to_host: int  # bytes the host did not read in time (pty buffer full) or lost to unplug
    tx_refused: int  # transmissions the medium refused (radio busy or down, packet too large)


@dataclass(frozen=True)
class RigStats:
    """A snapshot of the whole rig at medium time `now`."""

    now: float
    radios: tuple[RadioReport, ...]


def full_mesh(count: int) -> LinkGraph:
    """Every radio hears every other one (at the link graph's default RSSI)."""
    return LinkGraph({i: [j for j in range(count) if j != i] for i in range(count)})


class VirtualRig:
    """`count` virtual radios of one personality, running until `close()`."""

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
    ) -> None:
        if count < 1:
            raise RigError(f"a rig needs at least one radio, got {count}")
        if personality not in PERSONALITIES:
            raise RigError(f"unknown personality {personality!r}; known: {', '.join(sorted(PERSONALITIES))}")
        if not time_scale > 0:
            raise RigError(f"time_scale must be positive, got {time_scale}")
        if positions is not None and len(positions) != count:
            raise RigError(f"{count} radios need {count} positions, got {len(positions)}")
        self.count = count
        self.personality = personality
        self.preset = preset
        self.time_scale = time_scale
        self.seed = seed
        try:
            self._medium = Medium(lora_preset(preset), topology=topology or full_mesh(count), loss=loss, seed=seed)
            for i in range(count):
                self._medium.add_radio(i, None if positions is None else positions[i])
        except MediumError as exc:
            raise RigError(str(exc)) from exc
        self._factory = PERSONALITIES[personality]
        self._dir = Path(tempfile.mkdtemp(prefix="blockiot-radios-"))
        self._ptys: list[PtyPair] = []
        self._tx_refused = [0] * count
        self._commands: SimpleQueue[tuple[Callable[[], object], Future]] = SimpleQueue()
        self._stopping = False
        self._failure: BaseException | None = None
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            self._ptys = [PtyPair(self._dir / f"radio{i}") for i in range(count)]
        except BaseException:
            self._release()
            raise
        self._epoch = time.time()
        self._t0 = time.monotonic()
        self._personalities: list[Personality | None] = [self._boot(i) for i in range(count)]
        self._thread = threading.Thread(target=self._run, name="virtual-rig", daemon=True)
        self._thread.start()

    # -- public API -----------------------------------------------------------------------

    @property
    def ports(self) -> list[str]:
        """The stable serial port path of each radio (valid again after a replug)."""
        return [pty.path for pty in self._ptys]

    def now(self) -> float:
        """The current medium time."""
        return (time.monotonic() - self._t0) / self.time_scale

    def unplug(self, i: int) -> None:
        """Pull radio `i`'s cable: its port fails and disappears, and it leaves the air."""
        self._check_index(i)
        self._call(lambda: self._unplug(i))

    def replug(self, i: int) -> None:
        """Plug radio `i` back in: a freshly booted device behind a new pty at the same path."""
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
        if self._personalities[i] is None:
            return
        self._ptys[i].unplug()
        self._medium.set_alive(i, False)
        self._personalities[i] = None

    def _replug(self, i: int) -> None:
        if self._personalities[i] is not None:
            raise RigError(f"radio {i} is already plugged in")
        self._ptys[i].replug()
        self._medium.set_alive(i, True)
        self._personalities[i] = self._boot(i)

    def _collect_stats(self) -> RigStats:
        air = self._medium.stats
        radios = tuple(
            RadioReport(
                port=pty.path,
                plugged=pty.plugged,
                air=air[i],
                bytes_from_host=pty.bytes_from_host,
                bytes_to_host=pty.bytes_to_host,
                dropped_to_host=pty.dropped_to_host,
                tx_refused=self._tx_refused[i],
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
        """Hand out what the medium delivered by `now`, then run every personality's timers."""
        for delivery in self._medium.poll(now):
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
        deadlines = [self._medium.next_deadline()]
        deadlines += [p.next_deadline() for p in self._personalities if p is not None]
        due = min((d for d in deadlines if d is not None), default=None)
        if due is None:
            return MAX_IDLE_S
        return min(max((due - self.now()) * self.time_scale, 0.0), MAX_IDLE_S)

    def _apply(self, i: int, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, ToHost):
                self._ptys[i].write(action.data)
            elif isinstance(action, Transmit):
                try:
                    self._medium.transmit(i, action.packet, now)
                except MediumError:
                    self._tx_refused[i] += 1
            else:
                raise RigError(f"radio {i}: a personality returned {action!r}, not ToHost or Transmit")

    # -- helpers ------------------------------------------------------------------------

    def _boot(self, i: int) -> Personality:
        setup = RadioSetup(
            radio_id=i,
            preset=self.preset,
            seed=self.seed,
            epoch=self._epoch,
            carrier_sense=lambda now, i=i: self._medium.busy(i, now),
        )
        return self._factory(setup)

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
