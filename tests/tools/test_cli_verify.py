"""`blockiot verify` on a demo chain: ok, the first bad block after tampering, no store, and
damaged or foreign files: one line, exit 2, the file left as it was."""
from __future__ import annotations

import hashlib
import json
import random
import sqlite3

import pytest

from blockiot.chain.store import DB_NAME
from blockiot.tools.cli import main


@pytest.fixture
def demo_dir(tmp_path, capsys):
    data_dir = tmp_path / "node"
    assert main(["demo", "--slots", "12", "--data-dir", str(data_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["blocks"] == 12
    return data_dir


def tamper(data_dir, height, change):
    with sqlite3.connect(data_dir / DB_NAME) as db:
        raw = db.execute("select raw from blocks where height = ?", [height]).fetchone()[0]
        db.execute("update blocks set raw = ? where height = ?", [change(bytearray(raw)), height])
    db.close()


def test_verify_ok_on_a_demo_chain(demo_dir, capsys):
    assert main(["verify", "--data-dir", str(demo_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 12 blocks,") and "head 12" in out


def flip_signature_bit(raw: bytearray) -> bytes:
    raw[30] ^= 0x01  # inside the leader signature (bytes 11..74 for small heights and slots)
    return bytes(raw)


def flip_last_tx_byte(raw: bytearray) -> bytes:
    raw[-1] ^= 0x80  # the last tx's signature
    return bytes(raw)


@pytest.mark.parametrize(
    "change, problem",
    [
        (flip_signature_bit, "not signed by the slot's leader"),
        (flip_last_tx_byte, "bad signature"),
        (lambda raw: bytes(raw[:-1]), "malformed block"),
        (lambda raw: bytes(raw) + b"\x00", "expected end of stream"),
    ],
)
def test_verify_reports_the_first_bad_block(demo_dir, capsys, change, problem):
    tamper(demo_dir, 5, change)
    tamper(demo_dir, 9, change)
    assert main(["verify", "--data-dir", str(demo_dir)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("BAD at block 5: ") and problem in out
    assert "(4 blocks before it verified)" in out


def test_verify_on_an_empty_dir_exits_2(tmp_path, capsys):
    assert main(["verify", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no chain store" in err and "Traceback" not in err
    assert main(["verify", "--data-dir", str(tmp_path / "absent")]) == 2


def test_verify_on_a_fresh_genesis_store(tmp_path, identities, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[cluster]\nname = "solo"\ngenesis_time = 1764000000\n'
        f'[[member]]\nname = "gw"\npublic_key = "{identities[0].public_key.hex()}"\nrole = "validator"\n'
    )
    assert main(["genesis", str(toml), "--data-dir", str(tmp_path / "node")]) == 0
    capsys.readouterr()
    assert main(["verify", "--data-dir", str(tmp_path / "node")]) == 0
    assert capsys.readouterr().out.startswith("ok: 0 blocks, 0 txs")


def test_verify_on_a_file_that_is_not_a_store_exits_2(tmp_path, capsys):
    (tmp_path / DB_NAME).write_bytes(b"not an SQLite database" * 50)
    assert main(["verify", "--data-dir", str(tmp_path)]) == 2
    assert "cannot open chain store" in capsys.readouterr().err


def truncate_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def random_bytes(path):
    path.write_bytes(random.Random(7).randbytes(path.stat().st_size))


def newer_schema(path):
    with sqlite3.connect(path) as db:
        db.execute("update meta set value = x'63' where key = 'schema'")
    db.close()


def flip_a_page(path):
    data = bytearray(path.read_bytes())
    for i in range(8192, 8192 + 512):  # inside the second page on: a damaged b-tree page
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (truncate_half, "malformed"),
        (random_bytes, "file is not a database"),
        (newer_schema, "schema 99, newer than"),
        (flip_a_page, "chain.db"),
    ],
)
def test_verify_on_a_damaged_or_foreign_file_is_one_line_exit_2_and_changes_nothing(demo_dir, capsys, spoil, message):
    path = demo_dir / DB_NAME
    spoil(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["verify", "--data-dir", str(demo_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("blockiot verify: ") and message in captured.err
    assert len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_verify_against_another_clusters_genesis_exits_2(demo_dir, tmp_path, identities, capsys):
    toml = tmp_path / "other.toml"
    toml.write_text(
        '[cluster]\nname = "other"\ngenesis_time = 1764000000\n'
        f'[[member]]\nname = "gw"\npublic_key = "{identities[0].public_key.hex()}"\nrole = "validator"\n'
    )
    assert main(["verify", "--data-dir", str(demo_dir), "--genesis", str(toml)]) == 2
    assert "holds a different cluster's chain" in capsys.readouterr().err
