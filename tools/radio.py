"""`blockiot radio list|virtual`: the radios attached, and virtual radios on ptys.

`blockiot radio list` shows the USB serial devices that look like LoRa radios (port,
VID:PID, personality, board guess), or says what to plug in; `--json` for scripts.

`blockiot radio virtual --count N` starts a `VirtualRig` (hil/rig.py), prints one
serial port path per line (flushed, so a script can read them at once) and runs
until SIGINT or SIGTERM, then exits 0. Any program that talks to a serial radio can
use the paths: `meshtastic --port PATH --info`, a `MeshtasticDriver(PATH)`, ...
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from blockiot.hil.rig import PERSONALITIES, VirtualRig
from blockiot.radio.airtime import preset_display_names
from blockiot.radio.discovery import WHAT_TO_PLUG_IN, discover
from blockiot.tools.table import Column, emit
from blockiot.tools.options import float_range, non_negative_int, positive_float, positive_int, preset_name

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "radio",
        help="the LoRa radios attached, and virtual radios for testing without hardware",
        description="`radio list` shows attached LoRa radios (Meshtastic boards, E22 UART modems); "
                    "`radio virtual` runs simulated radios on pseudo-terminals.",
    )
    commands = parser.add_subparsers(dest="radio_command", metavar="COMMAND")
    commands.required = True
    listing = commands.add_parser(
        "list",
        help="list attached LoRa radios (Meshtastic boards, E22 UART modems)",
        description="List USB serial devices that look like LoRa radios, with a guess of the "
                    "board and of the personality (meshtastic or modem) it speaks.",
    )
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    listing.set_defaults(func=run_list)
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


def run_list(args: argparse.Namespace) -> int:
    found = discover()
    if args.json:
        print(json.dumps({
            "radios": [candidate.as_dict() for candidate in found.candidates],
            "notes": list(found.notes),
        }, indent=2))
        return 0
    for note in found.notes:
        print(f"note: {note}")
    if not found.candidates:
        print(f"No LoRa radio found: {WHAT_TO_PLUG_IN}.")
        return 0
    rows = [{"port": c.port or "(no port)", "vid_pid": c.vid_pid, "personality": c.personality, "board": c.board}
            for c in found.candidates]
    emit(rows, [Column("port"), Column("vid_pid", "VID:PID"), Column("personality"), Column("board")], "text")
    return 0


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
