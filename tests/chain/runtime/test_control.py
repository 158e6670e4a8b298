"""The control socket (chain/runtime/control.py) and the commands that use it (tools/send.py,
tools/status.py): requests round-trip through `ControlServer.requests` to whoever answers
them, the socket is owner-only, and every failure (no node, malformed request, a path too
long for a Unix socket, a node that does not answer) is a clear message, not a traceback.

The node's side is a thread answering `requests`; waits are failure guards only."""
from __future__ import annotations

import json
import os
import queue
import socket
import stat
import tempfile
import threading
from pathlib import Path

import pytest
from runtime_helpers import T0, VAL_A, make_runtime

from blockiot.chain.runtime import control
from blockiot.chain.runtime.control import SOCKET_NAME, ControlError, ControlServer, NodeClient, socket_path
from blockiot.chain.runtime.status import status_of
from blockiot.tools.cli import main

GUARD_S = 30.0
TX = "ab" * 32


@pytest.fixture
def data_dir():
    """A short directory: a Unix socket path has at most 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="biot-", dir="/tmp") as d:
        yield Path(d)


class Answerer:
    """The node's side: answers each request in `server.requests` with `answer(message)`."""

    def __init__(self, server: ControlServer, answer) -> None:
        self.server = server
        self.answer = answer
        self.messages: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                request = self.server.requests.get(timeout=0.05)
            except queue.Empty:
                continue
            self.messages.append(request.message)
            request.reply.put(self.answer(request.message))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(GUARD_S)


def node_answer(message: dict):
    if message["op"] == "status":
        return {"ok": True, "cluster": "test-cluster", "finalized_height": 3}
    if message["op"] == "submit":
        if message["body"].get("sensor") == "soil":
            return {"ok": False, "error": "unknown sensor 'soil'"}
        return {"ok": True, "tx": TX}
    return {"ok": False, "error": "unknown op"}


@pytest.fixture
def node(data_dir):
    server = ControlServer(data_dir)
    answerer = Answerer(server, node_answer)
    yield answerer
    answerer.close()
    server.close()


