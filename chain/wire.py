"""Wire formats of transactions and blocks: one construct declaration each, parse and build.

Transaction on air (kind-specific body between header and signature)::

    kindver  u8       high 3 bits: format version (0), low 5 bits: TxKind
    sender   varint   index of the sender in the cluster registry (not its 32 B key)
    nonce    varint   per sender, strictly increasing (gaps allowed: a lost radio packet
                      must not block the device's later transactions)
    body     ...      see TX_BODIES
    sig      64 B     Ed25519 over chain_id || every byte above

A JOIN_REQUEST comes from a device that is not a member yet: it has no registry index
and no nonce, so its header is the kind byte alone and its signature is by the key its
body carries (it proves the key's holder asked). The ledger never applies one: a member
relays it into an ADD_MEMBER proposal (chain/governance.py), so a non-member can spend
its own airtime, never block space or state.

Governance bodies (docs/PROTOCOL.md §14)::

    PROPOSAL  ttl varint (slots it stays open after its block), action kind u8, action
    VOTE      proposer varint, nonce varint: a yes vote on the proposal of that tx
    JOIN      key 32 B, name, groups, hardware varint (Meshtastic HardwareModel number)

Private payloads (docs/PRIVACY.md; checked when decoded by chain/privacy, so a malformed
one is a malformed tx)::

    SEALED        varint length, envelope: to varint, key epoch u8 (groups only), MAC and
                  ciphertext of a sealable body (`encode_sealable`: kind u8, then the body)
    KEY_ROTATION  varint length, a group key rotation (chain/privacy/rotation.py)

Block header on air::

    version  u8
    height   varint
    slot     varint   the leader is implied: validators[slot mod n]
    parent   8 B      prefix of the parent block id; the receiver resolves it
    sig      64 B     leader's Ed25519 over header_signing_bytes(), which also covers the
                      full parent id, the tx Merkle root and the post-state root: those
                      are computed by the receiver, never sent

A full block is the header followed by its raw transactions; a compact block is the
header followed by 6-byte short ids (BIP152's idea): keyed BLAKE2b of the raw tx under
the parent id, so ids cannot be precomputed to collide across blocks.

Decoding untrusted bytes returns a fully validated object or raises DecodeError; encoding
an object that peers would refuse raises EncodeError (our own misuse).
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Union

from construct import (
    Adapter,
    Bytes,
    Construct,
    ExplicitError,
    ExprAdapter,
    GreedyBytes,
    Int8ub,
    PascalString,
    Prefixed,
    PrefixedArray,
    Struct,
    Switch,
    Terminated,
    VarInt,
    ZigZag,
    this,
)

from blockiot.radio.codec import decoding, encoding

from .crypto import HASH_LEN, PUBLIC_KEY_LEN, SIGNATURE_LEN, blake2b256, merkle_root
from .errors import DecodeError, EncodeError
from .genesis import _NAME_RE, ROLES
from .privacy.rotation import decode_rotation
from .privacy.sealing import decode_envelope

TX_FORMAT_VERSION = 0
BLOCK_VERSION = 1
PARENT_PREFIX_LEN = 8
SHORT_ID_LEN = 6
MAX_DATA_BYTES = 160
MAX_COMMAND_ARGS = 8
MAX_TX_BYTES = 240
MAX_EVIDENCE_BYTES = 400
# A sealed payload: the largest sealable body (data: kind 1 + length 2 + MAX_DATA_BYTES)
# sealed to any target (to <= 9, epoch 1, MAC 16): 189 B, rounded up.
MAX_SEALED_BYTES = MAX_DATA_BYTES + 32
MAX_BLOCK_TXS = 512
MAX_NONCE = 2**63 - 1
MAX_VARINT = 2**63 - 1
MAX_GROUPS = 4  # groups a joining or added member may name
MAX_HARDWARE = 0xFFFF
MAX_PROPOSAL_TTL = 100_000  # slots a proposal may stay open (~35 days of 30 s slots)
MAX_UPDATE_CHUNK = 200  # bytes of a software update per chunk: one radio frame with its header
NO_SENDER = -1  # the sender of a JOIN_REQUEST: its device has no registry index yet


class TxKind(enum.IntEnum):
    """The kind byte: every transaction format the chain knows. Later capabilities
    (contracts, governance, encrypted payloads) add a kind and a body below."""

    READING = 1
    COMMAND = 2
    DATA = 3
    CONTRACT_DEPLOY = 4  # a device rule's bytecode (chain/contracts), checked when applied
    EVIDENCE = 5  # proof that a leader signed two blocks for one slot (chain/evidence.py)
    PROPOSAL = 6  # a governance proposal (chain/governance.py)
    VOTE = 7  # a validator's yes vote on a proposal
    JOIN_REQUEST = 8  # a new device asks to join; signed by its own key, never applied
    SEALED = 9  # a sealed payload (chain/privacy): only its addressing is readable without a key
    KEY_ROTATION = 10  # a group's next key, wrapped to each of its members (chain/privacy)


# Kinds allowed beyond one radio frame (the link layer fragments them): evidence carries
# two full header proofs (~330 B); a sealed tx, MAX_SEALED_BYTES with the largest head
# (1 + 9 + 9), its length (2) and signature: 277 B; a key rotation, 36 B + 33 B per
# recipient: 27 recipients below index 128 (docs/PRIVACY.md §4).
MAX_TX_BYTES_BY_KIND = {TxKind.EVIDENCE: 480, TxKind.SEALED: 280, TxKind.KEY_ROTATION: 1024}


class Sensor(enum.IntEnum):
    """Sensor types; each reading is an integer in the fixed-point unit of SENSOR_UNITS."""

    MOISTURE = 1
    TEMPERATURE = 2
    HUMIDITY = 3
    RAIN_FORECAST = 4
    LIGHT = 5
    MOTION = 6
    VOLTAGE = 7
    POWER = 8
    ENERGY = 9
    PRESSURE = 10
    LEVEL = 11
    STATE_OF_CHARGE = 12


# (unit, decimals): a MOISTURE value of 287 means 28.7 %.
SENSOR_UNITS: dict[Sensor, tuple[str, int]] = {
    Sensor.MOISTURE: ("%", 1),
    Sensor.TEMPERATURE: ("°C", 2),
    Sensor.HUMIDITY: ("%", 1),
    Sensor.RAIN_FORECAST: ("%", 0),
    Sensor.LIGHT: ("lx", 0),
    Sensor.MOTION: ("events", 0),
    Sensor.VOLTAGE: ("V", 3),
    Sensor.POWER: ("W", 1),
    Sensor.ENERGY: ("Wh", 0),
    Sensor.PRESSURE: ("hPa", 1),
    Sensor.LEVEL: ("cm", 1),
    Sensor.STATE_OF_CHARGE: ("%", 1),
}


class Action(enum.IntEnum):
    """Device command actions; arguments are small integers whose meaning the action fixes."""

    OPEN = 1  # args: [seconds]
    CLOSE = 2
    SET = 3  # args: [level]
    DIM = 4  # args: [percent]
    NOTIFY = 5  # args: [code]
    CHARGE = 6  # args: [watts]
    DISCHARGE = 7  # args: [watts]
    REPORT = 8


@dataclass(frozen=True)
class Reading:
    sensor: int
    value: int


@dataclass(frozen=True)
class Command:
    target: int
    action: int
    args: tuple[int, ...] = ()


@dataclass(frozen=True)
class Data:
    payload: bytes


@dataclass(frozen=True)
class ContractDeploy:
    code: bytes  # bytecode of blockiot.chain.contracts; decoded and checked by the state handler


@dataclass(frozen=True)
class EquivocationProof:
    evidence: bytes  # chain/evidence.py encoding; decoded and verified by the state handler


@dataclass(frozen=True)
class Sealed:
    sealed: bytes  # chain/privacy envelope (decode_envelope); its plaintext, encode_sealable


@dataclass(frozen=True)
class RotateKey:
    rotation: bytes  # chain/privacy/rotation.py encoding (decode_rotation)


class ProposalKind(enum.IntEnum):
    """What a proposal changes once it has passed and taken effect."""

    ADD_MEMBER = 1
    REMOVE_MEMBER = 2
    GRANT_VALIDATOR = 3
    REVOKE_VALIDATOR = 4
    DEPLOY_RULE = 5
    RETIRE_RULE = 6
    SET_PARAM = 7
    APPROVE_UPDATE = 8


class Param(enum.IntEnum):
    """Cluster parameters governance may change."""

    SLOT_SECONDS = 1
    EPOCH_SLOTS = 2
    DUTY_CYCLE_BP = 3  # the cluster's airtime cap, in 1/10000 (100 = 1 %); the region's law still caps it
    MAX_BLOCK_TXS = 4


# Inclusive ranges of the values a SET_PARAM proposal may give.
PARAM_RANGES: dict[Param, tuple[int, int]] = {
    Param.SLOT_SECONDS: (1, 3600),
    Param.EPOCH_SLOTS: (1, 100_000),
    Param.DUTY_CYCLE_BP: (1, 10_000),
    Param.MAX_BLOCK_TXS: (1, MAX_BLOCK_TXS),
}


@dataclass(frozen=True)
class AddMember:
    key: bytes
    role: int  # index into genesis.ROLES: 0 member, 1 validator
    name: str
    groups: tuple[str, ...] = ()
    hardware: int = 0


@dataclass(frozen=True)
class RemoveMember:
    member: int
    evidence: int | None = None  # slot of `member`'s recorded equivocation, if the proposal cites it


@dataclass(frozen=True)
class GrantValidator:
    member: int


@dataclass(frozen=True)
class RevokeValidator:
    member: int
    evidence: int | None = None


@dataclass(frozen=True)
class DeployRule:
    code: bytes  # bytecode of blockiot.chain.contracts


@dataclass(frozen=True)
class RetireRule:
    deployer: int  # the rule's id: (deployer, nonce) of the tx that deployed it
    nonce: int


@dataclass(frozen=True)
class SetParam:
    param: int
    value: int


@dataclass(frozen=True)
class ApproveUpdate:
    """A software-update manifest. `digest` is the Merkle root (crypto.merkle_root) of the
    BLAKE2b-256 hashes of the image's `chunk`-byte chunks, so each chunk checks alone."""

    version: int
    hardware: int  # Meshtastic HardwareModel number of the boards it is built for
    size: int
    chunk: int
    digest: bytes


