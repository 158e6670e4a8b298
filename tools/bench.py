"""`blockiot bench ...`: benchmarks that print numbers (JSON with --json). Each benchmark
module named in BENCHMARKS exposes `register(bench_subparsers)`."""
from __future__ import annotations

import importlib
import json
import platform

BENCHMARKS = [
    "blockiot.tools.bench_codec",
    "blockiot.tools.bench_radio",
    "blockiot.tools.bench_contracts",
    "blockiot.tools.bench_safety",
    "blockiot.tools.bench_hostile",
    "blockiot.tools.bench_store",
    "blockiot.tools.bench_mutation",
]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="run a benchmark and print its figures",
        description="Benchmarks: speed and size figures, printed (as JSON with --json). Not tests.",
    )
    bench_subparsers = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    bench_subparsers.required = True
    for name in BENCHMARKS:
        importlib.import_module(name).register(bench_subparsers)


def add_benchmark(bench_subparsers, name: str, *, help: str, description: str, run):
    """Add one benchmark's parser, with the `--json` flag every benchmark has."""
    parser = bench_subparsers.add_parser(name, help=help, description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def machine() -> str:
    return f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}"


def print_figures(figures: dict, as_json: bool) -> int:
    """Print a benchmark's figures: one JSON object, or aligned `name value` lines."""
    if as_json:
        print(json.dumps(figures))
        return 0
    for key, value in figures.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for sub, v in value.items():
                print(f"  {sub:28s} {v}")
        else:
            print(f"{key:30s} {value}")
    return 0
