"""The `blockiot_hil` pytest plugin: one test function, run on every kind of radio.

Registered through the `pytest11` entry point. A test marked `@pytest.mark.hil` that
asks for `radios`, `radio_pair` or `radio_trio` (or `hil_bench` / `hil_rig`) runs
once per radio kind, with ids such as `virtual-meshtastic`, `virtual-modem`,
`hw-meshtastic`, `hw-modem`:

* `--hil virtual` (the default): a `VirtualRig` of the kind's personality on ptys
  behind the simulated medium, at a small `time_scale` so tests take seconds.
* `--hil path/to/hardware-map.toml`: the real radios the map lists (see
  hil/hardware_map.py and hil/hardware-map.example.toml). A kind with fewer
  radios than the test needs, or a radio whose port is absent, is SKIPPED with a
  reason naming what to plug in, like meshtastic's smoke tests skip without a device.

Marker options: `@pytest.mark.hil(radios=3, loss=0.2, seed=7, budget=lambda: DutyCycleBudget(...))`.
`radio_pair` / `radio_trio` fix the count at 2 / 3. `hil_rig` hands the virtual rig
for virtual-only controls (unplug, loss) and skips on hardware, saying why.
Each fixture hands opened `RadioPort`s (radio/port.py); everything is closed after
the test.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from blockiot.hil.hardware_map import PERSONALITY_NAMES, HardwareRadio, load_hardware_map

DEFAULT_TIME_SCALE = 0.02     # wall seconds per simulated second on virtual rigs
DEFAULT_RADIOS = 2
WALL_POLL_S = 0.002           # how often an idle port is read, in wall seconds
HARDWARE_TIMEOUT_S = 1800     # per test on real radios (a 4 KiB message on LongSlow takes minutes)
_COUNT_FIXTURES = {"radio_pair": 2, "radio_trio": 3}
_HIL_FIXTURES = {"radios", "radio_pair", "radio_trio", "hil_bench", "hil_rig"}
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


# -- pytest hooks -----------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("blockiot-hil", "BlockIoT hardware-in-the-loop radios")
    group.addoption(
        "--hil", action="store", default="virtual", metavar="virtual|MAP.toml",
        help="run @pytest.mark.hil tests on virtual radios (default) or on the radios "
             "listed in a hardware map TOML file",
    )
    group.addoption(
        "--hil-time-scale", action="store", type=float, default=DEFAULT_TIME_SCALE,
        help=f"wall seconds per simulated second on virtual rigs (default {DEFAULT_TIME_SCALE})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hil(radios=N, loss=0.0, seed=0, budget=None): run on real or virtual radios, "
        "once per radio kind (blockiot_hil plugin)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real radios run in real time: give their tests a longer timeout than virtual ones."""
    for item in items:
        kind = getattr(item, "callspec", None) and item.callspec.params.get("hil_kind")
        if isinstance(kind, RadioKind) and not kind.virtual and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(HARDWARE_TIMEOUT_S))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("hil") is None:
        return
    if not _HIL_FIXTURES & set(metafunc.fixturenames):
        return
    kinds = hil_kinds(metafunc.config.getoption("--hil"))
    metafunc.parametrize("hil_kind", kinds, ids=[kind.name for kind in kinds], indirect=True, scope="function")


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture
def hil_kind(request: pytest.FixtureRequest) -> RadioKind:
    if not hasattr(request, "param"):
        pytest.fail("HIL fixtures need the test to be marked @pytest.mark.hil", pytrace=False)
    return request.param


@pytest.fixture
def hil_bench(request: pytest.FixtureRequest, hil_kind: RadioKind):
    marker = request.node.get_closest_marker("hil")
    options = dict(marker.kwargs) if marker else {}
    count = options.pop("radios", None) or max(
        (n for name, n in _COUNT_FIXTURES.items() if name in request.fixturenames), default=DEFAULT_RADIOS
    )
    reason = skip_reason(hil_kind, count)
    if reason:
        pytest.skip(reason)
    if options.get("loss") and not hil_kind.virtual:
        pytest.skip(f"{hil_kind.name}: packet loss can only be set on a virtual rig")
    time_scale = request.config.getoption("--hil-time-scale")
    bench = open_bench(hil_kind, count, time_scale=time_scale, **options)
    try:
        yield bench
    finally:
        bench.close()


@pytest.fixture
def radios(hil_bench: HilBench) -> list:
    return hil_bench.ports


@pytest.fixture
def radio_pair(hil_bench: HilBench) -> list:
    return hil_bench.ports[:2]


@pytest.fixture
def radio_trio(hil_bench: HilBench) -> list:
    return hil_bench.ports[:3]


@pytest.fixture
def hil_rig(hil_bench: HilBench):
    if hil_bench.rig is None:
        pytest.skip(f"{hil_bench.kind.name}: needs a virtual rig (unplug/loss control), "
                    "real hardware cannot do this on command")
    return hil_bench.rig


# -- building benches -----------------------------------------------------------------

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
    """
    if budget is not None and not callable(budget):
        raise ValueError("budget must be a factory, e.g. budget=lambda: DutyCycleBudget('EU868')")
    from blockiot.radio.airtime import preset as lora_preset
    from blockiot.radio.port import RadioPort

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
            driver = make_driver(kind.personality, path, node_id=index + 1, clock=_scaled_clock(scale),
                                 sleep=_scaled_sleep(scale), poll_s=WALL_POLL_S / scale,
                                 modulation=modulation, baudrate=baudrate)
            drivers.append(driver)
            driver.open()
            ports.append(RadioPort(
                driver,
                budget=budget() if budget is not None else None,
                clock=_scaled_clock(scale),
                sleep=_scaled_sleep(scale),
                node_id=driver.node_id if kind.personality == "modem" else driver.node_num,
            ))
    except BaseException:
        for driver in drivers:
            driver.close()
        if rig is not None:
            rig.close()
        raise
    return HilBench(kind, ports, rig, drivers, scale)


def make_driver(personality: str, path: str, *, node_id: int, clock=time.monotonic, sleep=time.sleep,
                poll_s: float = 0.005, modulation=None, baudrate: int | None = None):
    """The host-side driver for a radio of `personality` on serial port `path`.

    `node_id`, `clock`, `sleep`, `poll_s`, `modulation` and `baudrate` apply to the UART
    modem; a Meshtastic device has its own node number, clock and modulation.
    """
    if personality == "modem":
        from blockiot.radio.drivers.e22 import E22Config, E22Driver

        config = E22Config(uart_baudrate=baudrate) if baudrate else None
        return E22Driver(path, node_id=node_id, config=config, clock=clock, sleep=sleep, poll_s=poll_s,
                         modulation=modulation)
    from blockiot.radio.drivers.meshtastic import MeshtasticDriver

    return MeshtasticDriver(path)


def _scaled_clock(scale: float):
    return lambda: time.monotonic() / scale


def _scaled_sleep(scale: float):
    return lambda seconds: time.sleep(max(seconds, 0.0) * scale)
