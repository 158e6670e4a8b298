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

A verdict must not depend on how busy the machine is: `cpu_hog` runs a test beside busy
loops on every core (hil/testbench.py `CpuHog`), and `--hil-cpu-hog` runs every HIL
test so.
"""
from __future__ import annotations

import pytest

from blockiot.hil.testbench import DEFAULT_TIME_SCALE, CpuHog, HilBench, RadioKind, hil_kinds, open_bench, skip_reason

DEFAULT_RADIOS = 2
HARDWARE_TIMEOUT_S = 1800     # per test on real radios (a 4 KiB message on LongSlow takes minutes)
_COUNT_FIXTURES = {"radio_pair": 2, "radio_trio": 3}
_HIL_FIXTURES = {"radios", "radio_pair", "radio_trio", "hil_bench", "hil_rig"}


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
    group.addoption(
        "--hil-cpu-hog", action="store_true",
        help="run every HIL test beside busy loops on every core, as on a loaded CI machine",
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
    if request.config.getoption("--hil-cpu-hog"):
        request.getfixturevalue("cpu_hog")
    bench = open_bench(hil_kind, count, time_scale=time_scale, **options)
    try:
        yield bench
    finally:
        bench.close()


@pytest.fixture
def cpu_hog():
    """Every core busy in other processes for the test's duration."""
    with CpuHog() as hog:
        yield hog


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