ProposalAction = Union[
    AddMember, RemoveMember, GrantValidator, RevokeValidator, DeployRule, RetireRule, SetParam, ApproveUpdate
]


@dataclass(frozen=True)
class Proposal:
    ttl: int  # slots the proposal stays open after the slot of its block
    action: ProposalAction


@dataclass(frozen=True)
class Vote:
    """A yes vote on the proposal made by tx (proposer, nonce). Not voting is voting no."""

    proposer: int
    nonce: int


@dataclass(frozen=True)
class JoinRequest:
    key: bytes  # the new device's Ed25519 public key, which signs the request
    name: str
    groups: tuple[str, ...] = ()
    hardware: int = 0


Body = Union[
    Reading, Command, Data, ContractDeploy, EquivocationProof, Proposal, Vote, JoinRequest, Sealed, RotateKey
]


@dataclass(frozen=True)
class Tx:
    kind: int
    sender: int  # registry index; NO_SENDER for a JOIN_REQUEST
    nonce: int  # 0 for a JOIN_REQUEST
    body: Body
    signature: bytes
    raw: bytes = b""  # the exact bytes decoded or built; what the signature covers (minus the sig)

    @property
    def signed_part(self) -> bytes:
        return self.raw[:-SIGNATURE_LEN]

    @property
    def id(self) -> bytes:
        return blake2b256(self.raw)


