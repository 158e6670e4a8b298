#!/usr/bin/env python3
"""Write the reference field node's schematic and everything derived from it.

    python3 hardware/schematics/generate.py           # (re)write the files below
    python3 hardware/schematics/generate.py --check   # exit 1 if a committed file is stale

1. `field-node.kicad_sch`: the KiCad 7 schematic, from field_node.py.
2. That file is read back (kicad.py) and its connectivity resolved the way KiCad does;
   from the result come `field-node.net` (KiCad "E" netlist), `field-node-nets.csv`
   (one net per line), `field-node-bom.csv` (grouped BOM from the symbols' fields) and
   `field-node.svg` (render.py), then `field-node.png` when `rsvg-convert` is installed.

Plain Python 3.11, no package beyond the standard library.
"""
from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import field_node  # noqa: E402
from kicad import Schematic, netlist_kicad, _ref_key  # noqa: E402
from render import render_svg  # noqa: E402

BASE = "field-node"
SCH = f"{BASE}.kicad_sch"
NET = f"{BASE}.net"
NETS_CSV = f"{BASE}-nets.csv"
BOM_CSV = f"{BASE}-bom.csv"
SVG = f"{BASE}.svg"
PNG = f"{BASE}.png"


class DesignError(Exception):
    pass


def check_design(sch: Schematic):
    """What KiCad's ERC would flag first, from the file itself: name conflicts, pins left
    floating, no-connect flags on nothing, single-pin nets, wires touching mid-segment."""
    conn = sch.connectivity()
    problems = []
    if conn.conflicts:
        problems.append(f"nets with two names: {conn.conflicts}")
    if conn.unconnected:
        problems.append("pins connected to nothing: " + ", ".join(f"{p.ref}.{p.number}" for p in conn.unconnected))
    if conn.dangling_no_connects:
        problems.append(f"no-connect flags on no pin: {conn.dangling_no_connects}")
    if conn.interior_hits:
        problems.append(f"items joined in the middle of a wire (ambiguous in KiCad): {conn.interior_hits[:5]}")
    for net in conn.nets.values():
        if len(net.nodes) < 2 and not net.name.startswith("unconnected-("):
            problems.append(f"net {net.name} has {len(net.nodes)} pin(s)")
    if problems:
        raise DesignError("\n".join(problems))
    return conn


def nets_csv(conn) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["net", "pins"])
    for net in sorted(conn.nets.values(), key=lambda n: n.name):
        if net.nodes:
            w.writerow([net.name, " ".join(f"{p.ref}.{p.number}({p.name})" for p in net.nodes)])
    return buf.getvalue()


BOM_FIELDS = ["item", "references", "qty", "value", "description", "manufacturer", "mpn", "footprint", "fitted", "note"]


def bom_csv(sch: Schematic) -> str:
    groups: dict[tuple, list] = {}
    for s in sch.symbols:
        if s.is_virtual or not s.in_bom:
            continue
        key = (s.props.get("MPN", ""), s.value, s.props.get("Manufacturer", ""), s.props.get("Description", ""),
               s.props.get("Footprint", ""), s.dnp, s.props.get("Note", "") if s.props.get("BOM_Qty") else "")
        groups.setdefault(key, []).append(s)
    rows = []
    for key, parts in groups.items():
        parts.sort(key=lambda s: _ref_key(s.ref))
        qty = sum(int(s.props.get("BOM_Qty", "1")) for s in parts)
        notes = sorted({s.props.get("Note", "") for s in parts} - {""})
        rows.append({"references": " ".join(s.ref for s in parts), "qty": qty, "value": parts[0].value,
                     "description": key[3], "manufacturer": key[2], "mpn": key[0], "footprint": key[4],
                     "fitted": "DNP" if key[5] else "yes", "note": "; ".join(notes), "_k": _ref_key(parts[0].ref)})
    rows.sort(key=lambda r: (r["fitted"] != "yes", r["_k"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, BOM_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for i, r in enumerate(rows, start=1):
        r["item"] = i
        w.writerow(r)
    return buf.getvalue()


def build_outputs() -> dict[str, str]:
    text = field_node.schematic_text()
    sch = Schematic(text)
    conn = check_design(sch)
    return {
        SCH: text,
        NET: netlist_kicad(sch, conn, f"hardware/schematics/{SCH}",
                           "hardware/schematics/generate.py (BlockIoT; KiCad-format netlist, not written by Eeschema)"),
        NETS_CSV: nets_csv(conn),
        BOM_CSV: bom_csv(sch),
        SVG: render_svg(sch),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: beside this script)")
    ap.add_argument("--no-png", action="store_true", help="skip the PNG even if rsvg-convert is installed")
    args = ap.parse_args(argv)
    outputs = build_outputs()
    if args.check:
        stale = [name for name, text in outputs.items()
                 if not (args.out / name).exists() or (args.out / name).read_text(encoding="utf-8") != text]
        for name in stale:
            print(f"stale: {args.out / name}")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in outputs.items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name}")
    if not args.no_png:
        tool = shutil.which("rsvg-convert")
        if tool:
            subprocess.run([tool, "-b", "white", "-w", "3200", "-o", str(args.out / PNG), str(args.out / SVG)], check=True)
            print(f"wrote {args.out / PNG}")
        else:
            print("rsvg-convert not found: PNG not written (apt-get install librsvg2-bin)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
