"""`blockiot status`: what the node on a data dir is doing, in the spirit of `meshtastic
--info` and `rnstatus`: cluster and role, slot and leader, head and finalized height,
peers heard with their signal, airtime against the budget, mempool, recent rejections.
`--json` prints the same as one object (at least `finalized_height`, `head_height`, `slot`).
With no node running it shows what the data dir holds (read-only), `running` false.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from blockiot.chain.runtime.control import NodeClient, NoNodeRunning
from blockiot.chain.store import ChainStore


def register(subparsers) -> None:
    parser = subparsers.add_parser("status", help="show what the running node is doing",
                                   description="Status of the node running on --data-dir.")
    parser.add_argument("--data-dir", type=Path, required=True, help="the node's data dir")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.set_defaults(func=run)


def run(args) -> int:
    try:
        status = NodeClient(args.data_dir).status()
        status.pop("ok", None)
        status["running"] = True
    except NoNodeRunning:
        status = stored_status(args.data_dir, time.time())
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print("\n".join(describe(status) if status["running"] else describe_stored(status)))
    return 0


def stored_status(data_dir: Path, now: float) -> dict:
    """What a stopped node's data dir holds: its cluster and finalized chain."""
    store = ChainStore(data_dir, read_only=True)
    try:
        genesis = store.genesis()
        height, block_id, _slot = store.head() or (0, genesis.chain_id, -1)
    finally:
        store.close()
    slot = int((now - genesis.genesis_time) // genesis.params.slot_seconds) if now >= genesis.genesis_time else None
    return {"running": False, "cluster": genesis.name, "chain_id": genesis.chain_id.hex(), "slot": slot,
            "finalized_height": height, "finalized_id": block_id.hex(), "head_height": height, "head_id": block_id.hex()}


def describe_stored(s: dict) -> list[str]:
    return [
        f"cluster   {s['cluster']} (chain {s['chain_id'][:8]})",
        "node      not running (no node on this data dir); showing what it stored",
        f"chain     finalized {s['finalized_height']} ({s['finalized_id'][:8]})",
        f"slot      {s['slot'] if s['slot'] is not None else 'before genesis'} (by the wall clock)",
    ]


def describe(s: dict) -> list[str]:
    """The status as aligned lines for a person."""
    lines = [
        f"cluster   {s['cluster']} (chain {s['chain_id'][:8]})",
        f"node      {s['name']}, member {s['member']}, {s['role']}, on {s['radio']}, up {_duration(s['uptime_s'])}",
        f"slot      {s['slot'] if s['slot'] is not None else 'not yet synced'}"
        + (f", leader {s['leader']}" if s['leader'] else ""),
        f"chain     head {s['head_height']} ({s['head_id'][:8]}), finalized {s['finalized_height']} ({s['finalized_id'][:8]})",
    ]
    air = s.get("airtime")
    if air and air["allowance_s"]:
        lines.append(f"airtime   {air['used_s']:.1f} of {air['allowance_s']:.0f} s ({air['used_share']:.1%}); {air['rule']}")
    elif air:
        lines.append(f"airtime   {air['used_s']:.1f} s; {air['rule']}")
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(s["dropped_frames"].items())) or "none"
    lines.append(f"queues    mempool {s['mempool']} txs, transmit {s['transmit_queue']} frames; dropped: {dropped}")
    if s["peers"]:
        lines.append("peers     radio       hops  rssi    snr    heard")
        for p in s["peers"]:
            rssi = "-" if p["rssi"] is None else f"{p['rssi']:.0f}"
            snr = "-" if p["snr"] is None else f"{p['snr']:.1f}"
            lines.append(f"          !{p['radio']:08x}  {p['hops']:<4}  {rssi:<6}  {snr:<5}  {_duration(p['last_heard_s'])} ago")
    else:
        lines.append("peers     none heard yet")
    for r in s["recent_rejections"][-5:]:
        lines.append(f"rejected  {r['what']}: {r['reason']} {r['detail']}".rstrip())
    return lines


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
