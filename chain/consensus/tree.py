"""The block tree above the finalized block: every valid branch a node holds, validated
on its own branch by one working `Ledger` that moves between branches with the blocks'
state diffs; fork choice (docs/PROTOCOL.md §5) and the finality rules (§6; the quorum rule's
arithmetic is `finality.py`).

Below the root (the finalized block) lies the finalized chain (`finalized.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..crypto import Identity
from ..ledger import AppliedBlock, Head, Ledger
from ..wire import PARENT_PREFIX_LEN, Block
from .finality import GENESIS_VOTE, Vote, final_slot, vote_of
from .messages import header_ref
from .params import ConsensusParams


@dataclass(eq=False)
class BlockNode:
    """One validated block (or the root) in the tree."""

    id: bytes
    height: int
    slot: int
    parent: "BlockNode | None"
    applied: AppliedBlock | None
    vote: Vote
    ref: bytes | None = None
    children: list["BlockNode"] = field(default_factory=list)

    @property
    def prefix(self) -> bytes:
        return self.id[:PARENT_PREFIX_LEN]

    def ancestors(self):
        """This node, its parent, ... up to the root of the tree."""
        node = self
        while node is not None:
            yield node
            node = node.parent


class BlockTree:
    """Valid blocks descending from the finalized root, with the best head (fork choice)."""

    def __init__(self, ledger: Ledger, params: ConsensusParams, final_votes: list[Vote] | None = None) -> None:
        """`final_votes`: the `Vote`s of the last finalized blocks, the root's last
        (`finality.replay` of the stored chain); the genesis' when None."""
        self.ledger = ledger
        self.params = params
        head = ledger.head
        self._final_votes = list(final_votes) if final_votes else [GENESIS_VOTE]
        if self._final_votes[-1].slot != head.slot:
            raise ValueError("final_votes must end with the ledger head's slot")
        self.root = BlockNode(head.id, head.height, head.slot, None, None, self._final_votes[-1])
        self.head = self.root
        self._at = self.root  # where the working ledger's state is
        self._nodes: dict[bytes, BlockNode] = {self.root.id: self.root}
        self._by_prefix: dict[bytes, list[BlockNode]] = {self.root.prefix: [self.root]}
        self._by_ref: dict[bytes, BlockNode] = {}
        self._by_slot: dict[int, list[BlockNode]] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    # --- lookups -----------------------------------------------------------------------

    def get(self, block_id: bytes) -> BlockNode | None:
        return self._nodes.get(block_id)

    def by_prefix(self, prefix: bytes) -> list[BlockNode]:
        return self._by_prefix.get(prefix, [])

    def by_ref(self, ref: bytes) -> BlockNode | None:
        return self._by_ref.get(ref)

    def at_slot(self, slot: int) -> list[BlockNode]:
        return self._by_slot.get(slot, [])

    # --- moving the working ledger -------------------------------------------------------

    def goto(self, target: BlockNode) -> None:
        """Put the working ledger's state and head at `target` (undo, then redo diffs)."""
        if target is self._at:
            return
        up = {id(n) for n in target.ancestors()}
        node = self._at
        while id(node) not in up:  # undo down to the common ancestor
            self.ledger.state.undo(node.applied.diff)
            node = node.parent
        path = []
        for n in target.ancestors():
            if n is node:
                break
            path.append(n)
        for n in reversed(path):
            self.ledger.state.redo(n.applied.diff)
        self.ledger.head = Head(target.height, target.id, target.slot)
        self._at = target

    # --- adding blocks -----------------------------------------------------------------

    def add(self, block: Block, parent: BlockNode) -> BlockNode:
        """Validate a decoded full block on `parent`'s branch and add it; the existing node
        if known. Raises InvalidBlock and leaves everything as it was."""
        ref = header_ref(block.header)
        known = self._by_ref.get(ref)
        if known is not None:
            return known
        self.goto(parent)
        applied = self.ledger.apply_block(block.raw, block)  # on failure the ledger is left as it was
        return self._insert(applied, parent, ref)

    def build(self, identity: Identity, slot: int, parent: BlockNode, raw_txs: list[bytes]) -> BlockNode:
        """Leader side: make and sign the block of `slot` on `parent` (chain.ledger.build_block)."""
        self.goto(parent)
        applied = self.ledger.build_block(identity, slot, raw_txs)
        return self._insert(applied, parent, header_ref(applied.block.header))

    def _insert(self, applied: AppliedBlock, parent: BlockNode, ref: bytes) -> BlockNode:
        h = applied.block.header
        vote = vote_of(self._tail(parent, h.slot - self.params.n), h.slot, parent.vote.just, self.params.n, self.params.q)
        node = BlockNode(applied.id, h.height, h.slot, parent, applied, vote, ref)
        parent.children.append(node)
        self._nodes[node.id] = node
        self._by_prefix.setdefault(node.prefix, []).append(node)
        self._by_ref[ref] = node
        self._by_slot.setdefault(node.slot, []).append(node)
        self._at = node
        if _preference(node) > _preference(self.head):
            self.head = node
        return node

    def _tail(self, node: BlockNode, from_slot: int) -> list[Vote]:
        """Votes of `node`'s chain with slots >= `from_slot`, ascending, `node`'s last;
        below the root they come from the finalized chain's last votes."""
        votes = []
        for n in node.ancestors():
            if n.slot < from_slot:
                return votes[::-1]
            if n is self.root:
                break
            votes.append(n.vote)
        below = [v for v in self._final_votes if v.slot >= from_slot]
        return below + votes[::-1]

    # --- finality ----------------------------------------------------------------------

    def final_of(self, node: BlockNode) -> BlockNode | None:
        """The highest block of `node`'s chain above the root that `node` makes final
        (PROTOCOL §6.2); None if none."""
        chain = self._tail(node, self.root.slot + 1)
        slot = final_slot(chain, self.params.n, self.params.q, above=self.root.slot)
        if slot is None:
            return None
        return next(y for y in node.ancestors() if y.slot == slot)

    def settled_by_depth(self, current_slot: int) -> BlockNode | None:
        """Ouroboros-BFT settlement (PROTOCOL §6.1): the highest block of the best chain whose
        slot is at least k = 3f+1 slots before `current_slot`. None if none above the root."""
        k = self.params.obft_k
        for y in self.head.ancestors():
            if y is self.root:
                return None
            if y.slot + k <= current_slot:
                return y
        return None

    def finalize(self, node: BlockNode) -> list[BlockNode]:
        """Make `node` (a descendant of the root) the new root; return the newly finalized
        nodes in chain order and forget every branch that does not descend from `node`."""
        path = []
        for n in node.ancestors():
            if n is self.root:
                break
            path.append(n)
        if not path:
            return []
        path.reverse()
        self.goto(node)
        n_slots = self.params.n
        self._final_votes = [v for v in self._final_votes if v.slot >= node.slot - n_slots]
        self._final_votes += [p.vote for p in path if p.slot >= node.slot - n_slots]
        keep: dict[bytes, BlockNode] = {}
        stack = [node]
        while stack:
            n = stack.pop()
            keep[n.id] = n
            stack.extend(n.children)
        for n in self._nodes.values():
            if n.id not in keep:
                n.children = []
        node.parent = None
        self.root = node
        self._nodes = keep
        self._by_prefix = {}
        self._by_ref = {}
        self._by_slot = {}
        for n in keep.values():
            self._by_prefix.setdefault(n.prefix, []).append(n)
            if n.ref is not None:
                self._by_ref[n.ref] = n
            if n is not node:
                self._by_slot.setdefault(n.slot, []).append(n)
        if self.head.id not in keep:
            self.head = max(keep.values(), key=_preference)
        return path


def _preference(node: BlockNode) -> tuple[int, int, bytes]:
    """Fork choice (PROTOCOL §5): the highest justified block first, then the longest chain,
    then the lower tip id (so that nodes holding the same branches agree, and a split of
    equal branches ends as soon as both are known)."""
    return node.vote.just, node.height, bytes(255 - b for b in node.id)
