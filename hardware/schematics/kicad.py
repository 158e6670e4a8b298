"""A small reader and writer for KiCad's S-expression schematics (`.kicad_sch`, KiCad 7
format 20230121), with the connectivity KiCad derives from them.

Plain Python, no dependency: `generate.py` writes the reference field node with it and
reads the written file back to make the netlist, BOM and picture; the tests read the same
file with it. Only what a flat, one-sheet schematic uses is covered: library symbols with
pins, placed symbols (rotation 0/90/180/270, no mirroring), wires, local and global
labels, power symbols, no-connect flags and junctions.

Connectivity follows KiCad's rules for those items: a wire joins its two ends; a wire end,
a label or a power-symbol pin lying on another wire (end or inside) joins it; a symbol pin
joins whatever sits exactly on its connection point; labels with the same text name one
net on the sheet, power symbols name a global net by their value.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field


# ---------------------------------------------------------------------------
# S-expressions

class Sym(str):
    """A bare atom (`kicad_sch`, `yes`, `passive`), written without quotes."""


def parse(text: str) -> list:
    """Parse one S-expression. Atoms and quoted strings both come back as `str`
    (quoted strings as plain `str`, bare atoms as `Sym`)."""
    pos = 0
    n = len(text)
    stack: list[list] = []
    result = None
    while pos < n:
        c = text[pos]
        if c in " \t\r\n":
            pos += 1
        elif c == "(":
            stack.append([])
            pos += 1
        elif c == ")":
            if not stack:
                raise ValueError(f"unbalanced ')' at offset {pos}")
            done = stack.pop()
            if stack:
                stack[-1].append(done)
            else:
                result = done
            pos += 1
        elif c == '"':
            pos += 1
            out = []
            while True:
                if pos >= n:
                    raise ValueError("unterminated string")
                c = text[pos]
                if c == "\\":
                    nxt = text[pos + 1]
                    out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                    pos += 2
                elif c == '"':
                    pos += 1
                    break
                else:
                    out.append(c)
                    pos += 1
            if not stack:
                raise ValueError("string outside a list")
            stack[-1].append("".join(out))
        else:
            m = re.compile(r'[^\s()"]+').match(text, pos)
            assert m is not None
            if not stack:
                raise ValueError("atom outside a list")
            stack[-1].append(Sym(m.group(0)))
            pos = m.end()
    if stack:
        raise ValueError("unbalanced '('")
    if result is None:
        raise ValueError("no expression")
    return result


def fmt_num(v: float) -> str:
    v = round(float(v), 4)
    if v == 0:
        return "0"
    s = f"{v:.4f}".rstrip("0").rstrip(".")
    return s


def _atom(x) -> str:
    if isinstance(x, Sym):
        return str(x)
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return fmt_num(x)
    if isinstance(x, str):
        return '"' + x.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    raise TypeError(f"cannot write {x!r}")


def dump(expr, indent: int = 0, width: int = 100) -> str:
    """Write an expression in KiCad's style: short lists on one line, long ones broken
    with each sub-list on its own line."""
    if not isinstance(expr, list):
        return _atom(expr)
    flat = _flat(expr)
    if len(flat) + indent <= width or not any(isinstance(x, list) for x in expr):
        return flat
    head = []
    rest = []
    for x in expr:
        if not isinstance(x, list) and not rest:
            head.append(_atom(x))
        else:
            rest.append(x)
    pad = "  " * (indent // 2 + 1)
    lines = ["(" + " ".join(head)]
    for x in rest:
        lines.append(pad + dump(x, len(pad), width))
    lines.append("  " * (indent // 2) + ")")
    return "\n".join(lines)


def _flat(expr) -> str:
    if not isinstance(expr, list):
        return _atom(expr)
    return "(" + " ".join(_flat(x) for x in expr) + ")"


def find(expr: list, tag: str) -> list | None:
    for x in expr:
        if isinstance(x, list) and x and x[0] == tag:
            return x
    return None


def find_all(expr: list, tag: str) -> list[list]:
    return [x for x in expr if isinstance(x, list) and x and x[0] == tag]


def has_flag(expr: list, flag: str) -> bool:
    """True for a bare `hide`-style atom or a `(hide yes)` list among the items."""
    for x in expr[1:]:
        if isinstance(x, Sym) and x == flag:
            return True
        if isinstance(x, list) and x and x[0] == flag and len(x) > 1 and x[1] == "yes":
            return True
    return False


# ---------------------------------------------------------------------------
# Schematic model

@dataclass(frozen=True)
class LibPin:
    number: str
    name: str
    etype: str  # input, output, bidirectional, power_in, power_out, passive, ...
    x: float  # connection point, library coordinates (y up)
    y: float
    angle: int  # direction from the connection point towards the body
    length: float
    hidden: bool


@dataclass
class LibSymbol:
    lib_id: str
    power: bool
    pins: list[LibPin]
    graphics: list[list]  # rectangle / polyline / circle / text items of all units
    expr: list


@dataclass
class Placed:
    lib_id: str
    ref: str
    value: str
    x: float
    y: float
    angle: int
    props: dict[str, str]
    dnp: bool
    in_bom: bool
    uuid: str

    @property
    def is_virtual(self) -> bool:
        """Power symbols and flags (#PWR, #FLG): no part, no netlist entry."""
        return self.ref.startswith("#")


@dataclass(frozen=True)
class Label:
    text: str
    x: float
    y: float
    angle: int
    kind: str  # label / global_label


@dataclass(frozen=True)
class PinAt:
    ref: str
    number: str
    name: str
    etype: str
    x: float
    y: float
    angle: int  # on the sheet (y down): 0 body to the right of the point, 90 body above...
    length: float
    power_symbol: bool


@dataclass
class Net:
    name: str
    nodes: list[PinAt]
    labels: list[Label] = field(default_factory=list)
    local: bool = False  # named by local labels only (KiCad writes it as "/NAME")


def transform(px: float, py: float, angle: int, x: float, y: float) -> tuple[float, float]:
    """Library point (y up) of a symbol placed at (x, y) rotated by `angle` degrees
    (counter-clockwise on screen) to sheet coordinates (y down)."""
    a = math.radians(angle)
    rx = px * math.cos(a) - py * math.sin(a)
    ry = px * math.sin(a) + py * math.cos(a)
    return (round(x + rx, 4), round(y - ry, 4))


def _num(v) -> float:
    return float(v)


class Schematic:
    """One parsed `.kicad_sch` sheet."""

    def __init__(self, text: str) -> None:
        self.expr = parse(text)
        if not self.expr or self.expr[0] != "kicad_sch":
            raise ValueError("not a kicad_sch file")
        self.version = int(find(self.expr, "version")[1])
        self.paper = str(find(self.expr, "paper")[1]) if find(self.expr, "paper") else "A4"
        tb = find(self.expr, "title_block") or []
        self.title = {str(x[0]): (x[1] if len(x) == 2 else " ".join(map(str, x[1:])))
                      for x in tb[1:] if isinstance(x, list)}
        self.comments = {int(x[1]): str(x[2]) for x in find_all(tb, "comment")} if tb else {}
        self.lib_symbols: dict[str, LibSymbol] = {}
        for s in find_all(find(self.expr, "lib_symbols") or [], "symbol"):
            self.lib_symbols[str(s[1])] = self._lib_symbol(s)
        self.symbols = [self._placed(s) for s in find_all(self.expr, "symbol")]
        self.wires = []
        for w in find_all(self.expr, "wire"):
            pts = [(round(_num(p[1]), 4), round(_num(p[2]), 4)) for p in find_all(find(w, "pts"), "xy")]
            for a, b in zip(pts, pts[1:]):
                self.wires.append((a, b))
        self.labels = []
        for kind in ("label", "global_label"):
            for lab in find_all(self.expr, kind):
                at = find(lab, "at")
                self.labels.append(Label(str(lab[1]), round(_num(at[1]), 4), round(_num(at[2]), 4),
                                         int(_num(at[3])) if len(at) > 3 else 0, kind))
        if find_all(self.expr, "hierarchical_label") or find_all(self.expr, "sheet"):
            raise ValueError("hierarchical sheets are not supported by this reader")
        self.no_connects = [(round(_num(n[1][1]), 4), round(_num(n[1][2]), 4))
                            for n in find_all(self.expr, "no_connect")]
        self.junctions = [(round(_num(j[1][1]), 4), round(_num(j[1][2]), 4))
                          for j in find_all(self.expr, "junction")]
        self.texts = []
        for t in find_all(self.expr, "text"):
            at = find(t, "at")
            eff = find(t, "effects") or []
            font = find(eff, "font") or []
            size = find(font, "size")
            self.texts.append((str(t[1]), _num(at[1]), _num(at[2]), _num(size[1]) if size else 1.27))

    # -- parsing helpers
    @staticmethod
    def _lib_symbol(s: list) -> LibSymbol:
        pins: list[LibPin] = []
        graphics: list[list] = []
        for unit in find_all(s, "symbol"):
            for item in unit[1:]:
                if not isinstance(item, list):
                    continue
                if item[0] == "pin":
                    at = find(item, "at")
                    name = find(item, "name")
                    number = find(item, "number")
                    pins.append(LibPin(str(number[1]), str(name[1]), str(item[1]),
                                       _num(at[1]), _num(at[2]), int(_num(at[3])),
                                       _num(find(item, "length")[1]), has_flag(item, "hide")))
                elif item[0] in ("rectangle", "polyline", "circle", "text", "arc"):
                    graphics.append(item)
        return LibSymbol(str(s[1]), find(s, "power") is not None, pins, graphics, s)

    @staticmethod
    def _placed(s: list) -> Placed:
        at = find(s, "at")
        props = {str(p[1]): str(p[2]) for p in find_all(s, "property")}
        if find(s, "mirror") is not None:
            raise ValueError("mirrored symbols are not supported by this reader")
        dnp = find(s, "dnp")
        in_bom = find(s, "in_bom")
        uuid = find(s, "uuid")
        return Placed(str(find(s, "lib_id")[1]), props.get("Reference", "?"), props.get("Value", ""),
                      _num(at[1]), _num(at[2]), int(_num(at[3])) if len(at) > 3 else 0, props,
                      bool(dnp and dnp[1] == "yes"), not (in_bom and in_bom[1] == "no"),
                      str(uuid[1]) if uuid else "")

    # -- geometry
    def pins(self) -> list[PinAt]:
        out = []
        for sym in self.symbols:
            lib = self.lib_symbols[sym.lib_id]
            for p in lib.pins:
                x, y = transform(p.x, p.y, sym.angle, sym.x, sym.y)
                out.append(PinAt(sym.ref, p.number, p.name, p.etype, x, y, (p.angle + sym.angle) % 360,
                                 p.length, lib.power))
        return out

    def part(self, ref: str) -> Placed:
        for s in self.symbols:
            if s.ref == ref:
                return s
        raise KeyError(ref)

    # -- connectivity
    def connectivity(self) -> "Connectivity":
        return Connectivity(self)


def _on_segment(p, a, b) -> bool:
    """p strictly inside segment a-b (not at an end)."""
    if p == a or p == b:
        return False
    (px, py), (ax, ay), (bx, by) = p, a, b
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    if abs(cross) > 1e-6:
        return False
    dot = (px - ax) * (bx - ax) + (py - ay) * (by - ay)
    return 0 < dot < (bx - ax) ** 2 + (by - ay) ** 2


class Connectivity:
    """Nets of a sheet, as KiCad would form them from its wires, labels and symbols."""

    def __init__(self, sch: Schematic) -> None:
        self.sch = sch
        parent: dict = {}

        def root(k):
            parent.setdefault(k, k)
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        def join(a, b):
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[ra] = rb

        pins = sch.pins()
        self.all_pins = pins
        wire_ends = {pt for w in sch.wires for pt in w}
        # Points that join a wire they touch anywhere: wire ends, labels, power-symbol pins.
        label_points = {(lab.x, lab.y) for lab in sch.labels}
        touchers = set(wire_ends) | label_points
        touchers |= {(p.x, p.y) for p in pins if p.power_symbol}
        # A label on a wire's middle is ordinary; a wire end or power pin there is a
        # T-junction (KiCad joins it and draws a dot): reported, the generator avoids them.
        self.interior_hits: list[tuple] = []
        for a, b in sch.wires:
            join(("pt", a), ("pt", b))
            for p in touchers:
                if _on_segment(p, a, b):
                    join(("pt", p), ("pt", a))
                    if p not in label_points:
                        self.interior_hits.append((p, a, b))
        # Pins join whatever sits exactly on their connection point.
        for p in pins:
            join(("pin", p.ref, p.number, p.x, p.y), ("pt", (p.x, p.y)))
        for lab in sch.labels:
            join(("label", lab), ("pt", (lab.x, lab.y)))
            join(("label", lab), ("name", lab.text))
        for p in pins:
            # A power symbol's hidden power-input pin names a global net (by the symbol's
            # value, equal to the pin name in these files); PWR_FLAG's output pin names none.
            if p.power_symbol and p.etype == "power_in":
                sym = sch.part(p.ref)
                join(("pt", (p.x, p.y)), ("name", sym.value))
        groups: dict = {}
        for k in list(parent):
            groups.setdefault(root(k), []).append(k)
        self.nets: dict[str, Net] = {}
        self.conflicts: list[set[str]] = []
        self.no_connect_pins: list[PinAt] = []
        nc_points = set(sch.no_connects)
        self.nc_points = nc_points
        self.dangling_no_connects = [pt for pt in nc_points if not any((p.x, p.y) == pt for p in pins)]
        for members in groups.values():
            names = sorted({k[1] for k in members if k[0] == "name"})
            nodes = [p for p in pins if ("pin", p.ref, p.number, p.x, p.y) in members and not p.power_symbol]
            labels = [k[1] for k in members if k[0] == "label"]
            if len(names) > 1:
                self.conflicts.append(set(names))
            if names:
                name = names[0]
            elif nodes:
                first = sorted(nodes, key=lambda p: (_ref_key(p.ref), p.number))[0]
                if len(nodes) == 1 and (first.x, first.y) in nc_points:
                    name = f"unconnected-({first.ref}-Pad{first.number})"
                else:
                    name = f"Net-({first.ref}-Pad{first.number})"
            else:
                continue
            net = self.nets.setdefault(name, Net(name, []))
            net.nodes.extend(nodes)
            net.labels.extend(labels)
            global_names = {k[1] for k in members if k[0] == "name"} - {lab.text for lab in labels if lab.kind == "label"}
            net.local = bool(labels) and all(lab.kind == "label" for lab in net.labels) and not global_names
        for net in self.nets.values():
            net.nodes.sort(key=lambda p: (_ref_key(p.ref), _pin_key(p.number)))
        self.unconnected: list[PinAt] = []
        for p in pins:
            if p.power_symbol:
                continue
            net = self.net_of(p.ref, p.number)
            if (p.x, p.y) in nc_points:
                self.no_connect_pins.append(p)
                if net is not None and len(net.nodes) > 1:
                    self.conflicts.append({f"{p.ref}.{p.number} flagged no-connect but wired"})
            elif net is None or len(net.nodes) < 2:
                self.unconnected.append(p)

    def net_of(self, ref: str, pin: str) -> Net | None:
        for net in self.nets.values():
            for p in net.nodes:
                if p.ref == ref and p.number == pin:
                    return net
        return None

    def pin_map(self) -> dict[str, set[str]]:
        """Net name -> {"REF.PIN", ...} (real parts only)."""
        return {n.name: {f"{p.ref}.{p.number}" for p in n.nodes} for n in self.nets.values() if n.nodes}


def _ref_key(ref: str):
    m = re.match(r"([A-Za-z#_]+)(\d*)", ref)
    return (m.group(1), int(m.group(2)) if m and m.group(2) else 0) if m else (ref, 0)


def _pin_key(num: str):
    m = re.match(r"(\D*)(\d+)$", num)
    return (m.group(1), int(m.group(2)), num) if m else (num, 0, num)


# ---------------------------------------------------------------------------
# Netlists

def netlist_kicad(sch: Schematic, conn: Connectivity, source: str, tool: str) -> str:
    """A netlist in KiCad's own S-expression export format (version "E"), as `kicad-cli sch
    export netlist` writes it: components with their fields, then nets with their nodes."""
    comps = [s for s in sch.symbols if not s.is_virtual]
    comps.sort(key=lambda s: _ref_key(s.ref))
    out: list = [Sym("export"), [Sym("version"), "E"]]
    design = [Sym("design"), [Sym("source"), source], [Sym("date"), sch.title.get("date", "")],
              [Sym("tool"), tool],
              [Sym("sheet"), [Sym("number"), "1"], [Sym("name"), "/"], [Sym("tstamps"), "/"],
               [Sym("title_block"), [Sym("title"), sch.title.get("title", "")],
                [Sym("company"), sch.title.get("company", "")], [Sym("rev"), sch.title.get("rev", "")],
                [Sym("date"), sch.title.get("date", "")], [Sym("source"), source.rsplit("/", 1)[-1]]]]]
    out.append(design)
    cl: list = [Sym("components")]
    for s in comps:
        lib, _, part = s.lib_id.partition(":")
        c = [Sym("comp"), [Sym("ref"), s.ref], [Sym("value"), s.value],
             [Sym("footprint"), s.props.get("Footprint", "")], [Sym("datasheet"), s.props.get("Datasheet", "~")]]
        fields = [Sym("fields")]
        for k in ("Manufacturer", "MPN", "Description"):
            if s.props.get(k):
                fields.append([Sym("field"), [Sym("name"), k], s.props[k]])
        if s.dnp:
            fields.append([Sym("field"), [Sym("name"), "DNP"], "DNP"])
        c.append(fields)
        c.append([Sym("libsource"), [Sym("lib"), lib], [Sym("part"), part], [Sym("description"), s.props.get("Description", "")]])
        c.append([Sym("sheetpath"), [Sym("names"), "/"], [Sym("tstamps"), "/"]])
        c.append([Sym("tstamps"), s.uuid])
        cl.append(c)
    out.append(cl)
    nl: list = [Sym("nets")]
    named = sorted((n for n in conn.nets.values() if n.nodes), key=lambda n: n.name)
    for code, n in enumerate(named, start=1):
        net = [Sym("net"), [Sym("code"), str(code)], [Sym("name"), ("/" if n.local else "") + n.name]]
        for p in n.nodes:
            net.append([Sym("node"), [Sym("ref"), p.ref], [Sym("pin"), p.number],
                        [Sym("pinfunction"), p.name], [Sym("pintype"), p.etype]])
        nl.append(net)
    out.append(nl)
    return dump(out) + "\n"


def read_netlist_kicad(text: str) -> dict[str, set[str]]:
    """Net name -> {"REF.PIN"} from a KiCad "E" netlist."""
    expr = parse(text)
    nets = {}
    for net in find_all(find(expr, "nets"), "net"):
        name = str(find(net, "name")[1]).lstrip("/")
        nets[name] = {f"{find(nd, 'ref')[1]}.{find(nd, 'pin')[1]}" for nd in find_all(net, "node")}
    return nets
