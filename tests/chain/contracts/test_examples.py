"""The four worked examples in examples/contracts, run end to end on readings."""
from __future__ import annotations

from blockiot.chain.contracts import DeviceCommand, Transfer
from blockiot.chain.wire import Action, Sensor

DAY = 2880
HOUR = 120


def commands(outcomes) -> list[DeviceCommand]:
    assert all(o.effects.ok for o in outcomes), [o.effects.error for o in outcomes]
    return [c for o in outcomes for c in o.effects.commands]


# --- 1. agriculture ----------------------------------------------------------------------

OPEN_10_MIN = DeviceCommand(3, Action.OPEN, (600,))


def irrigation(example, dry_run, rain_percent=5):
    run = dry_run(example("irrigation"), groups={"field-a": (1, 2)})
    run.block(1, [(12, Sensor.RAIN_FORECAST, rain_percent)])
    return run


def test_irrigation_opens_the_valve_when_a_probe_is_dry_and_no_rain_is_forecast(example, dry_run):
    run = irrigation(example, dry_run)
    assert commands(run.block(10, [(1, Sensor.MOISTURE, 310)])) == []            # 31.0 %: wet enough
    assert commands(run.block(11, [(2, Sensor.MOISTURE, 275)])) == [OPEN_10_MIN]  # 27.5 %
    assert commands(run.block(12, [(7, Sensor.MOISTURE, 100)])) == []            # not a field-a probe


def test_irrigation_waits_when_rain_is_forecast(example, dry_run):
    run = irrigation(example, dry_run, rain_percent=60)
    assert commands(run.block(10, [(1, Sensor.MOISTURE, 200)])) == []
    assert commands(run.block(20, [(12, Sensor.RAIN_FORECAST, 0), (1, Sensor.MOISTURE, 200)])) == [OPEN_10_MIN]


def test_irrigation_opens_at_most_twice_a_day_and_not_while_watering(example, dry_run):
    run = irrigation(example, dry_run)
    opened = []
    for slot in range(10, DAY, 15):  # a dry probe reports every 15 slots all day
        opened += [slot for _ in commands(run.block(slot, [(1, Sensor.MOISTURE, 200)]))]
    assert opened == [10, 40]  # the second waits until the first watering's 20 slots are over
    assert commands(run.block(DAY + 5, [(2, Sensor.MOISTURE, 200)])) == [OPEN_10_MIN]  # a new day


# --- 2. energy grid ------------------------------------------------------------------------

def test_energy_matches_requests_to_offers_and_settles_in_the_internal_unit(example, dry_run):
    run = dry_run(example("energy"), groups={"microgrid": (1, 2, 3, 4)})
    run.block(1, [(1, Sensor.POWER, 5000), (2, Sensor.POWER, 3000)])  # offers: 500 W and 300 W
    [outcome] = run.block(2, [(3, Sensor.POWER, -6000)])              # a battery asks for 600 W
    e = outcome.effects
    assert e.transfers == (Transfer(3, 1, 1000), Transfer(3, 2, 200))  # 2 units per Wh
    assert e.commands == (DeviceCommand(1, Action.DISCHARGE, (500,)), DeviceCommand(2, Action.DISCHARGE, (100,)),
                          DeviceCommand(3, Action.CHARGE, (600,)))
    assert run.host.balances == {1: 1000, 2: 200, 3: -1200}
    [again] = run.block(3, [(4, Sensor.POWER, -5000)])  # only 200 W left on offer, from member 2
    assert again.effects.commands == (DeviceCommand(2, Action.DISCHARGE, (200,)), DeviceCommand(4, Action.CHARGE, (200,)))


def test_energy_does_not_serve_members_past_their_credit_limit_or_sell_to_themselves(example, dry_run):
    run = dry_run(example("energy"), groups={"microgrid": (1, 2)}, balances={2: -5000})
    run.block(1, [(1, Sensor.POWER, 1000)])
    assert commands(run.block(2, [(2, Sensor.POWER, -500)])) == []  # exactly at the limit: not served
    assert commands(run.block(3, [(1, Sensor.POWER, -500)])) == []  # its own offer is not for sale
    run.host.balances[2] = -4999
    assert commands(run.block(4, [(2, Sensor.POWER, -500)])) == [DeviceCommand(1, Action.DISCHARGE, (50,)),
                                                                 DeviceCommand(2, Action.CHARGE, (50,))]


# --- 3. smart city -------------------------------------------------------------------------

LAMPS = (40, 41)


def dim(level):
    return [DeviceCommand(lamp, Action.DIM, (level,)) for lamp in LAMPS]


def test_street_lights_follow_daylight_quiet_hours_and_motion(example, dry_run):
    run = dry_run(example("street_lights"), groups={"main-lamps": LAMPS, "main-motion": (50, 51)})
    assert commands(run.block(21 * HOUR, [(20, Sensor.LIGHT, 10)])) == dim(80)     # 21:00, dark
    assert commands(run.block(22 * HOUR, [])) == []                                 # no change, no traffic
    assert commands(run.block(23 * HOUR + 1, [])) == dim(20)                        # quiet hours
    seen = 23 * HOUR + 30
    assert commands(run.block(seen, [(51, Sensor.MOTION, 1)])) == dim(100)          # someone walks by
    assert commands(run.block(seen + 5, [(50, Sensor.MOTION, 2)])) == []            # already bright
    assert commands(run.block(seen + 20, [])) == dim(20)                            # boost over
    assert commands(run.block(DAY + 5 * HOUR + 1, [])) == dim(80)                   # 05:00, quiet hours end
    assert commands(run.block(DAY + 6 * HOUR, [(20, Sensor.LIGHT, 900)])) == dim(0)  # morning light


# --- 4. healthcare -------------------------------------------------------------------------

def test_cold_chain_alarm_after_three_readings_out_of_range_once(example, dry_run):
    run = dry_run(example("cold_chain"))
    notify = lambda code: [DeviceCommand(31, Action.NOTIFY, (code,)), DeviceCommand(32, Action.NOTIFY, (code,))]  # noqa: E731
    temps = [(1, 450), (2, 910), (3, 950), (4, 1000), (5, 1100), (6, 500), (7, 150), (8, 100), (9, 120)]
    issued = {slot: commands(run.block(slot, [(30, Sensor.TEMPERATURE, t)])) for slot, t in temps}
    assert issued[4] == notify(1)  # third warm reading in a row
    assert issued[9] == notify(2)  # third cold one after the fridge recovered
    assert all(cmds == [] for slot, cmds in issued.items() if slot not in (4, 9))
    assert commands(run.block(10, [(33, Sensor.TEMPERATURE, 2000)])) == []  # another fridge's sensor
