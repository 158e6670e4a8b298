"""Three real node processes (`blockiot node`) run the consensus core over virtual
Meshtastic radios on ptys (the HIL rig) with 2-second slots, and finalize the same blocks
into their chain stores."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from blockiot.chain.crypto import Identity
from blockiot.chain.store import ChainStore
from blockiot.hil.rig import VirtualRig

SLOT_S = 2
RUN_S = 36
TIME_SCALE = 0.05  # a LongFast frame takes ~0.1 s of wall time on the virtual air


def write_cluster(tmp_path, count: int) -> tuple:
    keys = []
    members = []
    for i in range(count):
        identity = Identity.from_seed(bytes([0x60 + i]) * 32)
        key = tmp_path / f"node{i}.key"
        identity.save(key)
        keys.append(key)
        members.append(f'[[member]]\nname = "v{i}"\npublic_key = "{identity.public_key.hex()}"\nrole = "validator"\n')
    genesis_time = int(time.time()) + 6
    toml = tmp_path / "cluster.toml"
    toml.write_text(
        f'[cluster]\nname = "rig-cluster"\ngenesis_time = {genesis_time}\nslot_seconds = {SLOT_S}\n'
        f'region = "EU868"\npreset = "LongFast"\n\n' + "\n".join(members)
    )
    return toml, keys


@pytest.mark.slow
def test_three_node_processes_finalize_the_same_blocks(tmp_path):
    with VirtualRig(3, personality="meshtastic", time_scale=TIME_SCALE, seed=4) as rig:
        toml, keys = write_cluster(tmp_path, 3)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "blockiot.tools.cli", "node", "--genesis", str(toml), "--key", str(keys[i]),
                 "--data-dir", str(tmp_path / f"data{i}"), "--port", rig.ports[i], "--seconds", str(RUN_S),
                 "--events", "--frequency", "869.525e6"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for i in range(3)
        ]
        outputs = [proc.communicate(timeout=RUN_S + 60) for proc in procs]
    finalized = []
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        finalized.append([e["id"] for e in events if e["event"] == "Finalized"])
        assert any(e["event"] == "BlockProposed" for e in events)
    shortest = min(map(len, finalized))
    assert shortest >= 5, finalized
    assert all(chain[:shortest] == finalized[0][:shortest] for chain in finalized)
    for i, chain in enumerate(finalized):
        store = ChainStore(tmp_path / f"data{i}")
        try:
            assert [block_id.hex() for _, block_id, _ in store.raw_blocks()] == chain
        finally:
            store.close()
