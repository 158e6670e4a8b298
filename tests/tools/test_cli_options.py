"""`blockiot.tools.options`: numbers checked when parsed, and every numeric option of the
commands outside `blockiot node` refusing what makes no sense (exit 2, the option named,
no traceback, nothing run)."""
from __future__ import annotations

import argparse

import pytest

from blockiot.tools.cli import main
from blockiot.tools.options import (
    float_range,
    fraction,
    int_range,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    preset_name,
    region_name,
)


@pytest.mark.parametrize(
    "parse, text, value",
    [
        (positive_int, "1", 1),
        (non_negative_int, "0", 0),
        (int_range(0, 7), "7", 7),
        (int_range(4), "400", 400),
        (positive_float, "869.525e6", 869.525e6),
        (positive_float, "1e-3", 0.001),
        (non_negative_float, "0", 0.0),
        (float_range(-9, 30), "-9", -9.0),
        (fraction, "1", 1.0),
        (preset_name, "long_fast", "LongFast"),
        (region_name, "eu_868", "EU868"),
    ],
)
def test_good_values_are_returned(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize(
    "parse, text, message",
    [
        (positive_int, "0", "must be a whole number >= 1, not '0'"),
        (positive_int, "2.5", "must be a whole number >= 1, not '2.5'"),
        (non_negative_int, "-1", "must be a whole number >= 0, not '-1'"),
        (int_range(0, 7), "8", "must be a whole number from 0 to 7, not '8'"),
        (positive_float, "0", "must be a finite number > 0, not '0'"),
        (positive_float, "-5", "must be a finite number > 0, not '-5'"),
        (positive_float, "nan", "must be a finite number > 0, not 'nan'"),
        (positive_float, "inf", "must be a finite number > 0, not 'inf'"),
        (positive_float, "soon", "must be a finite number > 0, not 'soon'"),
        (non_negative_float, "-0.1", "must be a finite number >= 0, not '-0.1'"),
        (non_negative_float, "-inf", "must be a finite number >= 0, not '-inf'"),
        (float_range(0, 1), "1.5", "must be a finite number from 0 to 1, not '1.5'"),
        (fraction, "0", "must be a finite number > 0 and <= 1, not '0'"),
        (preset_name, "SuperFast", "unknown preset 'SuperFast'; valid presets: ShortTurbo"),
        (region_name, "ANZ", "unknown region 'ANZ'; valid regions: EU868, US915"),
    ],
)
def test_bad_values_are_refused_with_what_is_allowed(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert str(info.value).startswith(message)


# (command line, option named in the message): each value is refused before anything runs.
REFUSED = [
    (["sim", "--nodes", "0"], "--nodes"),
    (["sim", "--validators", "-1"], "--validators"),
    (["sim", "--hours", "-5"], "--hours"),
    (["sim", "--hours", "0"], "--hours"),
    (["sim", "--loss", "nan"], "--loss"),
    (["sim", "--burst", "120,30,2"], "--burst"),
    (["sim", "--seed", "-1"], "--seed"),
    (["sim", "--slot-seconds", "0"], "--slot-seconds"),
    (["sim", "--tx-interval", "0"], "--tx-interval"),
    (["sim", "--field", "inf"], "--field"),
    (["sim", "--hop-limit", "8"], "--hop-limit"),
    (["sim", "--frequency", "-1"], "--frequency"),
    (["sim", "--tx-power", "nan"], "--tx-power"),
    (["sim", "--path-loss-exponent", "0"], "--path-loss-exponent"),
    (["sim", "--path-loss-d0", "-1"], "--path-loss-d0"),
    (["sim", "--capture-db", "-inf"], "--capture-db"),
    (["sim", "--preset", "SuperFast"], "--preset"),
    (["airtime", "--bytes", "-1"], "--bytes"),
    (["airtime", "--bytes", "10", "--frequency", "0"], "--frequency"),
    (["airtime", "--bytes", "10", "--fraction", "1.5"], "--fraction"),
    (["demo", "--slots", "-1"], "--slots"),
    (["demo", "--field-nodes", "3"], "--field-nodes"),
    (["demo", "--seed", "-1"], "--seed"),
    (["demo", "--preset", "SuperFast"], "--preset"),
    (["radio", "virtual", "--count", "0"], "--count"),
    (["radio", "virtual", "--loss", "-0.5"], "--loss"),
    (["radio", "virtual", "--time-scale", "0"], "--time-scale"),
    (["radio", "virtual", "--seed", "-2"], "--seed"),
    (["radio", "virtual", "--preset", "SuperFast"], "--preset"),
    (["bench", "codec", "--txs", "0"], "--txs"),
    (["bench", "contracts", "--executions", "-1"], "--executions"),
    (["bench", "radio", "--size", "0"], "--size"),
    (["bench", "radio", "--time-scale", "nan"], "--time-scale"),
    (["bench", "safety", "--hours", "-1"], "--hours"),
    (["bench", "safety", "--n", "0"], "--n"),
    (["bench", "safety", "--seed", "-1"], "--seed"),
    (["contract", "test", "x.rule", "--readings", "r.csv", "--group", "field-a=1,-2"], "--group"),
    (["contract", "test", "x.rule", "--readings", "r.csv", "--group", "field-a"], "--group"),
]


@pytest.mark.parametrize("args, option", REFUSED, ids=[" ".join(args) for args, _ in REFUSED])
def test_numeric_options_out_of_range_exit_2_naming_the_option(capsys, args, option):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert f"error: argument {option}: " in captured.err, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
