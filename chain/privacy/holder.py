"""A key holder's side of private payloads: sealing this node's own bodies, rotating a
group's key when it is this node's turn, opening the sealed payloads and key rotations of
final blocks, and rebuilding its keychain from the chain at start (docs/PRIVACY.md §8).

All local: what a node can or cannot open changes no ledger state, which only ever holds
ciphertext. Events carry the opened bodies (`Opened`) and reasons, never a key. Pure:
blocks come in decoded or through the `FinalizedBlocks` the caller passes, the random
secret of a rotation as an argument.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from .. import governance
from ..crypto import Identity
from ..errors import DecodeError
from ..governance import Refused
from ..wire import Block, Body, RotateKey, Sealed, Tx, TxKind, decode_block, decode_sealable, decode_tx, encode_sealable
from .errors import DecryptError, PrivacyError
from .keychain import Keychain
from .keys import DeviceKey, TxOrigin
from .onchain import CLUSTER, check_rotation, check_sealed, epochs, next_key
from .rotation import decode_rotation, encode_rotation, rotate_group_key
from .sealing import DEFAULT_KEEP, Scope, decode_envelope, seal_to_device

if TYPE_CHECKING:
    from ..consensus.finalized import FinalizedBlocks
    from ..state import LedgerState


@dataclass(frozen=True)
class Opened:
    """A sealed payload of a final block, opened on this node."""

    tx_id: bytes
    sender: int
    nonce: int
    group: int | None  # the group it was sealed to; None: to this device
    body: Body  # a Reading, Command or Data


@dataclass(frozen=True)
class NotOpened:
    """A sealed payload or key rotation of a final block that this node cannot open:
    `reason` tampered, wrong-epoch, not-recipient or malformed; nothing from it is delivered."""

    tx_id: bytes
    sender: int
    nonce: int
    reason: str
    detail: str


@dataclass(frozen=True)
class KeyReceived:
    """This node holds `group`'s key of `epoch` now (the key stays in its keychain)."""

    group: int
    epoch: int


PrivacyEvent = Union[Opened, NotOpened, KeyReceived]


def seal_to_group(keys: Keychain, state: LedgerState, origin: TxOrigin, body: Body, slot: int,
                  group: int = CLUSTER) -> Sealed:
    """The SEALED body that carries `body` to `group` (default the cluster) under the newest
    key `keys` holds, in the tx `origin` (this node, the nonce it will sign with). Raises
    `PrivacyError` if no key of the group is held, `Refused` with the ledger's reason if a
    block of `slot` on `state` would refuse it."""
    sealed = keys.keyring(group).seal(origin, encode_sealable(body))
    check_sealed(state, origin.sender, sealed, slot)
    return Sealed(sealed)


def seal_to_member(keys: Keychain, state: LedgerState, origin: TxOrigin, body: Body, slot: int,
                   recipient: int) -> Sealed:
    """The SEALED body that carries `body` to member `recipient` alone (its key from the
    registry of `state`); `Refused` as `seal_to_group`."""
    public_key = governance.public_key(state, recipient)
    if public_key is None:
        raise Refused("recipient-not-member", f"no member {recipient} to seal to")
    sealed = seal_to_device(keys.device, recipient, public_key, origin, encode_sealable(body))
    check_sealed(state, origin.sender, sealed, slot)
    return Sealed(sealed)


def rotate(keys: Keychain, state: LedgerState, origin: TxOrigin, group: int, secret: bytes, slot: int) -> RotateKey:
    """The KEY_ROTATION body of `group`'s next key, `secret` (32 random bytes the caller
    draws), wrapped to its key holders; for this node when `rotations_due` names the group.
    The key itself is not returned: it reaches `keys`, as every holder's, when the rotation
    is final (`open_final_block`). `Refused` if a block of `slot` would refuse it."""
    epoch, holders = next_key(state, group)
    recipients = {i: governance.public_key(state, i) for i in holders}
    _key, rotation = rotate_group_key(keys.device, origin, group, epoch, secret, recipients)
    check_rotation(state, origin.sender, rotation, slot)
    return RotateKey(encode_rotation(rotation))


