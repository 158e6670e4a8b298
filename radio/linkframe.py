"""Link frame wire format: the one construct declaration (`LINK_FRAME`) and its typed codec.

Every link frame starts with the same 2 bytes, most significant bit first:

    byte 0  bit 7-6  type      0 SINGLE, 1 FRAGMENT, 2 REPAIR, 3 reserved (escape for a
                               future format version; this version drops it)
            bit 5-0  msg_id    bits 13..8 of the message id
    byte 1  bit 7-0  msg_id    bits 7..0 of the message id

The message id (14 bits) is chosen by the sender, per sender, incrementing from a random
start; a receiver keys reassembly and duplicate suppression by (radio sender, msg_id).

    SINGLE    a whole message in one frame: no CRC (the LoRa PHY CRC covers the frame)
      2..     payload     the message, 0 or more bytes                      2 B overhead

    FRAGMENT  one piece of a message cut into `count` pieces
      2       index       0..count-1
      3       last        count - 1 (so count is 1..256)
      4..     data        1 or more bytes of (message + CRC-32C, big-endian); every
                          fragment but the last is filled to the MTU         4 B overhead
      The CRC-32C (Castagnoli, crcmod 'crc-32c') of the message travels once per message,
      as its last 4 bytes, and is checked after reassembly.

    REPAIR    "please resend these fragments of your message msg_id"
      2-5     target      radio id of the message's sender (uint32, big-endian)
      6       last        count - 1 of that message
      7..     missing     bitmap of ceil(count / 8) bytes: fragment i is missing when
                          bit (i mod 8) of byte (i div 8) is set (least significant bit
                          first); at least one bit set, none at or beyond count

Decoding untrusted bytes returns one of the frozen dataclasses below or raises
`FrameError`; encoding a frame with a field out of range raises `FrameEncodeError`;
callers never see a construct exception (radio/codec.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from construct import (
    Adapter,
    BitsInteger,
    BitStruct,
    Bytes,
    Check,
    Enum,
    Error,
    GreedyBytes,
    Int8ub,
    Int32ub,
    Struct,
    Switch,
    Terminated,
    ValidationError,
    len_,
    this,
)

from .codec import decoding, encoding
from .errors import FrameEncodeError, FrameError

MSG_ID_BITS = 14
MSG_ID_MODULO = 1 << MSG_ID_BITS
MAX_FRAGMENTS = 256
SINGLE_HEADER_LEN = 2
FRAGMENT_HEADER_LEN = 4
REPAIR_FIXED_LEN = 7  # header (2) + target (4) + last (1), before the bitmap
CRC_LEN = 4


@dataclass(frozen=True)
class SingleFrame:
    msg_id: int
    payload: bytes


@dataclass(frozen=True)
class FragmentFrame:
    msg_id: int
    index: int
    count: int
    data: bytes


@dataclass(frozen=True)
class RepairRequest:
    msg_id: int
    target: int
    count: int
    missing: frozenset[int]


LinkFrame = SingleFrame | FragmentFrame | RepairRequest


def repair_request_len(count: int) -> int:
    """Size on air of a repair request for a message of `count` fragments."""
    return REPAIR_FIXED_LEN + _bitmap_len(count)


def _bitmap_len(count: int) -> int:
    return (count + 7) // 8


class _MissingBitmap(Adapter):
    """Bitmap bytes <-> frozenset of missing fragment indexes (count taken from `last`)."""

    def _decode(self, obj, context, path):
        count = context.last + 1
        missing = frozenset(
            byte_no * 8 + bit
            for byte_no, byte in enumerate(obj)
            for bit in range(8)
            if byte >> bit & 1
        )
        if not missing:
            raise ValidationError("repair request names no missing fragment", path=path)
        if max(missing) >= count:
            raise ValidationError(f"repair bitmap names fragments beyond count {count}", path=path)
        return missing

    def _encode(self, obj, context, path):
        bitmap = bytearray(_bitmap_len(context.last + 1))
        for index in obj:
            bitmap[index // 8] |= 1 << (index % 8)
        return bytes(bitmap)


_HEADER = BitStruct(
    "type" / Enum(BitsInteger(2), SINGLE=0, FRAGMENT=1, REPAIR=2, RESERVED=3),
    "msg_id" / BitsInteger(MSG_ID_BITS),
)

_BODIES = {
    "SINGLE": Struct("payload" / GreedyBytes),
    "FRAGMENT": Struct(
        "index" / Int8ub,
        "last" / Int8ub,
        Check(this.index <= this.last),
        "data" / GreedyBytes,
        Check(len_(this.data) > 0),
    ),
    "REPAIR": Struct(
        "target" / Int32ub,
        "last" / Int8ub,
        "missing" / _MissingBitmap(Bytes(lambda ctx: _bitmap_len(ctx.last + 1))),
        Terminated,
    ),
}


class _LinkFrameAdapter(Adapter):
    """Parsed containers <-> SingleFrame / FragmentFrame / RepairRequest."""

    def _decode(self, obj, context, path):
        kind, msg_id, body = obj.header.type, obj.header.msg_id, obj.body
        if kind == "SINGLE":
            return SingleFrame(msg_id, body.payload)
        if kind == "FRAGMENT":
            return FragmentFrame(msg_id, body.index, body.last + 1, body.data)
        return RepairRequest(msg_id, body.target, body.last + 1, body.missing)

    def _encode(self, obj, context, path):
        if isinstance(obj, SingleFrame):
            body = {"payload": obj.payload}
            return {"header": {"type": "SINGLE", "msg_id": obj.msg_id}, "body": body}
        if isinstance(obj, FragmentFrame):
            body = {"index": obj.index, "last": obj.count - 1, "data": obj.data}
            return {"header": {"type": "FRAGMENT", "msg_id": obj.msg_id}, "body": body}
        if isinstance(obj, RepairRequest):
            if not obj.missing or min(obj.missing) < 0 or max(obj.missing) >= obj.count:
                raise ValidationError(
                    f"missing fragments must be a non-empty subset of 0..{obj.count - 1}"
                )
            body = {"target": obj.target, "last": obj.count - 1, "missing": obj.missing}
            return {"header": {"type": "REPAIR", "msg_id": obj.msg_id}, "body": body}
        raise ValidationError(f"not a link frame: {obj!r}")


LINK_FRAME = _LinkFrameAdapter(
    Struct(
        "header" / _HEADER,
        "body" / Switch(this.header.type, _BODIES, default=Error),
    )
)


def encode(frame: LinkFrame) -> bytes:
    """Bytes on air of one link frame; `FrameEncodeError` if a field is out of range."""
    with encoding(type(frame).__name__, FrameEncodeError):
        return LINK_FRAME.build(frame)


def decode(data: bytes) -> LinkFrame:
    """The link frame in `data`; `FrameError` for anything malformed or unsupported."""
    with decoding("link frame", FrameError):
        return LINK_FRAME.parse(data)
