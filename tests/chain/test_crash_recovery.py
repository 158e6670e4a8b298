"""Crash safety with real processes: a writer (crash_writer.py) applies a long chain to a
ChainStore and is killed with SIGKILL at random points, again and again; after each kill
the store must open at a prefix of the intended chain with nothing half-written."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blockiot.chain.errors import StoreError
from blockiot.chain.ledger import Ledger
from blockiot.chain.state import LedgerState
from blockiot.chain.store import ChainStore
from blockiot.chain.verify import verify_store

import crash_writer

WRITER = Path(crash_writer.__file__)
KILLS = 10
SCHEDULE_SEED = 20251125  # the kill delays are drawn from this seed


@pytest.fixture(scope="module")
def intended():
    """The writer's chain replayed in memory: (genesis, [AppliedBlock per height])."""
    genesis, blocks = crash_writer.workload()
    ledger = Ledger(genesis)
    return genesis, [ledger.apply_block(raw) for raw in blocks]


def check_store(data_dir: Path, genesis, intended_blocks) -> int:
    """The store opens at a prefix of the intended chain, with no half-written block;
    returns its height."""
    store = ChainStore(data_dir)
    try:
        head = store.head()
        height = head[0] if head else 0
        assert list(store.raw_blocks()) == [(a.block.header.height, a.id, a.block.raw) for a in intended_blocks[:height]]
        state = LedgerState(genesis)
        store.load_into(state)
        expected_root = intended_blocks[height - 1].state_root if height else LedgerState(genesis).state_root()
        assert state.state_root() == expected_root
        try:
            assert store.genesis() == genesis
        except StoreError:  # killed before the genesis was recorded: nothing else may be there
            assert height == 0
        else:
            report = verify_store(store)
            assert report.ok, report.problem
            assert report.head_height == height
        return height
    finally:
        store.close()


def run_writer(data_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        pytest.fail(f"writer did not start: {line!r} {proc.stderr.read()}")
    return proc


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_a_consistent_prefix(tmp_path, intended):
    genesis, intended_blocks = intended
    rng = random.Random(SCHEDULE_SEED)
    data_dir = tmp_path / "node"
    heights, killed_mid_chain = [], 0
    for _ in range(KILLS):
        proc = run_writer(data_dir)
        try:
            time.sleep(rng.uniform(0.01, 0.25))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out, err = proc.stdout.read(), proc.stderr.read()
        assert proc.returncode in (-signal.SIGKILL, 0), f"writer failed: {err}"
        height = check_store(data_dir, genesis, intended_blocks)
        assert height >= (heights[-1] if heights else 0), "a stored block was lost"
        heights.append(height)
        if proc.returncode == -signal.SIGKILL and height < len(intended_blocks):
            killed_mid_chain += 1
        else:
            assert out.strip() == f"done {len(intended_blocks)}"
    assert killed_mid_chain >= KILLS // 2, f"too few kills landed while writing: heights {heights}"
    assert len(set(heights)) > 1, f"the writer made no progress between kills: heights {heights}"

    proc = run_writer(data_dir)  # finally let it finish from where the last kill left it
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert check_store(data_dir, genesis, intended_blocks) == len(intended_blocks)