# --- construct declarations (one place each) -------------------------------------------

_READING = Struct("sensor" / Int8ub, "value" / ZigZag)
_COMMAND = Struct(
    "target" / VarInt,
    "action" / Int8ub,
    "args" / PrefixedArray(Int8ub, ZigZag),
)
_DATA = Struct("payload" / Prefixed(VarInt, GreedyBytes))
_CONTRACT_DEPLOY = Struct("code" / Prefixed(VarInt, GreedyBytes))
_EVIDENCE = Struct("evidence" / Prefixed(VarInt, GreedyBytes))
_SEALED = Struct("sealed" / Prefixed(VarInt, GreedyBytes))
_ROTATE_KEY = Struct("rotation" / Prefixed(VarInt, GreedyBytes))

_TEXT = PascalString(Int8ub, "utf8")
_GROUPS = PrefixedArray(Int8ub, _TEXT)
# An optional slot: 0 = none, s + 1 = slot s.
_OPT_SLOT = ExprAdapter(VarInt, lambda v, _: None if v == 0 else v - 1, lambda v, _: 0 if v is None else v + 1)
_MEMBER_REF = Struct("member" / VarInt)
_CITED = Struct("member" / VarInt, "evidence" / _OPT_SLOT)

# proposal kind -> (construct, dataclass)
ACTION_BODIES: dict[int, tuple[Struct, type]] = {
    ProposalKind.ADD_MEMBER: (
        Struct("key" / Bytes(PUBLIC_KEY_LEN), "role" / Int8ub, "name" / _TEXT, "groups" / _GROUPS,
               "hardware" / VarInt),
        AddMember,
    ),
    ProposalKind.REMOVE_MEMBER: (_CITED, RemoveMember),
    ProposalKind.GRANT_VALIDATOR: (_MEMBER_REF, GrantValidator),
    ProposalKind.REVOKE_VALIDATOR: (_CITED, RevokeValidator),
    ProposalKind.DEPLOY_RULE: (Struct("code" / Prefixed(VarInt, GreedyBytes)), DeployRule),
    ProposalKind.RETIRE_RULE: (Struct("deployer" / VarInt, "nonce" / VarInt), RetireRule),
    ProposalKind.SET_PARAM: (Struct("param" / Int8ub, "value" / VarInt), SetParam),
    ProposalKind.APPROVE_UPDATE: (
        Struct("version" / VarInt, "hardware" / VarInt, "size" / VarInt, "chunk" / VarInt,
               "digest" / Bytes(HASH_LEN)),
        ApproveUpdate,
    ),
}
_ACTION_KINDS = {cls: kind for kind, (_, cls) in ACTION_BODIES.items()}


