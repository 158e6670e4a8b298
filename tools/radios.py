"""`blockiot radios`: list attached LoRa radios (port, VID:PID, board guess, personality)."""
from __future__ import annotations

import argparse
import json

from blockiot.radio.discovery import WHAT_TO_PLUG_IN, discover


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "radios",
        help="list attached LoRa radios (Meshtastic boards, E22 UART modems)",
        description="List USB serial devices that look like LoRa radios, with a guess of the "
                    "board and of the personality (meshtastic or modem) it speaks.",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
    rows = [("PORT", "VID:PID", "PERSONALITY", "BOARD")] + [
        (c.port or "(no port)", c.vid_pid, c.personality, c.board) for c in found.candidates
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0
