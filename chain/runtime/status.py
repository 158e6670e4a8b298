"""A running node's status as one JSON-ready dict: what `blockiot status` shows.

Cluster and member, slot and its leader, head and finalized height, peers heard (signal,
hops, when), airtime used against the budget, mempool and transmit queue, recent
rejections. Pure: computed from a `NodeRuntime` and the time.
"""
from __future__ import annotations

from .runtime import NodeRuntime


def member_name(runtime: NodeRuntime, index: int | None) -> str | None:
    if index is None:
        return None
    return runtime.core.genesis.name_of(index)


def status_of(runtime: NodeRuntime, now: float, *, radio: str, started: float) -> dict:
    core = runtime.core
    genesis = core.genesis
    slot = core.clock.slot(now) if core.clock.synced else None
    budget = runtime.transmit.budget
    airtime = None
    if budget is not None:
        used = budget.used(now)
        allowance = budget.allowance_s
        airtime = {
            "used_s": round(used, 3),
            "allowance_s": None if allowance is None else round(allowance, 3),
            "used_share": None if not allowance else round(used / allowance, 4),
            "rule": budget.describe(),
        }
    return {
        "cluster": genesis.name,
        "chain_id": genesis.chain_id.hex(),
        "member": core.member,
        "name": member_name(runtime, core.member),
        "role": "validator" if core.is_validator else ("member" if core.member is not None else "observer"),
        "radio": radio,
        "uptime_s": round(now - started, 1),
        "slot": slot,
        "leader": None if slot is None else member_name(runtime, core.params.leader(slot)),
        "head_height": core.head.height,
        "head_id": core.head.id.hex(),
        "finalized_height": core.finalized.height,
        "finalized_id": core.finalized.id.hex(),
        "peers": [
            {"radio": radio_id, "hops": peer.hops, "rssi": peer.rssi, "snr": peer.snr,
             "last_heard_s": round(now - peer.last_heard, 1), "frames": peer.frames}
            for radio_id, peer in sorted(runtime.peers.items(), key=lambda item: -item[1].last_heard)
        ],
        "airtime": airtime,
        "mempool": len(core.mempool),
        "transmit_queue": len(runtime.transmit),
        "dropped_frames": dict(runtime.transmit.dropped),
        "recent_rejections": [{"what": r.what, "reason": r.reason, "detail": r.detail} for r in runtime.rejections],
    }