def _values(container) -> dict:
    """A parsed construct container as dataclass arguments (lists become tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in container.items() if not k.startswith("_")}


class _ActionAdapter(Adapter):
    """kind u8 + that kind's body <-> one of the ProposalAction dataclasses."""

    def _decode(self, obj, context, path):
        return ACTION_BODIES[obj.kind][1](**_values(obj.body))

    def _encode(self, obj, context, path):
        kind = _ACTION_KINDS.get(type(obj))
        if kind is None:
            raise ValueError(f"{type(obj).__name__} is not a proposal action")
        return {"kind": kind, "body": {k: list(v) if isinstance(v, tuple) else v for k, v in obj.__dict__.items()}}


class _UnknownAction(Construct):
    """The body of a proposal kind that does not exist: refused, naming the kind."""

    def _parse(self, stream, context, path):
        raise ExplicitError(f"unknown proposal kind {context.kind}", path=path)


ACTION = _ActionAdapter(
    Struct(
        "kind" / Int8ub,
        "body" / Switch(this.kind, {k: s for k, (s, _) in ACTION_BODIES.items()}, default=_UnknownAction()),
    )
)
_PROPOSAL = Struct("ttl" / VarInt, "action" / ACTION)
_VOTE = Struct("proposer" / VarInt, "nonce" / VarInt)
_JOIN = Struct("key" / Bytes(PUBLIC_KEY_LEN), "name" / _TEXT, "groups" / _GROUPS, "hardware" / VarInt)

# kind -> (construct, dataclass)
TX_BODIES: dict[int, tuple[Struct, type]] = {
    TxKind.READING: (_READING, Reading),
    TxKind.COMMAND: (_COMMAND, Command),
    TxKind.DATA: (_DATA, Data),
    TxKind.CONTRACT_DEPLOY: (_CONTRACT_DEPLOY, ContractDeploy),
    TxKind.EVIDENCE: (_EVIDENCE, EquivocationProof),
    TxKind.PROPOSAL: (_PROPOSAL, Proposal),
    TxKind.VOTE: (_VOTE, Vote),
    TxKind.JOIN_REQUEST: (_JOIN, JoinRequest),
    TxKind.SEALED: (_SEALED, Sealed),
    TxKind.KEY_ROTATION: (_ROTATE_KEY, RotateKey),
}

# What a SEALED tx may hide: the kind byte and body of one of these (`encode_sealable`).
SEALABLE_KINDS = (TxKind.READING, TxKind.COMMAND, TxKind.DATA)
_SEALABLE = {kind: Struct("body" / TX_BODIES[kind][0], Terminated) for kind in SEALABLE_KINDS}


