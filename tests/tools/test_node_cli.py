"""`blockiot node` refuses a radio that does not run the cluster's preset, and a failed
start leaves nothing behind."""
from __future__ import annotations

from blockiot.chain.crypto import Identity
from blockiot.hil.rig import VirtualRig
from blockiot.tools.cli import main


def write_cluster(tmp_path, preset: str):
    identity = Identity.from_seed(bytes([0x41]) * 32)
    key = tmp_path / "node.key"
    identity.save(key)
    genesis = tmp_path / "cluster.toml"
    genesis.write_text(
        f'[cluster]\nname = "c"\ngenesis_time = 1764000000\nslot_seconds = 10\nregion = "EU868"\npreset = "{preset}"\n\n'
        f'[[member]]\nname = "gw"\npublic_key = "{identity.public_key.hex()}"\nrole = "validator"\n'
    )
    return genesis, key


def test_a_radio_on_another_preset_is_refused_and_nothing_is_left(tmp_path, capsys):
    genesis, key = write_cluster(tmp_path, "LongFast")
    with VirtualRig(1, preset="ShortFast", time_scale=0.01) as rig:
        status = main(["node", "--genesis", str(genesis), "--key", str(key), "--data-dir", str(tmp_path / "data"),
                       "--port", rig.ports[0], "--seconds", "5"])
    err = capsys.readouterr().err
    assert status == 2
    assert "ShortFast" in err and "LongFast" in err and "lora.modem_preset LONG_FAST" in err
    assert not (tmp_path / "data").exists()
