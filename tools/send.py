"""`blockiot send reading|command`: hand a transaction to the node running on a data dir.

The node signs it with its device key, floods it, and answers once it accepted it; this
prints the transaction's id. A sensor script can do the same in Python:
`NodeClient(data_dir).send_reading("moisture", 28.7)` (chain/runtime/control.py).
"""
from __future__ import annotations

import json
from pathlib import Path

from blockiot.chain.runtime.control import NodeClient


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "send", help="send a reading or a command through the running node",
        description="Hand a reading or a command to the node running on --data-dir; it signs and "
        "floods it. Prints the transaction id once the node accepted it.",
    )
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    reading = sub.add_parser("reading", help="a sensor reading, in its unit (moisture 28.7 means 28.7 %%)")
    reading.add_argument("--sensor", required=True, help="moisture, temperature, humidity, rain_forecast, ...")
    reading.add_argument("--value", type=float, required=True, help="the value in the sensor's unit")
    command = sub.add_parser("command", help="a command to a device (runs once final)")
    command.add_argument("--to", required=True, help="the target device's name (or member index)")
    command.add_argument("--action", required=True, help="open, close, set, dim, notify, charge, discharge")
    command.add_argument("--args", type=int, nargs="*", default=[], help="the action's whole-number arguments")
    for p in (reading, command):
        p.add_argument("--data-dir", type=Path, required=True, help="the running node's data dir")
        p.add_argument("--json", action="store_true", help="print {\"tx\": id} as JSON")
        p.set_defaults(func=run)


def run(args) -> int:
    if args.what == "reading":
        body = {"kind": "reading", "sensor": args.sensor, "value": args.value}
    else:
        body = {"kind": "command", "to": args.to, "action": args.action, "args": args.args}
    tx = NodeClient(args.data_dir).submit(body)
    print(json.dumps({"tx": tx}) if args.json else tx)
    return 0
