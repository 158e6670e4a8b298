"""A field as its integrator runs it: four `blockiot node` processes on virtual Meshtastic
radios (ShortFast, 2-second slots). A rule deployed with `blockiot contract deploy` fires
on a reading handed to one node with `blockiot send reading`; the reading is final in every
node's chain; the rule's command and a member's command to the valve each run its hook
once final, and the valve's reports are final too; a node killed with SIGKILL and
restarted catches up without losing anything it had finalized; SIGTERM stops every node
cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import load_genesis_toml
from blockiot.chain.runtime.control import ControlError, NodeClient
from blockiot.chain.state import LedgerState
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import Action, Sensor
from blockiot.hil.rig import VirtualRig

SLOT_S = 2
TIME_SCALE = 0.1
NAMES = ("gw-a", "gw-b", "gw-c", "valve")  # three validators and the valve
GUARD_S = 120.0  # failure guard only: a loaded machine is slower, never wrong


def write_field(tmp_path) -> tuple:
    keys, members = [], []
    for i, name in enumerate(NAMES):
        identity = Identity.from_seed(bytes([0x50 + i]) * 32)
        key = tmp_path / "keys" / f"{name}.key"
        key.parent.mkdir(exist_ok=True)
        identity.save(key)
        keys.append(key)
        role = "member" if name == "valve" else "validator"
        members.append(f'[[member]]\nname = "{name}"\npublic_key = "{identity.public_key.hex()}"\nrole = "{role}"\n')
    genesis = tmp_path / "field.toml"
    genesis.write_text(
        f'[cluster]\nname = "test-field"\ngenesis_time = {int(time.time()) + 4}\nslot_seconds = {SLOT_S}\n'
        f'region = "EU868"\npreset = "ShortFast"\n\n' + "\n".join(members)
    )
    rule = tmp_path / "dry.rule"
    rule.write_text("with reading(moisture, device=device(1)) as r:\n    if r.value < 30.0:\n"
                    "        command(device(3), open, 300)\n")
    hook = tmp_path / "valve-hook"
    hook.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "valve-actions"}\n')
    hook.chmod(0o755)
    return genesis, keys, hook, rule


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockiot.tools.cli", *args], capture_output=True, text=True,
                          timeout=60, **kwargs)


def wait_for(what: str, condition, guard: float = GUARD_S):
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"gave up waiting for {what} after {guard:g} s")


def finalized(data_dir) -> int:
    try:
        return NodeClient(data_dir).status()["finalized_height"]
    except ControlError:
        return -1


def final_state(genesis_path, data_dir) -> tuple[LedgerState, list[bytes]]:
    store = ChainStore(data_dir)
    try:
        state = LedgerState(load_genesis_toml(genesis_path))
        store.load_into(state)
        return state, [block_id for _, block_id, _ in store.raw_blocks()]
    finally:
        store.close()


@pytest.mark.slow
def test_a_field_of_four_nodes_takes_readings_and_commands(tmp_path):
    genesis, keys, hook, rule = write_field(tmp_path)
    dirs = [tmp_path / f"data-{name}" for name in NAMES]
    with VirtualRig(4, preset="ShortFast", time_scale=TIME_SCALE, seed=9) as rig:
        def start(i: int) -> subprocess.Popen:
            extra = ["--hook", str(hook)] if NAMES[i] == "valve" else []
            return subprocess.Popen(
                [sys.executable, "-m", "blockiot.tools.cli", "node", "--genesis", str(genesis), "--key", str(keys[i]),
                 "--data-dir", str(dirs[i]), "--port", rig.ports[i], "--frequency", "869.525e6", *extra],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )

        procs = [start(i) for i in range(4)]
        try:
            wait_for("every node to finalize a block", lambda: all(finalized(d) >= 1 for d in dirs))

            # A second node on a data dir in use is refused, and changes nothing.
            second = cli("node", "--genesis", str(genesis), "--key", str(keys[0]), "--data-dir", str(dirs[0]),
                         "--port", rig.ports[0])
            assert second.returncode == 2 and "another node" in second.stderr and "Traceback" not in second.stderr

            deployed = cli("contract", "deploy", str(rule), "--data-dir", str(dirs[0]))
            assert deployed.returncode == 0, deployed.stderr
            refused = cli("contract", "deploy", str(rule), "--data-dir", str(dirs[3]))
            assert refused.returncode == 2 and "only a validator" in refused.stderr
            target = max(finalized(d) for d in dirs) + 8  # the rule final everywhere
            wait_for(f"every node to finalize height {target}", lambda: all(finalized(d) >= target for d in dirs))

            sent = cli("send", "reading", "--sensor", "moisture", "--value", "28.7", "--data-dir", str(dirs[1]))
            assert sent.returncode == 0, sent.stderr
            assert len(sent.stdout.strip()) == 64  # the tx id in hex
            ordered = cli("send", "command", "--to", "valve", "--action", "open", "--args", "600", "--data-dir", str(dirs[0]))
            assert ordered.returncode == 0, ordered.stderr
            refused = cli("send", "reading", "--sensor", "soil", "--value", "1", "--data-dir", str(dirs[1]))
            assert refused.returncode == 2 and "unknown sensor" in refused.stderr

            # Kill one validator hard; it comes back from its disk.
            before = finalized(dirs[2])
            procs[2].kill()
            procs[2].wait(timeout=30)
            procs[2] = start(2)

            actions = tmp_path / "valve-actions"
            wait_for("the valve's hook to run twice", lambda: actions.exists() and actions.read_text().count("\n") >= 2)
            target = max(finalized(d) for d in dirs) + 8  # the report included and final everywhere
            wait_for(f"every node to finalize height {target}", lambda: all(finalized(d) >= target for d in dirs))
            assert finalized(dirs[2]) >= before
            status = cli("status", "--data-dir", str(dirs[3]), "--json")
            assert status.returncode == 0 and '"role": "member"' in status.stdout
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            outputs = [proc.communicate(timeout=30) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    assert sorted(actions.read_text().splitlines()) == ["open 300", "open 600"]  # each once
    chains = []
    for data_dir in dirs:
        assert not (data_dir / "node.sock").exists()
        state, chain = final_state(genesis, data_dir)
        chains.append(chain)
        assert state.get("reading", (1, Sensor.MOISTURE))[0] == 287
        issuer, action, _slot, *args = state.get("command", (3,))
        assert (issuer, action) == (3, Action.OPEN) and args in ([300], [600])  # the valve's last report
        assert state.get("contract_command", (3,)) is None  # the rule's command, reported done
    shortest = min(map(len, chains))
    assert all(chain[:shortest] == chains[0][:shortest] for chain in chains)
    assert os.stat(dirs[0] / "node.lock").st_mode & 0o077 == 0
