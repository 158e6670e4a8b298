"""`blockiot radio ...`: commands about radios; `radio virtual` runs virtual radios on ptys.

`blockiot radio virtual --count N` starts a `VirtualRig` (hil/rig.py), prints one
serial port path per line (flushed, so a script can read them at once) and runs
until SIGINT or SIGTERM, then exits 0. Any program that talks to a serial radio can
use the paths: `meshtastic --port PATH --info`, a `MeshtasticDriver(PATH)`, ...
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from blockiot.hil.rig import PERSONALITIES, VirtualRig
from blockiot.radio.airtime import preset_display_names
from blockiot.tools.options import float_range, non_negative_int, positive_float, positive_int, preset_name

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "radio",
        help="radio tools: virtual radios for testing without hardware",
        description="Radio tools. `radio virtual` runs simulated radios on pseudo-terminals.",
    )
    commands = parser.add_subparsers(dest="radio_command", metavar="COMMAND")
    commands.required = True
    virtual = commands.add_parser(
        "virtual",
        help="run virtual radios on ptys, joined by a simulated LoRa channel",
        description="Start COUNT virtual radios, each behind its own pseudo-terminal, sharing one "
                    "simulated LoRa channel. Prints one serial port path per line, then runs until "
                    "interrupted (Ctrl-C or SIGTERM).",
    )
    virtual.add_argument("--count", type=positive_int, default=2, help="number of radios (default 2)")
    virtual.add_argument("--personality", choices=sorted(PERSONALITIES), default="meshtastic",
                         help="firmware the radios emulate (default meshtastic)")
    virtual.add_argument("--loss", type=float_range(0, 1), default=0.0,
                         help="probability that a reception is lost, 0..1 (default 0)")
    virtual.add_argument("--preset", type=preset_name, default="LongFast",
                         help=f"LoRa modem preset, one of {', '.join(preset_display_names())} (default LongFast)")
    virtual.add_argument("--time-scale", type=positive_float, default=1.0,
                         help="wall seconds per simulated second; below 1 runs airtime faster (default 1)")
    virtual.add_argument("--seed", type=non_negative_int, default=0, help="seed of the simulated channel (default 0)")
    virtual.set_defaults(func=run_virtual)


def run_virtual(args: argparse.Namespace) -> int:
    """Run the rig until SIGINT/SIGTERM; bad settings raise the rig's user-facing errors (exit 2)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in _STOP_SIGNALS}
    try:
        with VirtualRig(args.count, personality=args.personality, preset=args.preset, loss=args.loss,
                        time_scale=args.time_scale, seed=args.seed) as rig:
            for port in rig.ports:
                print(port)
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
