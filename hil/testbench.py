"""HIL benches without pytest: which radio kinds `--hil` selects, why a kind cannot run a
test, and opening N `RadioPort`s on a virtual rig or on mapped hardware. The pytest plugin
(hil/plugin.py) and `blockiot bench radio` both build their benches here.

`CpuHog` keeps every core busy from other processes, as the neighbours of a CI job do:
a virtual rig runs in scaled wall time, so a host that is slow to serve its ports lets
more simulated time pass, and a test whose verdict changes beside a hog depends on the
machine, not on the radios.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from blockiot.hil.hardware_map import PERSONALITY_NAMES, HardwareRadio, load_hardware_map

# Wall seconds per simulated second on virtual rigs. A host that takes d wall seconds takes
# d / scale simulated ones (the meshtastic library's 0.1 s pause after each write is 5 s at
# 0.02), so HIL tests serve every port at once and act on events of the air, not on delays.
DEFAULT_TIME_SCALE = 0.02
WALL_POLL_S = 0.002           # how often an idle port is read, in wall seconds
_PLUG_IN = {
    "meshtastic": "a Meshtastic board (Heltec V3, RAK4631, T-Beam ...) on USB",
    "modem": "an E22-900T22U dongle (or E22 module on a USB-UART adapter)",
}


@dataclass(frozen=True)
class RadioKind:
    """One way of running a HIL test: a personality, virtual or on the mapped hardware."""

    name: str
    personality: str
    virtual: bool
    radios: tuple[HardwareRadio, ...] = ()
    source: str = ""


@dataclass
class HilBench:
    """What a HIL test gets: the kind, the opened ports and, on virtual kinds, the rig."""

    kind: RadioKind
    ports: list[Any]
    rig: Any = None
    drivers: list[Any] = field(default_factory=list)
    time_scale: float = 1.0     # wall seconds per second of the ports' clock

    def close(self) -> None:
        for port in self.ports:
            port.close()
        if self.rig is not None:
            self.rig.close()


class CpuHog:
    """Busy loops in `processes` other processes (default: one per core) while open; open
    returns once every one of them spins."""

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or os.cpu_count() or 1
        self._context = multiprocessing.get_context("spawn")  # no fork of a process running rig threads
        self._stop = self._context.Event()
        self._spinning = self._context.Semaphore(0)
        self._workers: list[Any] = []

    @property
    def running(self) -> bool:
        return bool(self._workers) and all(worker.is_alive() for worker in self._workers)

    def __enter__(self) -> CpuHog:
        self._workers = [self._context.Process(target=_spin, args=(self._stop, self._spinning), daemon=True)
                         for _ in range(self.processes)]
        for worker in self._workers:
            worker.start()
        for _ in self._workers:
            self._spinning.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=5.0)
            if worker.is_alive():
                worker.kill()
                worker.join()


def _spin(stop: Any, spinning: Any) -> None:
    spinning.release()
    while not stop.is_set():
        for _ in range(100_000):
            pass


def hil_kinds(option: str) -> tuple[RadioKind, ...]:
    """The kinds `--hil` selects: both virtual personalities, or one per personality of a map."""
    if option == "virtual":
        return tuple(RadioKind(f"virtual-{name}", name, True) for name in PERSONALITY_NAMES)
    radios = load_hardware_map(option)
    return tuple(
        RadioKind(
            f"hw-{name}", name, False,
            tuple(radio for radio in radios if radio.personality == name), option,
        )
        for name in PERSONALITY_NAMES
    )


def skip_reason(kind: RadioKind, needed: int, exists=os.path.exists) -> str | None:
    """Why a test needing `needed` radios cannot run on `kind`, or None when it can."""
    if kind.virtual:
        return None
    if len(kind.radios) < needed:
        return (
            f"{kind.name}: the hardware map {kind.source} lists {len(kind.radios)} {kind.personality} "
            f"radio(s), this test needs {needed}: plug in {needed - len(kind.radios)} more "
            f"({_PLUG_IN[kind.personality]}) and list it as [[radio]] personality = \"{kind.personality}\""
        )
    missing = [radio for radio in kind.radios[:needed] if not exists(radio.port)]
    if missing:
        return f"{kind.name}: not attached: " + "; ".join(
            f"{radio.describe()} (plug it in or fix its port in {kind.source})" for radio in missing
        )
    return None


def open_bench(
    kind: RadioKind,
    count: int,
    *,
    time_scale: float = DEFAULT_TIME_SCALE,
    loss: float = 0.0,
    seed: int = 0,
    budget: Any = None,
    **rig_options: Any,
) -> HilBench:
    """Open `count` RadioPorts of `kind` (and the rig behind them when virtual).

    `budget`, if given, is a factory called once per port (each radio has its own budget).
    `seed` seeds the virtual rig and, with the port's index, each port's link layer.
    """
    if budget is not None and not callable(budget):
        raise ValueError("budget must be a factory, e.g. budget=lambda: DutyCycleBudget('EU868')")
    from blockiot.radio.airtime import preset as lora_preset
    from blockiot.radio.port import RadioPort, port_link

    rig = None
    if kind.virtual:
        from blockiot.hil.rig import VirtualRig

        rig = VirtualRig(count, personality=kind.personality, loss=loss, time_scale=time_scale,
                         seed=seed, **rig_options)
        paths = [(path, None) for path in rig.ports]
        scale = time_scale
        modulation = lora_preset(rig.preset)
    else:
        paths = [(radio.port, radio.baudrate) for radio in kind.radios[:count]]
        scale = 1.0
        modulation = None
    drivers = []
    ports = []
    try:
        for index, (path, baudrate) in enumerate(paths):
            driver = make_driver(kind.personality, path, radio_id=index + 1, clock=_scaled_clock(scale),
                                 sleep=_scaled_sleep(scale), poll_s=WALL_POLL_S / scale,
                                 modulation=modulation, baudrate=baudrate)
            drivers.append(driver)
            driver.open()
            port_budget = budget() if budget is not None else None
            radio_id = driver.radio_id if kind.personality == "modem" else driver.node_num
            link = port_link(driver, port_budget, rng=random.Random(f"{seed}:{index}"), radio_id=radio_id)
            ports.append(RadioPort(driver, link, budget=port_budget, clock=_scaled_clock(scale),
                                   sleep=_scaled_sleep(scale)))
    except BaseException:
        for driver in drivers:
            driver.close()
        if rig is not None:
            rig.close()
        raise
    return HilBench(kind, ports, rig, drivers, scale)


def make_driver(personality: str, path: str, *, radio_id: int, clock=time.monotonic, sleep=time.sleep,
                poll_s: float = 0.005, modulation=None, baudrate: int | None = None):
    """The host-side driver for a radio of `personality` on serial port `path`.

    `radio_id`, `clock`, `sleep`, `poll_s`, `modulation` and `baudrate` apply to the UART
    modem; a Meshtastic device has its own node number, clock and modulation.
    """
    if personality == "modem":
        from blockiot.radio.drivers.e22 import E22Config, E22Driver

        config = E22Config(uart_baudrate=baudrate) if baudrate else None
        return E22Driver(path, radio_id=radio_id, config=config, clock=clock, sleep=sleep, poll_s=poll_s,
                         modulation=modulation)
    from blockiot.radio.drivers.meshtastic import MeshtasticDriver

    return MeshtasticDriver(path)


def _scaled_clock(scale: float):
    return lambda: time.monotonic() / scale


def _scaled_sleep(scale: float):
    return lambda seconds: time.sleep(max(seconds, 0.0) * scale)
