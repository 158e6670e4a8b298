"""The ledger: a cluster's chain of blocks on top of its genesis, validated and applied
atomically, optionally persisted to a ChainStore.

Block validity (all checked before anything is kept):
  * decodes; height = head height + 1; parent prefix matches the head's id;
  * slot is after the head's slot and its leader is validators[slot mod n], with the
    validator set in force at that slot (chain/governance.py: governance changes it at
    epoch boundaries);
  * it holds at most the governed MAX_BLOCK_TXS transactions, if governance set one;
  * every tx decodes, is signed by a member of the cluster in that slot, has a fresh
    nonce, applies;
  * the leader's signature covers (chain id, version, height, slot, full parent id,
    tx Merkle root, post-state root) as this node computed them.
A failed check leaves the state exactly as it was and raises InvalidBlock / DecodeError.
Slot timing against a clock is the consensus layer's job, not the ledger's.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import governance
from .crypto import Identity, verify
from .errors import ChainError, DecodeError, InvalidBlock, InvalidTx
from .genesis import Genesis
from .state import LedgerState, StateDiff
from .wire import (
    BLOCK_VERSION,
    MAX_BLOCK_TXS,
    PARENT_PREFIX_LEN,
    Block,
    BlockHeader,
    Param,
    block_id,
    decode_block,
    decode_tx,
    encode_block,
    header_signing_bytes,
    tx_root,
)


@dataclass(frozen=True)
class Head:
    height: int
    id: bytes
    slot: int


@dataclass(frozen=True)
class AppliedBlock:
    block: Block
    id: bytes
    diff: StateDiff
    state_root: bytes


class Ledger:
    def __init__(self, genesis: Genesis, store=None):
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.state = LedgerState(genesis)
        self.head = Head(0, self.chain_id, -1)
        self.store = store
        if store is not None:
            store.bind(genesis)
            stored_head = store.load_into(self.state)
            if stored_head is not None:
                self.head = Head(*stored_head)

    @property
    def height(self) -> int:
        return self.head.height

    def leader_for_slot(self, slot: int) -> int:
        """The leader of `slot` for a block on the head (governance.leader_for_slot)."""
        return governance.leader_for_slot(self.state, slot)

    def max_block_txs(self, slot: int) -> int:
        """Transactions a block of `slot` may hold: the governed limit, else the wire's."""
        limit = governance.param_at(self.state, Param.MAX_BLOCK_TXS, slot)
        return MAX_BLOCK_TXS if limit is None else limit

    # --- applying blocks --------------------------------------------------------------

    def apply_block(self, raw: bytes, decoded: Block | None = None) -> AppliedBlock:
        """Validate a full block against the head and apply it (and persist it, with a store).
        `decoded`: the same block already decoded from `raw` (saves decoding it again)."""
        block = decoded if decoded is not None and decoded.raw == raw else decode_block(raw)
        h = block.header
        if h.height != self.head.height + 1:
            raise InvalidBlock(f"block height {h.height} does not follow head {self.head.height}")
        if h.parent_prefix != self.head.id[:PARENT_PREFIX_LEN]:
            raise InvalidBlock(f"block {h.height} does not build on the head {self.head.id[:8].hex()}")
        if h.slot <= self.head.slot:
            raise InvalidBlock(f"block slot {h.slot} is not after the head's slot {self.head.slot}")
        if len(block.txs) > self.max_block_txs(h.slot):
            raise InvalidBlock(f"block {h.height} holds {len(block.txs)} txs, more than {self.max_block_txs(h.slot)}")
        leader = governance.member_at(self.state, self.leader_for_slot(h.slot), h.slot)
        self.state.begin()
        try:
            self.state.begin_block(h.slot, self.head.slot)
            for i, raw_tx in enumerate(block.txs):
                try:
                    self.state.apply_tx(decode_tx(raw_tx), h.slot)
                except (DecodeError, InvalidTx) as exc:
                    raise InvalidBlock(f"block {h.height} tx {i}: {exc}") from None
            state_root = self.state.state_root()
            signing = header_signing_bytes(
                self.chain_id, h.version, h.height, h.slot, self.head.id, tx_root(block.txs), state_root
            )
            if not verify(leader.public_key, signing, h.signature):
                raise InvalidBlock(
                    f"block {h.height} slot {h.slot}: not signed by the slot's leader {leader.name or leader.index} "
                    "over the state this node computed"
                )
        except BaseException:
            self.state.rollback()
            self.state.state_root()  # refresh cached roots to the restored state
            raise
        return self._commit(block, block_id(signing), state_root)

    def build_block(self, identity: Identity, slot: int, raw_txs) -> AppliedBlock:
        """Leader side: make, sign and apply the block for `slot` from candidate txs, skipping
        any that are not valid on the head (they are simply left out)."""
        if governance.member_at(self.state, self.leader_for_slot(slot), slot).public_key != identity.public_key:
            raise InvalidBlock(f"this identity is not the leader of slot {slot}")
        if slot <= self.head.slot:
            raise InvalidBlock(f"slot {slot} is not after the head's slot {self.head.slot}")
        height = self.head.height + 1
        limit = self.max_block_txs(slot)
        self.state.begin()
        included = []
        try:
            self.state.begin_block(slot, self.head.slot)
            for raw_tx in raw_txs:
                if len(included) == limit:
                    break
                try:
                    tx = decode_tx(raw_tx)
                    self.state.check_signature(tx, slot)
                except (DecodeError, InvalidTx):
                    continue
                try:  # a handler raises before its first write, so a refused tx leaves no trace
                    self.state.apply_tx(tx, slot, verified=True)
                except InvalidTx:
                    continue
                included.append(bytes(raw_tx))
            state_root = self.state.state_root()
            signing = header_signing_bytes(
                self.chain_id, BLOCK_VERSION, height, slot, self.head.id, tx_root(included), state_root
            )
            header = BlockHeader(BLOCK_VERSION, height, slot, self.head.id[:PARENT_PREFIX_LEN], identity.sign(signing))
            raw = encode_block(header, included)
            block = Block(header, tuple(included), raw)
        except BaseException:
            self.state.rollback()
            self.state.state_root()
            raise
        return self._commit(block, block_id(signing), state_root)

    def _commit(self, block: Block, bid: bytes, state_root: bytes) -> AppliedBlock:
        diff = self.state.commit()
        applied = AppliedBlock(block, bid, diff, state_root)
        if self.store is not None:
            try:
                self.store.append(applied)
            except ChainError:
                self.state.undo(diff)
                self.state.state_root()
                raise
        self.head = Head(block.header.height, bid, block.header.slot)
        return applied
