"""`blockiot genesis`: a good cluster description and the mistakes people make in one."""
from __future__ import annotations

import pytest

from blockiot.chain.genesis import decode_genesis, load_genesis_toml
from blockiot.chain.store import ChainStore
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
                   "region 'MARS' is not one of"),
    "text_slot": (lambda k: CLUSTER.replace("= 30", '= "soon"') + member("gw", k[0], "validator"), "invalid literal"),
    "bad_preset": (lambda k: CLUSTER.replace('"LongFast"', '"Long Fast!"') + member("gw", k[0], "validator"),
                   "preset 'Long Fast!'"),
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