def raw_exchange(path: Path, data: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(GUARD_S)
        sock.connect(os.fsencode(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # all said
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return json.loads(answer)


def test_status_and_submit_round_trip(data_dir, node):
    client = NodeClient(data_dir, timeout=GUARD_S)
    assert client.status() == {"ok": True, "cluster": "test-cluster", "finalized_height": 3}
    assert client.submit({"kind": "command", "to": "valve-1", "action": "open", "args": [600]}) == TX
    assert client.send_reading("moisture", 28.7) == TX
    assert node.messages == [
        {"op": "status"},
        {"op": "submit", "body": {"kind": "command", "to": "valve-1", "action": "open", "args": [600]}},
        {"op": "submit", "body": {"kind": "reading", "sensor": "moisture", "value": 28.7}},
    ]


def test_a_refused_submit_is_a_control_error_with_the_reason(data_dir, node):
    with pytest.raises(ControlError, match="the node refused it: unknown sensor 'soil'"):
        NodeClient(data_dir, timeout=GUARD_S).send_reading("soil", 1.0)


def test_the_socket_is_owner_only(data_dir, node):
    mode = os.stat(data_dir / SOCKET_NAME).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_a_socket_left_by_a_dead_node_is_replaced(data_dir):
    (data_dir / SOCKET_NAME).write_text("stale")
    server = ControlServer(data_dir)
    answerer = Answerer(server, node_answer)
    try:
        assert NodeClient(data_dir, timeout=GUARD_S).status()["ok"] is True
    finally:
        answerer.close()
        server.close()
    assert not (data_dir / SOCKET_NAME).exists()  # closing removes it


def test_no_node_running_is_a_clear_control_error(data_dir):
    with pytest.raises(ControlError, match=rf"no node is running on {data_dir} \(start one with `blockiot node`\)"):
        NodeClient(data_dir).status()


def test_a_dead_socket_is_no_node_running(data_dir):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fsencode(data_dir / SOCKET_NAME))
    dead.close()  # the file stays, nobody listens
    with pytest.raises(ControlError, match="no node is running"):
        NodeClient(data_dir).status()


@pytest.mark.parametrize(("data", "error"), [
    (b"{not json\n", "malformed request"),
    (b"\xff\xfe\n", "malformed request"),
    (b"[1, 2]\n", "a request is a JSON object"),
    (b'"status"\n', "a request is a JSON object"),
    (b"", "malformed request"),
])
def test_a_malformed_request_gets_an_error_answer_and_never_reaches_the_node(data_dir, node, data, error):
    answer = raw_exchange(data_dir / SOCKET_NAME, data)
    assert answer["ok"] is False and answer["error"].startswith(error)
    assert node.messages == []


def test_a_request_longer_than_the_limit_gets_an_error_answer(data_dir, node):
    answer = raw_exchange(data_dir / SOCKET_NAME, b"x" * (control.MAX_REQUEST + 1))  # read whole, then refused
    assert answer == {"ok": False, "error": f"malformed request: longer than {control.MAX_REQUEST} B"}
    assert node.messages == []


def test_a_request_is_answered_without_waiting_for_the_client_to_close(data_dir, node):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(GUARD_S)
        sock.connect(os.fsencode(data_dir / SOCKET_NAME))
        sock.sendall(b'{"op": "status"}\n')  # and keeps the connection open
        assert json.loads(sock.recv(4096))["finalized_height"] == 3


def test_a_node_that_does_not_answer_in_time_gets_an_error_answer(data_dir, monkeypatch):
    monkeypatch.setattr(control, "REPLY_TIMEOUT_S", 0.01)
    server = ControlServer(data_dir)  # nobody answers its requests
    try:
        answer = NodeClient(data_dir, timeout=GUARD_S).status()
        assert answer == {"ok": False, "error": "the node did not answer within 0.01 s"}
        assert server.requests.get_nowait().message == {"op": "status"}
    finally:
        server.close()


def test_an_answer_that_is_not_an_object_is_a_control_error(data_dir):
    server = ControlServer(data_dir)
    answerer = Answerer(server, lambda message: [1, 2])
    try:
        with pytest.raises(ControlError, match="not a JSON object"):
            NodeClient(data_dir, timeout=GUARD_S).status()
    finally:
        answerer.close()
        server.close()


def test_a_data_dir_path_too_long_for_a_socket_is_a_clear_error(data_dir):
    long_dir = data_dir / ("d" * 120)
    with pytest.raises(ControlError, match="too long for a control socket.*use a shorter one"):
        socket_path(long_dir)
    with pytest.raises(ControlError, match="too long for a control socket"):
        ControlServer(long_dir)
    with pytest.raises(ControlError, match="too long for a control socket"):
        NodeClient(long_dir).status()
    limit = data_dir / ("d" * (control.SUN_PATH_MAX - len(os.fsencode(data_dir / SOCKET_NAME)) - 1))
    assert len(os.fsencode(socket_path(limit))) == control.SUN_PATH_MAX  # the longest that fits


def test_control_errors_are_for_people():
    assert ControlError.user_facing


# --- `blockiot send` and `blockiot status` -----------------------------------------------


def test_send_reading_prints_the_tx_id(data_dir, node, capsys):
    assert main(["send", "reading", "--sensor", "moisture", "--value", "28.7", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out == f"{TX}\n"
    assert node.messages == [{"op": "submit", "body": {"kind": "reading", "sensor": "moisture", "value": 28.7}}]


def test_send_command_as_json(data_dir, node, capsys):
    code = main(["send", "command", "--to", "valve-1", "--action", "open", "--args", "600", "7",
                 "--data-dir", str(data_dir), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out) == {"tx": TX}
    assert node.messages == [{"op": "submit", "body": {"kind": "command", "to": "valve-1", "action": "open", "args": [600, 7]}}]


def test_send_refused_or_without_a_node_is_a_message_not_a_traceback(data_dir, node, capsys, tmp_path):
    assert main(["send", "reading", "--sensor", "soil", "--value", "1", "--data-dir", str(data_dir)]) == 2
    assert "blockiot send: the node refused it: unknown sensor 'soil'" in capsys.readouterr().err
    assert main(["send", "reading", "--sensor", "moisture", "--value", "1", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no node is running" in err and "Traceback" not in err


def test_status_json_is_the_nodes_status_without_ok(data_dir, node, capsys):
    assert main(["status", "--data-dir", str(data_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"cluster": "test-cluster", "finalized_height": 3, "running": True}


def test_status_prints_the_nodes_status_for_people(data_dir, capsys, genesis, identities):
    runtime = make_runtime(genesis, identities[VAL_A])
    server = ControlServer(data_dir)
    answerer = Answerer(server, lambda message: {"ok": True, **status_of(runtime, T0, radio="fake:1", started=T0 - 5)})
    try:
        assert main(["status", "--data-dir", str(data_dir)]) == 0
    finally:
        answerer.close()
        server.close()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("cluster   test-cluster (chain ")
    assert out[1] == "node      val-a, member 0, validator, on fake:1, up 5 s"


def test_status_without_a_node_or_a_store_says_so(tmp_path, capsys):
    assert main(["status", "--data-dir", str(tmp_path)]) == 2
    assert "no chain store" in capsys.readouterr().err
