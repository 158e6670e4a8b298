"""A node's status (chain/runtime/status.py) as `blockiot status` shows it (tools/status.py):
who the node is, slot and leader (none until the clock is synced), chain heights, peers
newest first, airtime against the budget, queues, drops and rejections; JSON-ready, and
every field the status command prints is there."""
from __future__ import annotations

import dataclasses
import json
import random

import pytest
from runtime_helpers import LINK_MTU, PROBE, T0, VAL_A, airtime, drain, make_runtime

from blockiot.chain.consensus.events import PRIORITY_TX
from blockiot.chain.runtime.status import member_name, status_of
from blockiot.chain.runtime.transmit import Frame
from blockiot.chain.wire import Reading, Sensor
from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.link import Link
from blockiot.tools.status import describe

STARTED = T0 - 100.0


def budget_10s() -> DutyCycleBudget:
    return DutyCycleBudget("NONE", fraction=0.1, window_s=100.0)  # 10 s per 100 s


def test_status_of_a_validator(genesis, identities):
    budget = budget_10s()
    rt = make_runtime(genesis, identities[VAL_A], scripted=False, budget=budget)
    rt.submit(Reading(Sensor.MOISTURE, 287), T0)
    assert len(rt.transmit) == 1
    [frame] = drain(rt, T0)  # on air: its airtime counts
    rt.submit(Reading(Sensor.MOISTURE, 288), T0)  # queued
    now = T0 + 12.34
    s = status_of(rt, now, radio="fake:1", started=STARTED)
    params = rt.core.params
    slot = params.slot_at(now)
    assert (s["cluster"], s["chain_id"]) == ("test-cluster", genesis.chain_id.hex())
    assert (s["member"], s["name"], s["role"], s["radio"]) == (VAL_A, "val-a", "validator", "fake:1")
    assert s["uptime_s"] == 112.3
    assert s["slot"] == slot == 33 and s["leader"] == genesis.member(params.leader(slot)).name == "val-b"
    assert (s["head_height"], s["head_id"]) == (0, rt.core.head.id.hex())
    assert (s["finalized_height"], s["finalized_id"]) == (0, rt.core.finalized.id.hex())
    used = airtime(len(frame.data))
    assert s["airtime"] == {"used_s": round(used, 3), "allowance_s": 10.0, "used_share": round(used / 10.0, 4),
                            "rule": budget.describe()}
    assert (s["mempool"], s["transmit_queue"]) == (2, 1)
    assert s["dropped_frames"] == {} and s["recent_rejections"] == [] and s["peers"] == []
    assert json.loads(json.dumps(s)) == s


def test_roles_of_a_device_and_of_an_observer(genesis, identities):
    s = status_of(make_runtime(genesis, identities[PROBE]), T0, radio="r", started=T0)
    assert (s["member"], s["name"], s["role"]) == (PROBE, "probe-1", "member")
    s = status_of(make_runtime(genesis, None), T0, radio="r", started=T0)
    assert (s["member"], s["name"], s["role"]) == (None, None, "observer")


def test_no_slot_and_no_leader_until_the_clock_is_synced(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE], core_kwargs={"time_source": False})
    s = status_of(rt, T0, radio="r", started=T0)
    assert s["slot"] is None and s["leader"] is None


def test_a_member_without_a_name_goes_by_its_index(genesis, identities):
    nameless = dataclasses.replace(genesis, members=tuple(
        dataclasses.replace(m, name="") if m.index == 1 else m for m in genesis.members))
    rt = make_runtime(nameless, identities[1])
    assert member_name(rt, 1) == "member-1" and member_name(rt, None) is None
    assert status_of(rt, T0, radio="r", started=T0)["name"] == "member-1"


def test_peers_newest_first_with_their_signal(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE])
    junk = b"\xc0\x00"
    rt.receive(junk, 0x42, T0, hops=2, rssi=-97.0, snr=-3.5)
    rt.receive(junk, 0x43, T0 + 10, hops=0, rssi=-80.0, snr=6.25)
    rt.receive(junk, 0x42, T0 + 5, hops=1, rssi=-95.0, snr=-1.0)
    s = status_of(rt, T0 + 20, radio="r", started=T0)
    assert s["peers"] == [
        {"radio": 0x43, "hops": 0, "rssi": -80.0, "snr": 6.25, "last_heard_s": 10.0, "frames": 1},
        {"radio": 0x42, "hops": 1, "rssi": -95.0, "snr": -1.0, "last_heard_s": 15.0, "frames": 2},
    ]