def _tx_struct(kind: int, body: Struct) -> Struct:
    """A whole signed transaction of one kind: head, body, signature, nothing after. A
    join request's head is its kind byte alone (its device has no index, no nonce)."""
    member = () if kind == TxKind.JOIN_REQUEST else ("sender" / VarInt, "nonce" / VarInt)
    return Struct("kindver" / Int8ub, *member, "body" / body, "signature" / Bytes(SIGNATURE_LEN), Terminated)


_HEADER = Struct(
    "version" / Int8ub,
    "height" / VarInt,
    "slot" / VarInt,
    "parent" / Bytes(PARENT_PREFIX_LEN),
    "signature" / Bytes(SIGNATURE_LEN),
)
_BLOCK = Struct(
    "header" / _HEADER,
    "txs" / PrefixedArray(VarInt, Prefixed(VarInt, GreedyBytes)),
    Terminated,
)
_COMPACT = Struct(
    "header" / _HEADER,
    "short_ids" / PrefixedArray(VarInt, Bytes(SHORT_ID_LEN)),
    Terminated,
)
_SIGNING = Struct(
    "chain_id" / Bytes(HASH_LEN),
    "version" / Int8ub,
    "height" / VarInt,
    "slot" / VarInt,
    "parent" / Bytes(HASH_LEN),
    "tx_root" / Bytes(HASH_LEN),
    "state_root" / Bytes(HASH_LEN),
)

# Transactions are the hot path: their declarations are also compiled (same declaration,
# ~3x faster). Compiled `Bytes` does not check that the stream held enough bytes (seen with
# construct 2.10.70), so decode_tx checks the signature length itself; blocks use the plain
# declarations, which check everything.
_TX = {
    kind: (_tx_struct(kind, s), _tx_struct(kind, s).compile(), cls, f"{TxKind(kind).name.lower()} transaction")
    for kind, (s, cls) in TX_BODIES.items()
}


def _decode(what: str, struct, raw: bytes, compiled=None):
    """Parse untrusted `raw` with `compiled` (or `struct`); DecodeError if malformed."""
    if compiled is None:
        with decoding(what, DecodeError):
            return struct.parse(raw)
    try:
        with decoding(what, DecodeError):
            return compiled.parse(raw)
    except DecodeError as compiled_error:  # compiled errors say little: ask the plain declaration why
        with decoding(what, DecodeError):
            struct.parse(raw)
        raise compiled_error from None


def _build(what: str, struct, value) -> bytes:
    with encoding(what, EncodeError):
        return struct.build(value)


# --- transactions --------------------------------------------------------------------


_SENSORS = frozenset(Sensor)
_ACTIONS = frozenset(Action)


def _check_body(kind: int, body: Body) -> None:
    if isinstance(body, Reading):
        if body.sensor not in _SENSORS:
            raise DecodeError(f"unknown sensor type {body.sensor}")
        if not -(2**31) <= body.value < 2**31:
            raise DecodeError(f"reading value {body.value} out of the 32-bit fixed-point range")
    elif isinstance(body, Command):
        if body.action not in _ACTIONS:
            raise DecodeError(f"unknown command action {body.action}")
        if len(body.args) > MAX_COMMAND_ARGS:
            raise DecodeError(f"a command takes at most {MAX_COMMAND_ARGS} arguments")
        if any(not -(2**31) <= a < 2**31 for a in body.args):
            raise DecodeError("command arguments must fit in 32 bits")
        if body.target > MAX_VARINT:
            raise DecodeError("command target out of range")
    elif isinstance(body, Data):
        if len(body.payload) > MAX_DATA_BYTES:
            raise DecodeError(f"data payload of {len(body.payload)} B exceeds {MAX_DATA_BYTES} B")
    elif isinstance(body, EquivocationProof):
        if len(body.evidence) > MAX_EVIDENCE_BYTES:
            raise DecodeError(f"evidence of {len(body.evidence)} B exceeds {MAX_EVIDENCE_BYTES} B")
    elif isinstance(body, Proposal):
        if not 1 <= body.ttl <= MAX_PROPOSAL_TTL:
            raise DecodeError(f"a proposal stays open 1..{MAX_PROPOSAL_TTL} slots, not {body.ttl}")
        _check_action(body.action)
    elif isinstance(body, Vote):
        if body.proposer > MAX_VARINT or not 0 < body.nonce <= MAX_NONCE:
            raise DecodeError("vote names a proposal out of range")
    elif isinstance(body, JoinRequest):
        _check_identity(body.key, body.name, body.groups, body.hardware)
    elif isinstance(body, Sealed):
        if len(body.sealed) > MAX_SEALED_BYTES:
            raise DecodeError(f"sealed payload of {len(body.sealed)} B exceeds {MAX_SEALED_BYTES} B")
        decode_envelope(body.sealed)
    elif isinstance(body, RotateKey):
        decode_rotation(body.rotation)


