"""Every committed malformed input (tests/vectors/malformed/) is refused with DecodeError
and a message naming what is wrong."""
from __future__ import annotations

from pathlib import Path

import pytest

from blockiot.chain.compression import shipped_codec
from blockiot.chain.errors import DecodeError
from blockiot.chain.genesis import decode_genesis
from blockiot.chain.state import StateDiff
from blockiot.chain.wire import decode_block, decode_compact, decode_tx

CODEC = shipped_codec()  # made at the test's edge, as a node's wiring makes its own

CORPUS = Path(__file__).parents[1] / "vectors" / "malformed"
DECODERS = {
    "tx": decode_tx,
    "block": decode_block,
    "compact": decode_compact,
    "genesis": decode_genesis,
    "frame": CODEC.unpack,
    "batch": CODEC.unpack_batch,
    "diff": StateDiff.decode,
}
CASES = sorted(CORPUS.glob("*/*.hex"))


def _read_case(path: Path) -> tuple[str, bytes]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# expect: "), f"{path}: first line must be '# expect: <message fragment>'"
    hex_text = "".join("".join(line.split()) for line in lines if not line.startswith("#"))
    return lines[0].removeprefix("# expect: ").strip(), bytes.fromhex(hex_text)


def test_corpus_covers_every_decoder():
    assert {p.parent.name for p in CASES} == set(DECODERS)


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_malformed_input_is_refused(path):
    expect, raw = _read_case(path)
    with pytest.raises(DecodeError) as info:
        DECODERS[path.parent.name](raw)
    assert expect.lower() in str(info.value).lower()
