"""`blockiot genesis`: a good cluster description and the mistakes people make in one."""
from __future__ import annotations

import pytest

from blockiot.chain.genesis import decode_genesis, load_genesis_toml
from blockiot.chain.store import ChainStore
from blockiot.radio.airtime import preset_display_names
from blockiot.radio.dutycycle import REGULATED_REGIONS
from blockiot.tools.cli import main

CLUSTER = """\
[cluster]
name = "vineyard"
genesis_time = 1764000000
slot_seconds = 30
epoch_slots = 120
region = "EU868"
preset = "LongFast"
"""


def member(name, key_hex, role="member", groups=("field-a",)) -> str:
    group_list = ", ".join(f'"{g}"' for g in groups)
    return f'\n[[member]]\nname = "{name}"\npublic_key = "{key_hex}"\nrole = "{role}"\ngroups = [{group_list}]\n'


@pytest.fixture
def keys(identities) -> list[str]:
    return [i.public_key.hex() for i in identities]


@pytest.fixture
def good_toml(tmp_path, keys):
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER + member("gateway", keys[0], "validator") + member("probe-1", keys[1]))
    return path


def test_genesis_prints_chain_id_and_writes_outputs(tmp_path, good_toml, capsys):
    out_file, data_dir = tmp_path / "genesis.bin", tmp_path / "node"
    assert main(["genesis", str(good_toml), "--out", str(out_file), "--data-dir", str(data_dir)]) == 0
    genesis = load_genesis_toml(good_toml)
    out = capsys.readouterr().out
    assert f"chain id  {genesis.chain_id.hex()}" in out
    assert "2 (1 validators)" in out
    assert decode_genesis(out_file.read_bytes()) == genesis
    store = ChainStore(data_dir)
    assert store.genesis() == genesis
    store.close()
    assert main(["genesis", str(good_toml), "--data-dir", str(data_dir)]) == 0  # same cluster: fine


def test_genesis_refuses_a_data_dir_of_another_cluster(tmp_path, good_toml, keys, capsys):
    data_dir = tmp_path / "node"
    main(["genesis", str(good_toml), "--data-dir", str(data_dir)])
    other = tmp_path / "other.toml"
    other.write_text(CLUSTER.replace("vineyard", "orchard") + member("gateway", keys[0], "validator"))
    capsys.readouterr()
    assert main(["genesis", str(other), "--data-dir", str(data_dir)]) == 2
    assert "different cluster" in capsys.readouterr().err


@pytest.mark.parametrize("region", REGULATED_REGIONS)
@pytest.mark.parametrize("preset", preset_display_names())
def test_every_region_with_airtime_rules_and_every_preset_is_accepted(tmp_path, keys, capsys, region, preset):
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER.replace("EU868", region).replace("LongFast", preset) + member("gw", keys[0], "validator"))
    assert main(["genesis", str(path)]) == 0
    params = load_genesis_toml(path).params
    assert (params.region, params.preset) == (region, preset)


