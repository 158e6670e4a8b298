"""The stream deframer: Meshtastic framing known answers, split input, resync after garbage."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockiot.radio.errors import MessageTooLarge
from blockiot.radio.streamframe import MESHTASTIC_START, Noise, StreamFramer


def feed_bytewise(framer: StreamFramer, data: bytes) -> list[bytes | Noise]:
    return [event for byte in data for event in framer.feed(bytes([byte]))]


def split(events: list[bytes | Noise]) -> tuple[list[bytes], bytes]:
    """(payloads, all noise bytes joined): what any chunking of one stream must agree on."""
    frames = [e for e in events if isinstance(e, bytes)]
    noise = b"".join(e.data for e in events if isinstance(e, Noise))
    return frames, noise


def test_meshtastic_frame_known_answer():
    framer = StreamFramer.meshtastic()
    assert framer.frame(b"\x01\x02") == bytes.fromhex("94c3 0002 0102")
    assert framer.frame(b"") == bytes.fromhex("94c3 0000")


def test_log_text_before_a_frame_is_noise_in_order():
    framer = StreamFramer.meshtastic()
    stream = b"INFO | boot ok\r\n" + framer.frame(b"proto") + b"DEBUG tail"
    assert framer.feed(stream) == [Noise(b"INFO | boot ok\r\n"), b"proto", Noise(b"DEBUG tail")]


def test_one_byte_at_a_time_gives_the_same_frames():
    framer = StreamFramer.meshtastic()
    payloads = [b"", b"a", bytes(range(256)) * 2]
    stream = b"".join(framer.frame(p) for p in payloads)
    assert feed_bytewise(framer, stream) == payloads
    assert framer.buffered == 0


def test_oversize_length_is_not_a_header_and_parsing_resumes():
    framer = StreamFramer.meshtastic()
    stream = MESHTASTIC_START + (513).to_bytes(2, "big") + framer.frame(b"ok")
    assert framer.feed(stream) == [Noise(MESHTASTIC_START + b"\x02\x01"), b"ok"]


def test_repeated_first_start_byte_still_finds_the_frame():
    framer = StreamFramer.meshtastic()
    assert framer.feed(b"\x94\x94" + framer.frame(b"x")) == [Noise(b"\x94\x94"), b"x"]


def test_frame_ending_in_a_start_byte_at_a_chunk_boundary():
    framer = StreamFramer.meshtastic()
    first = framer.frame(b"\x00\x94")
    stream = first + framer.frame(b"")
    assert framer.feed(stream[: len(first)]) + framer.feed(stream[len(first) :]) == [b"\x00\x94", b""]


def test_partial_frame_waits_for_the_rest_and_reset_forgets_it():
    framer = StreamFramer.meshtastic()
    whole = framer.frame(b"hello")
    assert framer.feed(whole[:5]) == []
    assert framer.buffered == 5
    framer.reset()
    assert framer.feed(whole[5:] + whole) == [Noise(b"ello"), b"hello"]


def test_payload_beyond_max_len_cannot_be_framed():
    with pytest.raises(MessageTooLarge, match="at most 512 B"):
        StreamFramer.meshtastic().frame(bytes(513))


def test_other_magic_for_the_uart_modem():
    framer = StreamFramer(b"\xb1\x07", 240)
    assert framer.feed(b"\x94\xc3\x00\x01z" + framer.frame(b"air")) == [Noise(b"\x94\xc3\x00\x01z"), b"air"]


noise_without_start = st.binary(max_size=40).map(lambda b: b.replace(b"\x94", b""))


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.tuples(noise_without_start, st.binary(max_size=600)), max_size=8),
    cuts=st.lists(st.integers(0, 6000), max_size=30),
)
def test_frames_and_noise_survive_any_split(chunks, cuts):
    framer = StreamFramer.meshtastic()
    payloads = [p for _, p in chunks if len(p) <= framer.max_len]
    stream = b"".join(n + framer.frame(p) for n, p in chunks if len(p) <= framer.max_len)
    events: list[bytes | Noise] = []
    previous = 0
    for cut in sorted(c for c in cuts if c < len(stream)) + [len(stream)]:
        events += framer.feed(stream[previous:cut])
        previous = cut
    assert split(events) == (payloads, b"".join(n for n, p in chunks if len(p) <= framer.max_len))


@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=40))
def test_garbage_never_raises_and_buffer_stays_bounded(garbage, cuts):
    whole = StreamFramer.meshtastic()
    pieces = StreamFramer.meshtastic()
    events: list[bytes | Noise] = []
    previous = 0
    for cut in sorted(c for c in cuts if c < len(garbage)) + [len(garbage)]:
        events += pieces.feed(garbage[previous:cut])
        previous = cut
        assert pieces.buffered <= 4 + pieces.max_len
    assert split(events) == split(whole.feed(garbage))
    assert pieces.buffered == whole.buffered
    frames, noise = split(events)
    assert all(len(frame) <= 512 for frame in frames)
    assert len(noise) + sum(4 + len(f) for f in frames) + pieces.buffered == len(garbage)
