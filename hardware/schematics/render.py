"""Draw a parsed `.kicad_sch` (kicad.Schematic) as SVG: symbol graphics and pins from the
embedded library, fields, wires, labels, no-connect flags, notes and a title block, in
KiCad's default colours. Plain Python; `generate.py` turns the SVG into a PNG with
`rsvg-convert` when that program is installed.

This is not KiCad's plotter: fonts and field placement differ slightly, connectivity is
exactly what the file holds.
"""
from __future__ import annotations

import math
from html import escape

from kicad import Schematic, find, find_all, has_flag, transform

PAPERS = {"A4": (297, 210), "A3": (420, 297), "A2": (594, 420), "A1": (841, 594)}
BODY = "#840000"
BODY_FILL = "#ffffc2"
PIN = "#840000"
PIN_NAME = "#006464"
PIN_NUM = "#a90000"
WIRE = "#008400"
LABEL = "#000000"
FIELD = "#006464"
REF = "#006464"
POWER = "#840000"
NC = "#0000c8"
NOTE = "#000084"
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"


def _n(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


class _Svg:
    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = w, h
        self.parts: list[str] = []

    def line(self, pts, color, width=0.15, fill="none", close=False):
        tag = "polygon" if close else "polyline"
        p = " ".join(f"{_n(x)},{_n(y)}" for x, y in pts)
        self.parts.append(f'<{tag} points="{p}" fill="{fill}" stroke="{color}" stroke-width="{_n(width)}" '
                          f'stroke-linejoin="round" stroke-linecap="round"/>')

    def circle(self, c, r, color, width=0.15, fill="none"):
        self.parts.append(f'<circle cx="{_n(c[0])}" cy="{_n(c[1])}" r="{_n(r)}" fill="{fill}" stroke="{color}" '
                          f'stroke-width="{_n(width)}"/>')

    def text(self, s, at, size, color, anchor="start", baseline="auto", angle=0, weight="normal"):
        if not s:
            return
        s = s.replace("~{", "").replace("}", "") if "~{" in s else s
        rot = f' transform="rotate({_n(-angle)} {_n(at[0])} {_n(at[1])})"' if angle else ""
        self.parts.append(f'<text x="{_n(at[0])}" y="{_n(at[1])}" font-family="{FONT}" font-size="{_n(size * 1.3)}" '
                          f'fill="{color}" text-anchor="{anchor}" dominant-baseline="{baseline}" '
                          f'font-weight="{weight}"{rot}>{escape(s)}</text>')

    def out(self, px_per_mm: float) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(self.w * px_per_mm)}" '
                f'height="{_n(self.h * px_per_mm)}" viewBox="0 0 {_n(self.w)} {_n(self.h)}">\n'
                f'<rect x="0" y="0" width="{_n(self.w)}" height="{_n(self.h)}" fill="#ffffff"/>\n')
        return head + "\n".join(self.parts) + "\n</svg>\n"


def _justify(eff) -> tuple[str, str]:
    anchor, baseline = "middle", "central"
    j = find(eff, "justify") if eff else None
    if j:
        words = [str(w) for w in j[1:]]
        if "left" in words:
            anchor = "start"
        if "right" in words:
            anchor = "end"
        if "bottom" in words:
            baseline = "auto"
        if "top" in words:
            baseline = "hanging"
    return anchor, baseline


def _size(eff) -> float:
    font = find(eff, "font") if eff else None
    size = find(font, "size") if font else None
    return float(size[1]) if size else 1.27


