"""The one byte-stream deframer every serial transport uses (start bytes + length + payload).

Wire format of one frame (declared once, in `StreamFramer.header`):

    start   len(start) bytes   magic, e.g. 0x94 0xC3 for the Meshtastic serial API
    length  2 bytes            payload length, big-endian, 0..max_len
    payload length bytes

This is the Meshtastic serial/TCP API framing (START1 0x94, START2 0xC3, max 512 B);
the UART modem driver uses it with its own magic. The framer resynchronises:
- bytes outside a frame (a device's log console, line noise) come out as `Noise`,
  in order, before the frame that follows them;
- a header whose length exceeds `max_len` is not a header: its first start byte goes
  to `Noise` and the search restarts at the next byte;
- the input may be cut anywhere: `feed` keeps at most one partial frame between calls
  (header + max_len bytes), so a peer cannot grow the buffer.

Limit of the format (shared with Meshtastic): there is no checksum, so a stray start
sequence followed by a plausible length swallows up to `length` following bytes into a
bogus payload. The layer above (protobuf decoding, link CRC) must reject it.
"""
from __future__ import annotations

from dataclasses import dataclass

from construct import Const, Int16ub, Struct

from .errors import MessageTooLarge

MESHTASTIC_START = b"\x94\xc3"
MESHTASTIC_MAX_LEN = 512
_LENGTH_BYTES = 2


@dataclass(frozen=True)
class Noise:
    """Bytes that were not part of any frame (e.g. a device's debug log text)."""

    data: bytes


class StreamFramer:
    """Frames payloads for a byte stream and cuts a byte stream back into payloads.

    `feed(data)` returns, in stream order, each complete payload as `bytes` and each
    run of stray bytes as `Noise`. It never raises on any input.
    """

    def __init__(self, start: bytes, max_len: int) -> None:
        if not start:
            raise ValueError("start sequence must not be empty")
        if not 0 <= max_len < 1 << (8 * _LENGTH_BYTES):
            raise ValueError(f"max_len must be 0..65535, not {max_len}")
        self.start = bytes(start)
        self.max_len = max_len
        self.header = Struct("start" / Const(self.start), "length" / Int16ub)
        self._header_len = len(self.start) + _LENGTH_BYTES
        self._buf = bytearray()

    @classmethod
    def meshtastic(cls) -> StreamFramer:
        """The framer of the Meshtastic serial and TCP API."""
        return cls(MESHTASTIC_START, MESHTASTIC_MAX_LEN)

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame (at most header + max_len)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame, e.g. after the port was reopened."""
        self._buf.clear()

    def frame(self, payload: bytes) -> bytes:
        """The bytes to write for one payload."""
        if len(payload) > self.max_len:
            raise MessageTooLarge(
                f"stream frame payload is {len(payload)} B, "
                f"this transport carries at most {self.max_len} B"
            )
        return self.header.build({"length": len(payload)}) + payload

    def feed(self, data: bytes) -> list[bytes | Noise]:
        """Consume bytes read from the stream; return the payloads and noise they complete."""
        buf = self._buf
        buf += data
        events: list[bytes | Noise] = []
        noise_from = pos = 0  # buf[noise_from:pos] is noise not yet handed out
        while True:
            found = buf.find(self.start, pos)
            if found < 0:
                pos = len(buf) - self._partial_start_len(buf, pos)
                break
            pos = found
            if len(buf) - pos < self._header_len:
                break
            length = self._parse_length(buf, pos)
            if length is None:
                pos += 1  # not a real header: its first byte is noise, look again after it
                continue
            end = pos + self._header_len + length
            if len(buf) < end:
                break
            if pos > noise_from:
                events.append(Noise(bytes(buf[noise_from:pos])))
            events.append(bytes(buf[pos + self._header_len : end]))
            noise_from = pos = end
        if pos > noise_from:
            events.append(Noise(bytes(buf[noise_from:pos])))
        del buf[:pos]
        return events

    def _parse_length(self, buf: bytearray, pos: int) -> int | None:
        """The payload length of the header at `pos` (which starts with `start`), or None
        if it is out of bounds."""
        length = self.header.parse(bytes(buf[pos : pos + self._header_len])).length
        return length if length <= self.max_len else None

    def _partial_start_len(self, buf: bytearray, pos: int) -> int:
        """Length of the longest tail of `buf[pos:]` that could begin a start sequence."""
        for size in range(min(len(self.start) - 1, len(buf) - pos), 0, -1):
            if buf.endswith(self.start[:size]):
                return size
        return 0
