"""Reboot: the finalized ledger and chain a node kept in its `ChainStore`, ready for a new
`NodeCore` (docs/PROTOCOL.md §10). Everything after the finalized block comes back by
catch-up."""
from __future__ import annotations

from ..genesis import Genesis
from ..ledger import Ledger
from ..store import ChainStore, StoredChain


def restore(genesis: Genesis, store: ChainStore) -> tuple[Ledger, StoredChain]:
    """(ledger at the last finalized block, the finalized chain as `NodeCore(finalized=)`
    takes it). The chain is read from the store on demand, never loaded whole: iterating
    it gives (height, id, raw) from height 1, and the node keeps appending
    `Output.persist` to the same store.

    The ledger is detached from the store: the core validates speculative branches on it,
    and only finalized blocks (`Output.persist`) may reach the disk.
    """
    ledger = Ledger(genesis, store)
    ledger.store = None
    return ledger, StoredChain(store)
