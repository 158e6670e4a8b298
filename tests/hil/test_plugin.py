"""The blockiot_hil pytest plugin: hardware maps, kinds, skips, and parametrization ids."""
from __future__ import annotations

import os
import time

import pytest

from blockiot.hil.hardware_map import HardwareMapError, HardwareRadio, load_hardware_map, parse_hardware_map
from blockiot.hil.testbench import CpuHog, RadioKind, hil_kinds, skip_reason

pytest_plugins = ["pytester"]

MAP = """
[[radio]]
port = "/dev/does-not-exist-meshtastic"
personality = "meshtastic"
board = "heltec-v3"

[[radio]]
port = "/dev/does-not-exist-modem"
personality = "modem"
board = "e22-900t22u"
role = "field"
baudrate = 9600
"""


def test_parse_hardware_map():
    radios = parse_hardware_map(MAP, "map.toml")
    assert radios == (
        HardwareRadio("/dev/does-not-exist-meshtastic", "meshtastic", "heltec-v3"),
        HardwareRadio("/dev/does-not-exist-modem", "modem", "e22-900t22u", "field", 9600),
    )


@pytest.mark.parametrize("text, message", [
    ("[[radio]\n", "not valid TOML"),
    ("[[radio]]\npersonality = 'modem'\n", "'port' is required"),
    ("[[radio]]\nport = '/dev/x'\npersonality = 'lorawan'\n", "must be one of meshtastic, modem"),
    ("[[radio]]\nport = '/dev/x'\npersonality = 'modem'\nspeed = 1\n", "unknown key(s) speed"),
    ("[[radio]]\nport = '/dev/x'\npersonality = 'modem'\nbaudrate = -1\n", "positive integer"),
    ("radio = 3\n", "array of tables"),
    ("[radios]\n", "unknown top-level key(s) radios"),
])
def test_bad_hardware_maps_say_what_is_wrong(text, message):
    with pytest.raises(HardwareMapError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        parse_hardware_map(text, "map.toml")
    assert "map.toml" in str(info.value)


def test_missing_map_file(tmp_path):
    with pytest.raises(HardwareMapError, match="does not exist"):
        load_hardware_map(tmp_path / "nope.toml")


def test_example_map_parses():
    from pathlib import Path

    import blockiot.hil

    example = Path(blockiot.hil.__file__).with_name("hardware-map.example.toml")
    assert {radio.personality for radio in load_hardware_map(example)} == {"meshtastic", "modem"}


def test_kinds():
    assert [kind.name for kind in hil_kinds("virtual")] == ["virtual-meshtastic", "virtual-modem"]


def test_kinds_from_a_map(tmp_path):
    path = tmp_path / "map.toml"
    path.write_text(MAP)
    kinds = hil_kinds(str(path))
    assert [(kind.name, len(kind.radios)) for kind in kinds] == [("hw-meshtastic", 1), ("hw-modem", 1)]


def test_skip_reasons():
    radio = HardwareRadio("/dev/ttyUSB0", "modem", "e22-900t22u")
    kind = RadioKind("hw-modem", "modem", False, (radio,), "lab.toml")
    assert "plug in 1 more (an E22-900T22U" in skip_reason(kind, 2, exists=lambda p: True)
    assert "not attached: modem radio (e22-900t22u) on /dev/ttyUSB0" in skip_reason(kind, 1, exists=lambda p: False)
    assert skip_reason(kind, 1, exists=lambda p: True) is None
    assert skip_reason(RadioKind("virtual-modem", "modem", True), 3) is None


INNER_TESTS = """
import pytest

@pytest.mark.hil
def test_pair(radio_pair):
    pass

@pytest.mark.hil
def test_rig_only(hil_rig):
    pass

@pytest.mark.hil(radios=1)
def test_one(radios):
    pass

@pytest.mark.hil
def test_marked_without_radios():
    pass
"""


def test_absent_hardware_is_skipped_with_what_to_plug_in(pytester):
    pytester.makefile(".toml", lab=MAP)
    pytester.makepyfile(INNER_TESTS)
    result = pytester.runpytest("--hil", "lab.toml", "-rs", "-v")
    result.assert_outcomes(passed=1, skipped=6)
    result.stdout.fnmatch_lines([
        "*test_pair?hw-meshtastic? SKIPPED*",
        "*test_pair?hw-modem? SKIPPED*",
        "*not attached: modem radio (e22-900t22u) on /dev/does-not-exist-modem*",
    ])


def test_map_with_too_few_radios(pytester):
    pytester.makefile(".toml", lab=MAP.split("[[radio]]")[0] + "[[radio]]" + MAP.split("[[radio]]")[2])
    pytester.makepyfile(INNER_TESTS)
    result = pytester.runpytest("--hil", "lab.toml", "-rs")
    result.stdout.fnmatch_lines(["*lists 0 meshtastic radio(s), this test needs 2: plug in 2 more*"])


def test_bad_map_fails_collection_clearly(pytester):
    pytester.makefile(".toml", lab="[[radio]]\nport = 1\n")
    pytester.makepyfile(INNER_TESTS)
    result = pytester.runpytest("--hil", "lab.toml")
    result.stdout.fnmatch_lines(["*'port' is required*"])
    assert result.ret != 0


def test_cpu_hog_keeps_every_core_busy_until_closed():
    before = os.times()
    with CpuHog(2) as hog:
        assert hog.running
        time.sleep(1.0)
    used = os.times()
    burnt = used.children_user + used.children_system - before.children_user - before.children_system
    assert burnt > 0.1  # the workers spun (however busy the machine already was)
    assert not hog.running


def test_every_hil_test_can_run_beside_a_cpu_hog(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.hil(radios=1)
        def test_loaded(radios, request):
            assert request.getfixturevalue("cpu_hog").running  # the one the bench started with
    """)
    result = pytester.runpytest("--hil-cpu-hog", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