def open_final_block(keys: Keychain, state: LedgerState, block: Block) -> list[PrivacyEvent]:
    """Take the keys that the block's rotations wrap to this node and open its sealed
    payloads, in block order. `state`: any state that knows the senders (the head's)."""
    events: list[PrivacyEvent] = []
    for raw in block.txs:
        tx = decode_tx(raw)
        if tx.kind == TxKind.KEY_ROTATION:
            events.append(_accept(keys, state, tx))
        elif tx.kind == TxKind.SEALED:
            events.append(_open(keys, state, tx))
    return events


def rebuild_keychain(identity: Identity, member: int, state: LedgerState, finalized: FinalizedBlocks,
                     keep: int = DEFAULT_KEEP) -> tuple[Keychain, list[PrivacyEvent]]:
    """A node's keychain at start: the keys of the newest `keep` epochs of each group
    that were wrapped to `member`, unwrapped from their rotations in the final blocks.
    `state` is the finalized state (`finalized` brings it to its head); the events say
    which keys it holds and which rotations it could not open."""
    keys = Keychain(DeviceKey(identity), member, keep)
    events: list[PrivacyEvent] = []
    for group in sorted({g for g, _epoch in state.tables["group_key"]}):
        mine = [row for _epoch, row in epochs(state, group) if member in row[3:]]
        for slot, rotator, nonce, *_recipients in mine[-keep:]:
            block = _final_block_at(finalized, slot)
            tx = next((tx for tx in map(decode_tx, block.txs)
                       if (tx.kind, tx.sender, tx.nonce) == (TxKind.KEY_ROTATION, rotator, nonce)), None)
            if tx is None:
                raise PrivacyError(f"the final block of slot {slot} holds no key rotation {rotator}/{nonce}")
            events.append(_accept(keys, state, tx))
    return keys, events


def _accept(keys: Keychain, state: LedgerState, tx: Tx) -> KeyReceived | NotOpened:
    rotation = decode_rotation(tx.body.rotation)
    try:
        keys.accept(governance.public_key(state, tx.sender), _origin(state, tx), rotation)
    except DecryptError as exc:
        return NotOpened(tx.id, tx.sender, tx.nonce, exc.reason, str(exc))
    return KeyReceived(rotation.group, rotation.epoch)


def _open(keys: Keychain, state: LedgerState, tx: Tx) -> Opened | NotOpened:
    sealed = tx.body.sealed
    try:
        body = decode_sealable(keys.open(governance.public_key(state, tx.sender), _origin(state, tx), sealed))
    except DecryptError as exc:
        return NotOpened(tx.id, tx.sender, tx.nonce, exc.reason, str(exc))
    except DecodeError as exc:  # authentic, so its sender sealed bytes that are no body
        return NotOpened(tx.id, tx.sender, tx.nonce, "malformed", str(exc))
    env = decode_envelope(sealed)
    return Opened(tx.id, tx.sender, tx.nonce, env.target if env.scope is Scope.GROUP else None, body)


def _origin(state: LedgerState, tx: Tx) -> TxOrigin:
    return TxOrigin(state.genesis.chain_id, tx.sender, tx.nonce)


def _final_block_at(finalized: FinalizedBlocks, slot: int) -> Block:
    """The final block of `slot` (slots grow with heights: a binary search)."""
    lo, hi = 1, len(finalized)
    while lo <= hi:
        mid = (lo + hi) // 2
        block = decode_block(finalized.block(mid)[1])
        if block.header.slot == slot:
            return block
        lo, hi = (mid + 1, hi) if block.header.slot < slot else (lo, mid - 1)
    raise PrivacyError(f"no final block of slot {slot}: the chain and the state given disagree")
