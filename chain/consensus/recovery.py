"""Reboot: the finalized ledger and chain a node kept in its `ChainStore`, ready for a new
`NodeCore` (docs/PROTOCOL.md §10). Everything after the finalized block comes back by
catch-up."""
from __future__ import annotations

from ..genesis import Genesis
from ..ledger import Ledger
from ..store import ChainStore


def restore(genesis: Genesis, store: ChainStore) -> tuple[Ledger, list[tuple[int, bytes, bytes]]]:
    """(ledger at the last finalized block, [(height, id, raw)] of the finalized chain).

    The ledger is detached from the store: the core validates speculative branches on it,
    and only finalized blocks (`Output.persist`) may reach the disk.
    """
    ledger = Ledger(genesis, store)
    ledger.store = None
    return ledger, list(store.raw_blocks())
