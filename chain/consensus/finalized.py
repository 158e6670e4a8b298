"""The finalized chain below a node's block tree, in memory bounded by a count, not by
the chain's length.

`FinalizedChain` is what `NodeCore` keeps of it: the ids of the last `FINAL_WINDOW`
finalized heights (where a branch meets the finalized chain, whether a catch-up's tip
arrived) and the `RAW_CACHE` raw blocks finalized or read last (catch-up answers).
Everything older is read from the `FinalizedBlocks` source the core is given:

- `StoredChain` (chain/store.py): a node with a disk reads its `ChainStore`, to which its
  runtime appends every `Output.persist` block;
- `MemoryChain` (here): a node without one (simulation, tests) keeps its raw blocks in
  memory, which then grows with the chain.

An id prefix older than the window counts as unknown: a block naming it as parent is at
or below the finalized height (dropped), or claims a height its parent cannot have (it
waits as an orphan, bounded); a catch-up asking for such a tip gets no answer, and the
requester's tries are bounded (docs/PROTOCOL.md §9).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator, Protocol, runtime_checkable

from ..wire import PARENT_PREFIX_LEN, decode_block
from .finality import Vote, replay

FINAL_WINDOW = 256  # finalized heights whose ids a core keeps
RAW_CACHE = 64  # raw finalized blocks a core keeps (least recently used out)


@runtime_checkable
class FinalizedBlocks(Protocol):
    """Where a core reads the finalized blocks it does not keep in memory."""

    def __len__(self) -> int:
        """How many finalized blocks there are: the last one's height."""

    def __iter__(self) -> Iterator[tuple[int, bytes, bytes]]:
        """(height, id, raw) from height 1 on."""

    def headers(self) -> Iterable[tuple[int, bytes, int]]:
        """(height, id, slot) from height 1 on: what a restarting core reads."""

    def block(self, height: int) -> tuple[bytes, bytes] | None:
        """(id, raw) of the finalized block at `height`; None if there is none."""

    def add(self, height: int, block_id: bytes, slot: int, raw: bytes) -> None:
        """The block the core finalized next (heights in order, no gaps)."""


class MemoryChain:
    """The finalized blocks of a node without a disk, in memory."""

    def __init__(self, blocks: Iterable[tuple[int, bytes, bytes]] = ()) -> None:
        """`blocks`: (height, id, raw) from height 1 on, as `iter(FinalizedBlocks)` gives."""
        self._blocks: list[tuple[bytes, int, bytes]] = []  # (id, slot, raw) at index height - 1
        for height, block_id, raw in blocks:
            if height != len(self._blocks) + 1:
                raise ValueError(f"finalized block of height {height} after height {len(self._blocks)}")
            self.add(height, block_id, decode_block(raw).header.slot, raw)

    def __len__(self) -> int:
        return len(self._blocks)

    def __iter__(self) -> Iterator[tuple[int, bytes, bytes]]:
        return ((height, block_id, raw) for height, (block_id, _slot, raw) in enumerate(self._blocks, start=1))

    def headers(self) -> Iterator[tuple[int, bytes, int]]:
        return ((height, block_id, slot) for height, (block_id, slot, _raw) in enumerate(self._blocks, start=1))

    def block(self, height: int) -> tuple[bytes, bytes] | None:
        if not 0 < height <= len(self._blocks):
            return None
        block_id, _slot, raw = self._blocks[height - 1]
        return block_id, raw

    def add(self, height: int, block_id: bytes, slot: int, raw: bytes) -> None:
        self._blocks.append((block_id, slot, raw))


class FinalizedChain:
    """The finalized blocks by height as a core sees them (height 0 is the genesis, no
    raw): the last `window` ids and `cache` raw blocks in memory, the rest from `source`."""

    def __init__(self, genesis_id: bytes, source: FinalizedBlocks, *, window: int = FINAL_WINDOW, cache: int = RAW_CACHE) -> None:
        self._source = source
        self._genesis_id = genesis_id
        self._window = window
        self._cache = cache
        self._ids: dict[int, bytes] = {}
        self._by_prefix: dict[bytes, int] = {}
        self._raw: OrderedDict[int, bytes] = OrderedDict()
        self.height = 0

    def load_votes(self, n: int, q: int) -> list[Vote]:
        """Read the source's headers once: keep the last ids, and return the votes of the
        last finalized blocks (`finality.replay`, which needs every slot)."""

        def slots():
            for height, block_id, slot in self._source.headers():
                self._remember(height, block_id)
                yield slot

        return replay(slots(), n, q)

    def append(self, height: int, block_id: bytes, slot: int, raw: bytes) -> None:
        """The block finalized next."""
        self._source.add(height, block_id, slot, raw)
        self._remember(height, block_id)
        self._keep(height, raw)

    def _remember(self, height: int, block_id: bytes) -> None:
        self._ids[height] = block_id
        self._by_prefix[block_id[:PARENT_PREFIX_LEN]] = height
        self.height = height
        gone = self._ids.pop(height - self._window, None)
        if gone is not None and self._by_prefix.get(gone[:PARENT_PREFIX_LEN]) == height - self._window:
            del self._by_prefix[gone[:PARENT_PREFIX_LEN]]

    def _keep(self, height: int, raw: bytes) -> None:
        self._raw[height] = raw
        self._raw.move_to_end(height)
        while len(self._raw) > self._cache:
            self._raw.popitem(last=False)

    def id_at(self, height: int) -> bytes | None:
        if height == 0:
            return self._genesis_id
        block_id = self._ids.get(height)
        if block_id is None and 0 < height <= self.height:
            found = self._source.block(height)
            block_id = found[0] if found else None
        return block_id

    def raw_at(self, height: int) -> bytes | None:
        raw = self._raw.get(height)
        if raw is None and 0 < height <= self.height:
            found = self._source.block(height)
            raw = found[1] if found else None
        if raw is not None:
            self._keep(height, raw)
        return raw

    def height_of(self, prefix: bytes) -> int | None:
        """Height of the finalized block with this id prefix, if it is the genesis or
        within the window."""
        if prefix == self._genesis_id[:PARENT_PREFIX_LEN]:
            return 0
        return self._by_prefix.get(prefix)

    def in_memory(self) -> tuple[int, int]:
        """(ids, raw blocks) held in memory: at most (window, cache) whatever the height."""
        return len(self._ids), len(self._raw)
