"""Hypothesis strategies for the chain's wire formats (imported by the property tests).

Valid values of every encoded structure, and mutations of valid encodings for fuzzing.
"""
from __future__ import annotations

from hypothesis import strategies as st

from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.state import TABLES, StateDiff
from blockiot.chain.wire import (
    BLOCK_VERSION,
    MAX_COMMAND_ARGS,
    MAX_DATA_BYTES,
    MAX_NONCE,
    PARENT_PREFIX_LEN,
    SHORT_ID_LEN,
    SIGNATURE_LEN,
    Action,
    BlockHeader,
    Command,
    Data,
    Reading,
    Sensor,
    sign_tx,
)
from blockiot.radio.airtime import preset_display_names
from blockiot.radio.dutycycle import REGULATED_REGIONS

INT32 = st.integers(-(2**31), 2**31 - 1)
# A registry index is 1-2 bytes on air (clusters of up to 16383 members).
senders = st.integers(0, 2**14 - 1)
nonces = st.integers(1, MAX_NONCE)

readings = st.builds(Reading, st.sampled_from(list(Sensor)), INT32)
commands = st.builds(
    Command,
    senders,
    st.sampled_from(list(Action)),
    st.lists(INT32, max_size=MAX_COMMAND_ARGS).map(tuple),
)
datas = st.builds(Data, st.binary(max_size=MAX_DATA_BYTES))
bodies = st.one_of(readings, commands, datas)


SIGNER = Identity.from_seed(bytes(range(32)))
CHAIN_ID = bytes(range(32, 64))


@st.composite
def raw_txs(draw) -> bytes:
    """A well-formed tx of any kind with an arbitrary (unverified) signature."""
    unsigned = sign_tx(SIGNER, CHAIN_ID, draw(senders), draw(nonces), draw(bodies)).signed_part
    return unsigned + draw(st.binary(min_size=SIGNATURE_LEN, max_size=SIGNATURE_LEN))


heights = st.integers(0, 2**40)
headers = st.builds(
    BlockHeader,
    st.just(BLOCK_VERSION),
    heights,
    heights,
    st.binary(min_size=PARENT_PREFIX_LEN, max_size=PARENT_PREFIX_LEN),
    st.binary(min_size=SIGNATURE_LEN, max_size=SIGNATURE_LEN),
)
short_id_lists = st.lists(st.binary(min_size=SHORT_ID_LEN, max_size=SHORT_ID_LEN), max_size=40)

names = st.from_regex(r"\A[A-Za-z0-9_.:-]{1,32}\Z")


@st.composite
def geneses(draw) -> Genesis:
    keys = draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=6, unique=True))
    member_names = draw(st.lists(names, min_size=len(keys), max_size=len(keys), unique=True))
    roles = draw(st.lists(st.sampled_from(["member", "validator"]), min_size=len(keys), max_size=len(keys)))
    roles[draw(st.integers(0, len(keys) - 1))] = "validator"
    members = tuple(
        Member(i, key, role, tuple(draw(st.lists(names, max_size=3))), name)
        for i, (key, role, name) in enumerate(zip(keys, roles, member_names))
    )
    params = Params(
        draw(st.integers(1, 3600)), draw(st.integers(1, 100_000)), draw(st.sampled_from(REGULATED_REGIONS)),
        draw(st.sampled_from(preset_display_names())),
    )
    return Genesis(draw(names), draw(st.integers(0, 2**40 - 1)), params, members)


field_values = st.one_of(st.integers(-(2**63), 2**63 - 1), st.binary(max_size=40))
state_tuples = st.lists(field_values, max_size=5).map(tuple)


@st.composite
def state_diffs(draw) -> StateDiff:
    entries = draw(
        st.dictionaries(
            st.tuples(st.sampled_from(TABLES), state_tuples),
            st.tuples(st.none() | state_tuples, st.none() | state_tuples),
            max_size=8,
        )
    )
    return StateDiff(entries)


# Compressible and incompressible content, so both frame flags are exercised.
frame_contents = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda chunk, n: chunk * n, st.binary(min_size=1, max_size=20), st.integers(1, 200)),
)


@st.composite
def mutated(draw, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with one damage: bit flip, truncation, extension, byte insert/delete."""
    raw = bytearray(draw(valid))
    how = draw(st.sampled_from(["flip", "truncate", "extend", "insert", "delete", "overwrite"]))
    if how == "extend" or not raw:
        return bytes(raw) + draw(st.binary(min_size=1, max_size=8))
    at = draw(st.integers(0, len(raw) - 1))
    if how == "flip":
        raw[at] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        del raw[at:]
    elif how == "insert":
        raw.insert(at, draw(st.integers(0, 255)))
    elif how == "delete":
        del raw[at]
    else:
        raw[at] = draw(st.integers(0, 255))
    return bytes(raw)
