"""`blockiot sim`: the JSON report has every figure the issue asks for, the summary reads,
and mistakes are refused plainly."""
from __future__ import annotations

import json

import pytest

from blockiot.tools.cli import main

REQUIRED = {
    "finality_p50_slots", "finality_p95_slots", "finality_p50_s", "tx_inclusion_p95_s", "txs_sent",
    "txs_finalized", "bytes_on_air", "max_node_airtime_fraction", "duty_cycle_violations",
    "finalized_conflicts", "finalized_prefix_agree", "wall_s",
}


def test_json_report(capsys):
    assert main(["sim", "--nodes", "6", "--hours", "0.2", "--seed", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert REQUIRED <= set(report)
    assert report["scenario"] == "baseline" and report["nodes"] == 6 and report["validators"] == 4
    assert report["finalized_conflicts"] == 0 and report["bytes_on_air"]["BLOCK"] > 0


def test_summary_and_options(capsys):
    assert main(["sim", "--nodes", "5", "--validators", "4", "--hours", "0.1", "--preset", "ShortFast",
                 "--scenario", "lossy", "--loss", "0.1", "--slot-seconds", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lossy: 5 nodes, 4 validators, 0.1 h on ShortFast, 10 s slots")
    assert "finality (quorum)" in out and "invariants: finalized conflicts 0" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nodes", "2", "--validators", "4"], "validators <= nodes"),
        (["--preset", "Fastest"], "unknown preset"),
        (["--loss", "1.5"], "argument --loss: must be a finite number from 0 to 1, not '1.5'"),
        (["--loss", "1"], "loss must be within [0, 1)"),
        (["--hours", "nan"], "argument --hours: must be a finite number > 0, not 'nan'"),
        (["--region", "ANZ"], "unknown region 'ANZ'"),
        (["--region", "NONE"], "invalid choice: 'NONE' (choose from 'EU868', 'US915')"),
    ],
)
def test_mistakes_are_refused_plainly(capsys, args, message):
    assert main(["sim", "--hours", "0.05", *args]) == 2
    assert message in capsys.readouterr().err
