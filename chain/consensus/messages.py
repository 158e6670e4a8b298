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
    """One message as it goes on air."""
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


def decode_message(payload: bytes) -> Message:
    """Decode one message from untrusted bytes; raises DecodeError on anything malformed."""
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
        prefilled = _indexed(c.prefilled, len(compact.short_ids))
        return BlockMsg(compact, prefilled)
    if kind is MsgType.GET_TXS:
        if len(c.indices) > MAX_BLOCK_TXS or any(i >= MAX_BLOCK_TXS for i in c.indices) or c.to > MAX_VARINT:
            raise DecodeError("GET_TXS asks for indices out of range")
        return GetTxs(c.to, bytes(c.ref), tuple(c.indices))
    if kind is MsgType.TXS:
        return Txs(bytes(c.ref), _indexed(c.txs, MAX_BLOCK_TXS))
    if kind is MsgType.GET_BLOCKS:
        if c.to > MAX_VARINT or c.from_height > MAX_VARINT:
            raise DecodeError("GET_BLOCKS fields out of range")
        return GetBlocks(c.to, c.from_height, bytes(c.tip))
    return Blocks(bytes(c.tip), bool(c.more), bytes(c.frame))


def _indexed(items, bound: int) -> tuple[tuple[int, bytes], ...]:
    """(index, raw tx) pairs with every index below `bound`."""
    if len(items) > MAX_BLOCK_TXS or any(item.index >= bound for item in items):
        raise DecodeError("transaction indices out of range")
    return tuple((item.index, bytes(item.raw)) for item in items)
