"""`blockiot keygen` and `blockiot pubkey`: key files made safely, mistakes refused plainly."""
from __future__ import annotations

import os
import stat

import pytest

from blockiot.chain.crypto import Identity
from blockiot.tools.cli import main


def test_keygen_writes_0600_and_pubkey_prints_its_key(tmp_path, capsys):
    path = tmp_path / "probe.key"
    assert main(["keygen", str(path)]) == 0
    out = capsys.readouterr().out
    public_hex = Identity.load(path).public_key.hex()
    assert f'public_key = "{public_hex}"' in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    assert main(["pubkey", str(path)]) == 0
    assert capsys.readouterr().out.strip() == public_hex


def test_keygen_refuses_to_overwrite_without_force(tmp_path, capsys):
    path = tmp_path / "probe.key"
    main(["keygen", str(path)])
    first = Identity.load(path).seed
    capsys.readouterr()
    assert main(["keygen", str(path)]) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "Traceback" not in err
    assert Identity.load(path).seed == first

    assert main(["keygen", str(path), "--force"]) == 0
    assert Identity.load(path).seed != first


def test_pubkey_refuses_a_readable_key(tmp_path, capsys):
    path = tmp_path / "probe.key"
    main(["keygen", str(path)])
    os.chmod(path, 0o644)
    capsys.readouterr()
    assert main(["pubkey", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"chmod 600 {path}" in err and "Traceback" not in err


def test_pubkey_of_a_missing_file(tmp_path, capsys):
    assert main(["pubkey", str(tmp_path / "absent.key")]) == 2
    assert "blockiot keygen" in capsys.readouterr().err


def test_keygen_creates_missing_folders(tmp_path, capsys):
    path = tmp_path / "keys" / "gw.key"
    assert main(["keygen", str(path)]) == 0
    assert Identity.load(path).public_key.hex() in capsys.readouterr().out


def test_keygen_refuses_a_link_planted_at_its_temp_file(tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "gw.key.tmp").symlink_to(victim)
    assert main(["keygen", str(tmp_path / "gw.key"), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("blockiot keygen: ") and "gw.key.tmp already exists" in err and "Traceback" not in err
    assert victim.read_text() == "precious\n" and not (tmp_path / "gw.key").exists()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_text("blockiot-ed25519-seed v1\nnot-hex\n"), "the seed is not hex"),
    ],
)
def test_pubkey_of_what_is_not_a_key_says_so_without_a_traceback(tmp_path, capsys, make, message):
    path = tmp_path / "gw.key"
    make(path)
    if path.is_file():
        path.chmod(0o600)
    assert main(["pubkey", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("blockiot pubkey: ") and message in err and "Traceback" not in err
