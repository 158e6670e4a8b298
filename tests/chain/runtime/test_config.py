"""A node's settings (chain/runtime/config.py): a TOML file read strictly (unknown keys,
wrong types, paths relative to the file), flags merged over it, and `check` naming the
setting that is missing or out of range."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from blockiot.chain.runtime.config import NodeConfig, NodeConfigError, load_node_config, merge

VALID = dict(genesis=Path("/c/cluster.toml"), key=Path("/c/gw.key"), data_dir=Path("/var/lib/blockiot"), port="auto")


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_a_node_file_is_read_with_paths_relative_to_it(tmp_path):
    path = write(tmp_path, '''
genesis = "cluster.toml"
key = "keys/gw-1.key"
data_dir = "/var/lib/blockiot"
port = "auto"
radio = "e22"
frequency = 869.525e6
budget = 0.05
hook = "bin/relay"
log_json = true
seconds = 60
''')
    config = load_node_config(path)
    assert config == NodeConfig(
        genesis=tmp_path / "cluster.toml", key=tmp_path / "keys/gw-1.key", data_dir=Path("/var/lib/blockiot"),
        port="auto", radio="e22", frequency=869.525e6, budget=0.05, hook=tmp_path / "bin/relay", log_json=True,
        seconds=60.0,
    )
    assert isinstance(config.seconds, float)
    assert config.check() is config


def test_a_relative_file_path_makes_relative_paths_relative_to_its_directory(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "node.toml").write_text('key = "gw.key"\n')
    monkeypatch.chdir(tmp_path)
    assert load_node_config(Path("etc/node.toml")).key == Path("etc/gw.key")


def test_a_whole_number_is_a_float_setting(tmp_path):
    assert load_node_config(write(tmp_path, "frequency = 915000000\n")).frequency == 915e6


def test_an_unknown_key_is_named_with_the_known_ones(tmp_path):
    with pytest.raises(NodeConfigError, match=r"unknown key `datadir`; known: genesis, key, data_dir"):
        load_node_config(write(tmp_path, 'datadir = "/x"\n'))


@pytest.mark.parametrize(("line", "message"), [
    ('budget = "5%"', "`budget` must be float"),
    ("budget = true", "`budget` must be float"),
    ("key = 7", "`key` must be str"),
    ('log_json = "yes"', "`log_json` must be bool"),
    ("log_json = 1", "`log_json` must be bool"),
    ("port = 3", "`port` must be str"),
    ("seconds = [1]", "`seconds` must be float"),
    ("radio = { kind = 'e22' }", "`radio` must be str"),
])
def test_a_wrong_type_names_the_key_and_the_type(tmp_path, line, message):
    with pytest.raises(NodeConfigError, match=message):
        load_node_config(write(tmp_path, line + "\n"))


def test_a_file_that_is_not_toml_or_is_missing_says_so(tmp_path):
    with pytest.raises(NodeConfigError, match="is not valid TOML"):
        load_node_config(write(tmp_path, "genesis = \n"))
    with pytest.raises(NodeConfigError, match="cannot read"):
        load_node_config(tmp_path / "absent.toml")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(NodeConfigError, match="not valid TOML"):
        load_node_config(tmp_path / "binary.toml")


@pytest.mark.parametrize(("missing", "flag"), [("genesis", "--genesis"), ("key", "--key"), ("data_dir", "--data-dir")])
def test_a_missing_required_setting_names_its_flag_and_key(missing, flag):
    with pytest.raises(NodeConfigError, match=f"`{missing}` is required \\(flag {flag} or key `{missing}`"):
        NodeConfig(**{**VALID, missing: None}).check()


def test_exactly_one_of_port_and_host():
    with pytest.raises(NodeConfigError, match="exactly one of `port`"):
        NodeConfig(**{**VALID, "port": None}).check()
    with pytest.raises(NodeConfigError, match="exactly one of `port`"):
        NodeConfig(**{**VALID, "host": "meshtasticd.local"}).check()
    NodeConfig(**{**VALID, "port": None, "host": "meshtasticd.local"}).check()


def test_the_radio_is_a_known_one_and_an_e22_needs_a_port():
    with pytest.raises(NodeConfigError, match="`radio` must be one of meshtastic, e22"):
        NodeConfig(**{**VALID, "radio": "sx1262"}).check()
    with pytest.raises(NodeConfigError, match="E22 modem attaches by serial port"):
        NodeConfig(**{**VALID, "port": None, "host": "h", "radio": "e22"}).check()
    NodeConfig(**{**VALID, "radio": "e22"}).check()
    NodeConfig(**{**VALID, "port": None, "host": "h", "radio": "meshtastic"}).check()


@pytest.mark.parametrize("frequency", [869.525, 136e6, 1021e6, math.nan, math.inf])
def test_the_frequency_is_a_carrier_in_hz(frequency):
    with pytest.raises(NodeConfigError, match=r"`frequency` is the carrier in Hz.*869.525e6"):
        NodeConfig(**VALID, frequency=frequency).check()


@pytest.mark.parametrize("frequency", [137e6, 433.175e6, 869.525e6, 1020e6])
def test_frequencies_a_lora_radio_tunes_are_accepted(frequency):
    NodeConfig(**VALID, frequency=frequency).check()


@pytest.mark.parametrize("budget", [0.0, -0.05, 1.01, 5.0, math.nan])
def test_the_budget_is_a_fraction(budget):
    with pytest.raises(NodeConfigError, match=r"`budget` is a duty-cycle fraction in \(0, 1\].*0.05"):
        NodeConfig(**VALID, budget=budget).check()


@pytest.mark.parametrize("budget", [0.001, 0.05, 1.0])
def test_fractions_up_to_one_are_budgets(budget):
    NodeConfig(**VALID, budget=budget).check()


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.nan])
def test_seconds_must_be_positive(seconds):
    with pytest.raises(NodeConfigError, match="`seconds` must be positive"):
        NodeConfig(**VALID, seconds=seconds).check()


def test_the_default_is_to_run_until_stopped():
    assert NodeConfig(**VALID).check().seconds == math.inf


def test_flags_override_the_file_and_absent_flags_do_not(tmp_path):
    base = load_node_config(write(tmp_path, 'port = "/dev/ttyUSB0"\nbudget = 0.05\nkey = "gw.key"\n'))
    merged = merge(base, {"port": None, "budget": 0.01, "seconds": None, "genesis": Path("/g.toml"), "verbose": True})
    assert merged.port == "/dev/ttyUSB0" and merged.key == tmp_path / "gw.key"
    assert merged.budget == 0.01 and merged.genesis == Path("/g.toml") and merged.seconds == math.inf


def test_config_errors_are_for_people():
    assert NodeConfigError.user_facing
