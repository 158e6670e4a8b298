"""Transaction bodies from requests (chain/runtime/bodies.py): readings in their units,
commands by names, deploys for validators only, and a `BodyError` that says what is wrong
for anything else."""
from __future__ import annotations

import math

import pytest

from blockiot.chain.errors import ChainError
from blockiot.chain.runtime.bodies import (
    BodyError,
    action_by_name,
    body_from_request,
    from_fixed,
    member_by_name,
    sensor_by_name,
    to_fixed,
)
from blockiot.chain.wire import Action, Command, ContractDeploy, Reading, Sensor


def body(genesis, request, *, validator=False):
    return body_from_request(genesis, request, validator=validator)


@pytest.mark.parametrize(("sensor", "value", "fixed"), [
    ("moisture", 28.7, Reading(Sensor.MOISTURE, 287)),
    ("temperature", -3.25, Reading(Sensor.TEMPERATURE, -325)),
    ("voltage", 3.3, Reading(Sensor.VOLTAGE, 3300)),
    ("rain_forecast", 40, Reading(Sensor.RAIN_FORECAST, 40)),
    ("State-Of-Charge", 99.5, Reading(Sensor.STATE_OF_CHARGE, 995)),
    (" MOISTURE ", 0, Reading(Sensor.MOISTURE, 0)),
])
def test_a_reading_goes_on_air_in_its_fixed_point_unit(genesis, sensor, value, fixed):
    assert body(genesis, {"kind": "reading", "sensor": sensor, "value": value}) == fixed


def test_from_fixed_is_the_reading_in_its_unit():
    assert from_fixed(Sensor.MOISTURE, 287) == pytest.approx(28.7)
    assert from_fixed(Sensor.VOLTAGE, 3300) == pytest.approx(3.3)
    assert from_fixed(99, 1234) == 1234  # an unknown sensor: as is


def test_an_unknown_sensor_names_the_known_ones(genesis):
    with pytest.raises(BodyError, match=r"unknown sensor 'soil'.*moisture.*state_of_charge"):
        body(genesis, {"kind": "reading", "sensor": "soil", "value": 1})
    with pytest.raises(BodyError, match="unknown sensor"):
        body(genesis, {"kind": "reading", "value": 1})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, False, None, "28.7", [28.7]])
def test_a_reading_value_is_a_finite_number(genesis, value):
    with pytest.raises(BodyError, match="finite number"):
        body(genesis, {"kind": "reading", "sensor": "moisture", "value": value})


def test_a_reading_value_must_fit_the_fixed_point_range():
    assert to_fixed(Sensor.RAIN_FORECAST, 2**31 - 1) == 2**31 - 1
    for value in (2**31, -(2**31), 1e12):
        with pytest.raises(BodyError, match="out of range"):
            to_fixed(Sensor.RAIN_FORECAST, value)
    with pytest.raises(BodyError, match="out of range"):
        to_fixed(Sensor.MOISTURE, 2**31 / 10)  # in range as a number, not once in tenths


def test_a_huge_whole_number_is_a_body_error(genesis):
    with pytest.raises(BodyError):
        body(genesis, {"kind": "reading", "sensor": "moisture", "value": 10**400})


def test_a_command_by_names(genesis):
    assert body(genesis, {"kind": "command", "to": "valve-1", "action": "open", "args": [600]}) == \
        Command(3, Action.OPEN, (600,))
    assert body(genesis, {"kind": "command", "to": 3, "action": "CLOSE"}) == Command(3, Action.CLOSE, ())
    assert body(genesis, {"kind": "command", "to": "2", "action": " dim ", "args": [0, 2**31 - 1]}) == \
        Command(2, Action.DIM, (0, 2**31 - 1))


def test_an_unknown_member_names_the_cluster(genesis):
    with pytest.raises(BodyError, match="no member named 'valve-9' in cluster test-cluster"):
        body(genesis, {"kind": "command", "to": "valve-9", "action": "open"})
    with pytest.raises(BodyError, match="no member"):
        body(genesis, {"kind": "command", "to": 4, "action": "open"})
    with pytest.raises(BodyError, match="no member"):
        body(genesis, {"kind": "command", "action": "open"})
    assert member_by_name(genesis, "val-b") == 1


