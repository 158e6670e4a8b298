"""Transaction bodies from what a person or a sensor script says: names and values in
their units in, wire bodies (chain/wire.py) out, or a `BodyError` naming what is wrong.

    {"kind": "reading", "sensor": "moisture", "value": 28.7}          -> Reading(MOISTURE, 287)
    {"kind": "command", "to": "valve-3", "action": "open", "args": [600]}
    {"kind": "deploy", "code": "<bytecode hex>"}                      (validators only, until governance)
    {"kind": "proposal", "action": "add_member", "key": "<hex>", "name": "probe-9", "role": "member",
     "groups": ["field-a"], "hardware": 43, "ttl": 240}                -> Proposal(240, AddMember(...))
    {"kind": "vote", "proposer": "gw-1", "nonce": 12}                  -> Vote(0, 12)

Proposal actions: add_member, remove_member, grant_validator, revoke_validator (`member`,
`evidence` slot for removals), deploy_rule (`code` hex), retire_rule (`deployer`, `nonce`),
set_param (`param`: slot_seconds, epoch_slots, duty_cycle_bp, max_block_txs; `value`),
approve_update (`version`, `hardware`, `size`, `chunk`, `digest` hex). `ttl` defaults to
two epochs.

Readings go in the fixed-point unit of `SENSOR_UNITS` (28.7 % moisture is 287 on air).
"""
from __future__ import annotations

import math
from blockiot.chain.errors import ChainError
from blockiot.chain.genesis import Genesis
from blockiot.chain.genesis import ROLES
from blockiot.chain.wire import (
    SENSOR_UNITS,
    Action,
    AddMember,
    ApproveUpdate,
    Command,
    ContractDeploy,
    DeployRule,
    GrantValidator,
    Param,
    Proposal,
    Reading,
    RemoveMember,
    RetireRule,
    RevokeValidator,
    Sensor,
    SetParam,
    Vote,
)

VALUE_LIMIT = 2**31  # a reading's fixed-point value lies within +-VALUE_LIMIT
ARG_LIMIT = 2**31


class BodyError(ChainError):
    """A request that does not describe a valid transaction."""


def sensor_by_name(name: str) -> Sensor:
    try:
        return Sensor[str(name).strip().upper().replace("-", "_")]
    except KeyError:
        known = ", ".join(s.name.lower() for s in Sensor)
        raise BodyError(f"unknown sensor {name!r}; known: {known}") from None


def action_by_name(name: str) -> Action:
    """An action a member may order (REPORT is what a device sends back, not an order)."""
    action = Action.__members__.get(str(name).strip().upper())
    if action is None or action is Action.REPORT:
        known = ", ".join(a.name.lower() for a in Action if a is not Action.REPORT)
        raise BodyError(f"unknown action {name!r}; known: {known}")
    return action


def member_by_name(genesis: Genesis, name) -> int:
    """A member's index from its name or its index."""
    for member in genesis.members:
        if member.name == name or str(member.index) == str(name):
            return member.index
    raise BodyError(f"no member named {name!r} in cluster {genesis.name}")


