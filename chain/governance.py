"""Cluster governance on the ledger: the member registry as it changes, proposals and
votes, and the slot at which a passed proposal takes effect (docs/PROTOCOL.md §14).

Pure functions of a LedgerState and a slot; the consensus layer asks `validators_at`,
`leader_for_slot`, `param_at` and `next_epoch_boundary` for any slot.

Tables (LedgerState tables, all empty on a chain that never governed, so its state
root is what it was before governance existed)::

    member      (index,)                  -> (key, name, hardware, since, until, *groups)
                a member added by vote, or a genesis member whose record changed; it may
                act in slots since <= s < until (until 0: no end)
    validators  (since,)                  -> (*indices)   the set from slot `since` on
    param       (param, since)            -> (value,)     a parameter from slot `since` on
    update      (hardware, version)       -> (since, size, chunk, digest)  approved manifests
    proposal    (proposer, nonce)         -> (expiry, status, slot, action)
                status OPEN; PASSED (slot = the block that passed it); ENACTED (slot = the
                switch slot); VOID (its effect had become moot when it was due)
    ballot      (proposer, nonce, voter)  -> (slot,)      yes votes
    gov_final   (slot,)                   -> (src, just)  finality votes (§6.2) of the
                blocks since the oldest PASSED proposal; empty when none waits
    gov_due     (since, proposer, nonce)  -> ()           rule deploys/retirements due at `since`

Rules (each refusal raises `Refused` with a stable reason code, before any write):
  * a proposal comes from a member; one that changes the validator set from a validator;
    it stays open `ttl` slots after its block's slot;
  * a vote comes from a validator in force at its block's slot, once per proposal, on an
    open, unexpired proposal; a validator's own proposal counts as its vote;
  * a proposal passes when 3 * yes > 2 * n, over the validators in force at that slot;
  * its effect is scheduled once a block of the chain makes the passing block final
    (§6.2, computed here from the chain's slots) and takes effect at the first epoch
    boundary after that block; at most one validator-set change per boundary (later
    ones queue for the following boundaries).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .consensus import finality
from .contracts.errors import BytecodeError
from .contracts.vm import load
from .crypto import blake2b256, merkle_root, verify
from .errors import InvalidTx
from .genesis import ROLES, Member
from .wire import (
    ACTION,
    AddMember,
    ApproveUpdate,
    DeployRule,
    GrantValidator,
    JoinRequest,
    Param,
    Proposal,
    ProposalAction,
    RemoveMember,
    RetireRule,
    RevokeValidator,
    SetParam,
    Tx,
    TxKind,
    Vote,
    tx_signing_bytes,
)

if TYPE_CHECKING:
    from .state import LedgerState

GOV_TABLES = ("member", "validators", "param", "update", "proposal", "ballot", "gov_final", "gov_due")

OPEN, PASSED, ENACTED, VOID = 0, 1, 2, 3
STATUS_NAMES = ("open", "passed", "enacted", "void")
VALIDATOR = ROLES.index("validator")


class Refused(InvalidTx):
    """A governance or membership rule refused a transaction; `reason` is a stable code:
    not-member, removed, not-validator, unknown-proposal, expired, decided, double-vote,
    key-in-use, name-in-use, no-change, no-evidence, unknown-rule, bad-rule,
    update-known, join-request."""

    def __init__(self, reason: str, text: str):
        super().__init__(f"{reason}: {text}")
        self.reason = reason


# --- the registry ------------------------------------------------------------------------


def _record(state: LedgerState, index: int) -> tuple[bytes, str, tuple[str, ...], int, int] | None:
    """(key, name, groups, since, until) of the registry entry `index`, active or not."""
    row = state.tables["member"].get((index,))
    if row is not None:
        key, name, _hardware, since, until, *groups = row
        return key, name.decode(), tuple(g.decode() for g in groups), since, until
    m = state.genesis.member(index)
    return None if m is None else (m.public_key, m.name, m.groups, 0, 0)


def _active(record, slot: int) -> bool:
    _key, _name, _groups, since, until = record
    return since <= slot and (until == 0 or slot < until)


def public_key(state: LedgerState, index: int) -> bytes | None:
    """The key registered under `index` (a removed member's too), None if none."""
    record = _record(state, index)
    return None if record is None else record[0]


def next_index(state: LedgerState) -> int:
    """The registry index the next added member gets (indices are never reused)."""
    return max([len(state.genesis.members)] + [i + 1 for (i,) in state.tables["member"]])


def index_of(state: LedgerState, key: bytes) -> int | None:
    """The registry index of `key`, also of a member added for a later slot (so a joining
    device learns its index as soon as its addition is scheduled) or removed."""
    for (i,), row in state.tables["member"].items():
        if row[0] == key:
            return i
    return state.genesis.index_of(key)


def member_at(state: LedgerState, index: int, slot: int) -> Member | None:
    """The member `index` as it stands at `slot`; None if it is not a member then."""
    record = _record(state, index)
    if record is None or not _active(record, slot):
        return None
    role = "validator" if index in validators_at(state, slot) else "member"
    return Member(index, record[0], role, record[2], record[1])


def group_at(state: LedgerState, name: str, slot: int) -> tuple[int, ...]:
    """Indices of the members of group `name` at `slot`, in registry order."""
    return tuple(
        i for i in range(next_index(state))
        if (r := _record(state, i)) is not None and _active(r, slot) and name in r[2]
    )


def require_member(state: LedgerState, index: int, slot: int) -> None:
    """Refuse a tx from `index` in a block of `slot` unless it is a member then."""
    record = _record(state, index)
    if record is None:
        raise Refused("not-member", f"sender {index} is not a member of this cluster")
    since, until = record[3], record[4]
    if until and slot >= until:
        raise Refused("removed", f"sender {index} was removed from the cluster from slot {until}")
    if slot < since:
        raise Refused("not-member", f"sender {index} is a member only from slot {since}")


def is_removed(state: LedgerState, index: int) -> bool:
    """Whether a removal of `index` is recorded (in force or scheduled)."""
    record = _record(state, index)
    return record is not None and record[4] != 0


def hardware_of(state: LedgerState, index: int) -> int:
    """The Meshtastic HardwareModel number a member joined with (0: unknown, genesis members)."""
    row = state.tables["member"].get((index,))
    return row[2] if row is not None else 0


# --- validators, leaders, parameters, epochs ----------------------------------------------


def _set_row(state: LedgerState, slot: int) -> tuple[int, tuple[int, ...]]:
    """(since, validators) of the set in force at `slot`; since 0 for the genesis set."""
    since = max((s for (s,) in state.tables["validators"] if s <= slot), default=None)
    if since is None:
        return 0, state.genesis.validators
    return since, state.tables["validators"][(since,)]


def validators_at(state: LedgerState, slot: int) -> tuple[int, ...]:
    """Registry indices of the validators in force at `slot`, ascending. Exact for every
    slot up to the next block's: a block schedules changes only for later boundaries."""
    return _set_row(state, slot)[1]


def set_since(state: LedgerState, slot: int) -> int:
    """The first slot of the validator set in force at `slot` (0: the genesis set).
    Finality windows do not reach below it (docs/PROTOCOL.md §14.4)."""
    return _set_row(state, slot)[0]


def leader_for_slot(state: LedgerState, slot: int) -> int:
    """Registry index of the validator leading `slot`: validators_at(slot)[slot mod n]."""
    validators = validators_at(state, slot)
    return validators[slot % len(validators)]


def quorum(n: int) -> int:
    """n - f with f = floor((n - 1) / 3), as consensus.params."""
    return n - (n - 1) // 3


_DEFAULTS: dict[Param, Callable] = {
    Param.SLOT_SECONDS: lambda g: g.params.slot_seconds,
    Param.EPOCH_SLOTS: lambda g: g.params.epoch_slots,
    Param.DUTY_CYCLE_BP: lambda g: 10_000,  # no cap beyond the region's law
    Param.MAX_BLOCK_TXS: lambda g: None,  # only the wire's limit
}


def _param_row(state: LedgerState, param: Param, slot: int) -> tuple[int, int | None]:
    rows = [(since, value) for (p, since), (value,) in state.tables["param"].items() if p == param and since <= slot]
    return max(rows) if rows else (0, _DEFAULTS[param](state.genesis))


def param_at(state: LedgerState, param: Param, slot: int) -> int | None:
    """The value of `param` in force at `slot`: the genesis value (or default) until
    governance changes it. MAX_BLOCK_TXS is None while only the wire's limit applies."""
    return _param_row(state, param, slot)[1]


def next_epoch_boundary(state: LedgerState, slot: int) -> int:
    """The first epoch boundary after `slot`. Boundaries are origin + k * length, with
    the epoch length in force and origin the slot it took effect (0 for the genesis)."""
    origin, length = _param_row(state, Param.EPOCH_SLOTS, slot)
    return origin + ((slot - origin) // length + 1) * length


def slot_start(state: LedgerState, slot: int) -> int:
    """Seconds from the genesis time to the start of `slot`, slot length changes included."""
    changes = sorted((since, value) for (p, since), (value,) in state.tables["param"].items()
                     if p == Param.SLOT_SECONDS and since <= slot)
    start, at, length = 0, 0, state.genesis.params.slot_seconds
    for since, value in changes:
        start += (since - at) * length
        at, length = since, value
    return start + (slot - at) * length


def image_digest(image: bytes, chunk: int) -> bytes:
    """The digest an update manifest gives for `image`: the Merkle root of the BLAKE2b-256
    hashes of its `chunk`-byte chunks (the last may be shorter)."""
    return merkle_root([blake2b256(image[i:i + chunk]) for i in range(0, len(image), chunk)])


def approved_update(state: LedgerState, hardware: int, version: int, slot: int) -> ApproveUpdate | None:
    """The manifest approved for (hardware, version) and in force at `slot`, if any."""
    row = state.tables["update"].get((hardware, version))
    if row is None or row[0] > slot:
        return None
    since, size, chunk, digest = row
    return ApproveUpdate(version, hardware, size, chunk, digest)


@dataclass(frozen=True)
class ProposalInfo:
    """A proposal as the ledger holds it, for people and tools (`blockiot gov show`)."""

    proposer: int
    nonce: int
    expiry: int  # last slot in which a vote counts
    status: str  # open, passed, enacted, void
    slot: int  # passed: the slot it passed in; enacted or void: its switch slot
    action: ProposalAction
    yes: tuple[int, ...]  # validators that voted for it


def proposal(state: LedgerState, proposer: int, nonce: int) -> ProposalInfo | None:
    """The proposal of tx (proposer, nonce), None if the chain holds none."""
    row = state.tables["proposal"].get((proposer, nonce))
    if row is None:
        return None
    expiry, status, slot, raw = row
    yes = tuple(v for (p, k, v) in sorted(state.tables["ballot"]) if (p, k) == (proposer, nonce))
    return ProposalInfo(proposer, nonce, expiry, STATUS_NAMES[status], slot, ACTION.parse(raw), yes)


# --- transactions ----------------------------------------------------------------------------


def _changes_validators(state: LedgerState, action: ProposalAction, slot: int) -> bool:
    if isinstance(action, (GrantValidator, RevokeValidator)):
        return True
    if isinstance(action, AddMember):
        return action.role == VALIDATOR
    return isinstance(action, RemoveMember) and action.member in validators_at(state, slot)


def _check_evidence(state: LedgerState, member: int, evidence: int | None) -> None:
    if evidence is not None and (member, evidence) not in state.tables["equivocation"]:
        raise Refused("no-evidence", f"no equivocation of member {member} in slot {evidence} is recorded")


def _check_add(state: LedgerState, a: AddMember, slot: int) -> None:
    if index_of(state, a.key) is not None:
        raise Refused("key-in-use", f"key {a.key[:8].hex()} is already registered")
    if a.name and _name_taken(state, a.name, slot):
        raise Refused("name-in-use", f"a member is already named {a.name!r}")


def _name_taken(state: LedgerState, name: str, slot: int) -> bool:
    return any(
        (r := _record(state, i)) is not None and r[1] == name and (r[4] == 0 or slot < r[4])
        for i in range(next_index(state))
    )


def _check_remove(state: LedgerState, a: RemoveMember, slot: int) -> None:
    if member_at(state, a.member, slot) is None or is_removed(state, a.member):
        raise Refused("not-member", f"member {a.member} is not a member to remove")
    _check_evidence(state, a.member, a.evidence)


def _check_grant(state: LedgerState, a: GrantValidator, slot: int) -> None:
    if member_at(state, a.member, slot) is None or is_removed(state, a.member):
        raise Refused("not-member", f"member {a.member} is not a member")
    if a.member in validators_at(state, slot):
        raise Refused("no-change", f"member {a.member} is a validator already")


def _check_revoke(state: LedgerState, a: RevokeValidator, slot: int) -> None:
    if a.member not in validators_at(state, slot):
        raise Refused("no-change", f"member {a.member} is not a validator")
    _check_evidence(state, a.member, a.evidence)


def _check_deploy(state: LedgerState, a: DeployRule, slot: int) -> None:
    try:
        load(a.code)
    except BytecodeError as exc:
        raise Refused("bad-rule", f"rule bytecode refused: {exc}") from None


def _check_retire(state: LedgerState, a: RetireRule, slot: int) -> None:
    if (a.deployer, a.nonce) not in state.tables["contract"]:
        raise Refused("unknown-rule", f"no rule {a.deployer}/{a.nonce} is deployed")


def _check_update(state: LedgerState, a: ApproveUpdate, slot: int) -> None:
    if (a.hardware, a.version) in state.tables["update"]:
        raise Refused("update-known", f"version {a.version} for hardware {a.hardware} is approved already")


_CHECKS: dict[type, Callable] = {
    AddMember: _check_add,
    RemoveMember: _check_remove,
    GrantValidator: _check_grant,
    RevokeValidator: _check_revoke,
    DeployRule: _check_deploy,
    RetireRule: _check_retire,
    SetParam: lambda state, a, slot: None,  # its range was checked when it was decoded
    ApproveUpdate: _check_update,
}


def apply_proposal(state: LedgerState, tx: Tx, slot: int) -> None:
    """TX handler of PROPOSAL: open proposal (sender, nonce); a validator's counts as its vote."""
    body: Proposal = tx.body
    validators = validators_at(state, slot)
    if _changes_validators(state, body.action, slot) and tx.sender not in validators:
        raise Refused("not-validator", f"sender {tx.sender} is not a validator and cannot change the validator set")
    _CHECKS[type(body.action)](state, body.action, slot)
    pid = (tx.sender, tx.nonce)
    state.set("proposal", pid, (slot + body.ttl, OPEN, 0, ACTION.build(body.action)))
    if tx.sender in validators:
        _vote(state, pid, tx.sender, slot)


def apply_vote(state: LedgerState, tx: Tx, slot: int) -> None:
    """TX handler of VOTE: a validator's yes vote on an open proposal."""
    body: Vote = tx.body
    pid = (body.proposer, body.nonce)
    row = state.tables["proposal"].get(pid)
    if row is None:
        raise Refused("unknown-proposal", f"no proposal {body.proposer}/{body.nonce}")
    if tx.sender not in validators_at(state, slot):
        raise Refused("not-validator", f"sender {tx.sender} is not a validator in slot {slot}")
    expiry, status = row[0], row[1]
    if status != OPEN:
        raise Refused("decided", f"proposal {body.proposer}/{body.nonce} is {STATUS_NAMES[status]} already")
    if slot > expiry:
        raise Refused("expired", f"proposal {body.proposer}/{body.nonce} expired after slot {expiry}")
    if (*pid, tx.sender) in state.tables["ballot"]:
        raise Refused("double-vote", f"validator {tx.sender} voted on proposal {body.proposer}/{body.nonce} already")
    _vote(state, pid, tx.sender, slot)


def _vote(state: LedgerState, pid: tuple[int, int], voter: int, slot: int) -> None:
    state.set("ballot", (*pid, voter), (slot,))
    validators = validators_at(state, slot)
    yes = sum(1 for v in validators if (*pid, v) in state.tables["ballot"])
    if 3 * yes > 2 * len(validators):
        expiry, _status, _slot, action = state.tables["proposal"][pid]
        state.set("proposal", pid, (expiry, PASSED, slot, action))
        if not state.tables["gov_final"]:  # start following finality at the passing block
            state.set("gov_final", (slot,), (finality.GENESIS_SLOT, finality.GENESIS_SLOT))


def join_proposal(state: LedgerState, tx: Tx) -> AddMember:
    """Check a JOIN_REQUEST (signed by the key it carries, for this chain; the key not
    registered yet) and return the ADD_MEMBER action a member relays it into."""
    body: JoinRequest = tx.body
    if tx.kind != TxKind.JOIN_REQUEST:
        raise Refused("join-request", "not a join request")
    if not verify(body.key, tx_signing_bytes(state.genesis.chain_id, tx.signed_part), tx.signature):
        raise InvalidTx(f"bad signature on the join request of key {body.key[:8].hex()}")
    if index_of(state, body.key) is not None:
        raise Refused("key-in-use", f"key {body.key[:8].hex()} is already registered")
    return AddMember(body.key, ROLES.index("member"), body.name, body.groups, body.hardware)


# --- blocks: finality of passed proposals, effects ---------------------------------------------


def on_block(state: LedgerState, slot: int) -> None:
    """First step of applying a block of `slot` (after the block's own checks of height
    and parent): follow finality of passed proposals, then run rule effects now due."""
    if state.tables["gov_final"]:
        _follow_finality(state, slot)
    for key in sorted(k for k in state.tables["gov_due"] if k[0] <= slot):
        state.set("gov_due", key, None)
        action = ACTION.parse(state.tables["proposal"][key[1:]][3])
        if isinstance(action, DeployRule):
            state.contracts.install(key[1:], action.code)
        else:
            state.contracts.retire((action.deployer, action.nonce))


def _follow_finality(state: LedgerState, slot: int) -> None:
    rows = state.tables["gov_final"]
    since = set_since(state, slot)
    n = len(validators_at(state, slot))
    q = quorum(n)
    votes = [finality.Vote(s, src, just) for (s,), (src, just) in sorted(rows.items()) if s >= since]
    parent_just = rows[max(rows)][1]
    vote = finality.vote_of([v for v in votes if v.slot >= slot - n], slot, parent_just, n, q)
    state.set("gov_final", (slot,), (vote.src, vote.just))
    final = finality.final_slot(votes + [vote], n, q)
    waiting = sorted((row[2], pid) for pid, row in state.tables["proposal"].items() if row[1] == PASSED)
    for passed_at, pid in waiting:
        if final is not None and passed_at <= final:
            _enact(state, pid, slot)
    left = [passed_at for passed_at, pid in waiting if final is None or passed_at > final]
    keep_from = max(since, min(left + [slot - n])) if left else None
    for key in [k for k in rows if keep_from is None or k[0] < keep_from]:
        state.set("gov_final", key, None)


def _set_change_slot(state: LedgerState, boundary: int) -> int:
    """The boundary a validator-set change takes effect: `boundary`, or the one after the
    last change already scheduled, so that one boundary changes the set once at most."""
    last = max((s for (s,) in state.tables["validators"]), default=-1)
    return boundary if last < boundary else next_epoch_boundary(state, last)


def _enact(state: LedgerState, pid: tuple[int, int], final_at: int) -> None:
    """Schedule the effect of passed proposal `pid`, whose block a block of slot
    `final_at` made final: it takes effect at the next epoch boundary."""
    expiry, _status, _slot, raw = state.tables["proposal"][pid]
    action = ACTION.parse(raw)
    boundary = next_epoch_boundary(state, final_at)
    if _changes_validators(state, action, boundary):
        boundary = _set_change_slot(state, boundary)
    done = _EFFECTS[type(action)](state, pid, action, boundary)
    state.set("proposal", pid, (expiry, ENACTED if done else VOID, boundary, raw))


def _new_set(state: LedgerState, since: int, validators) -> None:
    state.set("validators", (since,), tuple(sorted(validators)))


def _add(state: LedgerState, pid, a: AddMember, since: int) -> bool:
    if index_of(state, a.key) is not None or (a.name and _name_taken(state, a.name, since)):
        return False
    index = next_index(state)
    state.set("member", (index,), (a.key, a.name.encode(), a.hardware, since, 0, *(g.encode() for g in a.groups)))
    if a.role == VALIDATOR:
        _new_set(state, since, validators_at(state, since) + (index,))
    return True


def _remove(state: LedgerState, pid, a: RemoveMember, since: int) -> bool:
    record = _record(state, a.member)
    if record is None or record[4] != 0 or validators_at(state, since) == (a.member,):
        return False
    key, name, groups, joined, _until = record
    state.set("member", (a.member,),
              (key, name.encode(), hardware_of(state, a.member), joined, since, *(g.encode() for g in groups)))
    validators = validators_at(state, since)
    if a.member in validators:
        _new_set(state, since, set(validators) - {a.member})
    return True


def _grant(state: LedgerState, pid, a: GrantValidator, since: int) -> bool:
    validators = validators_at(state, since)
    if a.member in validators or member_at(state, a.member, since) is None or is_removed(state, a.member):
        return False
    _new_set(state, since, validators + (a.member,))
    return True


def _revoke(state: LedgerState, pid, a: RevokeValidator, since: int) -> bool:
    validators = validators_at(state, since)
    if a.member not in validators or len(validators) == 1:
        return False
    _new_set(state, since, set(validators) - {a.member})
    return True


def _due(state: LedgerState, pid, a, since: int) -> bool:
    state.set("gov_due", (since, *pid), ())
    return True


def _set_param(state: LedgerState, pid, a: SetParam, since: int) -> bool:
    state.set("param", (a.param, since), (a.value,))
    return True


def _approve(state: LedgerState, pid, a: ApproveUpdate, since: int) -> bool:
    if (a.hardware, a.version) in state.tables["update"]:
        return False
    state.set("update", (a.hardware, a.version), (since, a.size, a.chunk, a.digest))
    return True


_EFFECTS: dict[type, Callable] = {
    AddMember: _add,
    RemoveMember: _remove,
    GrantValidator: _grant,
    RevokeValidator: _revoke,
    DeployRule: _due,
    RetireRule: _due,
    SetParam: _set_param,
    ApproveUpdate: _approve,
}
