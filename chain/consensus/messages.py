"""Consensus messages on air: one type byte, then the body (docs/PROTOCOL.md §3).

    1 TX          raw signed transaction (chain.wire)
    2 BLOCK       compact block (chain.wire: header + 6-byte short ids), varint-prefixed,
                  then prefilled txs: varint count + (index varint, raw tx varint-prefixed)
    3 GET_TXS     to varint, ref 8 B, indices: varint count + varints
    4 TXS         ref 8 B, txs: varint count + (index varint, raw tx varint-prefixed)
    5 GET_BLOCKS  to varint, from_height varint, tip 8 B
    6 BLOCKS      tip 8 B, more u8 (1: further BLOCKS follow for the same request),
                  sync batch frame (chain.compression), to the end
    7 EVIDENCE    equivocation evidence (evidence.py)

`to` is the radio id of the one neighbour asked (0: any neighbour). `ref` names a block
by the first 8 bytes of BLAKE2b-256 of its compact header, `tip` by its id prefix.
Decoding untrusted bytes returns a validated message or raises DecodeError.

Indices are canonical: in GET_TXS, TXS and a BLOCK's prefilled txs they are strictly
increasing (no repeat, no disorder) and below the block's size (`MAX_BLOCK_TXS`, or the
`max_block_txs` the caller passes), and a GET_TXS or TXS names at least one. So a request
names each transaction at most once and its answer holds at most the block's
transactions (before: a 524 B GET_TXS repeating indices drew a 36 KB TXS).

Sizes. `encode_message` encodes any valid message whatever its size; the link carries at
most `MAX_MESSAGE_BYTES` (radio/link.py's max_message) and a single radio frame carries
`ConsensusParams.frame_bytes`. Answers that may be long are cut with `pack_txs` (TXS)
and `pack_blocks` (BLOCKS): each message they return is at most the `max_bytes` given
(one frame), except that a single item too big for it goes alone, and never above
`MAX_MESSAGE_BYTES` (`pack_blocks` stops before a block that cannot go even alone).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Union

from construct import Bytes, ConstructError, Flag, GreedyBytes, Prefixed, PrefixedArray, Struct, Terminated, VarInt

from ..crypto import blake2b256
from ..errors import DecodeError
from ..wire import (
    MAX_BLOCK_TXS,
    MAX_TX_BYTES,
    MAX_TX_BYTES_BY_KIND,
    MAX_VARINT,
    PARENT_PREFIX_LEN,
    BlockHeader,
    CompactBlock,
    Tx,
    decode_compact,
    decode_tx,
    encode_header,
)
from ..evidence import Evidence, decode_evidence, encode_evidence

REF_LEN = 8
TIP_LEN = PARENT_PREFIX_LEN
MAX_MESSAGE_BYTES = 4096  # the link layer's max_message: no node accepts a longer message
MAX_RAW_TX_BYTES = max(MAX_TX_BYTES, *MAX_TX_BYTES_BY_KIND.values())


class MsgType(enum.IntEnum):
    TX = 1
    BLOCK = 2
    GET_TXS = 3
    TXS = 4
    GET_BLOCKS = 5
    BLOCKS = 6
    EVIDENCE = 7


@dataclass(frozen=True)
class TxMsg:
    tx: Tx


@dataclass(frozen=True)
class BlockMsg:
    """A compact block, with those of its transactions the leader sends in full."""

    compact: CompactBlock
    prefilled: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class GetTxs:
    to: int
    ref: bytes
    indices: tuple[int, ...]


@dataclass(frozen=True)
class Txs:
    ref: bytes
    items: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True)
class GetBlocks:
    to: int
    from_height: int
    tip: bytes


@dataclass(frozen=True)
class Blocks:
    tip: bytes
    more: bool
    frame: bytes


@dataclass(frozen=True)
class EvidenceMsg:
    evidence: Evidence


Message = Union[TxMsg, BlockMsg, GetTxs, Txs, GetBlocks, Blocks, EvidenceMsg]

_INDEXED_TXS = PrefixedArray(VarInt, Struct("index" / VarInt, "raw" / Prefixed(VarInt, GreedyBytes)))
_BLOCK = Struct("compact" / Prefixed(VarInt, GreedyBytes), "prefilled" / _INDEXED_TXS, Terminated)
_GET_TXS = Struct("to" / VarInt, "ref" / Bytes(REF_LEN), "indices" / PrefixedArray(VarInt, VarInt), Terminated)
_TXS = Struct("ref" / Bytes(REF_LEN), "txs" / _INDEXED_TXS, Terminated)
_GET_BLOCKS = Struct("to" / VarInt, "from_height" / VarInt, "tip" / Bytes(TIP_LEN), Terminated)
_BLOCKS = Struct("tip" / Bytes(TIP_LEN), "more" / Flag, "frame" / GreedyBytes)


def header_ref(header: BlockHeader) -> bytes:
    """The name of a block before its id is known: digest prefix of its header bytes."""
    return blake2b256(encode_header(header))[:REF_LEN]


def message_type(payload: bytes) -> MsgType | None:
    """The type of an encoded message, or None if the first byte names none."""
    try:
        return MsgType(payload[0]) if payload else None
    except ValueError:
        return None


def encode_message(msg: Message) -> bytes:
    """One message as it goes on air (DecodeError for a message that peers would refuse,
    such as unsorted or repeated indices). Its size is not bounded here: see `pack_txs`."""
    if isinstance(msg, GetTxs):
        _check_indices(msg.indices, MAX_BLOCK_TXS)
    elif isinstance(msg, Txs):
        _check_items(msg.items, MAX_BLOCK_TXS)
    elif isinstance(msg, BlockMsg):
        _check_items(msg.prefilled, len(msg.compact.short_ids), allow_empty=True)
    try:
        if isinstance(msg, TxMsg):
            return bytes([MsgType.TX]) + msg.tx.raw
        if isinstance(msg, BlockMsg):
            prefilled = [{"index": i, "raw": raw} for i, raw in msg.prefilled]
            return bytes([MsgType.BLOCK]) + _BLOCK.build({"compact": msg.compact.raw, "prefilled": prefilled})
        if isinstance(msg, GetTxs):
            body = _GET_TXS.build({"to": msg.to, "ref": msg.ref, "indices": list(msg.indices)})
            return bytes([MsgType.GET_TXS]) + body
        if isinstance(msg, Txs):
            txs = [{"index": i, "raw": raw} for i, raw in msg.items]
            return bytes([MsgType.TXS]) + _TXS.build({"ref": msg.ref, "txs": txs})
        if isinstance(msg, GetBlocks):
            body = _GET_BLOCKS.build({"to": msg.to, "from_height": msg.from_height, "tip": msg.tip})
            return bytes([MsgType.GET_BLOCKS]) + body
        if isinstance(msg, Blocks):
            return bytes([MsgType.BLOCKS]) + _BLOCKS.build({"tip": msg.tip, "more": msg.more, "frame": msg.frame})
        if isinstance(msg, EvidenceMsg):
            return bytes([MsgType.EVIDENCE]) + encode_evidence(msg.evidence)
    except (ConstructError, ValueError, TypeError, OverflowError) as exc:
        raise DecodeError(f"cannot encode {type(msg).__name__}: {exc}") from None
    raise DecodeError(f"not a consensus message: {type(msg).__name__}")


def decode_message(payload: bytes, *, max_block_txs: int = MAX_BLOCK_TXS) -> Message:
    """Decode one message from untrusted bytes; raises DecodeError on anything malformed.

    `max_block_txs` bounds the indices of GET_TXS and TXS (a node whose blocks never hold
    more than its `ConsensusParams.max_block_txs` may pass that; the default is the wire
    format's `MAX_BLOCK_TXS`)."""
    bound = min(max_block_txs, MAX_BLOCK_TXS)
    kind = message_type(payload)
    if kind is None:
        raise DecodeError("empty message or unknown message type")
    body = bytes(payload[1:])
    if kind is MsgType.TX:
        return TxMsg(decode_tx(body))
    if kind is MsgType.EVIDENCE:
        return EvidenceMsg(decode_evidence(body))
    struct = {
        MsgType.BLOCK: _BLOCK,
        MsgType.GET_TXS: _GET_TXS,
        MsgType.TXS: _TXS,
        MsgType.GET_BLOCKS: _GET_BLOCKS,
        MsgType.BLOCKS: _BLOCKS,
    }[kind]
    try:
        c = struct.parse(body)
    except (ConstructError, ValueError, OverflowError) as exc:
        raise DecodeError(f"malformed {kind.name} message: {str(exc).strip().splitlines()[-1]}") from None
    if kind is MsgType.BLOCK:
        compact = decode_compact(bytes(c.compact))
        prefilled = tuple((item.index, bytes(item.raw)) for item in c.prefilled)
        _check_items(prefilled, len(compact.short_ids), allow_empty=True)
        return BlockMsg(compact, prefilled)
    if kind is MsgType.GET_TXS:
        if c.to > MAX_VARINT:
            raise DecodeError("GET_TXS names a radio id out of range")
        indices = tuple(c.indices)
        _check_indices(indices, bound)
        return GetTxs(c.to, bytes(c.ref), indices)
    if kind is MsgType.TXS:
        items = tuple((item.index, bytes(item.raw)) for item in c.txs)
        _check_items(items, bound)
        return Txs(bytes(c.ref), items)
    if kind is MsgType.GET_BLOCKS:
        if c.to > MAX_VARINT or c.from_height > MAX_VARINT:
            raise DecodeError("GET_BLOCKS fields out of range")
        return GetBlocks(c.to, c.from_height, bytes(c.tip))
    return Blocks(bytes(c.tip), bool(c.more), bytes(c.frame))


def _check_indices(indices, bound: int, *, allow_empty: bool = False) -> None:
    """Transaction indices: strictly increasing, each below `bound`, at least one unless
    `allow_empty` (so there are at most `bound` of them)."""
    if not indices and not allow_empty:
        raise DecodeError("names no transaction index")
    if any(not isinstance(i, int) or i < 0 for i in indices):
        raise DecodeError("transaction indices must be integers >= 0")
    if any(a >= b for a, b in zip(indices, indices[1:])):
        raise DecodeError("transaction indices repeat or are out of order")
    if indices and indices[-1] >= bound:
        raise DecodeError(f"transaction index {indices[-1]} is beyond a block of {bound}")


def _check_items(items, bound: int, *, allow_empty: bool = False) -> None:
    """(index, raw tx) pairs: indices as `_check_indices`, each raw no longer than a tx."""
    _check_indices(tuple(index for index, _ in items), bound, allow_empty=allow_empty)
    if any(len(raw) > MAX_RAW_TX_BYTES for _, raw in items):
        raise DecodeError(f"a transaction longer than {MAX_RAW_TX_BYTES} B")


# --- answers cut to size -----------------------------------------------------------------


def pack_txs(ref: bytes, items, max_bytes: int) -> list[bytes]:
    """TXS messages carrying the (index, raw tx) `items` (strictly increasing indices) in
    order, each at most `max_bytes` long: pass `ConsensusParams.frame_bytes` for one radio
    frame each. A transaction too big for `max_bytes` goes alone (a tx is at most
    `MAX_RAW_TX_BYTES`, so that message is always below `MAX_MESSAGE_BYTES`)."""
    items = tuple((int(index), bytes(raw)) for index, raw in items)
    _check_items(items, MAX_BLOCK_TXS, allow_empty=True)
    messages: list[bytes] = []
    batch: list[tuple[int, bytes]] = []
    for item in items:
        if batch and len(encode_message(Txs(ref, tuple(batch + [item])))) > max_bytes:
            messages.append(encode_message(Txs(ref, tuple(batch))))
            batch = []
        batch.append(item)
    if batch:
        messages.append(encode_message(Txs(ref, tuple(batch))))
    return messages


def pack_blocks(tip: bytes, raws, start: int, codec, *, max_bytes: int, max_block_bytes: int) -> list[bytes]:
    """BLOCKS messages for consecutive blocks `raws` (heights from `start`) along the chain
    ending at `tip`: each one compressed sync batch (`codec.pack_batch`, chain.compression)
    as long as its message stays within `max_bytes` (one frame); a block too big for that
    goes alone. At most `max_block_bytes` of raw blocks in all (`sync_batch_bytes`); it
    stops before a block whose message would exceed `MAX_MESSAGE_BYTES` even alone (no
    node could receive it). `more` is set on all but the last message."""
    raws = [bytes(raw) for raw in raws]
    batches: list[bytes] = []
    total = i = 0
    while i < len(raws) and total < max_block_bytes:
        count = 1
        best = codec.pack_batch(start + i, raws[i : i + 1])
        if len(encode_message(Blocks(tip, True, best))) > MAX_MESSAGE_BYTES:
            break
        while i + count < len(raws):
            candidate = codec.pack_batch(start + i, raws[i : i + count + 1])
            if len(encode_message(Blocks(tip, True, candidate))) > max_bytes:
                break
            best, count = candidate, count + 1
        batches.append(best)
        total += sum(len(raw) for raw in raws[i : i + count])
        i += count
    return [encode_message(Blocks(tip, n < len(batches) - 1, batch)) for n, batch in enumerate(batches)]
