"""`blockiot airtime`: time on air of one packet on a Meshtastic preset, and how many
such packets (and payload bytes) the region's duty-cycle budget allows per hour."""
from __future__ import annotations

import json
import math

from blockiot.radio.airtime import (
    canonical_preset_name,
    meshtastic_packet_len,
    preset,
    preset_display_name,
    preset_display_names,
    time_on_air,
)
from blockiot.radio.dutycycle import REGIONS, DutyCycleBudget
from blockiot.radio.errors import BudgetExceeded
from blockiot.tools.options import fraction, non_negative_int, positive_float

HOUR_S = 3600.0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "airtime",
        help="time on air per packet and packets/bytes per hour under the duty cycle",
        description="Print the LoRa time on air (Semtech AN1200.13) of one packet on a Meshtastic "
        "modem preset, how many such packets the region's duty-cycle budget allows per hour, "
        "and the payload bytes per hour that makes.",
    )
    parser.add_argument(
        "--preset",
        default="LongFast",
        help=f"Meshtastic modem preset, any case: {', '.join(preset_display_names())} "
        "(default LongFast)",
    )
    parser.add_argument(
        "--bytes", type=non_negative_int, required=True, dest="payload_bytes", help="payload bytes per packet"
    )
    parser.add_argument(
        "--region",
        default="EU868",
        help=f"regulatory region: {', '.join(REGIONS)} (default EU868)",
    )
    parser.add_argument(
        "--frequency",
        type=positive_float,
        help="carrier frequency in Hz; picks the EU868 sub-band (e.g. 869.525e6 -> g3, 10 %%); "
        "without it EU868 assumes 1 %%",
    )
    parser.add_argument(
        "--fraction", type=fraction, help="self-imposed duty cycle in (0, 1], at most the legal one"
    )
    framing = parser.add_mutually_exclusive_group()
    framing.add_argument(
        "--meshtastic",
        dest="raw",
        action="store_false",
        help="--bytes is the payload of a Meshtastic packet: add its 16 B header and "
        "protobuf fields (default)",
    )
    framing.add_argument(
        "--raw", dest="raw", action="store_true", help="--bytes is the whole LoRa PHY payload"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run, raw=False)


def run(args) -> int:
    name = canonical_preset_name(args.preset)
    params = preset(name)
    phy_bytes = args.payload_bytes if args.raw else meshtastic_packet_len(args.payload_bytes)
    airtime = time_on_air(phy_bytes, params)
    budget = DutyCycleBudget(args.region, frequency_hz=args.frequency, fraction=args.fraction)
    refused = None
    try:
        budget.check(airtime, now=0.0)
    except BudgetExceeded as exc:
        refused = exc.reason
    allowance = budget.allowance_s
    if refused is not None:
        packets = 0
    elif allowance is None:
        packets = math.floor(HOUR_S / airtime)  # no duty cycle: only the channel itself limits
    else:
        packets = math.floor(allowance * HOUR_S / budget.window_s / airtime)
    report = {
        "preset": preset_display_name(name),
        "sf": params.sf,
        "bw_hz": params.bw_hz,
        "cr": f"4/{params.cr}",
        "preamble_symbols": params.preamble_symbols,
        "payload_bytes": args.payload_bytes,
        "phy_bytes": phy_bytes,
        "time_on_air_s": airtime,
        "budget": budget.describe(),
        "refused": refused,
        "packets_per_hour": packets,
        "payload_bytes_per_hour": packets * args.payload_bytes,
    }
    if args.json:
        print(json.dumps(report))
    else:
        _print_text(report, args.raw)
    return 0


def _print_text(report: dict, raw: bool) -> None:
    overhead = report["phy_bytes"] - report["payload_bytes"]
    packet = (
        f"{report['phy_bytes']} B LoRa payload"
        if raw
        else f"{report['payload_bytes']} B payload + {overhead} B Meshtastic = "
        f"{report['phy_bytes']} B on air"
    )
    print(
        f"preset       {report['preset']} (SF{report['sf']}, {report['bw_hz'] / 1e3:g} kHz, "
        f"CR {report['cr']}, {report['preamble_symbols']}-symbol preamble)"
    )
    print(f"packet       {packet}")
    print(f"time on air  {report['time_on_air_s'] * 1e3:.1f} ms")
    print(f"budget       {report['budget']}")
    if report["refused"]:
        print(f"refused      {report['refused']}")
    print(
        f"per hour     {report['packets_per_hour']} packets, "
        f"{report['payload_bytes_per_hour']} B of payload"
    )
