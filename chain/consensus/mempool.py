"""The mempool: verified transactions heard from the flood, waiting for a block. Bounded,
indexed by id and, per parent block, by short id, and fair between senders.

Fairness (docs/PROTOCOL.md §7). A member that floods must not crowd out the others, in
the pool or in blocks:

- Each sender holds at most `per_sender` transactions (default `capacity // 8`); one
  more evicts that sender's oldest. When the pool is full, the oldest transaction of the
  sender holding the most goes, so a quiet sender loses nothing while anyone holds more.
- `candidates` takes transactions round robin across senders: first each sender's lowest
  nonce, senders in the order their oldest waiting transaction arrived, then each
  one's second, and so on. A sender's transactions stay in nonce order (the ledger
  applies a nonce only above the sender's last, chain/state.py), and a flooding member
  gets one place per round like everyone else (before: blocks took transactions by
  registry index, and a low-index member at 10 tx/s starved every other reading).
"""
from __future__ import annotations

from collections import OrderedDict

from ..state import LedgerState
from ..wire import Tx, short_id


class Mempool:
    """Transactions by id, in arrival order, with a per-sender bound."""

    def __init__(self, capacity: int, per_sender: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.capacity = capacity
        self.per_sender = max(1, capacity // 8) if per_sender is None else per_sender
        if self.per_sender < 1:
            raise ValueError(f"per_sender must be >= 1, not {self.per_sender}")
        self._txs: OrderedDict[bytes, Tx] = OrderedDict()
        self._heard: dict[bytes, float] = {}
        self._by_sender: dict[int, OrderedDict[bytes, None]] = {}  # arrival order per sender
        self._short: tuple[bytes, dict[bytes, bytes]] | None = None  # (parent id, short id -> tx id)

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._txs

    def add(self, tx: Tx, now: float) -> bool:
        """Keep a verified transaction heard at `now`; False if it was already here."""
        txid = tx.id
        if txid in self._txs:
            return False
        while self.held_by(tx.sender) >= self.per_sender:
            self._remove(next(iter(self._by_sender[tx.sender])))
        self._txs[txid] = tx
        self._heard[txid] = now
        self._by_sender.setdefault(tx.sender, OrderedDict())[txid] = None
        while len(self._txs) > self.capacity:
            largest = max(self._by_sender.values(), key=len)
            self._remove(next(iter(largest)))
        self._short = None
        return True

    def ids(self) -> list[bytes]:
        """Transaction ids, oldest first."""
        return list(self._txs)

    def get(self, tx_id: bytes) -> Tx | None:
        return self._txs.get(tx_id)

    def held_by(self, sender: int) -> int:
        """How many transactions of `sender` are held."""
        return len(self._by_sender.get(sender, ()))

    def by_short_id(self, parent_id: bytes) -> dict[bytes, bytes]:
        """short id (keyed by `parent_id`) -> raw tx, for every transaction held."""
        if self._short is None or self._short[0] != parent_id:
            self._short = (parent_id, {short_id(tx.raw, parent_id): txid for txid, tx in self._txs.items()})
        return {sid: self._txs[txid].raw for sid, txid in self._short[1].items() if txid in self._txs}

    def candidates(self, state: LedgerState, limit: int, heard_before: float) -> list[bytes]:
        """Raw transactions heard before `heard_before` that may still apply on `state`
        (nonce above the sender's), at most `limit`, round robin across senders (in the
        order their oldest such transaction arrived), each sender's in nonce order."""
        queues: list[tuple[float, list[Tx]]] = []  # (oldest arrival, fresh txs) per sender
        for sender, own in self._by_sender.items():
            floor = state.next_nonce(sender)
            fresh = [txid for txid in own if self._heard[txid] <= heard_before and self._txs[txid].nonce >= floor]
            if fresh:  # `own` is in arrival order: fresh[0] arrived first
                queues.append((self._heard[fresh[0]], [self._txs[txid] for txid in fresh]))
        queues.sort(key=lambda item: item[0])
        ordered = [sorted(fresh, key=lambda tx: tx.nonce) for _, fresh in queues]
        chosen: list[bytes] = []
        depth = 0
        while len(chosen) < limit and any(depth < len(q) for q in ordered):
            for queue in ordered:
                if depth < len(queue) and len(chosen) < limit:
                    chosen.append(queue[depth].raw)
            depth += 1
        return chosen

    def prune(self, state: LedgerState) -> None:
        """Drop what can never apply again on `state` (nonce already used)."""
        stale = [txid for txid, tx in self._txs.items() if tx.nonce < state.next_nonce(tx.sender)]
        for txid in stale:
            self._remove(txid)

    def _remove(self, txid: bytes) -> None:
        tx = self._txs.pop(txid)
        del self._heard[txid]
        own = self._by_sender[tx.sender]
        del own[txid]
        if not own:
            del self._by_sender[tx.sender]
        self._short = None
