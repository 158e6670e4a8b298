"""`blockiot sim`: run N consensus nodes in virtual time on a simulated LoRa field and print
what happened (finality, inclusion, airtime, invariants), as JSON with --json.

The field simulator is hil/sim/fieldsim.py, its scenarios hil/sim/scenarios.py; the protocol is
docs/PROTOCOL.md.
"""
from __future__ import annotations

import argparse
import json

from blockiot.hil.sim.fieldsim import RELAY_CHOICES, SimConfig
from blockiot.hil.sim.medium import LogDistance
from blockiot.hil.sim.scenarios import SCENARIOS, simulate
from blockiot.chain.consensus.params import FINALITY_RULES
from blockiot.radio.airtime import preset_display_names
from blockiot.radio.dutycycle import REGULATED_REGIONS
from blockiot.tools.options import (
    float_range,
    int_range,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    preset_name,
    region_name,
)

_DEFAULTS = SimConfig()
_PATH_LOSS = LogDistance()
# From an SX1262's lowest setting (-9 dBm) to the 30 dBm of an E22-900T30 module.
_TX_POWER_DBM = float_range(-9, 30)
_HOP_LIMIT = int_range(0, 7)  # Meshtastic's hop limit is 3 bits
_PROBABILITY = float_range(0, 1)  # of losing a reception


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="simulate a cluster's consensus on a LoRa field in virtual time",
        description="Run N node cores (the real consensus, link layer and Meshtastic flooding) on a "
        "simulated LoRa channel: positions in a square field, log-distance path loss, Semtech "
        "airtime, collisions with capture, duty-cycle budgets, hop-limited relay. Scenarios: "
        + "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values())
        + ".",
    )
    add = parser.add_argument
    add("--nodes", type=positive_int, default=_DEFAULTS.nodes, help=f"nodes in the field (default {_DEFAULTS.nodes})")
    add("--validators", type=positive_int, default=_DEFAULTS.validators, help=f"validators among them (default {_DEFAULTS.validators})")
    add("--hours", type=positive_float, default=_DEFAULTS.hours, help=f"field time to simulate (default {_DEFAULTS.hours:g})")
    add("--preset", type=preset_name, default=_DEFAULTS.preset, help=f"Meshtastic preset: {', '.join(preset_display_names())} (default LongFast)")
    add("--loss", type=_PROBABILITY, default=_DEFAULTS.loss, help="extra random loss per reception, 0..1 (default 0; lossy: 0.3)")
    add("--burst", type=_burst, metavar="GOOD,BAD,LOSS",
        help="bursty loss at every receiver, Gilbert-Elliott: seconds good, seconds bad, loss when bad (bursty: 120,30,0.9)")
    add("--seed", type=non_negative_int, default=_DEFAULTS.seed, help="random seed: same seed, same run (default 1)")
    add("--scenario", default=_DEFAULTS.scenario, choices=list(SCENARIOS), help="what goes wrong (default baseline)")
    add("--json", action="store_true", help="print one JSON object")
    add("--slot-seconds", type=int_range(1, 3600), help="slot length (default: 20 x a 150 B packet's airtime, 30 s on LongFast)")
    add("--tx-interval", type=positive_float, default=_DEFAULTS.tx_interval_s, help="seconds between one node's readings (default 1800)")
    add("--field", type=positive_float, dest="field_m", help="side of the square field in metres (default 150 m x sqrt(nodes), 400-1200)")
    add("--hop-limit", type=_HOP_LIMIT, default=_DEFAULTS.hop_limit, help="Meshtastic hop limit (default 3)")
    add("--relays", choices=RELAY_CHOICES, default=_DEFAULTS.relays, help="who relays floods (default backbone)")
    add("--finality", choices=FINALITY_RULES, default=_DEFAULTS.finality, help="finality rule (default quorum; obft for comparison)")
    add("--region", type=region_name, choices=REGULATED_REGIONS, default=_DEFAULTS.region,
        help="duty-cycle region, any spelling (default EU868)")
    add("--frequency", type=positive_float, default=_DEFAULTS.frequency_hz, help="carrier in Hz, picks the sub-band (default 869.525e6: 10 %%)")
    add("--tx-power", type=_TX_POWER_DBM, default=_DEFAULTS.tx_power_dbm, help="transmit power in dBm (default 20)")
    add("--path-loss-exponent", type=positive_float, default=_PATH_LOSS.gamma, help=f"log-distance exponent (default {_PATH_LOSS.gamma})")
    add("--path-loss-d0", type=non_negative_float, default=_PATH_LOSS.loss_d0_db, help=f"path loss at 40 m in dB (default {_PATH_LOSS.loss_d0_db})")
    add("--capture-db", type=non_negative_float, default=_DEFAULTS.capture_db, help="capture threshold in dB (default 6)")
    parser.set_defaults(func=run)


