"""`blockiot bench contracts`: bytecode sizes of the example rules and the irrigation rule's executions per second."""
from __future__ import annotations

import time
from pathlib import Path

from blockiot.chain.contracts import TxEvent, compile_rule, execute, initial_state, load
from blockiot.chain.contracts.dryrun import MemoryHost
from blockiot.chain.contracts.onchain import deploy_tx_bytes
from blockiot.chain.wire import Sensor, TxKind
from blockiot.tools.bench import add_benchmark, machine, print_figures
from blockiot.tools.options import positive_int

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples" / "contracts"
EXAMPLES = ("irrigation", "energy", "street_lights", "cold_chain")


def register(bench_subparsers) -> None:
    parser = add_benchmark(
        bench_subparsers, "contracts", help="rule bytecode sizes and VM speed",
        description="Compile the example rules (bytecode bytes each) and time the irrigation rule: one "
                    "execution = trigger matching + a dry probe's reading run to the valve command.",
        run=run,
    )
    parser.add_argument("--executions", type=positive_int, default=20_000, help="irrigation executions to time")
    parser.add_argument("--examples", type=Path, default=EXAMPLES_DIR, help="folder holding the .rule files")


def measure(n_exec: int, examples: Path) -> dict:
    rules = {name: compile_rule((examples / f"{name}.rule").read_text(), f"{name}.rule") for name in EXAMPLES}
    exe = load(rules["irrigation"].bytecode)
    host = MemoryHost(groups={"field-a": (1, 2)}, readings={(12, Sensor.RAIN_FORECAST): (5, 1)})
    state = initial_state(exe.program)
    event = TxEvent(TxKind.READING, 1, Sensor.MOISTURE, 250)
    effects = execute(exe, state, event, 10, host)
    if not effects.commands:
        raise RuntimeError("the irrigation rule did not open the valve; the benchmark would time the wrong path")
    t0 = time.perf_counter()
    for _ in range(n_exec):
        execute(exe, state, event, 10, host)
    elapsed = time.perf_counter() - t0
    return {
        "irrigation_exec_per_s": round(n_exec / elapsed),
        "irrigation_steps_per_exec": effects.steps,
        "bytecode_bytes": {name: len(rule.bytecode) for name, rule in rules.items()},
        "deploy_tx_bytes": {name: deploy_tx_bytes(rule.bytecode) for name, rule in rules.items()},
        "machine": machine(),
    }


def run(args) -> int:
    return print_figures(measure(args.executions, args.examples), args.json)
