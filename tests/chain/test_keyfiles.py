"""Key files: written 0600, refused when others can read them or when malformed."""
from __future__ import annotations

import os
import stat

import pytest

from blockiot.chain.crypto import KEY_FILE_HEADER, Identity
from blockiot.chain.errors import KeyFileError

SEED = bytes(range(32))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_save_writes_0600_and_loads_back(tmp_path):
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        Identity.from_seed(SEED).save(tmp_path / "node.key")
    finally:
        os.umask(old_umask)
    assert mode(tmp_path / "node.key") == 0o600
    assert (tmp_path / "node.key").read_text() == f"{KEY_FILE_HEADER}\n{SEED.hex()}\n"
    loaded = Identity.load(tmp_path / "node.key")
    assert loaded.seed == SEED and loaded.public_key == Identity.from_seed(SEED).public_key
    assert not list(tmp_path.glob("*.tmp"))


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "node.key"
    Identity.from_seed(SEED).save(path)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        Identity.generate().save(path)
    assert Identity.load(path).seed == SEED
    other = Identity.generate()
    other.save(path, overwrite=True)
    assert Identity.load(path).seed == other.seed and mode(path) == 0o600


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_a_key_others_can_read(tmp_path, bad_mode):
    path = tmp_path / "node.key"
    Identity.from_seed(SEED).save(path)
    os.chmod(path, bad_mode)
    with pytest.raises(KeyFileError, match=f"chmod 600 {path}") as info:
        Identity.load(path)
    assert f"{bad_mode:o}" in str(info.value)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "not a BlockIoT key file"),
        (SEED.hex() + "\n", "not a BlockIoT key file"),
        (f"some other header\n{SEED.hex()}\n", "not a BlockIoT key file"),
        (f"{KEY_FILE_HEADER}\n", "not a BlockIoT key file"),
        (f"{KEY_FILE_HEADER}\nnot-hex-at-all\n", "not hex"),
        (f"{KEY_FILE_HEADER}\n{SEED.hex()[:-2]}\n", "32 bytes, got 31"),
        (f"{KEY_FILE_HEADER}\n{SEED.hex()}00\n", "32 bytes, got 33"),
        (b"\xff\xfe\x00binary", "cannot read key file"),
    ],
)
def test_load_refuses_malformed_content(tmp_path, content, message):
    path = tmp_path / "node.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(KeyFileError, match=message):
        Identity.load(path)


def test_load_of_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(KeyFileError, match="blockiot keygen"):
        Identity.load(tmp_path / "absent.key")


def test_save_into_a_missing_directory_is_a_key_file_error(tmp_path):
    with pytest.raises(KeyFileError, match="cannot write key file"):
        Identity.generate().save(tmp_path / "no" / "such" / "dir" / "node.key")
