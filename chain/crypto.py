"""Hashes, Merkle roots and Ed25519 device identities (PyNaCl), including key files.

BLAKE2b-256 everywhere something is stored or signed. Key files hold the 32-byte
Ed25519 seed in hex, are written 0600 and refused when group/other can read them.
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
        """Write the key file with mode 0600, atomically (temp file + rename)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"{KEY_FILE_HEADER}\n{self.seed.hex()}\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except OSError as exc:
            raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Identity":
        path = Path(path)
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} does not exist (create one with `blockiot keygen`)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key file {path} is accessible by group/others (mode {stat.S_IMODE(mode):o}); "
                f"run `chmod 600 {path}`"
            )
        lines = text.split()
        if len(lines) < 2 or " ".join(lines[:-1]) != KEY_FILE_HEADER:
            raise KeyFileError(f"{path} is not a BlockIoT key file (expected header '{KEY_FILE_HEADER}')")
        try:
            seed = bytes.fromhex(lines[-1])
        except ValueError:
            raise KeyFileError(f"{path}: the seed is not hex") from None
        return cls.from_seed(seed)
