"""A cluster's genesis: members (registry index -> key, role, groups), validators and
parameters. The chain id is BLAKE2b-256 of the encoded genesis: it is never sent, but
every signature covers it, so nothing signed for one cluster is valid in another.

Written by people as TOML (see `blockiot genesis --help`), stored encoded (construct).
A genesis names a region the node has airtime rules for (`REGULATED_REGIONS` of
`blockiot.radio.dutycycle`, the one table of regions) and a Meshtastic preset the radio
layer knows (`blockiot.radio.airtime`), spelled as Meshtastic shows it (LongFast).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from construct import (
    Bytes,
    Const,
    Enum,
    Int8ub,
    PascalString,
    PrefixedArray,
    Struct,
    Terminated,
    VarInt,
)

from blockiot.radio.airtime import preset_display_names
from blockiot.radio.codec import decoding, encoding
from blockiot.radio.dutycycle import REGULATED_REGIONS

from .crypto import PUBLIC_KEY_LEN, blake2b256
from .errors import DecodeError, EncodeError, GenesisError

GENESIS_MAGIC = b"BIoTg"
GENESIS_VERSION = 1
ROLES = ("member", "validator")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,32}\Z")  # \Z: `$` would also accept a trailing newline


@dataclass(frozen=True)
class Member:
    index: int
    public_key: bytes
    role: str
    groups: tuple[str, ...] = ()
    name: str = ""

    @property
    def is_validator(self) -> bool:
        return self.role == "validator"


@dataclass(frozen=True)
class Params:
    slot_seconds: int = 30
    epoch_slots: int = 120
    region: str = "EU868"
    preset: str = "LongFast"


@dataclass(frozen=True)
class Genesis:
    name: str
    genesis_time: int
    params: Params
    members: tuple[Member, ...] = field(default_factory=tuple)

    def __post_init__(self):
        _check(self)

    @cached_property
    def encoded(self) -> bytes:
        return encode_genesis(self)

    @cached_property
    def chain_id(self) -> bytes:
        return blake2b256(self.encoded)

    @cached_property
    def validators(self) -> tuple[int, ...]:
        return tuple(m.index for m in self.members if m.is_validator)

    def leader_for_slot(self, slot: int) -> int:
        """Registry index of the validator leading `slot` (round robin over the validators)."""
        return self.validators[slot % len(self.validators)]

    def member(self, index: int) -> Member | None:
        return self.members[index] if 0 <= index < len(self.members) else None

    def name_of(self, index: int) -> str:
        """A member's name for people and topics (`member-N` when it has none)."""
        member = self.member(index)
        return member.name if member is not None and member.name else f"member-{index}"

    def group(self, name: str) -> tuple[int, ...]:
        return tuple(m.index for m in self.members if name in m.groups)

    def index_of(self, public_key: bytes) -> int | None:
        return next((m.index for m in self.members if m.public_key == public_key), None)

    def by_name(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)


def _check(g: Genesis) -> None:
    if not _NAME_RE.match(g.name):
        raise GenesisError(f"cluster name {g.name!r} must be 1-32 letters, digits or _.:-")
    p = g.params
    if not 1 <= p.slot_seconds <= 3600:
        raise GenesisError(f"slot_seconds must be 1..3600, got {p.slot_seconds}")
    if not 1 <= p.epoch_slots <= 100_000:
        raise GenesisError(f"epoch_slots must be 1..100000, got {p.epoch_slots}")
    if p.region not in REGULATED_REGIONS:
        raise GenesisError(f"region {p.region!r} is not one the node has airtime rules for; "
                           f"allowed: {', '.join(REGULATED_REGIONS)}")
    presets = preset_display_names()
    if p.preset not in presets:
        raise GenesisError(f"preset {p.preset!r} is not a Meshtastic preset the node supports; "
                           f"allowed: {', '.join(presets)}")
    if not 0 <= g.genesis_time < 2**40:
        raise GenesisError("genesis_time must be a Unix time in seconds")
    if not g.members:
        raise GenesisError("a cluster needs at least one member")
    seen_keys, seen_names = set(), set()
    for i, m in enumerate(g.members):
        if m.index != i:
            raise GenesisError(f"member {m.name or i}: index {m.index} must equal its position {i}")
        if len(m.public_key) != PUBLIC_KEY_LEN:
            raise GenesisError(f"member {m.name or i}: a public key is {PUBLIC_KEY_LEN} bytes")
        if m.role not in ROLES:
            raise GenesisError(f"member {m.name or i}: role must be one of {ROLES}, got {m.role!r}")
        if m.public_key in seen_keys:
            raise GenesisError(f"member {m.name or i}: public key listed twice")
        if m.name and (not _NAME_RE.match(m.name) or m.name in seen_names):
            raise GenesisError(f"member name {m.name!r} is invalid or listed twice")
        for grp in m.groups:
            if not _NAME_RE.match(grp):
                raise GenesisError(f"member {m.name or i}: group name {grp!r} is invalid")
        seen_keys.add(m.public_key)
        seen_names.add(m.name)
    if not any(m.is_validator for m in g.members):
        raise GenesisError("a cluster needs at least one validator")