def _burst(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected GOOD,BAD,LOSS such as 120,30,0.9, not {text!r}")
    try:
        return positive_float(parts[0]), positive_float(parts[1]), _PROBABILITY(parts[2])
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"GOOD and BAD seconds > 0, LOSS from 0 to 1: {exc}") from None


def run(args) -> int:
    config = SimConfig(
        nodes=args.nodes,
        validators=args.validators,
        hours=args.hours,
        preset=args.preset,
        loss=args.loss,
        burst=args.burst,
        seed=args.seed,
        scenario=args.scenario,
        slot_seconds=args.slot_seconds,
        tx_interval_s=args.tx_interval,
        field_m=args.field_m,
        hop_limit=args.hop_limit,
        region=args.region,
        frequency_hz=args.frequency,
        tx_power_dbm=args.tx_power,
        path_loss=LogDistance(loss_d0_db=args.path_loss_d0, gamma=args.path_loss_exponent),
        capture_db=args.capture_db,
        finality=args.finality,
        relays=args.relays,
    )
    report = simulate(config)
    if args.json:
        print(json.dumps(report, sort_keys=False))
    else:
        print(summary(report))
    return 0


def summary(r: dict) -> str:
    """A simulation report as a few lines a person reads."""
    lines = [
        f"{r['scenario']}: {r['nodes']} nodes, {r['validators']} validators, {r['field_hours']:g} h on {r['preset']}, "
        f"{r['slot_seconds']:g} s slots, seed {r['seed']} ({r['wall_s']} s wall)",
        f"finality ({r['finality_rule']}): p50 {_num(r['finality_p50_slots'])} slots ({_num(r['finality_p50_s'])} s), "
        f"p95 {_num(r['finality_p95_slots'])} slots; lossless floor {r['lossless_finality_slots']} slots "
        f"(Ouroboros-BFT's unsafe depth {r['obft_bound_slots']})",
        f"blocks: {r['blocks_proposed']} proposed, {r['blocks_finalized']} on the finalized chain",
        f"transactions: {r['txs_finalized']} of {r['txs_sent']} finalized, inclusion p95 {_num(r['tx_inclusion_p95_s'])} s",
        "on air: " + ", ".join(f"{kind} {size} B" for kind, size in r["bytes_on_air"].items()),
        f"busiest node on air {r['max_node_airtime_fraction']:.2%} of the time, duty-cycle violations {r['duty_cycle_violations']}",
        f"invariants: finalized conflicts {r['finalized_conflicts']}, prefixes agree {r['finalized_prefix_agree']}, "
        f"finalized blocks lost on restart {r['restart_lost_finalized']}",
    ]
    if r["equivocations_detected"]:
        lines.append(f"equivocations detected: {r['equivocations_detected']}, "
                     f"recorded on chain: {r['equivocations_on_chain']}")
    if r["rejected"]:
        lines.append("rejected: " + ", ".join(f"{reason} {count}" for reason, count in r["rejected"].items()))
    return "\n".join(lines)


def _num(value) -> str:
    return "-" if value is None else f"{value:g}"
