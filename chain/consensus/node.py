"""`NodeCore`: one node's consensus, sans-IO. Messages and timer ticks go in with the local
time; messages to send, finalized blocks to persist and events come out
(docs/PROTOCOL.md is the rulebook this follows).

    core = NodeCore(genesis, radio_id=7, rng=random.Random(7), now=t, identity=key)
    out = core.receive(payload, t, origin=3, hops=0)   # a message the radio delivered
    out = core.tick(t)                                 # when core.next_deadline() is due
    out = core.submit(raw_tx, t)                       # this device's own transaction

The caller first keeps `out.lock` on disk when it is set (the validator's finality lock,
PROTOCOL §6.2 H2; pass it back as `lock=` after a restart), appends `out.persist` to the
chain store in order, then sends `out.sends` (flooded or to neighbours only) and reads
`out.events`. Blocks finalized long ago come from `finalized=`, the store's
(`recovery.restore`) for a node with a disk: the core keeps a bounded window of them
(`finalized.py`).
"""
from __future__ import annotations

import itertools
import math
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

from ..compression import default_codec
from ..crypto import Identity
from ..errors import ChainError, DecodeError, InvalidBlock
from ..genesis import Genesis
from ..ledger import Ledger
from ..wire import (
    Block,
    CompactBlock,
    compact_from_block,
    decode_block,
    decode_compact,
    decode_tx,
    encode_block,
    short_id,
    tx_id,
)
from .clock import SlotClock
from .events import (
    PRIORITY_BLOCK,
    PRIORITY_EVIDENCE,
    PRIORITY_SYNC,
    PRIORITY_TX,
    BlockAccepted,
    BlockProposed,
    Equivocation,
    EvidenceToRecord,
    Finalized,
    Output,
    Rejected,
    Send,
)
from ..evidence import Evidence, InvalidEvidence, encode_evidence, make_evidence, proof_of, verify_evidence
from .finality import GENESIS_SLOT
from .finalized import FinalizedBlocks, FinalizedChain, MemoryChain
from .mempool import Mempool
from .messages import (
    BlockMsg,
    Blocks,
    EvidenceMsg,
    GetBlocks,
    GetTxs,
    Message,
    MsgType,
    Txs,
    TxMsg,
    decode_message,
    encode_message,
    header_ref,
    pack_blocks,
    pack_txs,
)
from .params import ConsensusConfigError, ConsensusParams
from .tree import BlockNode, BlockTree

ANYONE = 0
SLOT_EPSILON_S = 1e-6
PATIENCE = 4.0
_CATCH_UP = b"catch-up"
_STALE = object()


@dataclass
class _Request:
    """An open GET_TXS (keyed by block ref) or GET_BLOCKS (the one catch-up)."""

    kind: MsgType
    deadline: float
    tip: bytes = b""
    from_height: int = 0
    tries: int = 0
    tried: set[int] = field(default_factory=set)
    prefer: int | None = None
    back: int = 1  # how far below the last start a catch-up looks for where the branches meet


@dataclass
class _Pending:
    """A compact block whose parent is known but some transactions are not."""

    compact: CompactBlock
    parent: BlockNode
    txs: list[bytes | None]
    hops: int
    origin: int


@dataclass
class _Orphan:
    compact: CompactBlock
    received: float
    hops: int
    origin: int
    prefilled: tuple[tuple[int, bytes], ...]