_NAME = PascalString(Int8ub, "utf8")
_GENESIS = Struct(
    "magic" / Const(GENESIS_MAGIC),
    "version" / Const(GENESIS_VERSION, Int8ub),
    "name" / _NAME,
    "genesis_time" / VarInt,
    "slot_seconds" / VarInt,
    "epoch_slots" / VarInt,
    "region" / _NAME,
    "preset" / _NAME,
    "members" / PrefixedArray(
        VarInt,
        Struct(
            "public_key" / Bytes(PUBLIC_KEY_LEN),
            "role" / Enum(Int8ub, member=0, validator=1),
            "name" / _NAME,
            "groups" / PrefixedArray(Int8ub, _NAME),
        ),
    ),
    Terminated,
)


def encode_genesis(g: Genesis) -> bytes:
    with encoding("genesis", EncodeError):
        return _GENESIS.build(
            dict(
                name=g.name, genesis_time=g.genesis_time, slot_seconds=g.params.slot_seconds,
                epoch_slots=g.params.epoch_slots, region=g.params.region, preset=g.params.preset,
                members=[dict(public_key=m.public_key, role=m.role, name=m.name, groups=list(m.groups))
                         for m in g.members],
            )
        )


def decode_genesis(raw: bytes) -> Genesis:
    try:
        with decoding("genesis", DecodeError):
            c = _GENESIS.parse(raw)
            genesis = Genesis(
                name=c.name,
                genesis_time=c.genesis_time,
                params=Params(c.slot_seconds, c.epoch_slots, c.region, c.preset),
                members=tuple(
                    Member(i, m.public_key, str(m.role), tuple(m.groups), m.name) for i, m in enumerate(c.members)
                ),
            )
    except GenesisError as exc:
        raise DecodeError(f"invalid genesis: {exc}") from None
    if encode_genesis(genesis) != bytes(raw):
        raise DecodeError("genesis is not in canonical encoding")
    return genesis


def load_genesis_toml(path: str | Path) -> Genesis:
    """Read a genesis description written by a person. Example::

        [cluster]
        name = "vineyard"
        genesis_time = 1764000000
        slot_seconds = 30
        epoch_slots = 120
        region = "EU868"
        preset = "LongFast"

        [[member]]
        name = "gateway"
        public_key = "hex..."          # printed by `blockiot keygen`
        role = "validator"
        groups = ["field-a"]
    """
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise GenesisError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GenesisError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GenesisError(f"{path} is not valid TOML: {exc}") from None
    return genesis_from_dict(doc, source=str(path))


def genesis_from_dict(doc: dict, source: str = "genesis") -> Genesis:
    cluster = doc.get("cluster")
    if not isinstance(cluster, dict):
        raise GenesisError(f"{source}: missing [cluster] table")
    members_doc = doc.get("member")
    if not isinstance(members_doc, list) or not members_doc:
        raise GenesisError(f"{source}: needs at least one [[member]] table")
    known = {"name", "genesis_time", "slot_seconds", "epoch_slots", "region", "preset"}
    unknown = set(cluster) - known
    if unknown:
        raise GenesisError(f"{source}: unknown [cluster] keys: {', '.join(sorted(unknown))}")
    try:
        params = Params(
            slot_seconds=_whole(cluster, "slot_seconds", Params.slot_seconds, source),
            epoch_slots=_whole(cluster, "epoch_slots", Params.epoch_slots, source),
            region=str(cluster.get("region", Params.region)),
            preset=str(cluster.get("preset", Params.preset)),
        )
        members = []
        for i, m in enumerate(members_doc):
            extra = set(m) - {"name", "public_key", "role", "groups"}
            if extra:
                raise GenesisError(f"{source}: member {i}: unknown keys {', '.join(sorted(extra))}")
            if "public_key" not in m:
                raise GenesisError(f"{source}: member {m.get('name', i)} has no public_key")
            try:
                key = bytes.fromhex(str(m["public_key"]))
            except ValueError:
                raise GenesisError(f"{source}: member {m.get('name', i)}: public_key is not hex") from None
            groups = m.get("groups", [])
            if not isinstance(groups, list):
                raise GenesisError(f"{source}: member {m.get('name', i)}: groups must be a list")
            members.append(Member(i, key, str(m.get("role", "member")), tuple(str(x) for x in groups),
                                  str(m.get("name", ""))))
        return Genesis(
            name=str(cluster.get("name", "")),
            genesis_time=_whole(cluster, "genesis_time", 0, source),
            params=params,
            members=tuple(members),
        )
    except (TypeError, ValueError) as exc:
        raise GenesisError(f"{source}: {exc}") from None


def _whole(cluster: dict, key: str, default: int, source: str) -> int:
    """A whole number of the [cluster] table; anything else (text, a fraction, nan, inf,
    true) is refused with the key named."""
    value = cluster.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenesisError(f"{source}: [cluster] {key} must be a whole number, not {value!r}")
    return value
