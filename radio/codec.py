"""The construct boundary, written once: where a construct error becomes one of ours.

Every parse and build of a wire format runs inside one of two context managers, which
turn construct's errors (and the ValueError, TypeError, OverflowError or LookupError a
parse, a build or an adapter raises) into the caller's typed error, so no caller ever
sees a construct exception. As h11 draws the line between a peer's fault and our own:

- `decoding(what, error)`: bytes from outside (a peer, a file, a device) that do not
  decode; `error` is the layer's decode error (chain's `DecodeError`, radio's
  `FrameError`), message "malformed <what>: <reason>".
- `encoding(what, error)`: one of our own objects that cannot be encoded, a misuse or a
  bug; `error` is the layer's encode error (chain's `EncodeError`, radio's
  `FrameEncodeError`), message "cannot encode <what>: <reason>".

It lives in radio, the lowest package, so that chain, radio and hil share it.
"""
from __future__ import annotations

from construct import ConstructError

from .errors import BlockIoTError

# What a construct parse or build raises on bad input: its own errors, and the errors of
# the Python it runs (int.to_bytes, str.decode, a field missing from a build's dict, an
# adapter's table lookup or constructor).
_CODEC_ERRORS = (ConstructError, ValueError, TypeError, OverflowError, LookupError)


class _Boundary:
    """Turns a codec error raised inside the `with` block into `error(prefix: reason)`."""

    __slots__ = ("_prefix", "_what", "_error")

    def __init__(self, prefix: str, what: str, error: type[BlockIoTError]) -> None:
        self._prefix = prefix
        self._what = what
        self._error = error

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, traceback) -> bool:
        if isinstance(exc, _CODEC_ERRORS):
            raise self._error(f"{self._prefix} {self._what}: {_reason(exc)}") from None
        return False


def decoding(what: str, error: type[BlockIoTError]) -> _Boundary:
    """Around the decode of untrusted bytes: a codec error becomes `error("malformed <what>: ...")`."""
    return _Boundary("malformed", what, error)


def encoding(what: str, error: type[BlockIoTError]) -> _Boundary:
    """Around the encode of our own object: a codec error becomes `error("cannot encode <what>: ...")`."""
    return _Boundary("cannot encode", what, error)


def _reason(exc: BaseException) -> str:
    """A codec error in one line: what construct says, then the field it was at."""
    if isinstance(exc, KeyError) and exc.args:  # str() of a KeyError is the bare key
        return f"no entry {exc.args[0]!r}"
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    path = next((line for line in lines if line.startswith("Error in path")), None)
    said = " / ".join(line for line in lines if line is not path) or type(exc).__name__
    if path is None or "->" not in path:
        return said
    return f"{said} (at {path.split('->', 1)[1].strip()})"