def _check_identity(key: bytes, name: str, groups: tuple[str, ...], hardware: int) -> None:
    """A new member as a join request or an add-member proposal describes it."""
    if len(key) != PUBLIC_KEY_LEN:
        raise DecodeError(f"a public key is {PUBLIC_KEY_LEN} bytes")
    if name and not _NAME_RE.match(name):
        raise DecodeError(f"member name {name!r} must be 1-32 letters, digits or _.:-")
    if len(groups) > MAX_GROUPS:
        raise DecodeError(f"a member names at most {MAX_GROUPS} groups")
    if any(not _NAME_RE.match(g) for g in groups) or len(set(groups)) != len(groups):
        raise DecodeError("group names must be distinct, 1-32 letters, digits or _.:-")
    if not 0 <= hardware <= MAX_HARDWARE:
        raise DecodeError(f"hardware model {hardware} out of range")


def _check_action(action: ProposalAction) -> None:
    if isinstance(action, AddMember):
        if not 0 <= action.role < len(ROLES):
            raise DecodeError(f"unknown member role {action.role}")
        _check_identity(action.key, action.name, action.groups, action.hardware)
    elif isinstance(action, (RemoveMember, RevokeValidator)):
        if action.member > MAX_VARINT or (action.evidence is not None and not 0 <= action.evidence < MAX_VARINT):
            raise DecodeError("member or evidence slot out of range")
    elif isinstance(action, GrantValidator):
        if action.member > MAX_VARINT:
            raise DecodeError("member out of range")
    elif isinstance(action, RetireRule):
        if action.deployer > MAX_VARINT or not 0 < action.nonce <= MAX_NONCE:
            raise DecodeError("rule id out of range")
    elif isinstance(action, SetParam):
        if action.param not in PARAM_RANGES:
            raise DecodeError(f"unknown parameter {action.param}")
        low, high = PARAM_RANGES[Param(action.param)]
        if not low <= action.value <= high:
            raise DecodeError(f"{Param(action.param).name.lower()} must be {low}..{high}, not {action.value}")
    elif isinstance(action, ApproveUpdate):
        if not (0 < action.version < 2**32 and 0 <= action.hardware <= MAX_HARDWARE and 0 < action.size < 2**32):
            raise DecodeError("update version, hardware or size out of range")
        if not 1 <= action.chunk <= MAX_UPDATE_CHUNK or len(action.digest) != HASH_LEN:
            raise DecodeError(f"update chunk must be 1..{MAX_UPDATE_CHUNK} B and its digest {HASH_LEN} B")


def _check_own(kind: int, body: Body) -> None:
    """`_check_body` for a body we encode: one peers would refuse is our misuse (EncodeError)."""
    try:
        _check_body(kind, body)
    except DecodeError as exc:
        raise EncodeError(str(exc)) from None


def _kind_of(body: Body) -> int | None:
    return next((k for k, (_, cls) in TX_BODIES.items() if isinstance(body, cls)), None)


