"""Transaction bodies from what a person or a sensor script says: names and values in
their units in, wire bodies (chain/wire.py) out, or a `BodyError` naming what is wrong.

    {"kind": "reading", "sensor": "moisture", "value": 28.7}          -> Reading(MOISTURE, 287)
    {"kind": "command", "to": "valve-3", "action": "open", "args": [600]}
    {"kind": "deploy", "code": "<bytecode hex>"}                      (validators only, until governance)

Readings go in the fixed-point unit of `SENSOR_UNITS` (28.7 % moisture is 287 on air).
"""
from __future__ import annotations

import math
from blockiot.chain.errors import ChainError
from blockiot.chain.genesis import Genesis
from blockiot.chain.wire import SENSOR_UNITS, Action, Command, ContractDeploy, Reading, Sensor

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
    raise BodyError(f"unknown transaction kind {kind!r}; known: reading, command, deploy")
