"""Commands due at a device: issued by a COMMAND tx or by a rule, cleared by the device's report."""
from __future__ import annotations

from blockiot.chain.commands import DueCommand, due_commands
from blockiot.chain.ledger import Ledger
from blockiot.chain.wire import Action, Command, sign_tx
from blockiot.tools.demo_cluster import DemoCluster


def _block(ledger, cluster, slot, *txs):
    return ledger.build_block(cluster.identity_of(ledger.leader_for_slot(slot)), slot, [t.raw for t in txs])


def test_a_command_is_due_until_the_device_reports_it_done():
    cluster = DemoCluster(seed=3)
    ledger = Ledger(cluster.genesis)
    gateway = next(d for d in cluster.devices if d.kind == "gateway")
    valve = next(d for d in cluster.devices if d.kind == "valve")
    chain_id, v = cluster.genesis.chain_id, valve.member.index
    assert due_commands(ledger.state, v) == []

    order = sign_tx(gateway.identity, chain_id, gateway.member.index, 1, Command(v, Action.OPEN, (600,)))
    _block(ledger, cluster, 1, order)
    due = due_commands(ledger.state, v)
    assert due == [DueCommand("tx", gateway.member.index, 1, Action.OPEN, (600,))]
    assert due_commands(ledger.state, gateway.member.index) == []

    report = sign_tx(valve.identity, chain_id, v, 1, due[0].report(v))
    _block(ledger, cluster, 2, report)
    assert due_commands(ledger.state, v) == []


def test_a_rule_command_is_due_and_cleared_by_the_matching_report():
    cluster = DemoCluster(seed=3)
    ledger = Ledger(cluster.genesis)
    valve = next(d for d in cluster.devices if d.kind == "valve")
    v = valve.member.index
    ledger.state.set("contract_command", (v,), (0, 1, 7, Action.OPEN, 600))
    assert due_commands(ledger.state, v) == [DueCommand("rule", 0, 7, Action.OPEN, (600,))]

    wrong = sign_tx(valve.identity, cluster.genesis.chain_id, v, 1, Command(v, Action.CLOSE, ()))
    _block(ledger, cluster, 1, wrong)
    assert [c.origin for c in due_commands(ledger.state, v)] == ["rule"]
    right = sign_tx(valve.identity, cluster.genesis.chain_id, v, 2, Command(v, Action.OPEN, (600,)))
    _block(ledger, cluster, 2, right)
    assert due_commands(ledger.state, v) == []