def _fields(body: Body) -> dict:
    """A body dataclass as construct build arguments (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in body.__dict__.items()}


def encode_unsigned(kind: int, sender: int, nonce: int, body: Body) -> bytes:
    """The bytes a transaction's signature covers, after the chain id; EncodeError for a
    transaction that peers would refuse."""
    entry = _TX.get(kind)
    if entry is None or not isinstance(body, entry[2]):
        raise EncodeError(f"body {type(body).__name__} does not fit tx kind {kind}")
    if kind == TxKind.JOIN_REQUEST:
        if (sender, nonce) != (NO_SENDER, 0):
            raise EncodeError("a join request has no sender index and no nonce (NO_SENDER, 0)")
    elif not (0 <= sender <= MAX_VARINT and 0 < nonce <= MAX_NONCE):
        raise EncodeError("sender must be >= 0 and nonce in 1..2^63-1")
    _check_own(kind, body)
    value = dict(kindver=(TX_FORMAT_VERSION << 5) | kind, sender=sender, nonce=nonce, body=_fields(body),
                 signature=bytes(SIGNATURE_LEN))
    unsigned = _build("tx", entry[1], value)[:-SIGNATURE_LEN]
    limit = MAX_TX_BYTES_BY_KIND.get(kind, MAX_TX_BYTES)
    if len(unsigned) + SIGNATURE_LEN > limit:  # decode_tx would refuse it
        raise EncodeError(f"transaction of {len(unsigned) + SIGNATURE_LEN} B exceeds {limit} B")
    return unsigned


def tx_signing_bytes(chain_id: bytes, unsigned: bytes) -> bytes:
    return chain_id + unsigned


def sign_tx(identity, chain_id: bytes, sender: int, nonce: int, body: Body) -> Tx:
    """Build and sign a transaction; the kind follows from the body's type."""
    kind = _kind_of(body)
    unsigned = encode_unsigned(kind, sender, nonce, body)  # refuses a body of no known kind
    signature = identity.sign(tx_signing_bytes(chain_id, unsigned))
    return Tx(kind, sender, nonce, body, signature, unsigned + signature)


def sign_join(identity, chain_id: bytes, name: str, groups=(), hardware: int = 0) -> Tx:
    """A new device's join request, signed by its own key (which the request carries)."""
    return sign_tx(identity, chain_id, NO_SENDER, 0, JoinRequest(identity.public_key, name, tuple(groups), hardware))


def decode_tx(raw: bytes) -> Tx:
    """Decode untrusted bytes into a Tx whose fields are all in range (signature unchecked).

    The signature covers these exact bytes, so nobody but the signer can re-encode a tx.
    """
    if type(raw) is not bytes:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise DecodeError("a transaction is bytes")
        raw = bytes(raw)
    limit = MAX_TX_BYTES_BY_KIND.get(raw[0] & 0x1F, MAX_TX_BYTES) if raw else MAX_TX_BYTES
    if len(raw) > limit:
        raise DecodeError(f"transaction of {len(raw)} B exceeds {limit} B")
    if len(raw) < 3 + SIGNATURE_LEN:
        raise DecodeError(f"transaction of {len(raw)} B is too short")
    version, kind = raw[0] >> 5, raw[0] & 0x1F
    if version != TX_FORMAT_VERSION:
        raise DecodeError(f"unsupported tx format version {version}")
    entry = _TX.get(kind)
    if entry is None:
        raise DecodeError(f"unknown tx kind {kind}")
    struct, compiled, cls, what = entry
    c = _decode(what, struct, raw, compiled)
    if len(c.signature) != SIGNATURE_LEN:  # compiled Bytes/Prefixed read short without complaint
        _decode(what, struct, raw)  # the plain declaration names the field that ran short
        raise DecodeError(f"malformed {what}: truncated signature")
    body = cls(**_values(c.body))
    _check_body(kind, body)
    if kind == TxKind.JOIN_REQUEST:
        return Tx(kind, NO_SENDER, 0, body, c.signature, raw)
    if c.sender > MAX_VARINT or not 0 < c.nonce <= MAX_NONCE:
        raise DecodeError("sender or nonce out of range")
    return Tx(kind, c.sender, c.nonce, body, c.signature, raw)


def tx_id(raw: bytes) -> bytes:
    return blake2b256(raw)


def encode_sealable(body: Body) -> bytes:
    """The plaintext a SEALED tx carries for `body` (a reading, command or data): its kind
    byte (format version 0, as a tx's) and its body, as a tx of that kind would hold them."""
    kind = _kind_of(body)
    if kind not in SEALABLE_KINDS:
        raise EncodeError(f"a {type(body).__name__} body cannot be sealed; sealable: reading, command, data")
    _check_own(kind, body)
    return bytes([kind]) + _build("sealed body", _SEALABLE[kind], {"body": _fields(body)})


def decode_sealable(raw: bytes) -> Body:
    """The body an opened sealed payload holds, fully checked, or DecodeError."""
    raw = bytes(raw)
    if not raw or raw[0] not in SEALABLE_KINDS:
        raise DecodeError(f"sealed body of kind {raw[0] if raw else None} is not a reading, command or data")
    kind = raw[0]
    body = TX_BODIES[kind][1](**_values(_decode("sealed body", _SEALABLE[kind], raw[1:]).body))
    _check_body(kind, body)
    return body


