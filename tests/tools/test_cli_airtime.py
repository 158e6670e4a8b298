"""`blockiot airtime`: figures per packet and per hour, JSON output, clear user errors."""
from __future__ import annotations

import json

import pytest

from blockiot.radio.airtime import meshtastic_packet_len, preset, time_on_air
from blockiot.tools.cli import main


def run_json(capsys, *args: str) -> dict:
    assert main(["airtime", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_longfast_on_the_meshtastic_eu_band(capsys):
    report = run_json(capsys, "--preset", "LongFast", "--bytes", "80", "--frequency", "869.525e6")
    airtime = time_on_air(meshtastic_packet_len(80), preset("LongFast"))
    assert report["phy_bytes"] == meshtastic_packet_len(80)
    assert report["time_on_air_s"] == pytest.approx(airtime)
    assert report["packets_per_hour"] == int(360 / airtime)  # 10 % of an hour
    assert report["payload_bytes_per_hour"] == 80 * report["packets_per_hour"]
    assert "g3" in report["budget"] and report["refused"] is None


def test_raw_bytes_are_the_whole_lora_payload(capsys):
    report = run_json(capsys, "--preset", "long_fast", "--bytes", "80", "--raw")
    assert report["phy_bytes"] == 80
    assert report["time_on_air_s"] == pytest.approx(0.845824)
    assert report["packets_per_hour"] == int(36 / 0.845824)  # EU868 default: 1 %


def test_us915_refuses_a_packet_longer_than_the_dwell_limit(capsys):
    report = run_json(capsys, "--preset", "LongSlow", "--bytes", "20", "--region", "US915")
    assert report["packets_per_hour"] == 0
    assert "400 ms dwell" in report["refused"]


def test_text_output(capsys):
    assert main(["airtime", "--preset", "ShortFast", "--bytes", "150", "--region", "EU868"]) == 0
    out = capsys.readouterr().out
    assert "ShortFast (SF7, 250 kHz, CR 4/5, 16-symbol preamble)" in out
    assert "150 B payload + 24 B Meshtastic = 174 B on air" in out
    assert "packets" in out and "B of payload" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "Fastest", "--bytes", "10"], "unknown preset 'Fastest'; valid presets: ShortTurbo"),
        (["--bytes", "232"], "does not fit one Meshtastic packet (max 231 B"),
        (["--bytes", "256", "--raw"], "0..255 bytes"),
        (["--bytes", "10", "--frequency", "869.3e6"], "outside every EU868 sub-band"),
        (["--bytes", "10", "--region", "Mars"], "unknown region 'Mars'"),
        (["--bytes", "10", "--fraction", "0.5"], "exceeds the legal 1.0%"),
        # Refused when parsed: argparse's usage line, then the option and what it allows.
        (["--bytes", "-1"], "argument --bytes: must be a whole number >= 0, not '-1'"),
        (["--bytes", "ten"], "argument --bytes: must be a whole number >= 0, not 'ten'"),
        (["--bytes", "10", "--frequency=-869e6"], "argument --frequency: must be a finite number > 0"),
        (["--bytes", "10", "--frequency", "nan"], "argument --frequency: must be a finite number > 0, not 'nan'"),
        (["--bytes", "10", "--fraction", "0"], "argument --fraction: must be a finite number > 0 and <= 1"),
        (["--bytes", "10", "--fraction", "inf"], "argument --fraction: must be a finite number > 0 and <= 1"),
    ],
)
def test_user_mistakes_get_a_clear_message_and_status_2(capsys, args, message):
    assert main(["airtime", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(("blockiot airtime: ", "usage: blockiot airtime")) and message in err
    assert "Traceback" not in err
