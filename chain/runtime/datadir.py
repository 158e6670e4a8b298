"""A node's data dir, held by one node at a time: `node.lock` is locked (flock) for as long
as the node runs, so a second node on the same dir (same key: an honest validator made to
equivocate) is refused at start. A start that fails removes a data dir it created. It also
keeps the device's nonce reservation (`nonce`), so no nonce is signed twice across restarts.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from blockiot.chain.errors import ChainError

LOCK_NAME = "node.lock"
NONCE_NAME = "nonce"


class DataDirBusy(ChainError):
    """Another node runs on this data dir, or the dir cannot be used."""


class DataDir:
    """`with DataDir(path) as d:` creates (parents too) and locks `path`; `d.abandon()`
    on a failed start removes it if this call created it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.created: Path | None = None  # the outermost folder this start created
        self._fd: int | None = None

    def __enter__(self) -> "DataDir":
        if self.path.exists() and not self.path.is_dir():
            raise DataDirBusy(f"data dir {self.path} exists and is not a directory")
        try:
            if not self.path.exists():
                missing = self.path.absolute()
                while not missing.parent.exists():
                    missing = missing.parent
                self.path.mkdir(parents=True, mode=0o700)
                self.created = missing
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise DataDirBusy(f"cannot use data dir {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirBusy(f"another node (pid {holder}) is running on {self.path}; "
                              "one data dir holds one node") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def reserved_nonce(self) -> int:
        """The nonce reservation kept by `reserve_nonce` (0 when none)."""
        try:
            return int((self.path / NONCE_NAME).read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise DataDirBusy(f"{self.path / NONCE_NAME} is unreadable ({exc}); remove it to skip past "
                              "the last final nonce instead") from None

    def reserve_nonce(self, nonce: int) -> None:
        """Keep `nonce` as the reservation, durably (written, synced, renamed)."""
        tmp = self.path / f"{NONCE_NAME}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, f"{nonce}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path / NONCE_NAME)

    def abandon(self) -> None:
        """Undo a failed start: remove the data dir, and the folders above it this start
        created, if they did not exist before."""
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
            self.created = None

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing releases the lock
            self._fd = None