# --- blocks --------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockHeader:
    version: int
    height: int
    slot: int
    parent_prefix: bytes
    signature: bytes


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    txs: tuple[bytes, ...]
    raw: bytes = b""


@dataclass(frozen=True)
class CompactBlock:
    header: BlockHeader
    short_ids: tuple[bytes, ...]
    raw: bytes = b""


def header_signing_bytes(
    chain_id: bytes, version: int, height: int, slot: int, parent: bytes, tx_root: bytes, state_root: bytes
) -> bytes:
    return _build(
        "block header",
        _SIGNING,
        dict(chain_id=chain_id, version=version, height=height, slot=slot, parent=parent,
             tx_root=tx_root, state_root=state_root),
    )


def block_id(signing_bytes: bytes) -> bytes:
    """A block's id: BLAKE2b-256 of what its leader signed (chain, height, slot, parent,
    tx root, state root), so two blocks for one slot always have different ids."""
    return blake2b256(signing_bytes)


def tx_root(raw_txs) -> bytes:
    return merkle_root([tx_id(raw) for raw in raw_txs])


def _header_dict(h: BlockHeader) -> dict:
    return dict(version=h.version, height=h.height, slot=h.slot, parent=h.parent_prefix, signature=h.signature)


def _header_from(c) -> BlockHeader:
    if c.version != BLOCK_VERSION:
        raise DecodeError(f"unsupported block version {c.version}")
    if c.height > MAX_VARINT or c.slot > MAX_VARINT:
        raise DecodeError("block height or slot out of range")
    return BlockHeader(c.version, c.height, c.slot, c.parent, c.signature)


def encode_header(h: BlockHeader) -> bytes:
    return _build("block header", _HEADER, _header_dict(h))


def encode_block(header: BlockHeader, raw_txs) -> bytes:
    if len(raw_txs) > MAX_BLOCK_TXS:
        raise EncodeError(f"a block holds at most {MAX_BLOCK_TXS} transactions")
    return _build("block", _BLOCK, {"header": _header_dict(header), "txs": list(raw_txs)})


def decode_block(raw: bytes) -> Block:
    """Decode a full block; each tx is decoded too, so a block with a malformed tx fails here."""
    c = _decode("block", _BLOCK, bytes(raw))
    if len(c.txs) > MAX_BLOCK_TXS:
        raise DecodeError(f"block has {len(c.txs)} txs, more than {MAX_BLOCK_TXS}")
    txs = tuple(bytes(t) for t in c.txs)
    for i, raw_tx in enumerate(txs):
        try:
            decode_tx(raw_tx)
        except DecodeError as exc:
            raise DecodeError(f"block tx {i}: {exc}") from None
    block = Block(_header_from(c.header), txs, bytes(raw))
    if encode_block(block.header, txs) != block.raw:
        raise DecodeError("block is not in canonical encoding")
    return block


def short_id(raw_tx: bytes, parent_id: bytes) -> bytes:
    return hashlib.blake2b(raw_tx, digest_size=SHORT_ID_LEN, key=parent_id[:32]).digest()


def encode_compact(header: BlockHeader, short_ids) -> bytes:
    if len(short_ids) > MAX_BLOCK_TXS:
        raise EncodeError(f"a block holds at most {MAX_BLOCK_TXS} transactions")
    return _build("compact block", _COMPACT, {"header": _header_dict(header), "short_ids": list(short_ids)})


def compact_from_block(block: Block, parent_id: bytes) -> bytes:
    return encode_compact(block.header, [short_id(t, parent_id) for t in block.txs])


def decode_compact(raw: bytes) -> CompactBlock:
    c = _decode("compact block", _COMPACT, bytes(raw))
    if len(c.short_ids) > MAX_BLOCK_TXS:
        raise DecodeError(f"compact block has {len(c.short_ids)} ids, more than {MAX_BLOCK_TXS}")
    cb = CompactBlock(_header_from(c.header), tuple(bytes(s) for s in c.short_ids), bytes(raw))
    if encode_compact(cb.header, cb.short_ids) != cb.raw:
        raise DecodeError("compact block is not in canonical encoding")
    return cb