def test_an_unknown_action_names_the_known_ones_without_report(genesis):
    with pytest.raises(BodyError, match="unknown action 'explode'; known: open, close") as info:
        body(genesis, {"kind": "command", "to": "valve-1", "action": "explode"})
    assert "report" not in str(info.value)
    assert action_by_name("Open") is Action.OPEN


def test_report_is_not_an_action_a_person_orders(genesis):
    with pytest.raises(BodyError):
        body(genesis, {"kind": "command", "to": "valve-1", "action": "report", "args": [1, 3]})


@pytest.mark.parametrize("args", [[-1], [2**31], [True], [1.5], ["600"], "600", 600, None])
def test_command_arguments_are_whole_numbers_in_range(genesis, args):
    with pytest.raises(BodyError, match="whole numbers"):
        body(genesis, {"kind": "command", "to": "valve-1", "action": "open", "args": args})


def test_deploy_is_for_validators_only(genesis):
    request = {"kind": "deploy", "code": "00ff10"}
    with pytest.raises(BodyError, match="only a validator"):
        body(genesis, request)
    assert body(genesis, request, validator=True) == ContractDeploy(bytes.fromhex("00ff10"))


@pytest.mark.parametrize("code", ["xyz", "0", None, 12])
def test_deploy_needs_hex_code(genesis, code):
    with pytest.raises(BodyError, match="bytecode as hex"):
        body(genesis, {"kind": "deploy", "code": code}, validator=True)


@pytest.mark.parametrize("request_", [None, [], "reading", {"kind": "transfer"}, {}])
def test_anything_else_is_a_body_error(genesis, request_):
    with pytest.raises(BodyError):
        body(genesis, request_)


def test_a_body_error_is_a_chain_error_with_a_message_for_people():
    assert issubclass(BodyError, ChainError) and BodyError.user_facing


def test_sensor_by_name_is_the_enum():
    assert sensor_by_name("humidity") is Sensor.HUMIDITY


def test_proposals_and_votes_name_members_and_default_to_two_epochs(genesis):
    from blockiot.chain.wire import AddMember, Param, Proposal, RemoveMember, SetParam, Vote

    last = genesis.members[-1]
    removal = body(genesis, {"kind": "proposal", "action": "remove_member", "member": last.name, "evidence": 12})
    assert removal == Proposal(2 * genesis.params.epoch_slots, RemoveMember(last.index, 12))
    add = body(genesis, {"kind": "proposal", "action": "add_member", "key": "11" * 32, "name": "probe-9",
                         "role": "validator", "groups": ["field-a"], "hardware": 43, "ttl": 60})
    assert add == Proposal(60, AddMember(bytes([0x11]) * 32, 1, "probe-9", ("field-a",), 43))
    assert body(genesis, {"kind": "proposal", "action": "set_param", "param": "Epoch_Slots", "value": 60}).action \
        == SetParam(Param.EPOCH_SLOTS, 60)
    assert body(genesis, {"kind": "vote", "proposer": genesis.members[0].name, "nonce": 3}) == Vote(0, 3)


@pytest.mark.parametrize(("request_", "message"), [
    ({"kind": "proposal", "action": "rename"}, "unknown proposal action"),
    ({"kind": "proposal", "action": "add_member", "key": "zz", "name": "x"}, "`key` is hex"),
    ({"kind": "proposal", "action": "add_member", "key": "11", "name": "x", "role": "king"}, "`role` is one of"),
    ({"kind": "proposal", "action": "add_member", "key": "11", "name": "x", "groups": "a"}, "`groups` is a list"),
    ({"kind": "proposal", "action": "remove_member", "member": "nobody"}, "no member named"),
    ({"kind": "proposal", "action": "set_param", "param": "speed", "value": 1}, "`param` is one of"),
    ({"kind": "proposal", "action": "set_param", "param": "epoch_slots", "value": 0}, "`value` is a whole number"),
    ({"kind": "proposal", "action": "retire_rule", "deployer": 0, "nonce": True}, "`nonce` is a whole number"),
    ({"kind": "proposal", "action": "grant_validator", "member": 0, "ttl": -1}, "`ttl` is a whole number"),
    ({"kind": "vote", "proposer": 0}, "`nonce` is a whole number"),
])
def test_a_malformed_proposal_or_vote_names_what_is_wrong(genesis, request_, message):
    with pytest.raises(BodyError, match=message):
        body(genesis, request_)
