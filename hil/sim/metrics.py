"""What the field simulator measures, and the report `blockiot sim --json` prints.

Fed by `FieldSim` as things happen (true, simulated time); `report()` checks the
invariants over the honest nodes (docs/PROTOCOL.md, DESIGN.md invariants 1-5) and
computes the figures:

- finality latency of each block of the reference chain at each honest node that was up
  at its slot, from the slot's start to the node finalizing it;
- transaction inclusion: from a transaction's sending to the proposal of the block of the
  reference chain that holds it;
- bytes and airtime on air by message type (relays included), duty-cycle violations
  counted independently of the budget that prevents them;
- finalized conflicts: pairs of finalized blocks, seen at any honest node, neither of
  which descends from the other. The reference chain is the longest honest finalized one.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict, deque

from blockiot.chain.consensus.events import BlockProposed, Equivocation, Finalized, Rejected
from blockiot.chain.consensus.params import ConsensusParams
from blockiot.chain.genesis import Genesis
from blockiot.chain.wire import tx_id

_EPSILON = 1e-9


def percentile(values: list[float], p: float) -> float | None:
    """Linear-interpolated percentile `p` (0-100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class _DutyWindow:
    """Airtime in the sliding window, kept apart from the node's DutyCycleBudget."""

    def __init__(self, allowance: float | None, window: float) -> None:
        self.allowance = allowance
        self.window = window
        self.entries: deque[tuple[float, float]] = deque()
        self.used = 0.0

    def exceeds(self, airtime: float, t: float) -> bool:
        while self.entries and self.entries[0][0] <= t - self.window:
            self.used -= self.entries.popleft()[1]
        over = self.allowance is not None and self.used + airtime > self.allowance + _EPSILON
        self.entries.append((t + airtime, airtime))
        self.used += airtime
        return over


class SimMetrics:
    """Collects a run's events and turns them into the report."""

    def __init__(self, genesis: Genesis, params: ConsensusParams, duration_s: float) -> None:
        self.genesis = genesis
        self.params = params
        self.duration = duration_s
        self.blocks: dict[bytes, tuple[bytes, int, int, tuple[bytes, ...], float]] = {}
        self.final: dict[int, dict[int, bytes]] = defaultdict(dict)
        self.final_samples: list[tuple[bytes, int, int, float, float]] = []  # id, height, slot, t, up_since
        self.tx_sent: dict[bytes, float] = {}
        self.bytes_by_kind: Counter[str] = Counter()
        self.packets_by_kind: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.budget_drops: Counter[str] = Counter()
        self.link_drops: Counter[str] = Counter()
        self.equivocations: set[tuple[int, int]] = set()
        self.equivocation_reports = 0
        self.violations = 0
        self.crashed_final: dict[int, dict[int, bytes]] = {}
        self.restart_lost = 0
        self.boots: dict[int, list[float]] = defaultdict(list)
        self._duty: dict[int, _DutyWindow] = {}

    # --- feeding -----------------------------------------------------------------------

    def on_boot(self, node, t: float) -> None:
        self.boots[node.index].append(t)

    def on_crash(self, node, t: float) -> None:
        self.crashed_final[node.index] = dict(self.final[node.index])

    def on_restored(self, node, ids: list[bytes]) -> None:
        """A node rebooted from disk with these finalized ids (heights 1..): invariant 5."""
        before = self.crashed_final.get(node.index, {})
        restored = {height: block_id for height, block_id in enumerate(ids, start=1)}
        self.restart_lost += sum(1 for height, block_id in before.items() if restored.get(height) != block_id)
        self.final[node.index].update(restored)

    def on_tx_sent(self, txid: bytes, t: float) -> None:
        self.tx_sent[txid] = t

    def on_transmit(self, node, kind: str, nbytes: int, airtime: float, t: float) -> None:
        self.bytes_by_kind[kind] += nbytes
        self.packets_by_kind[kind] += 1
        duty = self._duty.get(node.index)
        if duty is None:
            duty = self._duty[node.index] = _DutyWindow(node.budget.allowance_s, node.budget.window_s)
        if duty.exceeds(airtime, t):
            self.violations += 1

    def on_budget_drop(self, node, kind: str) -> None:
        self.budget_drops[kind] += 1

    def on_link_drop(self, node, reason: str) -> None:
        self.link_drops[str(reason)] += 1

    def on_extra_block(self, block_node, parent_id: bytes, t: float) -> None:
        """A block that no `BlockProposed` announced (the Byzantine leader's second one)."""
        txs = tuple(tx_id(raw) for raw in block_node.applied.block.txs)
        self.blocks[block_node.id] = (parent_id, block_node.height, block_node.slot, txs, t)

    def on_event(self, node, event, t: float) -> None:
        if isinstance(event, Finalized):
            if not node.byzantine:
                self.final[node.index][event.height] = event.id
                self.final_samples.append((event.id, event.height, event.slot, t, node.up_since))
        elif isinstance(event, BlockProposed):
            self.blocks[event.id] = (event.parent, event.height, event.slot, event.tx_ids, t)
        elif isinstance(event, Rejected):
            self.rejected[event.reason] += 1
        elif isinstance(event, Equivocation):
            self.equivocations.add((event.leader, event.slot))
            self.equivocation_reports += 1

    # --- the report --------------------------------------------------------------------

    def report(self, nodes, medium, wall_s: float) -> dict:
        honest = [node for node in nodes if not node.byzantine]
        chains = {node.index: self.final[node.index] for node in honest if self.final[node.index]}
        reference = max(chains.values(), key=len, default={})
        agree = all(all(reference.get(h) == block_id for h, block_id in chain.items()) for chain in chains.values())
        slot = self.params.slot_seconds
        latencies = [
            t - self.params.slot_start(s)
            for block_id, height, s, t, up in self.final_samples
            if reference.get(height) == block_id and self.params.slot_start(s) >= up
        ]
        included = {}
        for block_id in reference.values():
            entry = self.blocks.get(block_id)
            if entry is not None:
                for txid in entry[3]:
                    included.setdefault(txid, entry[4])
        inclusion = [included[txid] - sent for txid, sent in self.tx_sent.items() if txid in included]
        stats = medium.stats
        airtime = max((s.airtime for s in stats.values()), default=0.0)
        p50 = percentile(latencies, 50)
        p95 = percentile(latencies, 95)
        return {
            "nodes": len(nodes),
            "validators": self.params.n,
            "slot_seconds": slot,
            "field_hours": self.duration / 3600.0,
            "finality_rule": self.params.finality,
            "finality_p50_slots": _round(p50 / slot if p50 is not None else None),
            "finality_p95_slots": _round(p95 / slot if p95 is not None else None),
            "finality_p50_s": _round(p50),
            "finality_p95_s": _round(p95),
            "lossless_finality_slots": 2 * self.params.q - 1,  # PROTOCOL §6.2: the least blocks-as-votes allow
            "obft_bound_slots": self.params.obft_k,
            "tx_inclusion_p50_s": _round(percentile(inclusion, 50)),
            "tx_inclusion_p95_s": _round(percentile(inclusion, 95)),
            "txs_sent": len(self.tx_sent),
            "txs_finalized": sum(1 for txid in self.tx_sent if txid in included),
            "blocks_proposed": len(self.blocks),
            "blocks_finalized": len(reference),
            "bytes_on_air": dict(sorted(self.bytes_by_kind.items())),
            "packets_on_air": dict(sorted(self.packets_by_kind.items())),
            "finality_bytes_per_block": 0,
            "max_node_airtime_fraction": _round(airtime / self.duration, 5),
            "duty_cycle_violations": self.violations,
            "budget_drops": dict(sorted(self.budget_drops.items())),
            "finalized_heights": {
                "min": min((len(chain) for chain in chains.values()), default=0),
                "max": len(reference),
            },
            "finalized_conflicts": _conflicts(chains),
            "finalized_prefix_agree": agree,
            "restart_lost_finalized": self.restart_lost,
            "equivocations_detected": len(self.equivocations),
            "equivocations_on_chain": max(
                (len(node.core.ledger.state.tables["equivocation"]) for node in honest if node.core is not None),
                default=0,
            ),
            "rejected": dict(sorted(self.rejected.items())),
            "link_drops": dict(sorted(self.link_drops.items())),
            "radio": {
                "collided": sum(s.collided for s in stats.values()),
                "lost": sum(s.lost for s in stats.values()),
                "missed": sum(s.missed for s in stats.values()),
                "received": sum(s.received for s in stats.values()),
            },
            "wall_s": round(wall_s, 2),
        }


def _conflicts(chains: dict[int, dict[int, bytes]]) -> int:
    """Unordered pairs of distinct finalized blocks of which neither descends from the other.

    Every node's finalized chain runs from height 1 without gaps, so the ancestor of a
    block at a lower height is read off a chain that holds the block.
    """
    holder: dict[tuple[int, bytes], dict[int, bytes]] = {}
    for chain in chains.values():
        for height, block_id in chain.items():
            holder.setdefault((height, block_id), chain)
    blocks = sorted(holder)
    count = 0
    for i, (ha, a) in enumerate(blocks):
        for hb, b in blocks[i + 1 :]:
            if (ha, a) == (hb, b):
                continue
            if ha == hb or holder[(hb, b)].get(ha) != a:
                count += 1
    return count


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
