"""Private payloads on the ledger: what every node checks without any key, the key epochs
of each group, and who rotates a group's key when (docs/PRIVACY.md §4, §5).

Groups: 0 is the whole cluster (every member in force); group k >= 1 is the k-th group
name in the registry, in order of first appearance (by registry index, then in the order
a member lists its groups). A record keeps its groups when its member is removed, so a
group's number never changes.

Table (a LedgerState table, empty on a chain that never rotated a key, so its state root
is what it was before privacy existed)::

    group_key  (group, epoch) -> (slot, rotator, nonce, *recipients)
               one row per rotation applied: its block's slot, its tx (sender, nonce) and
               the registry indexes it wrapped the key to. A group's current epoch is its
               newest row. No key is ever in it: every key is wrapped in its rotation tx.

The key holders of a group after every scheduled change (`key_holders`) are its members
not removed, nor scheduled to be, including members added for a later slot. A rotation
is due while they differ from the current epoch's recipients; it may come as soon as the
change is scheduled (the block that made the passing block final), so the new key is
usually in force before the change takes effect.

Rules (each refusal raises `governance.Refused` with a stable reason code, before any write):
  * SEALED to a member: the recipient is a member in force at the block's slot
    (`recipient-not-member`).
  * SEALED to a group: the group exists (`unknown-group`); the sender is in it at the slot
    (`not-in-group`); it has a key (`no-group-key`); the epoch byte is the current epoch's,
    or the previous epoch's within `ROTATION_GRACE_SLOTS` of the rotation (`wrong-epoch`);
    no recipient of that epoch's key has been removed by the slot (`key-revoked`: after a
    removal takes effect, nothing more is sealed under a key the removed member holds).
  * KEY_ROTATION: the group exists (`unknown-group`); a rotation is due (`rotation-not-due`);
    the sender is the group's rotator at the slot (`not-rotator`); the epoch is the current
    one + 1, 0 for a group's first key (`wrong-epoch`); the recipients are exactly the key
    holders (`wrong-recipients`).
Whether the ciphertext or a wrapped key is intact only a key holder can tell: that is
local to it (`holder.py`), never a ledger rule.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import governance
from ..governance import Refused
from ..wire import RotateKey, Sealed, Tx
from .rotation import KeyRotation, decode_rotation
from .sealing import EPOCH_TAGS, Envelope, Scope, decode_envelope

if TYPE_CHECKING:
    from ..state import LedgerState

PRIVACY_TABLES = ("group_key",)
CLUSTER = 0  # the group of every member
ROTATION_GRACE_SLOTS = 32  # the previous epoch stays usable this long after a rotation
ROTATOR_TURN_SLOTS = 16  # a rotator's turn; then the next candidate may rotate


def group_names(state: LedgerState) -> tuple[str, ...]:
    """The names of groups 1, 2, ... in order (group 0, the cluster, has none)."""
    names: dict[str, None] = {}
    for _index, record in _registry(state):
        names.update(dict.fromkeys(record[2]))
    return tuple(names)


def group_number(state: LedgerState, name: str) -> int | None:
    """The number of group `name` (sealed payloads name groups by number), None if none."""
    names = group_names(state)
    return names.index(name) + 1 if name in names else None


def members_at(state: LedgerState, group: int, slot: int) -> tuple[int, ...]:
    """Registry indexes of the members of `group` in force at `slot`."""
    if group == CLUSTER:
        return tuple(i for i, _record in _registry(state) if governance.member_at(state, i, slot) is not None)
    return governance.group_at(state, group_names(state)[group - 1], slot)


def key_holders(state: LedgerState, group: int) -> tuple[int, ...]:
    """Who must hold `group`'s current key once every scheduled change has taken effect:
    its members neither removed nor scheduled for removal, in registry order."""
    name = None if group == CLUSTER else group_names(state)[group - 1]
    return tuple(i for i, (_key, _name, groups, _since, until) in _registry(state)
                 if until == 0 and (name is None or name in groups))


def epochs(state: LedgerState, group: int) -> list[tuple[int, tuple]]:
    """(epoch, row) of every key rotation of `group` on chain, oldest first."""
    return sorted((epoch, row) for (g, epoch), row in state.tables["group_key"].items() if g == group)


def current_epoch(state: LedgerState, group: int) -> int | None:
    """The epoch of `group`'s current key, None before its first rotation."""
    rows = epochs(state, group)
    return rows[-1][0] if rows else None


def next_key(state: LedgerState, group: int) -> tuple[int, tuple[int, ...]]:
    """The epoch and the recipients that `group`'s next rotation must have."""
    current = current_epoch(state, group)
    return 0 if current is None else current + 1, key_holders(state, group)


