"""`blockiot bench ...`: benchmarks that print numbers (JSON with --json). Each benchmark
module named in BENCHMARKS exposes `register(bench_subparsers)`."""
from __future__ import annotations

import importlib

BENCHMARKS = [
    "blockiot.tools.bench_codec",
    "blockiot.tools.bench_radio",
    "blockiot.tools.bench_contracts",
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
