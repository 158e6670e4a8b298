"""`blockiot gov`: proposals listed and shown from a data dir's finalized chain, and
propose/vote handed to the running node as PROPOSAL and VOTE transactions."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chain"))  # the governance test cluster
from test_governance import Gov  # noqa: E402

from blockiot.chain.runtime.control import ControlServer  # noqa: E402
from blockiot.chain.store import ChainStore  # noqa: E402
from blockiot.chain.wire import RemoveMember, Proposal, Vote  # noqa: E402
from blockiot.tools.cli import main  # noqa: E402


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A stored chain where m0 proposed removing m5, and m1 and m2 voted yes (3 of 4)."""
    store = ChainStore(tmp_path / "node")
    cluster = Gov(4, store=store)
    cluster.block(cluster.tx(0, Proposal(40, RemoveMember(5))))
    cluster.block(cluster.tx(1, Vote(0, 1)), cluster.tx(2, Vote(0, 1)))
    store.close()
    return tmp_path / "node"


def test_list_shows_the_proposal_passed_with_its_votes(data_dir, capsys):
    assert main(["gov", "list", "--data-dir", str(data_dir), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["proposal"] == "m0:1" and row["status"] in ("passed", "enacted")
    assert (row["yes"], row["of"]) == (3, 4) and row["voters"] == ["m0", "m1", "m2"]
    assert row["action"] == "remove m5"
    assert main(["gov", "list", "--data-dir", str(data_dir)]) == 0
    text = capsys.readouterr().out
    assert "PROPOSAL" in text and "remove m5" in text


def test_show_one_proposal_and_refuse_an_unknown_one(data_dir, capsys):
    assert main(["gov", "show", "m0:1", "--data-dir", str(data_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["yes"] == 3
    assert main(["gov", "show", "m0:9", "--data-dir", str(data_dir)]) == 2
    assert "no proposal m0:9" in capsys.readouterr().err
    assert main(["gov", "show", "m0", "--data-dir", str(data_dir)]) == 2
    assert "PROPOSER:NONCE" in capsys.readouterr().err


def test_propose_and_vote_go_to_the_running_node(tmp_path, capsys):
    server = ControlServer(tmp_path)
    seen = []

    def answer():
        for answers in ({"ok": True, "tx": "ab" * 32, "sender": 0, "nonce": 7}, {"ok": True, "tx": "cd" * 32}):
            request = server.requests.get(timeout=30)
            seen.append(request.message)
            request.reply.put(answers)

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        assert main(["gov", "propose", "remove-member", "--member", "m5", "--ttl", "60", "--data-dir", str(tmp_path)]) == 0
        assert capsys.readouterr().out.startswith("0:7")
        assert main(["gov", "vote", "m0:7", "--data-dir", str(tmp_path)]) == 0
    finally:
        thread.join(timeout=30)
        server.close()
    assert seen == [
        {"op": "submit", "body": {"kind": "proposal", "action": "remove_member", "member": "m5", "evidence": None, "ttl": 60}},
        {"op": "submit", "body": {"kind": "vote", "proposer": "m0", "nonce": 7}},
    ]


def test_propose_says_what_an_action_needs(tmp_path, capsys):
    assert main(["gov", "propose", "set-param", "--param", "epoch_slots", "--data-dir", str(tmp_path)]) == 2
    assert "needs --value" in capsys.readouterr().err