def to_fixed(sensor: Sensor, value) -> int:
    """A reading in its unit as the integer that goes on air."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (math.inf, -math.inf):
        raise BodyError(f"a reading's value is a finite number, not {value!r}")
    unit, decimals = SENSOR_UNITS[sensor]
    try:
        fixed = round(float(value) * 10**decimals)
    except (OverflowError, ValueError):  # inf, nan, or an integer beyond any float
        fixed = None
    if fixed is None or not -VALUE_LIMIT < fixed < VALUE_LIMIT:
        raise BodyError(f"{value} {unit} is out of range for {sensor.name.lower()}")
    return fixed


def from_fixed(sensor: int, value: int) -> float:
    """The on-air integer of a reading in its unit (unknown sensors: as is)."""
    known = SENSOR_UNITS.get(sensor)
    return value if known is None else value / 10 ** known[1]


def body_from_request(genesis: Genesis, request: dict, *, validator: bool):
    """The wire body a submit request describes (see the module docstring)."""
    if not isinstance(request, dict):
        raise BodyError("a transaction request is a JSON object with a `kind`")
    kind = request.get("kind")
    if kind == "reading":
        sensor = sensor_by_name(request.get("sensor", ""))
        return Reading(sensor, to_fixed(sensor, request.get("value")))
    if kind == "command":
        args = request.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, int) and not isinstance(a, bool) and 0 <= a < ARG_LIMIT for a in args):
            raise BodyError(f"command arguments are whole numbers 0..{ARG_LIMIT - 1}, not {args!r}")
        return Command(member_by_name(genesis, request.get("to")), action_by_name(request.get("action", "")), tuple(args))
    if kind == "deploy":
        if not validator:
            raise BodyError("only a validator deploys rules (until cluster governance decides them)")
        try:
            code = bytes.fromhex(request.get("code", ""))
        except (TypeError, ValueError):
            raise BodyError("deploy needs the rule's bytecode as hex in `code`") from None
        return ContractDeploy(code)
    if kind == "proposal":
        ttl = request.get("ttl", 2 * genesis.params.epoch_slots)
        return Proposal(_whole(ttl, "ttl", 1), _action(genesis, request))
    if kind == "vote":
        return Vote(member_by_name(genesis, request.get("proposer")), _whole(request.get("nonce"), "nonce", 1))
    raise BodyError(f"unknown transaction kind {kind!r}; known: reading, command, deploy, proposal, vote")


def _whole(value, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < ARG_LIMIT:
        raise BodyError(f"`{what}` is a whole number {low}..{ARG_LIMIT - 1}, not {value!r}")
    return value


def _hex(value, what: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise BodyError(f"`{what}` is hex, not {value!r}") from None


def _evidence(request: dict) -> int | None:
    evidence = request.get("evidence")
    return None if evidence is None else _whole(evidence, "evidence")


def _action(genesis: Genesis, r: dict):
    """The proposal action a request names (see the module docstring)."""
    action = r.get("action")
    if action == "add_member":
        role = r.get("role", "member")
        if role not in ROLES:
            raise BodyError(f"`role` is one of {', '.join(ROLES)}, not {role!r}")
        groups = r.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise BodyError(f"`groups` is a list of names, not {groups!r}")
        return AddMember(_hex(r.get("key"), "key"), ROLES.index(role), str(r.get("name", "")), tuple(groups),
                         _whole(r.get("hardware", 0), "hardware"))
    if action in ("remove_member", "revoke_validator"):
        kind = RemoveMember if action == "remove_member" else RevokeValidator
        return kind(member_by_name(genesis, r.get("member")), _evidence(r))
    if action == "grant_validator":
        return GrantValidator(member_by_name(genesis, r.get("member")))
    if action == "deploy_rule":
        return DeployRule(_hex(r.get("code"), "code"))
    if action == "retire_rule":
        return RetireRule(member_by_name(genesis, r.get("deployer")), _whole(r.get("nonce"), "nonce", 1))
    if action == "set_param":
        param = Param.__members__.get(str(r.get("param", "")).upper())
        if param is None:
            raise BodyError(f"`param` is one of {', '.join(p.name.lower() for p in Param)}, not {r.get('param')!r}")
        return SetParam(param, _whole(r.get("value"), "value", 1))
    if action == "approve_update":
        return ApproveUpdate(_whole(r.get("version"), "version"), _whole(r.get("hardware"), "hardware"),
                             _whole(r.get("size"), "size", 1), _whole(r.get("chunk"), "chunk", 1),
                             _hex(r.get("digest"), "digest"))
    raise BodyError(f"unknown proposal action {action!r}; known: add_member, remove_member, grant_validator, "
                    "revoke_validator, deploy_rule, retire_rule, set_param, approve_update")
