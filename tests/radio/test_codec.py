"""The construct boundary (radio/codec.py): construct's errors become the caller's typed
error, a peer's bytes and our own misuse apart; the project's errors share one root."""
from __future__ import annotations

import pytest
from construct import Int8ub, Struct

from blockiot.chain.errors import ChainError, DecodeError, EncodeError
from blockiot.hil.pty import PtyError
from blockiot.hil.rig import RigError
from blockiot.hil.sim.flooding import FloodingError
from blockiot.hil.sim.medium import MediumError
from blockiot.radio.codec import decoding, encoding
from blockiot.radio.errors import BlockIoTError, ConfigError, FrameEncodeError, FrameError, RadioError

PAIR = Struct("a" / Int8ub, "b" / Int8ub)


def test_a_decode_failure_is_the_callers_decode_error_naming_the_field():
    with pytest.raises(FrameError) as caught:
        with decoding("pair", FrameError):
            PAIR.parse(b"\x01")
    assert str(caught.value) == "malformed pair: stream read less than specified amount, expected 1, found 0 (at b)"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_an_encode_failure_is_the_callers_encode_error():
    with pytest.raises(EncodeError, match=r"^cannot encode pair: .*300.* \(at a\)$"):
        with encoding("pair", EncodeError):
            PAIR.build({"a": 300, "b": 0})
    with pytest.raises(EncodeError, match="^cannot encode pair: no entry 'b'$"):  # construct's KeyError
        with encoding("pair", EncodeError):
            PAIR.build({"a": 1})


def test_python_conversion_errors_inside_count_as_codec_errors():
    for raised in (ValueError("bad"), TypeError("bad"), OverflowError("bad"), ConfigError("bad")):
        with pytest.raises(DecodeError, match="malformed thing: bad"):
            with decoding("thing", DecodeError):
                raise raised


def test_our_own_typed_errors_and_other_exceptions_pass_through():
    with pytest.raises(DecodeError, match="^already ours$"):
        with encoding("thing", EncodeError):
            raise DecodeError("already ours")
    with pytest.raises(KeyboardInterrupt):
        with decoding("thing", DecodeError):
            raise KeyboardInterrupt
    with decoding("thing", DecodeError):
        value = PAIR.parse(b"\x01\x02")
    assert (value.a, value.b) == (1, 2)


def test_decode_and_encode_errors_are_apart():
    assert not issubclass(EncodeError, DecodeError) and not issubclass(DecodeError, EncodeError)
    assert not issubclass(FrameEncodeError, FrameError) and not issubclass(FrameError, FrameEncodeError)


@pytest.mark.parametrize(
    "error", [ChainError, DecodeError, EncodeError, RadioError, FrameError, FrameEncodeError,
              RigError, PtyError, MediumError, FloodingError],
)
def test_every_package_error_has_the_one_root_and_is_user_facing(error):
    assert issubclass(error, BlockIoTError) and error("x").user_facing
