"""Hashes, Merkle roots and Ed25519 device identities (PyNaCl), including key files.

BLAKE2b-256 everywhere something is stored or signed. Key files hold the 32-byte
Ed25519 seed in hex, are written 0600 without following links and never over an
existing key unless asked, and are refused when group/others can read them.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .errors import KeyFileError

HASH_LEN = 32
SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 32
KEY_FILE_HEADER = "blockiot-ed25519-seed v1"
MAX_KEY_FILE_BYTES = 1024  # a key file is 90 B; anything much larger is not one

_LEAF = b"\x00"
_NODE = b"\x01"


def blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=HASH_LEN).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """BLAKE2b Merkle root with leaf/node domain separation; an odd node is carried up
    unpaired (never duplicated, so two different lists cannot share a root)."""
    if not leaves:
        return blake2b256(b"")
    level = [blake2b256(_LEAF + leaf) for leaf in leaves]
    while len(level) > 1:
        paired = [blake2b256(_NODE + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


class Identity:
    """An Ed25519 signing identity of one device."""

    def __init__(self, signing_key: SigningKey):
        self._key = signing_key
        self.public_key: bytes = bytes(signing_key.verify_key)

    @classmethod
    def generate(cls) -> "Identity":
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        if len(seed) != 32:
            raise KeyFileError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        return cls(SigningKey(seed))

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the key file with mode 0600, creating missing parent folders (0700).

        The key goes to `<path>.tmp`, created new (O_EXCL, O_NOFOLLOW: never through a
        link), synced, then renamed over `path`. A `<path>.tmp` that already exists (a
        crashed or concurrent keygen, or a planted link) is refused, not removed; so is a
        symbolic link at `path`, even with `overwrite`: its target is left alone.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        if path.is_symlink():
            raise KeyFileError(f"{path} is a symbolic link; refusing to write a key over it "
                               f"(remove the link, or give the path it points to)")
        if path.is_dir():
            raise KeyFileError(f"{path} is a directory; give the path of the key file to write")
        if path.exists() and not overwrite:
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            raise KeyFileError(f"cannot write key file {path}: {path.parent} is not a folder") from None
        except OSError as exc:
            raise KeyFileError(f"cannot create the folder of key file {path}: {exc.strerror or exc}") from exc
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise KeyFileError(f"{tmp} already exists (another keygen running, or left by one "
                               f"that failed); remove it and try again") from None
        except OSError as exc:
            raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from exc
        try:
            with os.fdopen(fd, "w") as out:
                os.fchmod(fd, 0o600)  # whatever the umask
                out.write(f"{KEY_FILE_HEADER}\n{self.seed.hex()}\n")
                out.flush()
                os.fsync(fd)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # ours: created above with O_EXCL
            raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Identity":
        """Read a key file; refuse one that is missing, not a regular file, readable by
        group/others, or not in the format `save` writes."""
        path = Path(path)
        try:
            # O_NONBLOCK: a FIFO given as the key must not hang the open.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} does not exist (create one with `blockiot keygen`)") from None
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)  # of the file read below, not of whatever the path names later
            if stat.S_ISDIR(info.st_mode):
                raise KeyFileError(f"key file {path} is a directory")
            if not stat.S_ISREG(info.st_mode):
                raise KeyFileError(f"key file {path} is not a regular file")
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyFileError(
                    f"key file {path} is accessible by group/others (mode {stat.S_IMODE(info.st_mode):o}); "
                    f"run `chmod 600 {path}`"
                )
            text = os.read(fd, MAX_KEY_FILE_BYTES + 1).decode("ascii")
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise KeyFileError(f"cannot read key file {path}: it is not text") from None
        finally:
            os.close(fd)
        lines = text.split()
        if len(text) > MAX_KEY_FILE_BYTES or len(lines) < 2 or " ".join(lines[:-1]) != KEY_FILE_HEADER:
            raise KeyFileError(f"{path} is not a BlockIoT key file (expected header '{KEY_FILE_HEADER}')")
        try:
            seed = bytes.fromhex(lines[-1])
        except ValueError:
            raise KeyFileError(f"{path}: the seed is not hex") from None
        return cls.from_seed(seed)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
