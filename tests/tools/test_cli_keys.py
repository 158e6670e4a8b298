"""`blockiot keygen` and `blockiot pubkey`."""
from __future__ import annotations

import os
import stat

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
