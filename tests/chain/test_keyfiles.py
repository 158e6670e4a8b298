"""Key files: written 0600 into folders made as needed, never through a link or over a key
unless asked; refused when others can read them, when malformed or not a regular file."""
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
        (b"\xff\xfe\x00binary", "cannot read key file .* it is not text"),
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


def test_save_creates_missing_folders_owner_only(tmp_path):
    path = tmp_path / "keys" / "field" / "node.key"
    Identity.from_seed(SEED).save(path)
    assert Identity.load(path).seed == SEED
    assert mode(tmp_path / "keys" / "field") == 0o700 and mode(path) == 0o600


def test_save_under_a_file_is_a_key_file_error(tmp_path):
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(KeyFileError, match="plain is not a folder"):
        Identity.generate().save(tmp_path / "plain" / "node.key")


def test_a_link_planted_at_the_temp_file_is_refused_and_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path = tmp_path / "node.key"
    (tmp_path / "node.key.tmp").symlink_to(victim)
    with pytest.raises(KeyFileError, match=r"node\.key\.tmp already exists"):
        Identity.from_seed(SEED).save(path, overwrite=True)
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "node.key.tmp").is_symlink() and not path.exists()


def test_a_dangling_link_at_the_temp_file_creates_nothing_at_its_target(tmp_path):
    target = tmp_path / "elsewhere" / "stolen.key"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "node.key.tmp").symlink_to(target)
    with pytest.raises(KeyFileError, match="already exists"):
        Identity.from_seed(SEED).save(tmp_path / "node.key")
    assert not target.exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_link_at_the_key_path_is_refused_even_with_overwrite(tmp_path, overwrite):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path = tmp_path / "node.key"
    path.symlink_to(victim)
    with pytest.raises(KeyFileError, match="is a symbolic link"):
        Identity.from_seed(SEED).save(path, overwrite=overwrite)
    assert victim.read_text() == "precious\n" and path.is_symlink()
    assert not (tmp_path / "node.key.tmp").exists()


def test_save_over_a_directory_is_refused(tmp_path):
    (tmp_path / "node.key").mkdir()
    with pytest.raises(KeyFileError, match="is a directory"):
        Identity.generate().save(tmp_path / "node.key", overwrite=True)


def test_a_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(KeyFileError, match="No space left on device"):
        Identity.generate().save(tmp_path / "node.key")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: os.mkfifo(p, 0o600), "is not a regular file"),
    ],
)
def test_load_refuses_what_is_not_a_key_file(tmp_path, make, message):
    path = tmp_path / "node.key"
    make(path)
    with pytest.raises(KeyFileError, match=message):
        Identity.load(path)


def test_load_refuses_a_device_without_reading_it():
    with pytest.raises(KeyFileError, match="/dev/zero is not a regular file"):
        Identity.load("/dev/zero")


def test_load_refuses_an_oversized_file(tmp_path):
    path = tmp_path / "node.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{KEY_FILE_HEADER}\n{SEED.hex() * 100}\n")
    with pytest.raises(KeyFileError, match="not a BlockIoT key file"):
        Identity.load(path)
