"""Framing for data that may be compressed: zstandard with a dictionary trained on chain
data (shipped as `sync.zdict`), a flag so a frame is compressed only when that makes it
smaller, a CRC-32C (crcmod) over the uncompressed content, and a bounded decompress so a
tiny frame can never inflate beyond `max_output` (no zip bombs).

Frame::

    flags    u8       bit 0: payload is zstd (dictionary) compressed
    payload  varint-prefixed bytes
    crc      u32 BE   CRC-32C of the uncompressed content

Sync batches (many blocks for a node catching up) travel and are stored in such frames.
A malformed frame raises DecodeError; a batch of our own too large to encode, EncodeError.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import crcmod.predefined
import zstandard
from construct import GreedyBytes, Int8ub, Int32ub, Prefixed, PrefixedArray, Struct, Terminated, VarInt

from blockiot.radio.codec import decoding, encoding

from .errors import DecodeError, EncodeError

FLAG_ZSTD = 0x01
DICTIONARY_FILE = "sync.zdict"
DEFAULT_MAX_OUTPUT = 256 * 1024
ZSTD_LEVEL = 19
BATCH_VERSION = 1
MAX_BATCH_BLOCKS = 1000

crc32c = crcmod.predefined.mkCrcFun("crc-32c")

_FRAME = Struct("flags" / Int8ub, "payload" / Prefixed(VarInt, GreedyBytes), "crc" / Int32ub, Terminated)
_BATCH = Struct(
    "version" / Int8ub,
    "start_height" / VarInt,
    "blocks" / PrefixedArray(VarInt, Prefixed(VarInt, GreedyBytes)),
    Terminated,
)


@lru_cache(maxsize=1)
def shipped_dictionary() -> zstandard.ZstdCompressionDict | None:
    """The dictionary shipped in the package (None if it has not been trained yet)."""
    try:
        data = resources.files("blockiot.chain").joinpath(DICTIONARY_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return zstandard.ZstdCompressionDict(data)


class Codec:
    """Compressor/decompressor pair bound to one dictionary (or none)."""

    def __init__(self, dictionary: zstandard.ZstdCompressionDict | None = None, level: int = ZSTD_LEVEL):
        self.dictionary = dictionary
        kwargs = {"dict_data": dictionary} if dictionary is not None else {}
        self._compressor = zstandard.ZstdCompressor(
            level=level, write_checksum=False, write_content_size=True, write_dict_id=False, **kwargs
        )
        self._decompressor = zstandard.ZstdDecompressor(**kwargs)

    def pack(self, content: bytes) -> bytes:
        """Frame `content`, compressed only if that is smaller."""
        packed = self._compressor.compress(content)
        flags, payload = (FLAG_ZSTD, packed) if len(packed) < len(content) else (0, content)
        with encoding("frame", EncodeError):
            return _FRAME.build({"flags": flags, "payload": payload, "crc": crc32c(content)})

    def unpack(self, frame: bytes, max_output: int = DEFAULT_MAX_OUTPUT) -> bytes:
        with decoding("frame", DecodeError):
            c = _FRAME.parse(frame)
        if c.flags & ~FLAG_ZSTD:
            raise DecodeError(f"unknown frame flags {c.flags:#x}")
        content = bytes(c.payload)
        if c.flags & FLAG_ZSTD:
            try:
                # zstandard sizes its output buffer from the size a frame declares and then
                # ignores max_output_size: a 19-byte frame declaring 2^50 B is a MemoryError.
                declared = zstandard.get_frame_parameters(content).content_size
                if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > max_output:
                    raise DecodeError(f"frame declares {declared} B of content, over the {max_output} B bound")
                content = self._decompressor.decompress(content, max_output_size=max_output, allow_extra_data=False)
            except zstandard.ZstdError as exc:
                raise DecodeError(f"cannot decompress frame (corrupt, or over {max_output} B): {exc}") from None
        if len(content) > max_output:
            raise DecodeError(f"frame content of {len(content)} B exceeds the {max_output} B bound")
        if crc32c(content) != c.crc:
            raise DecodeError("frame CRC mismatch: corrupted in transit or storage")
        return content

    def pack_batch(self, start_height: int, raw_blocks: list[bytes]) -> bytes:
        if len(raw_blocks) > MAX_BATCH_BLOCKS:
            raise EncodeError(f"a sync batch holds at most {MAX_BATCH_BLOCKS} blocks")
        with encoding("sync batch", EncodeError):
            content = _BATCH.build({"version": BATCH_VERSION, "start_height": start_height, "blocks": raw_blocks})
        return self.pack(content)

    def unpack_batch(self, frame: bytes, max_output: int = DEFAULT_MAX_OUTPUT) -> tuple[int, list[bytes]]:
        content = self.unpack(frame, max_output)
        with decoding("sync batch", DecodeError):
            c = _BATCH.parse(content)
        if c.version != BATCH_VERSION:
            raise DecodeError(f"unsupported sync batch version {c.version}")
        if len(c.blocks) > MAX_BATCH_BLOCKS:
            raise DecodeError(f"sync batch of {len(c.blocks)} blocks exceeds {MAX_BATCH_BLOCKS}")
        return c.start_height, [bytes(b) for b in c.blocks]


def shipped_codec() -> Codec:
    """A codec over the shipped dictionary, which every node uses so that all agree. Made
    where a node is wired (the CLI, the simulator, a test) and passed in, one per node:
    its zstd contexts hold state, so no core reaches for a process-wide one."""
    return Codec(shipped_dictionary())


@lru_cache(maxsize=1)
def default_codec() -> Codec:
    """One process-wide `shipped_codec()`, only for chain/consensus/node.py until `NodeCore`
    takes its codec as a parameter; delete it then."""
    return shipped_codec()