def test_airtime_without_a_duty_cycle(genesis, identities):
    s = status_of(make_runtime(genesis, identities[PROBE]), T0, radio="r", started=T0)
    assert s["airtime"] is None
    us = DutyCycleBudget("US915")
    s = status_of(make_runtime(genesis, identities[PROBE], budget=us), T0, radio="r", started=T0)
    assert s["airtime"] == {"used_s": 0.0, "allowance_s": None, "used_share": None, "rule": us.describe()}


def test_drops_and_rejections(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE], max_frames=1)
    rt.transmit.push(Frame(b"a", None, PRIORITY_TX, "TX"))
    rt.transmit.push(Frame(b"b", None, PRIORITY_TX, "TX"))
    [frame] = Link(LINK_MTU, rng=random.Random(1)).send(b"\x70garbage", T0)
    rt.receive(frame, 9, T0, hops=0)
    s = status_of(rt, T0, radio="r", started=T0)
    assert s["dropped_frames"] == {"TX": 1} and s["transmit_queue"] == 1
    [rejection] = s["recent_rejections"]
    assert (rejection["what"], rejection["reason"]) == ("message", "malformed") and rejection["detail"]


# --- what `blockiot status` prints ------------------------------------------------------


def test_describe_prints_every_part_of_the_status(genesis, identities):
    rt = make_runtime(genesis, identities[VAL_A], scripted=False, budget=budget_10s())
    rt.submit(Reading(Sensor.MOISTURE, 287), T0)
    drain(rt, T0)
    rt.receive(b"\xc0\x00", 0x42, T0, hops=2, rssi=-97.0, snr=-3.5)
    s = status_of(rt, T0 + 12.34, radio="fake:1", started=STARTED)
    lines = describe(s)
    assert lines[0] == f"cluster   test-cluster (chain {genesis.chain_id.hex()[:8]})"
    assert lines[1] == "node      val-a, member 0, validator, on fake:1, up 112 s"
    assert lines[2] == "slot      33, leader val-b"
    assert lines[3].startswith("chain     head 0 (") and "finalized 0 (" in lines[3]
    assert lines[4].startswith("airtime   ") and f"of 10 s ({s['airtime']['used_share']:.1%}); " in lines[4]
    assert lines[5] == "queues    mempool 1 txs, transmit 0 frames; dropped: none"
    assert lines[7].split() == ["!00000042", "2", "-97", "-3.5", "12", "s", "ago"]


def test_describe_an_unsynced_node_with_no_peers_and_rejections(genesis, identities):
    rt = make_runtime(genesis, identities[PROBE], core_kwargs={"time_source": False})
    sender = Link(LINK_MTU, rng=random.Random(1))
    for i in range(7):
        [frame] = sender.send(bytes([0x70, i]), T0)
        rt.receive(frame, 9, T0, hops=0)
    rt.peers.clear()
    lines = describe(status_of(rt, T0 + 7300, radio="r", started=T0))
    assert "slot      not yet synced" in lines
    assert "peers     none heard yet" in lines
    assert "up 2 h 1 min" in lines[1]
    assert sum(line.startswith("rejected  message: malformed") for line in lines) == 5  # the last five


@pytest.mark.parametrize(("seconds", "text"), [(119, "119 s"), (120, "2 min"), (7199, "119 min"), (7260, "2 h 1 min")])
def test_durations_read_like_a_person_says_them(genesis, identities, seconds, text):
    rt = make_runtime(genesis, identities[PROBE])
    assert f"up {text}" in describe(status_of(rt, T0 + seconds, radio="r", started=T0))[1]


def test_status_of_a_stopped_node_shows_what_its_data_dir_holds(genesis, tmp_path, capsys):
    from blockiot.chain.ledger import Ledger
    from blockiot.chain.store import ChainStore
    from blockiot.tools.cli import main

    store = ChainStore(tmp_path / "node")
    Ledger(genesis, store)  # binds the genesis, as a node's first start does
    store.close()
    assert main(["status", "--data-dir", str(tmp_path / "node"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"] is False
    assert (status["finalized_height"], status["head_height"]) == (0, 0)
    assert status["cluster"] == genesis.name and status["slot"] is not None
    assert main(["status", "--data-dir", str(tmp_path / "node")]) == 0
    assert "not running" in capsys.readouterr().out
    assert main(["status", "--data-dir", str(tmp_path / "nothing")]) == 2
    assert "no chain store" in capsys.readouterr().err
