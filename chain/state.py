"""Ledger state: named tables of small integer/bytes tuples, a journal for atomic block
application and undo, and a deterministic state root.

Tables (key -> value, both tuples of ints or bytes):
    nonce    (sender,)          -> (last nonce,)
    reading  (device, sensor)   -> (value, slot)
    command  (target,)          -> (issuer, action, slot, *args)   latest command per device
    contract, contract_state, balance, contract_command: device rules, see chain/contracts/onchain.py
    equivocation (leader, slot)     -> (reporter,)   proved double-signing (chain/evidence.py)
    member, validators, param, update, proposal, ballot, gov_final, gov_due: governance and
        the registry as it changes, see chain/governance.py
    group_key (group, epoch)         -> (slot, rotator, nonce, *recipients)   key epochs of
        private payloads (no key: the keys travel wrapped), see chain/privacy/onchain.py

Transaction kinds are applied by the handlers in TX_HANDLERS; a later capability adds a
kind by adding a handler (and, if it needs one, a table). The state root commits to
every non-empty table: BLAKE2b-256 over the table roots, each table root a BLAKE2b-256
over its entries in key order, each entry in the one canonical encoding declared below.
An empty table adds nothing, so a capability's new tables leave the roots of chains that
do not use them unchanged.

Sealed payloads and key rotations trigger no rule: a rule runs on every node, and no
node but a key holder could know what they hold (docs/PRIVACY.md §6). Nothing in the
state depends on a key, so a node with keys and one without reach the same root.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable

from construct import Error, GreedyBytes, Int8ub, Prefixed, PrefixedArray, Struct, Switch, VarInt, ZigZag, this
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from blockiot.radio.codec import decoding, encoding

from . import governance
from .crypto import blake2b256
from .errors import ChainError, DecodeError, EncodeError, InvalidTx
from .evidence import decode_evidence, verify_evidence
from .genesis import Genesis
from .wire import MAX_NONCE, Command, Reading, Tx, TxKind, tx_signing_bytes
from .contracts.onchain import CONTRACT_TABLES, ContractRuntime, apply_deploy
from .privacy.onchain import PRIVACY_TABLES, apply_rotation, apply_sealed

VERIFIED_CACHE = 4096  # signatures remembered as checked
TABLES = ("nonce", "reading", "command", "equivocation") + CONTRACT_TABLES + governance.GOV_TABLES + PRIVACY_TABLES
PRIVATE_KINDS = frozenset((TxKind.SEALED, TxKind.KEY_ROTATION))  # kinds no rule sees

Key = tuple
Value = tuple

# One field of a key or value: tag 0 = integer (zigzag varint), tag 1 = bytes.
_FIELD = Struct("tag" / Int8ub, "v" / Switch(this.tag, {0: ZigZag, 1: Prefixed(VarInt, GreedyBytes)}, default=Error))
_TUPLE = PrefixedArray(Int8ub, _FIELD)
_ENTRY = Struct("key" / _TUPLE, "value" / _TUPLE)
_ENTRY_BUILD = _ENTRY.compile()  # same declaration, ~3.5x faster builds: the state root's hot path
# A state diff: for each touched entry, its table and its value before and after (absent = deleted).
_DIFF = PrefixedArray(
    VarInt,
    Struct(
        "table" / Prefixed(Int8ub, GreedyBytes),
        "key" / _TUPLE,
        "has_old" / Int8ub, "old" / _TUPLE,
        "has_new" / Int8ub, "new" / _TUPLE,
    ),
)


def _fields(t: tuple) -> list:
    return [{"tag": 1, "v": bytes(f)} if isinstance(f, (bytes, bytearray)) else {"tag": 0, "v": int(f)} for f in t]


def _unfields(fields) -> tuple:
    return tuple(bytes(f.v) if f.tag == 1 else f.v for f in fields)


def encode_tuple(t: tuple) -> bytes:
    with encoding("state tuple", EncodeError):
        return _TUPLE.build(_fields(t))


def decode_tuple(raw: bytes) -> tuple:
    with decoding("state tuple", DecodeError):
        t = _unfields(_TUPLE.parse(raw))
    if encode_tuple(t) != bytes(raw):
        raise DecodeError("state tuple is not in canonical encoding")
    return t


def encode_entry(key: tuple, value: tuple) -> bytes:
    with encoding("state entry", EncodeError):
        return _ENTRY_BUILD.build({"key": _fields(key), "value": _fields(value)})


class StateDiff:
    """What one block changed: {(table, key): (old or None, new or None)}."""

    def __init__(self, changes: dict[tuple[str, tuple], tuple[tuple | None, tuple | None]]):
        self.changes = changes

    def encode(self) -> bytes:
        with encoding("state diff", EncodeError):
            return _DIFF.build(
                [
                    {
                        "table": table.encode(), "key": _fields(key),
                        "has_old": old is not None, "old": _fields(old or ()),
                        "has_new": new is not None, "new": _fields(new or ()),
                    }
                    for (table, key), (old, new) in self.changes.items()
                ]
            )

    @classmethod
    def decode(cls, raw: bytes) -> "StateDiff":
        with decoding("state diff", DecodeError):  # UnicodeDecodeError is a ValueError
            items = _DIFF.parse(raw)
            diff = cls(
                {
                    (bytes(i.table).decode(), _unfields(i.key)): (
                        _unfields(i.old) if i.has_old else None,
                        _unfields(i.new) if i.has_new else None,
                    )
                    for i in items
                }
            )
        unknown = {table for table, _key in diff.changes} - set(TABLES)
        if unknown:
            raise DecodeError(f"state diff names unknown tables {sorted(unknown)}")
        if diff.encode() != bytes(raw):  # trailing bytes, flags other than 0/1, repeated entries
            raise DecodeError("state diff is not in canonical encoding")
        return diff


# A handler validates a tx of its kind and applies it. It must raise InvalidTx before its
# first write, so that a refused tx leaves the state untouched.
TxHandler = Callable[["LedgerState", Tx, int], None]


class LedgerState:
    """The replicated state of one cluster chain, in memory. Pure: no IO, no clock."""

    def __init__(self, genesis: Genesis):
        self.genesis = genesis
        self.tables: dict[str, dict[Key, Value]] = {name: {} for name in TABLES}
        self._journal: dict[tuple[str, Key], Value | None] | None = None
        self._dirty: dict[str, set[Key]] = {name: set() for name in TABLES}
        self._encoded: dict[str, dict[Key, bytes]] = {name: {} for name in TABLES}
        self._table_roots: dict[str, bytes] = {}
        self._verify_keys = {m.index: VerifyKey(m.public_key) for m in genesis.members}
        self._added_keys: dict[bytes, VerifyKey] = {}  # of members added by vote, by key
        # (tx id, sender key) of signatures already checked: a tx heard on air is checked
        # once, not again in every block (or branch) that carries it. Bounded.
        self._verified: OrderedDict[tuple[bytes, bytes], None] = OrderedDict()
        self.contracts = ContractRuntime(self)  # runs deployed rules as txs and blocks apply

    # --- tables ---------------------------------------------------------------------

    def get(self, table: str, key: Key, default: Value | None = None) -> Value | None:
        return self.tables[table].get(key, default)

    def set(self, table: str, key: Key, value: Value | None) -> None:
        """Write (or delete, with None) one entry; journaled while a block is open."""
        rows = self.tables[table]
        if self._journal is not None and (table, key) not in self._journal:
            self._journal[(table, key)] = rows.get(key)
        if value is None:
            rows.pop(key, None)
        else:
            rows[key] = value
        self._dirty[table].add(key)

    def load(self, table: str, key: Key, value: Value) -> None:
        """Fill a table from the store when reopening (not journaled)."""
        self.tables[table][key] = value
        self._dirty[table].add(key)

    # --- atomic application -----------------------------------------------------------

    def begin(self) -> None:
        if self._journal is not None:
            raise RuntimeError("a state transaction is already open")
        self._journal = {}

    def commit(self) -> StateDiff:
        journal, self._journal = self._journal or {}, None
        return StateDiff(
            {(t, k): (old, self.tables[t].get(k)) for (t, k), old in journal.items() if old != self.tables[t].get(k)}
        )

    def rollback(self) -> None:
        journal, self._journal = self._journal or {}, None
        self._restore((t, k, old) for (t, k), old in journal.items())

    def undo(self, diff: StateDiff) -> None:
        """Revert a committed block's changes (fork choice, truncation)."""
        self._restore((t, k, old) for (t, k), (old, _new) in diff.changes.items())

    def redo(self, diff: StateDiff) -> None:
        self._restore((t, k, new) for (t, k), (_old, new) in diff.changes.items())

    def _restore(self, entries: Iterable[tuple[str, Key, Value | None]]) -> None:
        for table, key, value in entries:
            if value is None:
                self.tables[table].pop(key, None)
            else:
                self.tables[table][key] = value
            self._dirty[table].add(key)

    # --- transactions -----------------------------------------------------------------

    def check_signature(self, tx: Tx, slot: int | None = None) -> None:
        """Check a tx's signature by its sender's registered key, and that the sender is a
        member in `slot`; without a slot (a mempool), that no removal of it is recorded.
        A join request is refused: no member signed it."""
        if tx.kind == TxKind.JOIN_REQUEST:
            raise governance.Refused("join-request", "a join request is not a member's transaction; "
                                     "a member relays it into an add-member proposal")
        verify_key = self._verify_key(tx.sender)
        if verify_key is None:
            raise governance.Refused("not-member", f"sender {tx.sender} is not a member of this cluster")
        if slot is not None:
            governance.require_member(self, tx.sender, slot)
        elif governance.is_removed(self, tx.sender):
            raise governance.Refused("removed", f"sender {tx.sender} is removed from the cluster")
        seen = (tx.id, verify_key.encode()) if tx.raw else None  # the id covers the signature
        if seen in self._verified:
            return
        try:
            verify_key.verify(tx_signing_bytes(self.genesis.chain_id, tx.signed_part), tx.signature)
        except BadSignatureError:
            raise InvalidTx(f"bad signature on tx from sender {tx.sender} nonce {tx.nonce}") from None
        if seen is None:
            return
        self._verified[seen] = None
        if len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)

    def _verify_key(self, index: int) -> VerifyKey | None:
        if not self.tables["member"] or index in self._verify_keys:  # a genesis index keeps its key
            return self._verify_keys.get(index)
        key = governance.public_key(self, index)
        if key is None:
            return None
        verify_key = self._added_keys.get(key)
        if verify_key is None:
            verify_key = self._added_keys[key] = VerifyKey(key)
        return verify_key

    def apply_tx(self, tx: Tx, slot: int, *, verified: bool = False) -> None:
        """Validate a decoded tx against this state and apply it; raises InvalidTx and then
        changes nothing (every check comes before the first write)."""
        if verified:  # the signature was checked (a leader's candidate): membership depends on the slot
            governance.require_member(self, tx.sender, slot)
        else:
            self.check_signature(tx, slot)
        last = self.tables["nonce"].get((tx.sender,), (0,))[0]
        if tx.nonce <= last:
            raise InvalidTx(f"replayed nonce {tx.nonce} from sender {tx.sender} (last {last})")
        handler = TX_HANDLERS.get(tx.kind)
        if handler is None:
            raise InvalidTx(f"tx kind {tx.kind} is not applicable")
        handler(self, tx, slot)
        self.set("nonce", (tx.sender,), (min(tx.nonce, MAX_NONCE),))
        if tx.kind not in PRIVATE_KINDS:
            self.contracts.on_tx(tx, slot)  # rules the applied tx triggers; they never refuse it

    def begin_block(self, slot: int, previous_slot: int) -> None:
        """First step of applying a block of `slot` on a head of `previous_slot`:
        governance (finality of passed proposals, effects due), then rule schedules."""
        governance.on_block(self, slot)
        self.contracts.on_block(slot, previous_slot)

    def next_nonce(self, sender: int) -> int:
        return self.tables["nonce"].get((sender,), (0,))[0] + 1

    # --- state root -------------------------------------------------------------------

    def state_root(self) -> bytes:
        roots = []
        for table in sorted(self.tables):
            rows, encoded, dirty = self.tables[table], self._encoded[table], self._dirty[table]
            if dirty or table not in self._table_roots:
                for key in dirty:
                    if key in rows:
                        encoded[key] = encode_entry(key, rows[key])
                    else:
                        encoded.pop(key, None)
                dirty.clear()
                self._table_roots[table] = blake2b256(b"".join(encoded[k] for k in sorted(encoded)))
            if encoded:
                roots.append(table.encode() + self._table_roots[table])
        return blake2b256(b"".join(roots))