def render_svg(sch: Schematic, px_per_mm: float = 4.0) -> str:
    w, h = PAPERS.get(sch.paper, (297, 210))
    svg = _Svg(w, h)
    # frame and title block
    svg.line([(10, 10), (w - 10, 10), (w - 10, h - 10), (10, h - 10)], "#840000", 0.2, close=True)
    tb_x, tb_y = w - 120, h - 40
    svg.line([(tb_x, tb_y), (w - 10, tb_y), (w - 10, h - 10), (tb_x, h - 10)], "#840000", 0.2, close=True)
    svg.text(sch.title.get("title", ""), (tb_x + 3, tb_y + 8), 2.5, "#000000", weight="bold")
    svg.text(f"Rev {sch.title.get('rev', '')}   {sch.title.get('date', '')}   {sch.title.get('company', '')}",
             (tb_x + 3, tb_y + 14), 1.6, "#000000")
    for i in sorted(sch.comments):
        svg.text(sch.comments[i], (tb_x + 3, tb_y + 14 + 5 * i), 1.2, "#000000")

    for sym in sch.symbols:
        lib = sch.lib_symbols[sym.lib_id]
        X, Y, A = sym.x, sym.y, sym.angle

        def T(px, py):
            return transform(float(px), float(py), A, X, Y)

        color = POWER if lib.power else BODY
        pts_all = []
        for g in lib.graphics:
            stroke = find(g, "stroke")
            sw = float(find(stroke, "width")[1]) if stroke and find(stroke, "width") else 0.254
            sw = max(sw, 0.15)
            fill_e = find(find(g, "fill") or [], "type")
            fill = str(fill_e[1]) if fill_e else "none"
            fc = {"background": BODY_FILL, "outline": color}.get(fill, "none")
            if g[0] == "rectangle":
                (x1, y1), (x2, y2) = (find(g, "start")[1:3], find(g, "end")[1:3])
                pts = [T(x1, y1), T(x2, y1), T(x2, y2), T(x1, y2)]
                svg.line(pts, color, sw, fc, close=True)
                pts_all += pts
            elif g[0] == "polyline":
                pts = [T(p[1], p[2]) for p in find_all(find(g, "pts"), "xy")]
                closed = fill != "none" and len(pts) > 2
                svg.line(pts, color, sw, fc if closed else "none", close=closed)
                pts_all += pts
            elif g[0] == "circle":
                c = find(g, "center")
                r = float(find(g, "radius")[1])
                cc = T(c[1], c[2])
                svg.circle(cc, r, color, sw, fc)
                pts_all += [(cc[0] - r, cc[1] - r), (cc[0] + r, cc[1] + r)]
        # pins
        pin_names_hidden = False
        pn = find(lib.expr, "pin_names")
        offset = 1.016
        if pn:
            pin_names_hidden = has_flag(pn, "hide")
            off = find(pn, "offset")
            offset = float(off[1]) if off else offset
        numbers_hidden = bool(find(lib.expr, "pin_numbers") and has_flag(find(lib.expr, "pin_numbers"), "hide"))
        for p in lib.pins:
            if p.hidden:
                continue
            a = math.radians(p.angle)
            tip = (p.x + p.length * math.cos(a), p.y + p.length * math.sin(a))
            s0, s1 = T(p.x, p.y), T(*tip)
            svg.line([s0, s1], PIN, 0.15)
            pts_all += [s0, s1]
            sheet_angle = (p.angle + A) % 360
            horizontal = sheet_angle in (0, 180)
            name = "" if p.name == "~" else p.name
            if not pin_names_hidden and name:
                if horizontal:
                    dx = offset if sheet_angle == 0 else -offset
                    svg.text(name, (s1[0] + dx, s1[1]), 1.27, PIN_NAME, "start" if sheet_angle == 0 else "end", "central")
                else:
                    dy = -offset if sheet_angle == 90 else offset
                    svg.text(name, (s1[0], s1[1] + dy), 1.27, PIN_NAME, "start" if sheet_angle == 90 else "end",
                             "central", angle=90)
            if not numbers_hidden:
                mid = ((s0[0] + s1[0]) / 2, (s0[1] + s1[1]) / 2)
                if horizontal:
                    svg.text(p.number, (mid[0], mid[1] - 0.4), 1.0, PIN_NUM, "middle", "auto")
                else:
                    svg.text(p.number, (mid[0] - 0.4, mid[1]), 1.0, PIN_NUM, "middle", "auto", angle=90)
        # fields
        for prop in find_all(next(e for e in sch.expr if isinstance(e, list) and e[0] == "symbol"
                                  and find(e, "uuid") and str(find(e, "uuid")[1]) == sym.uuid), "property"):
            eff = find(prop, "effects")
            if eff and has_flag(eff, "hide"):
                continue
            at = find(prop, "at")
            anchor, baseline = _justify(eff)
            name = str(prop[1])
            col = REF if name == "Reference" else (POWER if lib.power else FIELD)
            svg.text(str(prop[2]), (float(at[1]), float(at[2])), _size(eff), col, anchor, baseline,
                     angle=float(at[3]) if len(at) > 3 else 0)
        if sym.dnp and pts_all:
            xs, ys = [p[0] for p in pts_all], [p[1] for p in pts_all]
            x0, x1, y0, y1 = min(xs) - 0.5, max(xs) + 0.5, min(ys) - 0.5, max(ys) + 0.5
            svg.line([(x0, y0), (x1, y1)], "#d00000", 0.3)
            svg.line([(x0, y1), (x1, y0)], "#d00000", 0.3)

    for a, b in sch.wires:
        svg.line([a, b], WIRE, 0.25)
    for x, y in sch.junctions:
        svg.circle((x, y), 0.5, WIRE, 0.1, WIRE)
    for lab in sch.labels:
        anchor = "end" if lab.angle in (180, 270) else "start"
        ang = 90 if lab.angle in (90, 270) else 0
        dx, dy = {0: (0.3, -0.3), 180: (-0.3, -0.3), 90: (-0.3, -0.3), 270: (-0.3, 0.3)}[lab.angle]
        svg.text(lab.text, (lab.x + dx, lab.y + dy), 1.27, LABEL, anchor, "auto", angle=ang)
    for x, y in sch.no_connects:
        d = 0.635
        svg.line([(x - d, y - d), (x + d, y + d)], NC, 0.2)
        svg.line([(x - d, y + d), (x + d, y - d)], NC, 0.2)
    for s, x, y, size in sch.texts:
        svg.text(s, (x, y), size, NOTE, "start", "auto")
    return svg.out(px_per_mm)
