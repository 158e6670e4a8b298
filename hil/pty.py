"""`PtyPair`: the serial port of a virtual radio, a real pseudo-terminal the host opens by path.

The host side is the pty's slave, an ordinary tty: `serial.Serial(path)` and the
meshtastic library's `SerialInterface(path)` open it like a USB CDC port. Their
termios calls work on a pty (baud rate is accepted and ignored, clearing HUPCL is
harmless, `exclusive=True` takes its flock). A pty has no modem-control lines: the
DTR/RTS ioctls fail with ENOTTY. pyserial ignores that while opening the port (the
meshtastic library never touches DTR/RTS afterwards), but setting `.dtr` / `.rts` on
an open port raises OSError, so a driver that drives pins (E22 M0/M1) must tolerate
it. The device side is the non-blocking master.

- Raw mode: the slave is set raw at creation (no echo, no CR/LF translation), so
  bytes pass unchanged before any host program configures the port.
- The pair keeps its own slave descriptor open. Without it, the master reads EIO and
  selects readable forever whenever no host has the port open.
- The device side must always drain the master (`read`): a pyserial writer with
  `write_timeout=0` (as the meshtastic library opens it) spins forever on a full pty.
- Bytes towards the host that the pty cannot take yet wait in a bounded buffer and go
  out with `flush` when the master is writable; a write that would overflow it is
  dropped whole (so a framed stream is never cut mid-frame) and counted.
- Bytes written while no host has the port open wait in the pty, and pyserial discards
  them when it opens the port (it flushes input on open), as a USB port would lose them.

Unplug and replug, as a USB cable would: `unplug()` closes the pty, so the host's
next read or write fails (pyserial raises SerialException) and the path disappears.
`replug()` makes a new pty. A new pty gets a new /dev/pts/N, so the host finds the
radio again through the stable `link` path, a symlink this class points at the
current slave and removes while unplugged: the role /dev/serial/by-id/... plays for
real hardware (a udev symlink that survives re-enumeration).
"""
from __future__ import annotations

import os
import tty
from pathlib import Path

from blockiot.radio.errors import BlockIoTError

DEFAULT_MAX_PENDING = 64 * 1024
_READ_CHUNK = 65536


class PtyError(BlockIoTError):
    """A pty that cannot be made, or used while unplugged or closed."""


class PtyPair:
    """One pseudo-terminal: the host opens `path`, the device reads and writes `master_fd`."""

    def __init__(self, link: str | os.PathLike[str] | None = None, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 1:
            raise PtyError(f"max_pending must be >= 1, got {max_pending}")
        self.link = Path(link) if link is not None else None
        self.max_pending = max_pending
        self.bytes_from_host = 0
        self.bytes_to_host = 0
        self.dropped_to_host = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._device_path: str | None = None
        self._pending = bytearray()
        self._closed = False
        self._open_pty()

    # -- state --------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The path a host opens: the stable link if there is one, else the current slave device."""
        if self.link is not None:
            return str(self.link)
        if self._device_path is None:
            raise PtyError("pty is unplugged and has no stable link path")
        return self._device_path

    @property
    def device_path(self) -> str | None:
        """The current slave device (/dev/pts/N), None while unplugged."""
        return self._device_path

    @property
    def master_fd(self) -> int | None:
        """The device side to select on, None while unplugged."""
        return self._master

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def wants_write(self) -> bool:
        """Bytes towards the host are waiting for the master to become writable."""
        return self._master is not None and bool(self._pending)

    # -- device side IO -----------------------------------------------------------------

    def read(self) -> bytes:
        """Everything the host has written so far (b"" if nothing, or unplugged)."""
        if self._master is None:
            return b""
        chunks = []
        while True:
            try:
                chunk = os.read(self._master, _READ_CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        self.bytes_from_host += len(data)
        return data

    def write(self, data: bytes) -> bool:
        """Send bytes towards the host; False if they were dropped (unplugged, or buffer full)."""
        if self._master is None:
            self.dropped_to_host += len(data)
            return False
        if len(self._pending) + len(data) > self.max_pending:
            self.dropped_to_host += len(data)
            return False
        self._pending += data
        self.flush()
        return True

    def flush(self) -> None:
        """Write waiting bytes as far as the pty takes them now."""
        while self._master is not None and self._pending:
            try:
                written = os.write(self._master, self._pending)
            except BlockingIOError:
                return
            del self._pending[:written]
            self.bytes_to_host += written

    # -- the cable ----------------------------------------------------------------------

    def unplug(self) -> None:
        """Pull the cable: the host's port fails, the path disappears, waiting bytes are lost."""
        self._require_open()
        if self._master is None:
            return
        self.dropped_to_host += len(self._pending)
        self._pending.clear()
        self._close_fds()
        if self.link is not None:
            self.link.unlink(missing_ok=True)

    def replug(self) -> None:
        """Plug the cable back in: a fresh pty behind the same stable link path."""
        self._require_open()
        if self._master is not None:
            raise PtyError(f"{self.path} is already plugged in")
        self._open_pty()

    def close(self) -> None:
        """Unplug for good. Idempotent."""
        if self._closed:
            return
        if self._master is not None:
            self.unplug()
        self._closed = True

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._closed:
            raise PtyError("pty is closed")

    def _open_pty(self) -> None:
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise PtyError(f"cannot allocate a pseudo-terminal: {exc}") from exc
        try:
            tty.setraw(slave)
            os.set_blocking(master, False)
            device_path = os.ttyname(slave)
            if self.link is not None:
                staging = self.link.with_name(f".{self.link.name}.new")
                staging.unlink(missing_ok=True)
                os.symlink(device_path, staging)
                os.replace(staging, self.link)  # atomic: the link never dangles half-made
        except BaseException as exc:
            os.close(master)
            os.close(slave)
            if isinstance(exc, OSError):
                raise PtyError(f"cannot set up the pty at {self.link or 'its device path'}: {exc}") from exc
            raise
        self._master, self._slave, self._device_path = master, slave, device_path

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = self._device_path = None
