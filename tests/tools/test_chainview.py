"""`blockiot chain ...`: the views of a stored chain (tables, --json, --csv), their filters,
read-only opening (also beside a writer), and clear errors instead of tracebacks."""
from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest

from blockiot.chain.ledger import Ledger
from blockiot.chain.store import DB_NAME, ChainStore
from blockiot.chain.wire import Action, Command
from blockiot.tools.cli import main
from blockiot.tools.table import Column, key_values, render

SLOTS = (1, 2, 3, 5, 8)


@pytest.fixture
def data_dir(tmp_path, genesis, signers):
    """A stopped node's data dir: blocks in SLOTS, each with probe-1's moisture reading of
    250 + slot (25.x %) and val-a's command to valve-1 to open for 60 x slot s; then
    valve-1's report of the last command, in slot 9."""
    store = ChainStore(tmp_path / "node")
    ledger = Ledger(genesis, store)
    signers.build_blocks(ledger, SLOTS)
    report = signers.sign(3, Command(3, Action.OPEN, (480,))).raw
    ledger.build_block(signers.leader(ledger, 9), 9, [report])
    store.close()
    return tmp_path / "node"


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main(["chain", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def rows(capsys, *argv) -> list[dict]:
    status, out, err = run(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)


def test_readings_json_has_names_values_in_units_and_times(data_dir, capsys):
    readings = rows(capsys, "readings", "--data-dir", str(data_dir))
    assert [(r["device"], r["sensor"], r["value"], r["unit"], r["height"]) for r in readings] == [
        ("probe-1", "moisture", (250 + slot) / 10, "%", height) for height, slot in enumerate(SLOTS, start=1)
    ]
    assert readings[0]["value"] == 25.1 and readings[0]["time"] == "2025-11-24T16:00:30Z"  # genesis + 1 x 30 s
    assert readings[-1]["slot"] == 8 and len(readings[-1]["tx"]) == 64


def test_readings_table_is_aligned(data_dir, capsys):
    status, out, _ = run(capsys, "readings", "--data-dir", str(data_dir), "--limit", "2")
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == ["TIME", "HEIGHT", "DEVICE", "SENSOR", "VALUE", "UNIT"]
    assert lines[1:] == [
        "2025-11-24T16:02:30Z       4  probe-1  moisture   25.5  %",
        "2025-11-24T16:04:00Z       5  probe-1  moisture   25.8  %",
    ]


@pytest.mark.parametrize(
    "filters, heights",
    [
        (["--device", "probe-1"], [1, 2, 3, 4, 5]),
        (["--device", "val-a"], []),
        (["--sensor", "temperature"], []),
        (["--sensor", "Moisture", "--since", "3"], [3, 4, 5]),
        (["--since", "2025-11-24T16:01:01"], [3, 4, 5]),  # slot 3 starts at 16:01:30
        (["--since", "2025-11-24T17:01:30+01:00"], [3, 4, 5]),
        (["--since", "2030-01-01T00:00"], []),
        (["--limit", "2"], [4, 5]),
        (["--since", "2", "--limit", "10"], [2, 3, 4, 5]),
    ],
)
def test_readings_filters(data_dir, capsys, filters, heights):
    assert [r["height"] for r in rows(capsys, "readings", "--data-dir", str(data_dir), *filters)] == heights


def test_blocks_block_and_txs(data_dir, capsys):
    blocks = rows(capsys, "blocks", "--data-dir", str(data_dir))
    assert [(b["height"], b["slot"], b["txs"]) for b in blocks] == [(1, 1, 2), (2, 2, 2), (3, 3, 2), (4, 5, 2), (5, 8, 2), (6, 9, 1)]
    assert blocks[1]["leader"] == "val-a" and blocks[0]["leader"] == "val-b"
    assert [b["height"] for b in rows(capsys, "blocks", "--data-dir", str(data_dir), "--limit", "2")] == [5, 6]

    status, out, _ = run(capsys, "block", "4", "--data-dir", str(data_dir))
    assert status == 0 and "slot    5" in out and "leader  val-b" in out
    assert "moisture 25.5 %" in out and "open -> valve-1 300" in out
    block = json.loads(run(capsys, "block", "4", "--data-dir", str(data_dir), "--json")[1])
    assert block["id"] == blocks[3]["id"] and [t["kind"] for t in block["txs"]] == ["reading", "command"]

    txs = rows(capsys, "txs", "--data-dir", str(data_dir), "--kind", "command", "--device", "val-a")
    assert [(t["height"], t["index"], t["detail"]) for t in txs] == [
        (h, 1, f"open -> valve-1 {60 * s}") for h, s in enumerate(SLOTS, start=1)
    ]
    status, out, _ = run(capsys, "txs", "--data-dir", str(data_dir), "--csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and len(table) == 11 and table[0]["sender"] == "probe-1" and table[0]["kind"] == "reading"


def test_members_and_commands(data_dir, capsys):
    members = rows(capsys, "members", "--data-dir", str(data_dir))
    assert [(m["name"], m["role"], m["groups"]) for m in members] == [
        ("val-a", "validator", ["core"]), ("val-b", "validator", ["core"]),
        ("probe-1", "member", ["field-a"]), ("valve-1", "member", ["field-a"]),
    ]
    commands = rows(capsys, "commands", "--data-dir", str(data_dir), "--device", "valve-1", "--since", "5")
    assert [(c["issuer"], c["device"], c["action"], c["args"], c["kind"]) for c in commands] == [
        ("val-a", "valve-1", "open", [480], "command"), ("valve-1", "valve-1", "open", [480], "report"),
    ]


def test_views_read_only_beside_a_running_node(data_dir, capsys, genesis, signers):
    before = hashlib.sha256((data_dir / DB_NAME).read_bytes()).hexdigest()
    for view in ("blocks", "txs", "readings", "members", "commands"):
        assert run(capsys, view, "--data-dir", str(data_dir))[0] == 0
    assert hashlib.sha256((data_dir / DB_NAME).read_bytes()).hexdigest() == before
    node = ChainStore(data_dir)  # a node appends while the views read
    ledger = Ledger(genesis, node)
    ledger.build_block(signers.leader(ledger, 10), 10, [])
    assert [b["height"] for b in rows(capsys, "blocks", "--data-dir", str(data_dir), "--since", "6")] == [6, 7]
    node.close()


def test_mistakes_and_damaged_files_are_one_line_errors(data_dir, tmp_path, capsys):
    status, _, err = run(capsys, "readings", "--data-dir", str(tmp_path / "absent"))
    assert status == 2 and "holds no chain store" in err and not (tmp_path / "absent").exists()
    status, _, err = run(capsys, "readings", "--data-dir", str(data_dir), "--device", "nobody")
    assert status == 2 and err == "blockiot chain: no member named 'nobody' in cluster test-cluster\n"
    status, _, err = run(capsys, "block", "7", "--data-dir", str(data_dir))
    assert status == 2 and "no block at height 7; the chain holds 1..6" in err
    status, _, err = run(capsys, "blocks", "--data-dir", str(data_dir), "--since", "yesterday")
    assert status == 2 and "--since: must be a height or an ISO time" in err
    (data_dir / DB_NAME).write_bytes((data_dir / DB_NAME).read_bytes()[:2048])
    status, _, err = run(capsys, "readings", "--data-dir", str(data_dir))
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err


def test_table_formats_one_set_of_rows_three_ways():
    rows = [{"name": "probe-1", "value": 28.7, "args": [600, 3], "ok": True, "note": None},
            {"name": "gw", "value": 1250, "args": [], "ok": False, "note": "x"}]
    columns = [Column("name"), Column("value", "V"), Column("args"), Column("ok", text=lambda v: "+" if v else "-")]
    assert render(rows, columns, "text").splitlines() == [
        "NAME        V  ARGS   OK",
        "probe-1  28.7  600,3  +",
        "gw       1250         -",
    ]
    assert render(rows, columns, "csv").splitlines() == [
        "name,value,args,ok,note", 'probe-1,28.7,"600,3",yes,', "gw,1250,,no,x",
    ]
    assert json.loads(render(rows, columns, "json")) == rows
    assert render([], columns, "csv") == "name,value,args,ok"
    assert key_values([("height", 12), ("leader", "gw-1")]) == "height  12\nleader  gw-1"
