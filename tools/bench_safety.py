"""`blockiot bench safety`: the adversarial random search (blockiot.hil.sim.adversary) for a
number of simulated hours: schedules of loss, delay, reordering, flapping partitions and
Byzantine twins against real consensus cores, each ending with a heal. Prints the
schedules tried, the simulated hours, the violations (conflicting or reverted finalized
blocks, finality that does not resume after a heal) with the command that replays the
first one, finality latency and the slots finality took to resume after the heals."""
from __future__ import annotations

import time
from collections import Counter

from blockiot.hil.sim.adversary import SLOT_SECONDS, resume_bound, search
from blockiot.hil.sim.metrics import percentile
from blockiot.tools.bench import add_benchmark, machine, print_figures
from blockiot.tools.options import non_negative_float, non_negative_int, positive_int


def register(bench_subparsers) -> None:
    parser = add_benchmark(
        bench_subparsers, "safety", help="adversarial search for finality violations",
        description="Run random adversarial schedules (seeds from --seed up) against in-memory clusters of "
                    "consensus cores until --hours of simulated time have passed, checking after every step "
                    "that no two honest nodes finalize conflicting blocks, that no finalized block is "
                    "reverted, and that finality resumes after each heal.",
        run=run,
    )
    parser.add_argument("--hours", type=non_negative_float, default=1.0, help="simulated hours to search (at least one schedule)")
    parser.add_argument("--n", type=positive_int, default=None, help="validators (default: 4 and 7 by turns)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the first schedule")


def measure(hours: float, n: int | None, seed: int) -> dict:
    t0 = time.perf_counter()
    report = search(hours, n=n, seed=seed)
    results = report.schedules
    latencies = [latency for result in results for latency in result.latencies]
    resumed = [result.resume_slots for result in results if result.resume_slots is not None]
    first = report.failed[0] if report.failed else None
    return {
        "schedules": len(results),
        "simulated_hours": round(report.slots * SLOT_SECONDS / 3600, 2),
        "validators": n or "4, 7",
        "violations": len(report.failed),  # schedules with at least one
        "violations_by_kind": dict(Counter(kind for result in report.failed for kind in {v.kind for v in result.violations})),
        "first_violation": None if first is None else {
            "seed": first.seed, "n": first.n, "kind": first.violations[0].kind, "slot": first.violations[0].slot,
            "detail": first.violations[0].detail, "setup": first.setup,
            "replay": f"blockiot bench safety --hours 0 --n {first.n} --seed {first.seed}",
        },
        "finality_p50_slots": _rounded(percentile(latencies, 50)),
        "finality_p95_slots": _rounded(percentile(latencies, 95)),
        "max_resume_slots": _rounded(max(resumed, default=None)),
        "resumed_over_2n": sum(1 for result in results if (result.resume_slots or 0) > 2 * result.n),
        "resume_bound_slots": {f"n={size}": resume_bound(size) for size in sorted({r.n for r in results})},
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": machine(),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def run(args) -> int:
    return print_figures(measure(args.hours, args.n, args.seed), args.json)
