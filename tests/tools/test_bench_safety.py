"""`blockiot bench safety`: the installed command runs the adversarial search and prints
every figure (presence and types, not values), and refuses bad arguments plainly."""
from __future__ import annotations

import json
import subprocess
import sys

from blockiot.tools.cli import main

FIGURES = {
    "schedules", "simulated_hours", "violations", "violations_by_kind", "first_violation",
    "finality_p50_slots", "finality_p95_slots", "max_resume_slots",
}


def test_bench_safety_json_has_every_figure():
    result = subprocess.run([sys.executable, "-m", "blockiot.tools.cli", "bench", "safety", "--hours", "0.2", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert FIGURES <= set(figures)
    assert figures["schedules"] >= 1 and figures["simulated_hours"] >= 0.2
    assert type(figures["violations"]) is int and isinstance(figures["violations_by_kind"], dict)
    for key in ("finality_p50_slots", "finality_p95_slots", "max_resume_slots"):
        assert figures[key] is None or figures[key] > 0, key


def test_bench_safety_refuses_bad_arguments(capsys):
    assert main(["bench", "safety", "--hours", "-1"]) == 2
    assert "argument --hours: must be a finite number >= 0, not '-1'" in capsys.readouterr().err
