"""The local control socket: how `blockiot send`, `status` and a device's own scripts reach
the node running on a data dir.

A Unix socket `<data dir>/node.sock`, owner-only (0600), one JSON object per line each way:
a request `{"op": ...}`, then the answer, then the connection closes. Ops:

- `status`: the node's status (`status_of`, chain/runtime/status.py).
- `submit`: a transaction for this device to sign and flood: `{"op": "submit", "body":
  {"kind": "reading", "sensor": "moisture", "value": 28.7}}` (or `"kind": "command", "to":
  "valve-3", "action": "open", "args": [600]`; see chain/runtime/bodies.py). Answer
  `{"ok": true, "tx": "<id hex>"}` once the node accepted it, or `{"ok": false, "error": ...}`.

The server thread only moves bytes: each request goes to the node's loop through
`requests` with a reply queue, and the loop answers it between radio operations (so the
runtime is touched by one thread). `NodeClient` is the Python API for sensor scripts.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from blockiot.chain.errors import ChainError

SOCKET_NAME = "node.sock"
MAX_REQUEST = 64 * 1024
REPLY_TIMEOUT_S = 10.0
ACCEPT_POLL_S = 0.2
SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, minus the terminating zero (Linux)


class ControlError(ChainError):
    """The control socket cannot be used: no node running, or a malformed exchange."""

    user_facing = True


class NoNodeRunning(ControlError):
    """Nothing listens on the data dir's control socket."""


@dataclass
class Request:
    """One request from a client, answered by putting a dict into `reply`."""

    message: dict
    reply: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=1))


def socket_path(data_dir: str | Path) -> Path:
    path = Path(data_dir) / SOCKET_NAME
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ControlError(f"the data dir path is too long for a control socket ({path}); use a shorter one")
    return path


class ControlServer:
    """Accepts clients on `<data dir>/node.sock` in a thread; requests land in `requests`."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = socket_path(data_dir)
        self.requests: queue.Queue[Request] = queue.Queue()
        self._stop = threading.Event()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a node that died; the data dir lock says none runs now
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self._sock.bind(os.fsencode(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._sock.listen(8)
        self._sock.settimeout(ACCEPT_POLL_S)
        self._thread = threading.Thread(target=self._serve, name="blockiot-control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(REPLY_TIMEOUT_S)
                with contextlib.suppress(OSError):
                    conn.sendall(_line(self._answer(conn)))

    def _answer(self, conn: socket.socket) -> dict:
        try:
            message = json.loads(_read_line(conn))
        except (ValueError, OSError) as exc:
            return {"ok": False, "error": f"malformed request: {exc}"}
        if not isinstance(message, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        request = Request(message)
        self.requests.put(request)
        try:
            return request.reply.get(timeout=REPLY_TIMEOUT_S)
        except queue.Empty:
            return {"ok": False, "error": f"the node did not answer within {REPLY_TIMEOUT_S:g} s"}


class NodeClient:
    """Talks to the node running on `data_dir`: `NodeClient(d).submit({...})`, `.status()`."""

    def __init__(self, data_dir: str | Path, *, timeout: float = REPLY_TIMEOUT_S + 2.0) -> None:
        self.data_dir = Path(data_dir)
        self.timeout = timeout

    def status(self) -> dict:
        return self.call({"op": "status"})

    def submit(self, body: dict) -> str:
        """Hand a transaction body to the node; its id (hex) once the node accepted it."""
        return self.submit_tx(body)["tx"]

    def submit_tx(self, body: dict) -> dict:
        """Like `submit`, the whole answer: `tx` (id hex), `sender` and `nonce` (what names
        a proposal for votes)."""
        answer = self.call({"op": "submit", "body": body})
        if not answer.get("ok"):
            raise ControlError(f"the node refused it: {answer.get('error', 'no reason given')}")
        return answer

    def send_reading(self, sensor: str, value: float) -> str:
        return self.submit({"kind": "reading", "sensor": sensor, "value": value})

    def call(self, message: dict) -> dict:
        path = socket_path(self.data_dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            with sock:
                try:
                    sock.connect(os.fsencode(path))
                except (FileNotFoundError, ConnectionRefusedError):
                    raise NoNodeRunning(f"no node is running on {self.data_dir} (start one with `blockiot node`)") from None
                except PermissionError:
                    raise ControlError(f"{path}: permission denied (the node runs as another user)") from None
                sock.sendall(_line(message))
                answer = json.loads(_read_line(sock))
        except TimeoutError:
            raise ControlError(f"the node on {self.data_dir} did not answer within {self.timeout:g} s") from None
        except (OSError, ValueError) as exc:
            raise ControlError(f"talking to the node on {self.data_dir} failed: {exc}") from None
        if not isinstance(answer, dict):
            raise ControlError("the node answered something that is not a JSON object")
        return answer


def _line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError(f"longer than {MAX_REQUEST} B")
    return data
