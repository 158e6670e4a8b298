"""Link frame codec: known-answer bytes, round trips, and typed errors for garbage."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockiot.radio.errors import FrameEncodeError, FrameError
from blockiot.radio.linkframe import (
    MAX_FRAGMENTS,
    MSG_ID_MODULO,
    FragmentFrame,
    RepairRequest,
    SingleFrame,
    decode,
    encode,
    repair_request_len,
)

KNOWN = [
    # type 00 | msg id 5 | payload
    (SingleFrame(5, b"hi"), "0005 6869"),
    # type 00 | msg id 0x3fff | empty payload
    (SingleFrame(MSG_ID_MODULO - 1, b""), "3fff"),
    # type 01 | msg id 300 | index 3 | last 17 | data
    (FragmentFrame(300, 3, 18, b"abc"), "412c 03 11 616263"),
    # type 10 | msg id 7 | target | last 17 | bitmap: bit 0, bit 9 (byte 1 bit 1), bit 17 (byte 2 bit 1)
    (RepairRequest(7, 0xDEADBEEF, 18, frozenset({0, 9, 17})), "8007 deadbeef 11 010202"),
]


@pytest.mark.parametrize("frame, hex_bytes", KNOWN)
def test_known_answers(frame, hex_bytes):
    assert encode(frame) == bytes.fromhex(hex_bytes)
    assert decode(bytes.fromhex(hex_bytes)) == frame


def test_repair_request_length():
    request = RepairRequest(1, 2, 18, frozenset({4}))
    assert len(encode(request)) == repair_request_len(18) == 7 + 3


msg_ids = st.integers(0, MSG_ID_MODULO - 1)


@st.composite
def fragments(draw):
    count = draw(st.integers(1, MAX_FRAGMENTS))
    return FragmentFrame(draw(msg_ids), draw(st.integers(0, count - 1)), count, draw(st.binary(min_size=1)))


@st.composite
def repair_requests(draw):
    count = draw(st.integers(1, MAX_FRAGMENTS))
    missing = draw(st.frozensets(st.integers(0, count - 1), min_size=1))
    return RepairRequest(draw(msg_ids), draw(st.integers(0, 2**32 - 1)), count, missing)


@given(st.one_of(st.builds(SingleFrame, msg_ids, st.binary()), fragments(), repair_requests()))
def test_round_trip(frame):
    assert decode(encode(frame)) == frame


@given(st.binary(max_size=300))
def test_garbage_decodes_or_raises_frame_error_only(data):
    try:
        frame = decode(data)
    except FrameError:
        return
    assert encode(frame) == data


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "",  # no header
        "00",  # half a header
        "c000",  # reserved type 11
        "4000 05 02 78",  # index beyond last
        "4000 00 02",  # fragment without data
        "8000 00000001 01 00",  # repair request naming nothing
        "8000 00000001 01 04",  # repair bit beyond count 2
        "8000 00000001 01 01 00",  # trailing byte
    ],
)
def test_malformed_frames_raise_frame_error(hex_bytes):
    with pytest.raises(FrameError, match="malformed link frame"):
        decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "frame",
    [
        SingleFrame(MSG_ID_MODULO, b""),
        FragmentFrame(1, 0, MAX_FRAGMENTS + 1, b"x"),
        FragmentFrame(1, 0, 2, b""),
        RepairRequest(1, 1, 3, frozenset()),
        RepairRequest(1, 1, 3, frozenset({3})),
        RepairRequest(1, 2**32, 3, frozenset({1})),
    ],
)
def test_out_of_range_fields_cannot_be_encoded(frame):
    with pytest.raises(FrameEncodeError, match="cannot encode") as caught:
        encode(frame)
    assert not isinstance(caught.value, FrameError)  # our own misuse, not a peer's bytes