def rotator(state: LedgerState, group: int, slot: int) -> int | None:
    """The member that may rotate `group`'s key in a block of `slot`; None if no rotation
    is due or no key holder is a member yet.

    Candidates are the key holders in force at `slot`: validators first, then the others,
    each by registry index. The first candidate's turn runs until `ROTATOR_TURN_SLOTS`
    after the due slot (the earliest switch slot of a change not yet rotated for: its
    member's `since` or `until`); then each next candidate's, round robin. A dead
    rotator thus delays a rotation by one turn, and governance can remove it."""
    due = _due_slot(state, group)
    if due is None:
        return None
    validators = governance.validators_at(state, slot)
    candidates = sorted(
        (i for i in key_holders(state, group) if governance.member_at(state, i, slot) is not None),
        key=lambda i: (i not in validators, i),
    )
    if not candidates:
        return None
    return candidates[max(0, slot - due) // ROTATOR_TURN_SLOTS % len(candidates)]


def rotations_due(state: LedgerState, member: int, slot: int) -> tuple[int, ...]:
    """The groups whose key `member` is the one to rotate in a block of `slot`."""
    return tuple(g for g in range(len(group_names(state)) + 1) if rotator(state, g, slot) == member)


def check_sealed(state: LedgerState, sender: int, sealed: bytes, slot: int) -> Envelope:
    """The envelope of a SEALED payload from `sender` in a block of `slot`, or `Refused`."""
    env = decode_envelope(sealed)
    if env.scope is Scope.DEVICE:
        if governance.member_at(state, env.target, slot) is None:
            raise Refused("recipient-not-member", f"sealed to {env.target}, not a member in slot {slot}")
        return env
    _check_group(state, env.target)
    if sender not in members_at(state, env.target, slot):
        raise Refused("not-in-group", f"sender {sender} is not in group {env.target} in slot {slot}")
    rows = epochs(state, env.target)
    if not rows:
        raise Refused("no-group-key", f"group {env.target} has no key yet: its first rotation is not on chain")
    (epoch, row), usable = rows[-1], [rows[-1]]
    if len(rows) > 1 and slot < row[0] + ROTATION_GRACE_SLOTS:
        usable.append(rows[-2])
    match = next(((e, r) for e, r in usable if e % EPOCH_TAGS == env.epoch_tag), None)
    if match is None:
        raise Refused("wrong-epoch", f"key epoch tag {env.epoch_tag} is not usable in group {env.target} in "
                                     f"slot {slot}: its current epoch is {epoch} (tag {epoch % EPOCH_TAGS})")
    records = dict(_registry(state))
    removed = [i for i in match[1][3:] if 0 < records[i][4] <= slot]
    if removed:
        raise Refused("key-revoked", f"group {env.target}'s key epoch {match[0]} is held by removed member(s) "
                                     f"{removed}; nothing is sealed under it until its rotation")
    return env


def check_rotation(state: LedgerState, sender: int, rotation: KeyRotation, slot: int) -> None:
    """Refuse (`Refused`) a KEY_ROTATION from `sender` in a block of `slot` that breaks a rule."""
    group = rotation.group
    _check_group(state, group)
    if _due_slot(state, group) is None:
        raise Refused("rotation-not-due", f"group {group}'s key holders have its current key already")
    expected = rotator(state, group, slot)
    if sender != expected:
        raise Refused("not-rotator", f"group {group}'s key is rotated in slot {slot} by member {expected}, "
                                     f"not {sender}")
    following, holders = next_key(state, group)
    if rotation.epoch != following:
        raise Refused("wrong-epoch", f"group {group}'s next key epoch is {following}, not {rotation.epoch}")
    if rotation.recipients != holders:
        raise Refused("wrong-recipients", f"group {group}'s key goes to {list(holders)}, "
                                          f"not {list(rotation.recipients)}")


def apply_sealed(state: LedgerState, tx: Tx, slot: int) -> None:
    """TX handler of SEALED: checked, then kept in its block only (no table holds it)."""
    body: Sealed = tx.body
    check_sealed(state, tx.sender, body.sealed, slot)


def apply_rotation(state: LedgerState, tx: Tx, slot: int) -> None:
    """TX handler of KEY_ROTATION: the group's key epoch advances."""
    body: RotateKey = tx.body
    rotation = decode_rotation(body.rotation)
    check_rotation(state, tx.sender, rotation, slot)
    state.set("group_key", (rotation.group, rotation.epoch), (slot, tx.sender, tx.nonce, *rotation.recipients))


def _registry(state: LedgerState):
    """(index, (key, name, groups, since, until)) of every registry entry, removed ones too."""
    for index in range(governance.next_index(state)):
        record = governance._record(state, index)
        if record is not None:
            yield index, record


def _check_group(state: LedgerState, group: int) -> None:
    if group > len(group_names(state)):
        raise Refused("unknown-group", f"no group {group}: the cluster has groups 0..{len(group_names(state))}")


def _due_slot(state: LedgerState, group: int) -> int | None:
    """The switch slot of the earliest change `group`'s key has not been rotated for
    (0 for the first key of genesis members), None if no rotation is due."""
    rows = epochs(state, group)
    held = set(rows[-1][1][3:]) if rows else set()
    holders = set(key_holders(state, group))
    if held == holders:
        return None
    records = dict(_registry(state))
    return min(records[i][3] if i in holders else records[i][4] for i in held ^ holders)