BAD = {
    "missing_cluster": (lambda k: member("gw", k[0], "validator"), "missing [cluster] table"),
    "no_members": (lambda k: CLUSTER, "needs at least one [[member]]"),
    "bad_hex_key": (lambda k: CLUSTER + member("gw", "zz" * 32, "validator"), "public_key is not hex"),
    "short_key": (lambda k: CLUSTER + member("gw", k[0][:62], "validator"), "a public key is 32 bytes"),
    "missing_key": (lambda k: CLUSTER + '[[member]]\nname = "gw"\nrole = "validator"\n', "gw has no public_key"),
    "unknown_role": (lambda k: CLUSTER + member("gw", k[0], "validator") + member("p", k[1], "admin"),
                     "role must be one of"),
    "duplicate_public_key": (lambda k: CLUSTER + member("gw", k[0], "validator") + member("p", k[0]),
                             "public key listed twice"),
    "duplicate_member_name": (lambda k: CLUSTER + member("gw", k[0], "validator") + member("gw", k[1]),
                              "invalid or listed twice"),
    "duplicate_toml_key": (lambda k: CLUSTER + 'name = "again"\n' + member("gw", k[0], "validator"),
                           "is not valid TOML"),
    "no_validator": (lambda k: CLUSTER + member("p", k[0]), "at least one validator"),
    "unknown_cluster_key": (lambda k: CLUSTER + 'colour = "red"\n' + member("gw", k[0], "validator"),
                            "unknown [cluster] keys: colour"),
    "unknown_member_key": (lambda k: CLUSTER + member("gw", k[0], "validator") + 'colour = "red"\n',
                           "unknown keys colour"),
    "bad_region": (lambda k: CLUSTER.replace("EU868", "MARS") + member("gw", k[0], "validator"),
                   "region 'MARS' is not one the node has airtime rules for; allowed: EU868, US915"),
    # A real region, but one without airtime rules in radio/dutycycle.py: refused, not guessed.
    "region_without_rules": (lambda k: CLUSTER.replace("EU868", "ANZ") + member("gw", k[0], "validator"),
                             "region 'ANZ' is not one the node has airtime rules for; allowed: EU868, US915"),
    "region_none": (lambda k: CLUSTER.replace("EU868", "NONE") + member("gw", k[0], "validator"),
                    "region 'NONE' is not one the node has airtime rules for"),
    "text_slot": (lambda k: CLUSTER.replace("= 30", '= "soon"') + member("gw", k[0], "validator"),
                  "[cluster] slot_seconds must be a whole number, not 'soon'"),
    "fraction_slot": (lambda k: CLUSTER.replace("= 30", "= 30.5") + member("gw", k[0], "validator"),
                      "[cluster] slot_seconds must be a whole number, not 30.5"),
    "nan_epoch": (lambda k: CLUSTER.replace("= 120", "= nan") + member("gw", k[0], "validator"),
                  "[cluster] epoch_slots must be a whole number, not nan"),
    "inf_time": (lambda k: CLUSTER.replace("= 1764000000", "= inf") + member("gw", k[0], "validator"),
                 "[cluster] genesis_time must be a whole number, not inf"),
    "bool_slot": (lambda k: CLUSTER.replace("= 30", "= true") + member("gw", k[0], "validator"),
                  "[cluster] slot_seconds must be a whole number, not True"),
    "zero_slot": (lambda k: CLUSTER.replace("= 30", "= 0") + member("gw", k[0], "validator"),
                  "slot_seconds must be 1..3600, got 0"),
    "bad_preset": (lambda k: CLUSTER.replace('"LongFast"', '"Long Fast!"') + member("gw", k[0], "validator"),
                   "preset 'Long Fast!' is not a Meshtastic preset the node supports; allowed: ShortTurbo"),
    "unknown_preset": (lambda k: CLUSTER.replace('"LongFast"', '"SuperFast"') + member("gw", k[0], "validator"),
                       "preset 'SuperFast' is not a Meshtastic preset the node supports; allowed: ShortTurbo"),
    # One spelling per preset, so one cluster description has one chain id.
    "preset_spelling": (lambda k: CLUSTER.replace('"LongFast"', '"LONG_FAST"') + member("gw", k[0], "validator"),
                        "preset 'LONG_FAST' is not a Meshtastic preset the node supports"),
    "groups_not_list": (lambda k: CLUSTER + member("gw", k[0], "validator").replace('["field-a"]', '"field-a"'),
                        "groups must be a list"),
    "not_toml": (lambda k: "this is [not toml\n", "is not valid TOML"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_cluster_description_exits_2_with_a_message(tmp_path, keys, capsys, case):
    make, message = BAD[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(make(keys))
    assert main(["genesis", str(path), "--data-dir", str(tmp_path / "node")]) == 2
    captured = capsys.readouterr()
    assert message in captured.err, captured.err
    assert captured.err.startswith("blockiot genesis: ") and "Traceback" not in captured.err
    assert not (tmp_path / "node").exists()


def test_missing_description_file(tmp_path, capsys):
    assert main(["genesis", str(tmp_path / "absent.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unwritable_out_file_exits_2(tmp_path, good_toml, capsys):
    assert main(["genesis", str(good_toml), "--out", str(tmp_path / "no" / "dir" / "g.bin")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err
