"""`blockiot demo` and `blockiot bench codec`: their JSON figures (presence and types, not speed)."""
from __future__ import annotations

import json

from blockiot.tools.cli import main


def test_demo_json(capsys):
    assert main(["demo", "--slots", "10", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["verify_ok"] is True
    assert figures["blocks"] == 10 and figures["txs"] > 0
    assert 0 < figures["avg_tx_bytes"] <= 240
    field = figures["field"]  # the consensus run on the simulated field
    assert field["nodes"] == 20 and field["blocks_finalized"] > 0
    assert field["finalized_conflicts"] == 0 and field["finalized_prefix_agree"] is True


def test_demo_text_output(capsys, tmp_path):
    assert main(["demo", "--slots", "3", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Consensus on a simulated LoRa field" in out and "finalized conflicts 0" in out
    assert "3 blocks" in out and "verify from genesis: ok" in out and f"stored in {tmp_path}" in out


def test_demo_refuses_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--slots", "0"]) == 2
    assert "argument --slots: must be a whole number >= 1, not '0'" in capsys.readouterr().err
    assert main(["demo", "--field-nodes", "3"]) == 2
    assert "argument --field-nodes: must be a whole number >= 4" in capsys.readouterr().err
    main(["demo", "--slots", "2", "--data-dir", str(tmp_path), "--json"])
    capsys.readouterr()
    assert main(["demo", "--slots", "2", "--data-dir", str(tmp_path)]) == 2
    assert "already holds a chain" in capsys.readouterr().err


def test_bench_codec_json_has_every_figure(capsys):
    assert main(["bench", "codec", "--json", "--txs", "300"]) == 0
    figures = json.loads(capsys.readouterr().out)
    ints = ["reading_tx_bytes", "block_header_bytes", "validate_tx_per_s", "raw_verify_per_s"]
    ratios = ["compact_bytes_per_tx", "json_ratio", "validate_vs_raw", "sync_batch_ratio"]
    for key in ints:
        assert type(figures[key]) is int and figures[key] > 0, key
    for key in ratios:
        assert type(figures[key]) in (int, float) and figures[key] > 0, key
