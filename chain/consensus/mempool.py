"""The mempool: verified transactions heard from the flood, waiting for a block. Bounded
(the oldest goes first), indexed by id and, per parent block, by short id."""
from __future__ import annotations

from collections import OrderedDict

from ..state import LedgerState
from ..wire import Tx, short_id


class Mempool:
    """Transactions by id, in arrival order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._txs: OrderedDict[bytes, Tx] = OrderedDict()
        self._heard: dict[bytes, float] = {}
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
        self._txs[txid] = tx
        self._heard[txid] = now
        while len(self._txs) > self.capacity:
            del self._heard[self._txs.popitem(last=False)[0]]
        self._short = None
        return True

    def ids(self) -> list[bytes]:
        """Transaction ids, oldest first."""
        return list(self._txs)

    def get(self, tx_id: bytes) -> Tx | None:
        return self._txs.get(tx_id)

    def by_short_id(self, parent_id: bytes) -> dict[bytes, bytes]:
        """short id (keyed by `parent_id`) -> raw tx, for every transaction held."""
        if self._short is None or self._short[0] != parent_id:
            self._short = (parent_id, {short_id(tx.raw, parent_id): txid for txid, tx in self._txs.items()})
        return {sid: self._txs[txid].raw for sid, txid in self._short[1].items() if txid in self._txs}

    def candidates(self, state: LedgerState, limit: int, heard_before: float) -> list[bytes]:
        """Raw transactions heard before `heard_before` that may still apply on `state`
        (nonce above the sender's), by sender then nonce, at most `limit`."""
        fresh = [
            tx
            for txid, tx in self._txs.items()
            if self._heard[txid] <= heard_before and tx.nonce >= state.next_nonce(tx.sender)
        ]
        fresh.sort(key=lambda tx: (tx.sender, tx.nonce))
        return [tx.raw for tx in fresh[:limit]]

    def prune(self, state: LedgerState) -> None:
        """Drop what can never apply again on `state` (nonce already used)."""
        stale = [txid for txid, tx in self._txs.items() if tx.nonce < state.next_nonce(tx.sender)]
        for txid in stale:
            del self._txs[txid], self._heard[txid]
        if stale:
            self._short = None
