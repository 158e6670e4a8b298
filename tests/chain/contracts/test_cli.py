"""`blockiot contract compile|test` and `blockiot bench contracts`, run in-process."""
from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES

from blockiot.chain.contracts import load
from blockiot.chain.contracts.onchain import deploy_tx_bytes
from blockiot.tools.cli import main

IRRIGATION = str(EXAMPLES / "irrigation.rule")


def test_compile_prints_size_and_disassembly_and_writes_the_bytecode(tmp_path, capsys):
    out = tmp_path / "irrigation.bin"
    assert main(["contract", "compile", IRRIGATION, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    size = len(out.read_bytes())
    assert f"{size} bytes of bytecode, deploy transaction {deploy_tx_bytes(out.read_bytes())} bytes" in text
    assert 'on reading(moisture, group="field-a")' in text
    assert "COMMAND  open, 1 arg(s)" in text and "; line 26" in text
    assert load(out.read_bytes()).program.groups == ("field-a",)


def test_compile_error_exits_2_with_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.rule"
    bad.write_text("state.n = 0\nwith every(1):\n    state.n = nope\n")
    assert main(["contract", "compile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3:15: unknown name `nope`" in err
    assert "Traceback" not in err


def test_compile_missing_file_is_a_user_error(tmp_path, capsys):
    assert main(["contract", "compile", str(tmp_path / "none.rule")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_compile_to_an_unwritable_output_is_a_user_error(tmp_path, capsys):
    assert main(["contract", "compile", IRRIGATION, "-o", str(tmp_path / "no" / "dir" / "x.bin")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("blockiot contract: cannot write") and "Traceback" not in err


def write_csv(tmp_path, text: str):
    path = tmp_path / "readings.csv"
    path.write_text(text)
    return str(path)


def test_dry_run_prints_the_commands_and_final_state(tmp_path, capsys):
    csv = write_csv(tmp_path, "slot,device,sensor,value\n# forecast first\n1,12,rain_forecast,5\n"
                              "10,1,moisture,27.5\n12,2,1,25\n40,2,moisture,20\n")
    assert main(["contract", "test", IRRIGATION, "--readings", csv, "--group", "field-a=1,2"]) == 0
    text = capsys.readouterr().out
    assert text.count("-> device 3: open 600") == 2
    assert "slot     10  moisture 27.5 % from device 1" in text
    assert "4 reading(s), 2 command(s), 0 failed execution(s)" in text
    assert "opened_today = 2" in text and "open_until = 60" in text


def test_dry_run_shows_failures_with_their_source_line(tmp_path, capsys):
    rule = tmp_path / "div.rule"
    rule.write_text("state.n = 0\nwith reading(moisture) as r:\n    state.n = 10 // int(r.value)\n")
    csv = write_csv(tmp_path, "5,1,moisture,0.4\n6,1,moisture,2\n")
    assert main(["contract", "test", str(rule), "--readings", csv]) == 0
    text = capsys.readouterr().out
    assert "FAILED: division by zero (line 3), nothing changed" in text
    assert "n = 5" in text


def test_dry_run_tables_and_balances_are_listed(tmp_path, capsys):
    csv = write_csv(tmp_path, "1,1,power,500\n2,2,power,-200\n")
    energy = str(EXAMPLES / "energy.rule")
    assert main(["contract", "test", energy, "--readings", csv, "--group", "microgrid=1,2"]) == 0
    text = capsys.readouterr().out
    assert "-> transfer 400 from 2 to 1" in text
    assert "offered: [1] 300" in text
    assert "balances: 1: 400, 2: -400" in text


@pytest.mark.parametrize(
    "csv_text, fragment",
    [
        ("1,2,moisture\n", "readings.csv:1: expected slot,device,sensor,value"),
        ("1,2,moist,3\n", "readings.csv:1: unknown sensor 'moist'"),
        ("1,2,moisture,3.25\n", "readings.csv:1: moisture takes at most 1 decimal"),
        ("1,2,moisture,wet\n", "readings.csv:1: 'wet' is not a number"),
        ("1,2,moisture,Infinity\n", "readings.csv:1: 'Infinity' is not a finite number"),
        ("1,2,moisture,nan\n", "readings.csv:1: 'nan' is not a finite number"),
        ("5,2,moisture,3\n4,2,moisture,3\n", "readings.csv:2: slot 4 comes before slot 5"),
        ("x,2,moisture,3\n", "readings.csv:1: slot and device are whole numbers"),
    ],
)
def test_bad_readings_are_user_errors_naming_the_line(tmp_path, capsys, csv_text, fragment):
    assert main(["contract", "test", IRRIGATION, "--readings", write_csv(tmp_path, csv_text)]) == 2
    assert fragment in capsys.readouterr().err


def test_bad_group_option_is_a_user_error(tmp_path, capsys):
    csv = write_csv(tmp_path, "1,1,moisture,3\n")
    assert main(["contract", "test", IRRIGATION, "--readings", csv, "--group", "field-a=one"]) == 2
    assert "NAME=1,2,3" in capsys.readouterr().err


def test_bench_contracts_prints_the_figures_as_json(capsys):
    assert main(["bench", "contracts", "--json", "--executions", "200"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures["bytecode_bytes"]) == {"irrigation", "energy", "street_lights", "cold_chain"}
    assert figures["irrigation_exec_per_s"] > 0


def test_compile_says_when_a_rule_is_too_large_to_deploy(tmp_path, capsys):
    big = tmp_path / "big.rule"
    lines = [f"    command(device({i}), dim, {i})" for i in range(60)]
    big.write_text("with every(1):\n" + "\n".join(lines) + "\n")
    assert main(["contract", "compile", str(big)]) == 0
    assert "too large to deploy: a transaction holds at most 240 bytes" in capsys.readouterr().out
