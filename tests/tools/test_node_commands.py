"""`blockiot node` executes a final command addressed to its device once, and reports it
back with a signed COMMAND to itself (flooded as a TX)."""
from __future__ import annotations

import json
import random

from blockiot.chain.consensus.events import EvidenceToRecord, Output
from blockiot.chain.consensus.messages import MsgType
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.params import ConsensusParams
from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.ledger import Ledger
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import Action, Command, EquivocationProof, TxKind, decode_tx, sign_tx
from blockiot.tools.node import NodeRunner

GENESIS_TIME = 1000


class FakePort:
    """Stands in for RadioPort: records what the node sends."""

    def __init__(self):
        self.sent: list[bytes] = []

    def send_message(self, payload: bytes) -> None:
        self.sent.append(payload)


def _runner(tmp_path, member: int):
    ids = [Identity.from_seed(bytes([0x70 + i]) * 32) for i in range(3)]
    genesis = Genesis("node-cmd", GENESIS_TIME, Params(slot_seconds=10), tuple(
        Member(i, k.public_key, "validator" if i < 2 else "member", (), f"d{i}") for i, k in enumerate(ids)))
    core = NodeCore(genesis, radio_id=member + 1, rng=random.Random(0), now=GENESIS_TIME, identity=ids[member],
                    params=ConsensusParams.from_genesis(genesis))
    port = FakePort()
    runner = NodeRunner(core, port, ChainStore(tmp_path), member=member, reading_every=None, events=False,
                        clock=lambda: GENESIS_TIME + 15.0)
    return ids, genesis, port, runner


def test_a_final_command_is_executed_once_and_reported(tmp_path, capsys):
    valve = 2
    ids, genesis, port, runner = _runner(tmp_path, valve)

    # A block, final elsewhere, in which validator 0 orders the valve open for 600 s.
    ledger = Ledger(genesis)
    order = sign_tx(ids[0], genesis.chain_id, 0, 1, Command(valve, Action.OPEN, (600,)))
    applied = ledger.build_block(ids[ledger.leader_for_slot(1)], 1, [order.raw])
    runner._apply(Output(persist=[applied]))
    runner._apply(Output())  # nothing new is final: nothing runs again

    executed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"Execute"' in line]
    assert executed == [{"event": "Execute", "origin": "tx", "issuer": 0, "slot": 1, "action": "open", "args": [600]}]
    reports = [p for p in port.sent if p[0] == MsgType.TX]
    assert len(reports) == 1
    report = decode_tx(reports[0][1:])
    assert report.sender == valve and report.body == Command(valve, Action.OPEN, (600,))


def test_evidence_to_record_is_signed_and_flooded_as_an_evidence_tx(tmp_path):
    ids, genesis, port, runner = _runner(tmp_path, 1)
    runner._apply(Output(events=[EvidenceToRecord(b"\x07proof")]))
    txs = [decode_tx(p[1:]) for p in port.sent if p[0] == MsgType.TX]
    assert [(t.kind, t.sender, t.body) for t in txs] == [(TxKind.EVIDENCE, 1, EquivocationProof(b"\x07proof"))]


def test_node_port_auto_without_a_radio_says_what_to_plug_in(tmp_path, capsys, monkeypatch):
    from blockiot.radio import discovery
    from blockiot.tools.cli import main

    monkeypatch.setattr(discovery, "discover", lambda: discovery.Discovery((), ()))
    key = tmp_path / "d.key"
    ident = Identity.from_seed(bytes([0x70]) * 32)
    ident.save(key)
    toml = tmp_path / "cluster.toml"
    toml.write_text(f'[cluster]\nname = "c"\n\n[[member]]\npublic_key = "{ident.public_key.hex()}"\nrole = "validator"\n')
    code = main(["node", "--genesis", str(toml), "--key", str(key), "--data-dir", str(tmp_path / "data"),
                 "--port", "auto"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--port auto: no meshtastic radio is attached" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()