class NodeCore:
    """The consensus of one node: block tree, mempool, slot clock, requests and answers."""

    def __init__(
        self,
        genesis: Genesis,
        *,
        radio_id: int,
        rng: random.Random,
        now: float,
        identity: Identity | None = None,
        params: ConsensusParams | None = None,
        ledger: Ledger | None = None,
        finalized: FinalizedBlocks | Iterable[tuple[int, bytes, bytes]] = (),
        time_source: bool = True,
        lock: int = GENESIS_SLOT,
    ) -> None:
        self.genesis = genesis
        self.params = params if params is not None else ConsensusParams.from_genesis(genesis)
        self.radio_id = radio_id
        self.identity = identity
        self.member = genesis.index_of(identity.public_key) if identity is not None else None
        if identity is not None and self.member is None:
            raise ConsensusConfigError("this identity is not a member of the cluster")
        self.is_validator = self.member in self.params.validators
        # A validator must extend the chain in its slot; other nodes can wait longer before
        # asking for what they missed, and usually overhear the answers a validator got.
        self._patience = 1.0 if self.is_validator else PATIENCE
        self.ledger = ledger if ledger is not None else Ledger(genesis)
        if self.ledger.store is not None:
            raise ConsensusConfigError("the core's ledger must not write a store: persist Output.persist instead")
        # The finalized chain up to the ledger's head: a store's, or (height, id, raw) kept in memory.
        source = finalized if isinstance(finalized, FinalizedBlocks) else MemoryChain(finalized)
        if len(source) != self.ledger.height:
            raise ConsensusConfigError(f"the finalized chain ends at height {len(source)}, the ledger at {self.ledger.height}")
        self.final = FinalizedChain(genesis.chain_id, source)
        self.tree = BlockTree(self.ledger, self.params, self.final.load_votes(self.params.n, self.params.q))
        self._lock = lock  # H2: the highest J of any block this validator signed
        self.clock = SlotClock(self.params, time_source=time_source)
        self.mempool = Mempool(self.params.mempool_size)
        self._rng = rng
        self._now = now
        self._deadline: float | None | object = _STALE
        self._boot_guard = self.clock.slot(now) + 1 if self.clock.synced else None
        self._last_turn = -1  # our last slot as leader: signed, or passed for a reason
        self._orphans: OrderedDict[bytes, _Orphan] = OrderedDict()
        self._pending: dict[bytes, _Pending] = {}
        self._requests: dict[bytes, _Request] = {}
        self._replies: dict[bytes, tuple[float, list[Send]]] = {}
        self._answered: OrderedDict[bytes, float] = OrderedDict()
        self._evidence_out: dict[int, tuple[float, Evidence]] = {}
        self._evidenced: set[int] = set()
        self._neighbours: OrderedDict[int, float] = OrderedDict()
        self._good: OrderedDict[int, float] = OrderedDict()
        self._validator_radios: OrderedDict[int, None] = OrderedDict()  # neighbours whose valid blocks we heard
        self._seen_txs: OrderedDict[bytes, None] = OrderedDict()
        self._bad_tips: OrderedDict[bytes, None] = OrderedDict()  # branches leaving our finalized chain
        self._repeat: tuple[float, Send] | None = None  # our block's second flood, if due
        self._answer_tokens = float(self.params.sync_batch_bytes)
        self._answer_at = now

    # --- views -------------------------------------------------------------------------

    @property
    def head(self) -> BlockNode:
        return self.tree.head

    @property
    def finalized(self) -> BlockNode:
        return self.tree.root

    # --- inputs ------------------------------------------------------------------------

    def receive(self, payload: bytes, now: float, *, origin: int, hops: int) -> Output:
        """A message the radio delivered; `origin` made it, `hops` relays brought it (0: direct)."""
        self._now = now
        self._deadline = _STALE  # every call may change what is due
        out = Output()
        try:
            msg = decode_message(payload)
        except DecodeError as exc:
            out.events.append(Rejected("message", "malformed", str(exc)))
            return out
        if hops == 0:
            self._neighbours.pop(origin, None)
            self._neighbours[origin] = now
            while len(self._neighbours) > 32:
                self._neighbours.popitem(last=False)
        self._dispatch(msg, now, origin, hops, out)
        return out

    def submit(self, raw_tx: bytes, now: float) -> Output:
        """This device's own signed transaction: keep it and flood it once."""
        self._now = now
        self._deadline = _STALE  # every call may change what is due
        out = Output()
        msg = TxMsg(decode_tx(raw_tx))
        self._on_tx(msg, out)
        if msg.tx.id in self.mempool:
            out.sends.append(Send(encode_message(msg), MsgType.TX, None, PRIORITY_TX))
        return out

    def tick(self, now: float) -> Output:
        """Run what is due at `now`: proposing in our slot, retries, delayed answers."""
        self._now = now
        self._deadline = _STALE  # every call may change what is due
        out = Output()
        self._maybe_propose(now, out)
        if self.params.finality == "obft":
            self._settle_by_depth(now, out)
        for key, req in list(self._requests.items()):
            if req.deadline <= now:
                self._retry(key, req, now, out)
        for key, (due, sends) in list(self._replies.items()):
            if due <= now:
                del self._replies[key]
                out.sends.extend(self._within_answer_budget(sends, now))
        if self._repeat is not None and self._repeat[0] <= now:
            out.sends.append(self._repeat[1])  # our block's second flood
            self._repeat = None
        for slot, (due, ev) in list(self._evidence_out.items()):
            if due <= now:
                del self._evidence_out[slot]
                out.sends.append(Send(encode_message(EvidenceMsg(ev)), MsgType.EVIDENCE, None, PRIORITY_EVIDENCE))
                out.events.append(EvidenceToRecord(encode_evidence(ev)))
        horizon = 2 * self.params.n * self.params.slot_seconds
        for ref, orphan in list(self._orphans.items()):
            if orphan.received + horizon < now:
                del self._orphans[ref]
        return out

    def next_deadline(self) -> float | None:
        """The local time at which `tick` has something to do, or None (kept until the next
        call into the core: runtimes ask far more often than anything changes)."""
        if self._deadline is _STALE:
            times = [req.deadline for req in self._requests.values()]
            times += [due for due, _ in self._replies.values()]
            times += [due for due, _ in self._evidence_out.values()]
            if self._repeat is not None:
                times.append(self._repeat[0])
            slot = self._next_slot_time()
            if slot is not None:
                times.append(slot)
            self._deadline = min(times, default=None)
        return self._deadline

    def _next_slot_time(self) -> float | None:
        if not self.clock.synced:
            return None
        current = self.clock.slot(self._now)
        if self.params.finality == "obft":
            slot = current + 1
        elif not self.is_validator:
            return None
        else:
            # Our next turn not yet taken: the current slot if we lead it and have not acted
            # (a message arriving early in our slot must not make us miss it).
            first = max(current, self._last_turn + 1, self._boot_guard + 1)
            slot = first + (self.params.validators.index(self.member) - first) % self.params.n
        # A microsecond into the slot, so that float rounding cannot leave us in the one before.
        return self.clock.local(self.params.slot_start(slot)) + SLOT_EPSILON_S

    # --- dispatch ----------------------------------------------------------------------

    def _dispatch(self, msg: Message, now: float, origin: int, hops: int, out: Output) -> None:
        if isinstance(msg, TxMsg):
            self._on_tx(msg, out)
        elif isinstance(msg, BlockMsg):
            self._on_block(msg.compact, now, origin, hops, out, msg.prefilled)
        elif isinstance(msg, GetTxs):
            self._on_get_txs(msg, now, out)
        elif isinstance(msg, Txs):
            self._on_txs(msg, now, origin, out)
        elif isinstance(msg, GetBlocks):
            self._on_get_blocks(msg, now, out)
        elif isinstance(msg, Blocks):
            self._on_blocks(msg, now, origin, out)
        else:
            self._on_evidence(msg.evidence, out)

    # --- transactions ------------------------------------------------------------------

    def _on_tx(self, msg: TxMsg, out: Output) -> None:
        tx = msg.tx
        txid = tx.id
        if txid in self._seen_txs:
            return
        self._seen_txs[txid] = None
        while len(self._seen_txs) > self.params.seen_size:
            self._seen_txs.popitem(last=False)
        try:
            self.ledger.state.check_signature(tx)
        except ChainError as exc:
            out.events.append(Rejected("tx", "bad-tx", str(exc)))
            return
        self.mempool.add(tx, self._now)
        for ref, pending in list(self._pending.items()):
            sid = short_id(tx.raw, pending.parent.id)
            for i, wanted in enumerate(pending.compact.short_ids):
                if pending.txs[i] is None and wanted == sid:
                    pending.txs[i] = tx.raw
            self._complete(ref, out)

    # --- blocks ------------------------------------------------------------------------

    def _on_block(
        self, compact: CompactBlock, now: float, origin: int, hops: int, out: Output, prefilled=()
    ) -> None:
        ref = header_ref(compact.header)
        if self.tree.by_ref(ref) is not None or ref in self._pending or ref in self._orphans:
            return
        if self.clock.is_future(compact.header.slot, now):
            out.events.append(Rejected("block", "future-slot", f"slot {compact.header.slot} starts beyond the drift allowance"))
            return
        if compact.header.height <= self.tree.root.height:
            return  # at or below our finalized height: a late copy, or a branch we can never take
        parent = self._parent(compact.header.parent_prefix, compact.header.height, out)
        if parent is None:
            if self.final.height_of(compact.header.parent_prefix) is None:
                self._orphans[ref] = _Orphan(compact, now, hops, origin, tuple(prefilled))
                while len(self._orphans) > self.params.max_orphans:
                    self._orphans.popitem(last=False)
                self._start_catch_up(compact.header.parent_prefix, compact.header.height - 1, origin if hops == 0 else None, now)
            return
        known = self.mempool.by_short_id(parent.id)
        txs = [known.get(sid) for sid in compact.short_ids]
        for index, raw in prefilled:
            if short_id(raw, parent.id) == compact.short_ids[index]:
                txs[index] = raw
        self._pending[ref] = _Pending(compact, parent, txs, hops, origin)
        while len(self._pending) > self.params.max_orphans:
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            self._requests.pop(oldest, None)
        if not self._complete(ref, out):
            # The flood may still bring the missing transactions; and a neighbour missing
            # the same ones may ask first, whose answer we hear too.
            delay = self._rng.uniform(1.0, 2.0) * self.params.hop_latency_s * self._patience
            self._requests[ref] = _Request(MsgType.GET_TXS, now + delay, prefer=origin if hops == 0 else None)

    def _parent(self, prefix: bytes, height: int, out: Output) -> BlockNode | None:
        """The tree node a block of `height` builds on; None if unknown, or if it builds on a
        finalized block below ours (refused: it conflicts with the finalized chain)."""
        for node in self.tree.by_prefix(prefix):
            if node.height == height - 1:
                return node
        final_height = self.final.height_of(prefix)
        if final_height is not None and final_height < self.tree.root.height:
            out.events.append(Rejected("block", "conflicts-finalized", f"builds on finalized height {final_height}"))
        return None

    def _complete(self, ref: bytes, out: Output) -> bool:
        """Accept a pending block once all its transactions are in; True if it left pending."""
        pending = self._pending[ref]
        if any(raw is None for raw in pending.txs):
            return False
        del self._pending[ref]
        self._requests.pop(ref, None)
        txs = tuple(pending.txs)
        block = Block(pending.compact.header, txs, encode_block(pending.compact.header, txs))
        node = self._accept(block, pending.parent, self._now, out, fresh_hops=pending.hops)
        if node is not None and pending.hops == 0:
            # its leader, in range: it holds the chain (only a valid block says so)
            self._good_neighbour(pending.origin, self._now)
            self._validator_radios.pop(pending.origin, None)
            self._validator_radios[pending.origin] = None
            while len(self._validator_radios) > 32:
                self._validator_radios.popitem(last=False)
        return True

    def _accept(self, block: Block, parent: BlockNode, now: float, out: Output, *, fresh_hops: int | None) -> BlockNode | None:
        """Validate and add a full block; then equivocation, clock, finality and orphans."""
        before = len(self.tree)
        try:
            node = self.tree.add(block, parent)
        except (DecodeError, InvalidBlock) as exc:
            out.events.append(Rejected("block", "bad-block", str(exc)))
            return None
        if len(self.tree) == before:
            return node
        out.events.append(BlockAccepted(node.id, node.height, node.slot, now))
        self._check_equivocation(node, now, out)
        if fresh_hops is not None and node is self.tree.head:
            was_synced = self.clock.synced
            self.clock.observe(node.slot, self.params.leader(node.slot), now, fresh_hops)
            if not was_synced:
                self._boot_guard = self.clock.slot(now) + 1
        self._after_growth(node, now, out)
        for ref, orphan in list(self._orphans.items()):
            if orphan.compact.header.parent_prefix == node.prefix and orphan.compact.header.height == node.height + 1:
                del self._orphans[ref]
                self._on_block(orphan.compact, now, orphan.origin, orphan.hops, out, orphan.prefilled)
        return node

    def _after_growth(self, node: BlockNode, now: float, out: Output) -> None:
        if self.params.finality == "quorum":
            final = self.tree.final_of(node)
            if final is not None:
                self._finalize(final, now, out)
        else:
            self._settle_by_depth(now, out)

    def _settle_by_depth(self, now: float, out: Output) -> None:
        if not self.clock.synced:
            return
        settled = self.tree.settled_by_depth(self.clock.slot(now))
        if settled is not None:
            self._finalize(settled, now, out)

    def _finalize(self, node: BlockNode, now: float, out: Output) -> None:
        for n in self.tree.finalize(node):
            out.persist.append(n.applied)
            self.final.append(n.height, n.id, n.slot, n.applied.block.raw)
            out.events.append(Finalized(n.id, n.height, n.slot, now))
        self.mempool.prune(self.ledger.state)
        for ref, pending in list(self._pending.items()):
            if self.tree.get(pending.parent.id) is None:
                del self._pending[ref]
                self._requests.pop(ref, None)

    # --- proposing ---------------------------------------------------------------------

    def _maybe_propose(self, now: float, out: Output) -> None:
        if not self.is_validator or self._boot_guard is None:
            return
        slot = self.clock.slot(now)
        if self.params.leader(slot) != self.member or slot <= max(self._last_turn, self._boot_guard):
            return
        self._last_turn = slot  # one decision per turn, whichever it is
        parent = self.tree.head
        if parent.slot >= slot or parent.vote.just < self._lock:
            return  # H2: not until we hold a chain as justified as our last block's
        self.tree.goto(parent)
        heard_before = now - self.params.tx_settle
        candidates = self.mempool.candidates(self.ledger.state, self.params.max_block_txs, heard_before)
        node = self.tree.build(self.identity, slot, parent, candidates)
        if node.vote.just > self._lock:
            self._lock = out.lock = node.vote.just
        block = node.applied.block
        send = Send(self._block_message(block, parent.id), MsgType.BLOCK, None, PRIORITY_BLOCK)
        out.sends.append(send)
        if self._round_had_gaps(parent, slot):
            self._repeat = (now + self.params.slot_seconds / 3, send)
        tx_ids = tuple(tx_id(raw) for raw in block.txs)
        out.events.append(BlockProposed(node.id, parent.id, node.height, node.slot, tx_ids, now))
        self._after_growth(node, now, out)

    def _round_had_gaps(self, parent: BlockNode, slot: int) -> bool:
        """Whether our chain misses a block of the n - 1 slots before `slot` (lost, late or
        withheld): then blocks are not reaching the next leaders, and ours goes twice."""
        first = slot - self.params.n + 1
        held = 0
        for y in parent.ancestors():
            if y.slot < first:
                break
            held += 1
        return held < self.params.n - 1

    def _block_message(self, block, parent_id: bytes) -> bytes:
        """The compact block, plus as many of its transactions in full as still fit one
        frame: those this node heard last first, as the flood may not have carried them
        everywhere yet."""
        compact = decode_compact(compact_from_block(block, parent_id))
        arrival = {txid: rank for rank, txid in enumerate(self.mempool.ids())}
        order = sorted(range(len(block.txs)), key=lambda i: -arrival.get(tx_id(block.txs[i]), -1))
        prefilled: list[tuple[int, bytes]] = []
        payload = encode_message(BlockMsg(compact))
        for index in order:
            candidate = encode_message(BlockMsg(compact, tuple(sorted(prefilled + [(index, block.txs[index])]))))
            if len(candidate) > self.params.frame_bytes:
                break
            prefilled.append((index, block.txs[index]))
            payload = candidate
        return payload

    # --- equivocation ------------------------------------------------------------------

    def _check_equivocation(self, node: BlockNode, now: float, out: Output) -> None:
        others = [other for other in self.tree.at_slot(node.slot) if other is not node]
        if not others or node.slot in self._evidenced:
            return
        other = others[0]
        ev = make_evidence(
            self.genesis.chain_id, node.slot, proof_of(other.applied, other.parent.id), proof_of(node.applied, parent_id=node.parent.id)
        )
        self._evidenced.add(node.slot)
        out.events.append(Equivocation(self.params.leader(node.slot), node.slot))
        if self.is_validator:
            self._evidence_out[node.slot] = (now + self._rng.uniform(0, self.params.slot_seconds / 2), ev)

    def _on_evidence(self, ev: Evidence, out: Output) -> None:
        self._evidence_out.pop(ev.slot, None)
        if ev.slot in self._evidenced:
            return
        try:
            leader = verify_evidence(self.genesis, ev, self.params.leader)
        except InvalidEvidence as exc:
            out.events.append(Rejected("evidence", "bad-evidence", str(exc)))
            return
        self._evidenced.add(ev.slot)
        out.events.append(Equivocation(leader, ev.slot))

    # --- missing transactions ----------------------------------------------------------

    def _on_get_txs(self, msg: GetTxs, now: float, out: Output) -> None:
        self._wait_for_answer(msg.ref, now)
        if msg.to not in (ANYONE, self.radio_id):
            return
        node = self.tree.by_ref(msg.ref)
        if node is None or node.applied is None:
            return
        txs = node.applied.block.txs
        items = tuple((i, txs[i]) for i in msg.indices if i < len(txs))
        if items:  # one frame per request: the requester names what is still missing next time
            first = pack_txs(msg.ref, items, self.params.frame_bytes)[0]
            self._answer(msg.ref, msg.to, [Send(first, MsgType.TXS, 0, PRIORITY_SYNC)], now, out)

    def _on_txs(self, msg: Txs, now: float, origin: int, out: Output) -> None:
        self._replies.pop(msg.ref, None)
        pending = self._pending.get(msg.ref)
        if pending is None:
            return
        for index, raw in msg.items:
            if index < len(pending.txs) and short_id(raw, pending.parent.id) == pending.compact.short_ids[index]:
                pending.txs[index] = raw
        if self._complete(msg.ref, out):
            self._good_neighbour(origin, now)

    # --- catch-up ------------------------------------------------------------------------

    def _start_catch_up(self, tip: bytes, tip_height: int, prefer: int | None, now: float) -> None:
        """Ask for the blocks up to `tip`, starting after our head: usually only a block or
        two were missed on our own branch (if not, the answer says so and we ask from our
        finalized block)."""
        if _CATCH_UP in self._requests or tip in self._bad_tips:
            return
        delay = self._rng.uniform(0.5, 1.0) * self.params.tx_settle * self._patience  # the flood may still bring it
        start = max(self.tree.root.height + 1, min(self.tree.head.height + 1, tip_height))
        self._requests[_CATCH_UP] = _Request(MsgType.GET_BLOCKS, now + delay, tip=tip, from_height=start, prefer=prefer)

    def _on_get_blocks(self, msg: GetBlocks, now: float, out: Output) -> None:
        req = self._requests.get(_CATCH_UP)
        if req is not None and req.tip == msg.tip:
            self._wait_for_answer(_CATCH_UP, now)
        if msg.to not in (ANYONE, self.radio_id) or msg.from_height < 1:
            return
        frames = pack_blocks(
            msg.tip, self._chain_to(msg.tip, msg.from_height), msg.from_height, default_codec(),
            max_bytes=self.params.frame_bytes, max_block_bytes=self.params.sync_batch_bytes,
        )
        if frames:
            sends = [Send(payload, MsgType.BLOCKS, 0, PRIORITY_SYNC) for payload in frames]
            self._answer(msg.tip + msg.from_height.to_bytes(8, "big"), msg.to, sends, now, out)

    def _chain_to(self, tip: bytes, from_height: int) -> list[bytes]:
        """Raw blocks from `from_height` along the chain up to the block with id prefix `tip`
        (empty if unknown), as many as one answer can carry: `pack_blocks` takes at most
        `sync_batch_bytes` of them plus one frame's batch, in which every block's signature
        (64 B, incompressible) takes room, so twice that is plenty; the requester asks
        again from where an answer ends."""
        nodes = self.tree.by_prefix(tip)
        if nodes:
            top = max(nodes, key=lambda n: n.height)
            upper = [n.applied.block.raw for n in top.ancestors() if n.height >= from_height and n is not self.tree.root]
            upper.reverse()
            last_final = self.tree.root.height
        else:
            last_final = self.final.height_of(tip)
            if last_final is None:
                return []
            upper = []
        lower = (self.final.raw_at(height) for height in range(from_height, last_final + 1))
        room = 2 * self.params.sync_batch_bytes
        raws = []
        for raw in itertools.chain(lower, upper):
            if raw is None:
                return []
            raws.append(raw)
            room -= len(raw)
            if room <= 0:
                break
        return raws

    def _on_blocks(self, msg: Blocks, now: float, origin: int, out: Output) -> None:
        """Blocks for a catch-up, ours or one we overhear: take what extends what we hold,
        then ask for the rest from where we got to."""
        for key in [key for key in self._replies if key.startswith(msg.tip)]:
            del self._replies[key]
        req = self._requests.get(_CATCH_UP)
        if req is None:
            return  # we are missing nothing
        try:
            start, raws = default_codec().unpack_batch(msg.frame)
        except DecodeError as exc:
            out.events.append(Rejected("batch", "bad-batch", str(exc)))
            return
        highest = None
        for raw in raws:
            try:
                block = decode_block(raw)
                header = block.header
            except DecodeError as exc:
                out.events.append(Rejected("batch", "bad-batch", str(exc)))
                break
            if header.height <= self.tree.root.height:
                continue
            parent = self._parent(header.parent_prefix, header.height, out)
            if parent is None:
                if highest is None and start == req.from_height and msg.tip == req.tip:
                    if req.from_height > self.tree.root.height + 1 and self.final.height_of(header.parent_prefix) is None:
                        # the tip's branch left ours below where we asked: ask the neighbour that
                        # has it again, from further down (2, 4, 8 blocks, then our finalized block),
                        # so that it does not resend the blocks we share
                        req.back *= 2
                        lowest = self.tree.root.height + 1
                        req.from_height = lowest if req.back > 8 else max(lowest, req.from_height - req.back)
                        req.prefer = origin
                        req.tried.discard(origin)
                        self._retry(_CATCH_UP, req, now, out)
                    else:
                        self._refuse_tip(req.tip, out)
                        return
                break
            if self._accept(block, parent, now, out, fresh_hops=None) is None:
                break
            highest = header.height
        if self.tree.by_prefix(req.tip) or self.final.height_of(req.tip) is not None:
            del self._requests[_CATCH_UP]
            self._adopt_orphans(now, out)
            return
        if highest is None or msg.tip != req.tip:
            return
        self._good_neighbour(origin, now)
        req.from_height = max(req.from_height, highest + 1)
        req.tries = 0
        req.tried.clear()
        req.deadline = now + self.params.request_timeout  # more frames of the answer may come
        if not msg.more:
            self._ask_again(req, now, out)

    def _refuse_tip(self, tip: bytes, out: Output) -> None:
        """The tip's branch leaves our finalized chain: close the catch-up for it and forget
        the orphans waiting on it; nothing on that branch can ever be taken."""
        del self._requests[_CATCH_UP]
        self._bad_tips[tip] = None
        while len(self._bad_tips) > self.params.max_orphans:
            self._bad_tips.popitem(last=False)
        for ref, orphan in list(self._orphans.items()):
            if orphan.compact.header.parent_prefix == tip:
                del self._orphans[ref]
        out.events.append(Rejected("batch", "conflicts-finalized", "the branch asked for leaves the finalized chain"))

    def _ask_again(self, req: _Request, now: float, out: Output) -> None:
        req.tries = 0
        req.tried.clear()
        req.deadline = now
        self._retry(_CATCH_UP, req, now, out)

    def _adopt_orphans(self, now: float, out: Output) -> None:
        """Orphans whose parent arrived meanwhile go through as blocks; others restart catch-up."""
        for ref, orphan in list(self._orphans.items()):
            if ref not in self._orphans:
                continue
            del self._orphans[ref]
            self._on_block(orphan.compact, now, orphan.origin, orphan.hops, out, orphan.prefilled)

    # --- requests and answers ----------------------------------------------------------

    def _wait_for_answer(self, key: bytes, now: float) -> None:
        """A neighbour asked for what we are missing too: its answer will reach us, so hold
        our own request back for a timeout."""
        req = self._requests.get(key)
        if req is not None:
            req.deadline = max(req.deadline, now + self.params.request_timeout)

    def _answer(self, key: bytes, to: int, sends: list[Send], now: float, out: Output) -> None:
        """Answer now when asked by name (once per timeout, however many ask); when anyone
        was asked, after a random delay, unless another neighbour's answer is heard first."""
        if to == self.radio_id:
            if self._answered.get(key, -math.inf) + self.params.request_timeout / 2 <= now:
                self._answered[key] = now
                while len(self._answered) > self.params.max_orphans:
                    self._answered.popitem(last=False)
                out.sends.extend(self._within_answer_budget(sends, now))
        elif key not in self._replies and len(self._replies) < self.params.max_orphans:
            self._replies[key] = (now + self._rng.uniform(0, self.params.request_timeout / 2), sends)

    def _within_answer_budget(self, sends: list[Send], now: float) -> list[Send]:
        """The first of `sends` that the answer budget pays for (a token bucket of
        `answer_bytes_per_slot`, holding at most `sync_batch_bytes`): however many ask, and
        whoever they claim to be, answers cost this node at most that much airtime."""
        rate = self.params.answer_bytes / self.params.slot_seconds
        self._answer_tokens = min(self.params.sync_batch_bytes, self._answer_tokens + (now - self._answer_at) * rate)
        self._answer_at = now
        paid = []
        for send in sends:
            if len(send.payload) > self._answer_tokens:
                break
            self._answer_tokens -= len(send.payload)
            paid.append(send)
        return paid

    def _retry(self, key: bytes, req: _Request, now: float, out: Output) -> None:
        """Send (again) a request to a neighbour not asked yet, or give up."""
        if req.kind is MsgType.GET_BLOCKS and (self.tree.by_prefix(req.tip) or self.final.height_of(req.tip) is not None):
            del self._requests[key]  # the tip arrived by other means meanwhile
            self._adopt_orphans(now, out)
            return
        if req.tries >= self.params.max_request_tries:
            del self._requests[key]
            if key in self._pending:
                del self._pending[key]
                out.events.append(Rejected("block", "gave-up", "missing transactions never came"))
            return
        target = self._pick_neighbour(req)
        req.tries += 1
        req.tried.add(target)
        req.deadline = now + self.params.request_timeout
        if req.kind is MsgType.GET_TXS:
            pending = self._pending[key]
            missing = tuple(i for i, raw in enumerate(pending.txs) if raw is None)
            msg = GetTxs(target, key, missing)
        else:
            msg = GetBlocks(target, req.from_height, req.tip)
        out.sends.append(Send(encode_message(msg), req.kind, 0, PRIORITY_SYNC))

    def _good_neighbour(self, radio: int, now: float) -> None:
        """A direct neighbour that has the chain: it sent us a block or a useful answer."""
        if radio in self._neighbours:
            self._good.pop(radio, None)
            self._good[radio] = now
            while len(self._good) > 16:
                self._good.popitem(last=False)

    def _pick_neighbour(self, req: _Request) -> int:
        """The preferred neighbour first, then neighbours known to hold the chain, then the
        most recently heard ones; anyone after. A node that is not a validator spares the
        validators' airtime, which blocks need: it asks them last."""
        spare = set() if self.is_validator else self._validator_radios
        if req.prefer is not None and req.prefer not in req.tried and req.prefer not in spare:
            return req.prefer
        recent = self._now - 2 * self.params.n * self.params.slot_seconds
        for skip in (spare, set()):
            for table in (self._good, self._neighbours):
                for neighbour, heard in reversed(table.items()):
                    if heard >= recent and neighbour not in req.tried and neighbour not in skip:
                        return neighbour
        return ANYONE

