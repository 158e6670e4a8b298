"""Re-verify a stored chain from its genesis: every block's raw signed bytes are decoded,
every signature checked and every state transition replayed; the replayed state must
equal the stored state. Reports the first bad block, if any.

A file that is not a readable chain store (SQLite finds it corrupt, a column holds the
wrong type, the genesis is unreadable) raises `StoreError` instead: there is no chain to
judge. All reads see one snapshot, so a node may keep appending meanwhile."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ChainError
from .ledger import Ledger
from .state import LedgerState


@dataclass(frozen=True)
class VerifyReport:
    blocks: int
    txs: int
    head_height: int
    state_root: bytes
    first_bad_height: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_store(store) -> VerifyReport:
    store.check_integrity()
    with store.snapshot():
        genesis = store.genesis()
        replay = Ledger(genesis)
        blocks = txs = 0
        for height, stored_id, raw in store.raw_blocks():
            try:
                applied = replay.apply_block(raw)
            except ChainError as exc:
                return VerifyReport(blocks, txs, replay.height, replay.state.state_root(), height, str(exc))
            if applied.id != stored_id:
                return VerifyReport(blocks, txs, replay.height, replay.state.state_root(), height,
                                    f"block {height}: stored id {stored_id.hex()[:16]} != computed {applied.id.hex()[:16]}")
            blocks += 1
            txs += len(applied.block.txs)
        stored_state = LedgerState(genesis)
        store.load_into(stored_state)
    root = replay.state.state_root()
    if stored_state.state_root() != root:
        return VerifyReport(blocks, txs, replay.height, root, None,
                            "stored state rows differ from the state replayed from the blocks")
    return VerifyReport(blocks, txs, replay.height, root)