def _apply_reading(state: LedgerState, tx: Tx, slot: int) -> None:
    body: Reading = tx.body
    state.set("reading", (tx.sender, body.sensor), (body.value, slot))


def _apply_command(state: LedgerState, tx: Tx, slot: int) -> None:
    body: Command = tx.body
    if governance.member_at(state, body.target, slot) is None:
        raise InvalidTx(f"command target {body.target} is not a member of this cluster")
    state.set("command", (body.target,), (tx.sender, body.action, slot, *body.args))


def _apply_data(state: LedgerState, tx: Tx, slot: int) -> None:
    """Opaque data changes no table: it lives in the block; only the nonce moves."""


def _apply_evidence(state: LedgerState, tx: Tx, slot: int) -> None:
    """Record a proved equivocation once per (leader, slot); governance acts on the table."""
    try:
        evidence = decode_evidence(tx.body.evidence)
        leader = verify_evidence(
            state.genesis, evidence,
            lambda s: governance.leader_for_slot(state, s), lambda i: governance.public_key(state, i),
        )
    except ChainError as exc:  # DecodeError or InvalidEvidence
        raise InvalidTx(f"evidence from sender {tx.sender}: {exc}") from None
    if evidence.slot > slot:
        raise InvalidTx(f"evidence for slot {evidence.slot} cannot be in a block of earlier slot {slot}")
    if (leader, evidence.slot) in state.tables["equivocation"]:
        raise InvalidTx(f"equivocation of leader {leader} in slot {evidence.slot} is already recorded")
    state.set("equivocation", (leader, evidence.slot), (tx.sender,))


TX_HANDLERS: dict[int, TxHandler] = {
    TxKind.READING: _apply_reading,
    TxKind.COMMAND: _apply_command,
    TxKind.DATA: _apply_data,
    TxKind.CONTRACT_DEPLOY: apply_deploy,
    TxKind.EVIDENCE: _apply_evidence,
    TxKind.PROPOSAL: governance.apply_proposal,
    TxKind.VOTE: governance.apply_vote,
    TxKind.SEALED: apply_sealed,
    TxKind.KEY_ROTATION: apply_rotation,
}
