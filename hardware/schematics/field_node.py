"""The reference field node: its parts, where they sit on the sheet and which net each
pin is on, written out as a KiCad 7 schematic (`field-node.kicad_sch`).

Every connection is drawn as a short wire from the pin to a net label, a power symbol or
a no-connect flag, so the sheet reads as blocks (charger, battery and 5 V, gateway
computer, radio board, probe, valve driver, input selection) joined by net names. The
netlist, BOM and picture are made afterwards by reading the written file back
(`generate.py`), not from the tables here.
"""
from __future__ import annotations

import uuid as _uuid

import symbols as S
from kicad import Sym, dump, transform

PROJECT = "field-node"
TITLE = "BlockIoT reference field node"
REV = "A"
DATE = "2026-11-30"
PAPER = "A3"  # 420 x 297 mm
ROOT_UUID = str(_uuid.uuid5(_uuid.NAMESPACE_URL, "blockiot/hardware/field-node/root"))

# Nets drawn with power symbols (rails); every other net is a local label.
RAILS = ("GND", "VSOLAR", "VBAT", "V5", "3V3", "PI_3V3", "VBOOST", "VVALVE")
POWER_FLAGS = ("GND", "VSOLAR", "VBAT", "VVALVE")  # rails fed only by passive pins (for ERC)

FP = {
    "R0603": "Resistor_SMD:R_0603_1608Metric",
    "R2512": "Resistor_SMD:R_2512_6332Metric",
    "C0603": "Capacitor_SMD:C_0603_1608Metric",
    "C1210": "Capacitor_SMD:C_1210_3225Metric",
    "CP8x10": "Capacitor_SMD:CP_Elec_8x10",
    "CP18": "Capacitor_THT:CP_Radial_D18.0mm_P7.50mm",
    "LED0603": "LED_SMD:LED_0603_1608Metric",
    "SMA": "Diode_SMD:D_SMA",
    "SOT23": "Package_TO_SOT_SMD:SOT-23",
    "TB2": "TerminalBlock_Phoenix:TerminalBlock_Phoenix_MKDS-1,5-2-5.08_1x02_P5.08mm_Horizontal",
    "PH3": "Connector_JST:JST_PH_B3B-PH-K_1x03_P2.00mm_Vertical",
}

# Parts: value, footprint, manufacturer, MPN, supplier-neutral description, datasheet.
R_0603 = ("Yageo", "RC0603FR-07{}L", "Resistor {} 1% 0.1 W 0603 thick film")
PARTS = {
    "R1k": ("1k", FP["R0603"], "Yageo", "RC0603FR-071KL", "Resistor 1 kOhm 1% 0.1 W 0603"),
    "R3k3": ("3.3k", FP["R0603"], "Yageo", "RC0603FR-073K3L", "Resistor 3.3 kOhm 1% 0.1 W 0603"),
    "R10k": ("10k", FP["R0603"], "Yageo", "RC0603FR-0710KL", "Resistor 10 kOhm 1% 0.1 W 0603"),
    "R15k": ("15k", FP["R0603"], "Yageo", "RC0603FR-0715KL", "Resistor 15 kOhm 1% 0.1 W 0603"),
    "R120": ("120", FP["R0603"], "Yageo", "RC0603FR-07120RL", "Resistor 120 Ohm 1% 0.1 W 0603"),
    "R200k": ("200k", FP["R0603"], "Yageo", "RC0603FR-07200KL", "Resistor 200 kOhm 1% 0.1 W 0603"),
    "R470k": ("470k", FP["R0603"], "Yageo", "RC0603FR-07470KL", "Resistor 470 kOhm 1% 0.1 W 0603"),
    "R0": ("0", FP["R0603"], "Yageo", "RC0603JR-070RL", "Jumper resistor 0 Ohm 0603 (input selection)"),
    "R220_2512": ("220", FP["R2512"], "Yageo", "RC2512FK-07220RL", "Resistor 220 Ohm 1% 1 W 2512"),
    "RCS": ("0.05", FP["R2512"], "Vishay Dale", "WSL2512R0500FEA", "Current sense resistor 50 mOhm 1% 1 W 2512"),
    "C100n": ("100n", FP["C0603"], "Murata", "GRM188R71H104KA93D", "Capacitor ceramic 100 nF 50 V X7R 0603"),
    "C10n": ("10n", FP["C0603"], "Murata", "GRM188R71H103KA01D", "Capacitor ceramic 10 nF 50 V X7R 0603"),
    "C220n": ("220n", FP["C0603"], "Samsung Electro-Mechanics", "CL10B224KO8NNNC", "Capacitor ceramic 220 nF 16 V X7R 0603"),
    "C2u2": ("2.2u", FP["C0603"], "Murata", "GRM188R61A225KE34D", "Capacitor ceramic 2.2 uF 10 V X5R 0603"),
    "C10u": ("10u", FP["C1210"], "Murata", "GRM32ER71H106KA12L", "Capacitor ceramic 10 uF 50 V X7R 1210"),
    "C100u": ("100u", FP["CP8x10"], "Panasonic", "EEE-FK1V101P", "Capacitor aluminium electrolytic 100 uF 35 V SMD 8x10"),
    "C10000u": ("10000u", FP["CP18"], "Panasonic", "EEU-FR1C103", "Capacitor aluminium electrolytic 10000 uF 16 V radial, low ESR"),
    "SCHOTTKY": ("B340A", FP["SMA"], "Diodes Incorporated", "B340A-13-F", "Schottky diode 40 V 3 A SMA"),
    "LED_R": ("red", FP["LED0603"], "Kingbright", "APT1608SURCK", "LED red 0603"),
    "LED_G": ("green", FP["LED0603"], "Kingbright", "APT1608SGC", "LED green 0603"),
    "PMOS": ("AO3401A", FP["SOT23"], "Alpha & Omega Semiconductor", "AO3401A", "P-channel MOSFET -30 V -4 A SOT-23"),
    "L22u": ("22u", "Inductor_SMD:L_Bourns_SRR1260", "Bourns", "SRR1260-220M", "Power inductor 22 uH shielded 12x12 mm"),
    "FUSE": ("5A", "Fuse:Fuse_Littelfuse_NANO2_451_453", "Littelfuse", "0451005.MRL", "Fuse 5 A fast-acting SMD"),
    "TB2": ("MKDS 1,5/2-5,08", FP["TB2"], "Phoenix Contact", "1935161", "Terminal block 2 positions 5.08 mm"),
    "PH3": ("PH 3p", FP["PH3"], "JST", "B3B-PH-K-S(LF)(SN)", "Connector header 3 positions 2.0 mm, vertical"),
    "CN3791": ("CN3791", "Package_SO:SSOP-10_3.9x4.9mm_P1.00mm", "Consonance Electronics", "CN3791",
               "MPPT solar Li-ion charger controller (4.2 V), SSOP-10"),
    "DRV8833": ("DRV8833", "Package_SO:HTSSOP-16-1EP_4.4x5mm_P0.65mm_EP3.4x5mm", "Texas Instruments", "DRV8833PWPR",
                "Dual H-bridge motor driver 2.7-10.8 V, HTSSOP-16"),
    "ADS1115": ("ADS1115", "Package_SO:MSOP-10_3x3mm_P0.5mm", "Texas Instruments", "ADS1115IDGSR",
                "ADC 16-bit 4-channel I2C, VSSOP-10"),
    "HELTEC": ("WiFi LoRa 32 V3", "", "Heltec Automation", "HTIT-WB32LA",
               "LoRa board ESP32-S3 + SX1262, 863-928 MHz (WiFi LoRa 32 V3.x)"),
    "RPI": ("Raspberry Pi Zero 2 W", "", "Raspberry Pi Ltd", "SC0510", "Single-board computer, gateway (runs blockiot node)"),
    "PROBE": ("SEN0193", "", "DFRobot", "SEN0193", "Capacitive soil moisture probe, analog output, 3.3-5.5 V"),
    "REG5V": ("S9V11F5S6CMA", "", "Pololu", "S9V11F5S6CMA", "Step-up/step-down regulator 5 V 1.5 A, low-voltage cutoff"),
    "REGADJ": ("S9V11MA (9 V)", "", "Pololu", "S9V11MA", "Step-up/step-down regulator 2.5-9 V adjustable, set to 9.0 V"),
    "BATTERY": ("1S6P Li-ion 3.6 V 21 Ah", "", "Samsung SDI", "INR18650-35E",
                "Li-ion cell 18650 3.5 Ah; pack BT1 = 6 in parallel with a 1S protection board >= 5 A"),
    "PANEL": ("12 V 20 W", "", "generic", "see description",
              "Photovoltaic panel, 12 V nominal (Vmp 17-19 V, Voc < 25 V), 20 W, with leads"),
    "VALVE": ("9 V latching", "", "generic", "see description",
              "2-wire DC latching solenoid valve, 9 V pulse, coil 4-8 Ohm"),
}


def uid(key: str) -> str:
    return str(_uuid.uuid5(_uuid.NAMESPACE_URL, f"blockiot/hardware/field-node/{key}"))


class Sheet:
    """Collects library symbols and sheet items, then writes the `.kicad_sch`."""

    def __init__(self) -> None:
        self.libs: dict[str, list] = {}
        self.items: list[list] = []
        self.n_pwr = 0
        self.n_flg = 0
        self.refs: set[str] = set()
        self.pin_pos: dict[tuple[str, str], tuple[float, float]] = {}

    # -- primitives
    def wire(self, a, b):
        self.items.append([Sym("wire"), [Sym("pts"), [Sym("xy"), *a], [Sym("xy"), *b]],
                           [Sym("stroke"), [Sym("width"), 0], [Sym("type"), Sym("default")]],
                           [Sym("uuid"), Sym(uid(f"wire/{a}/{b}"))]])

    def label(self, name, at, angle):
        just = {0: "left bottom", 90: "left bottom", 180: "right bottom", 270: "right bottom"}[angle]
        self.items.append([Sym("label"), name, [Sym("at"), at[0], at[1], angle], [Sym("fields_autoplaced")],
                           S._eff(justify=just), [Sym("uuid"), Sym(uid(f"label/{name}/{at}"))]])

    def no_connect(self, at):
        self.items.append([Sym("no_connect"), [Sym("at"), *at], [Sym("uuid"), Sym(uid(f"nc/{at}"))]])

    def text(self, s, at, size=1.27):
        self.items.append([Sym("text"), s, [Sym("at"), at[0], at[1], 0], S._eff(size, justify="left bottom"),
                           [Sym("uuid"), Sym(uid(f"text/{s[:40]}/{at}"))]])

    def _lib(self, sd: S.SymbolDef):
        self.libs.setdefault(sd.lib_id, sd.expr())

    def _symbol(self, sd: S.SymbolDef, ref, value, at, angle, props, dnp=False, value_at=None):
        self._lib(sd)
        x, y = at
        rx, ry, rj = sd.ref_at
        vx, vy, vj = value_at or sd.value_at
        e = [Sym("symbol"), [Sym("lib_id"), sd.lib_id], [Sym("at"), x, y, angle], [Sym("unit"), 1],
             [Sym("in_bom"), Sym("no" if sd.power else "yes")], [Sym("on_board"), Sym("yes")],
             [Sym("dnp"), Sym("yes" if dnp else "no")], [Sym("uuid"), Sym(uid(f"sym/{ref}"))]]
        e.append(S.prop("Reference", ref, x + rx, y + ry, hide=sd.power, justify=rj))
        e.append(S.prop("Value", value, x + vx, y + vy, justify=vj))
        for k, v in props.items():
            e.append(S.prop(k, v, x, y, hide=True))
        for p in sd.pins:
            e.append([Sym("pin"), str(p[6]), [Sym("uuid"), Sym(uid(f"pin/{ref}/{p[6]}"))]])
        e.append([Sym("instances"), [Sym("project"), PROJECT,
                                     [Sym("path"), f"/{ROOT_UUID}", [Sym("reference"), ref], [Sym("unit"), 1]]]])
        self.items.append(e)

    def power(self, net, at, outward):
        """A power symbol for `net` with its pin at `at`, its glyph pointing away from the
        pin along `outward` (rails: arrow; GND: the ground bars)."""
        self.n_pwr += 1
        ground = net == "GND"
        sd = S.power_symbol(net, ground)
        if ground:  # glyph drawn towards -y (library): angle turns it along `outward`
            angle = {(0, 1): 0, (0, -1): 180, (1, 0): 90, (-1, 0): 270}[outward]
        else:  # arrow drawn towards +y (library)
            angle = {(0, -1): 0, (0, 1): 180, (-1, 0): 90, (1, 0): 270}[outward]
        d = 3.81
        value_at = {(0, -1): (0, -d - 0.635, None), (0, 1): (0, d + 0.635, None),
                    (1, 0): (d, 0, "left"), (-1, 0): (-d, 0, "right")}[outward]
        self._symbol(sd, f"#PWR{self.n_pwr:02d}", net, at, angle, {"Footprint": "", "Datasheet": ""},
                     value_at=value_at)

    def power_flag(self, net, at):
        """PWR_FLAG on `net` (for ERC: the rail is fed by passive pins only)."""
        self.n_flg += 1
        self.power(net, at, (0, 1) if net == "GND" else (0, -1))
        self._symbol(S.PWR_FLAG, f"#FLG{self.n_flg:02d}", "PWR_FLAG", at, 0 if net == "GND" else 180,
                     {"Footprint": "", "Datasheet": ""},
                     value_at=(0, -5.08, None) if net == "GND" else (0, 5.08, None))

    def link(self, a, b, name=None):
        """A straight wire between two placed pins, (ref, pin) each, named at `a`'s end."""
        pa, pb = self.pin_pos[a], self.pin_pos[b]
        if pa[0] != pb[0] and pa[1] != pb[1]:
            raise ValueError(f"link {a}-{b} is not straight")
        self.wire(pa, pb)
        if name:  # on the wire's middle, to the left of (or above) it
            mid = (round((pa[0] + pb[0]) / 2, 4), round((pa[1] + pb[1]) / 2, 4))
            self.label(name, mid, 180 if pa[0] == pb[0] else 0)

    # -- a part and its connections
    def place(self, sd: S.SymbolDef, ref: str, part: str, at, conns: dict, *, angle=0, dnp=False, stub=2.54,
              value=None, note="", bom_qty=None):
        if ref in self.refs:
            raise ValueError(f"duplicate reference {ref}")
        self.refs.add(ref)
        pv, fp, mfr, mpn, desc = PARTS[part]
        props = {"Footprint": fp, "Datasheet": "~", "Manufacturer": mfr, "MPN": mpn, "Description": desc}
        if note:
            props["Note"] = note
        if bom_qty:
            props["BOM_Qty"] = str(bom_qty)
        self._symbol(sd, ref, value or pv, at, angle, props, dnp)
        numbers = [str(p[6]) for p in sd.pins]
        missing = set(numbers) - set(conns)
        extra = set(conns) - set(numbers)
        if missing or extra:
            raise ValueError(f"{ref}: pins without a connection {sorted(missing)}, unknown pins {sorted(extra)}")
        for p in sd.pins:
            etype, px, py, pang, length, name, number = p[:7]
            pt = transform(px, py, angle, at[0], at[1])
            ang = (pang + angle) % 360
            out = {0: (-1, 0), 180: (1, 0), 90: (0, 1), 270: (0, -1)}[ang]
            self.pin_pos[(ref, str(number))] = pt
            net = conns[str(number)]
            if net == "":  # joined by a link() wire
                continue
            if net is None:
                self.no_connect(pt)
                continue
            end = (round(pt[0] + out[0] * stub, 4), round(pt[1] + out[1] * stub, 4))
            self.wire(pt, end)
            if net in RAILS:
                self.power(net, end, out)
            else:
                self.label(net, end, {(-1, 0): 180, (1, 0): 0, (0, -1): 90, (0, 1): 270}[out])

    # -- output
    def write(self) -> str:
        head = [Sym("kicad_sch"), [Sym("version"), Sym("20230121")], [Sym("generator"), Sym("eeschema")],
                [Sym("uuid"), Sym(ROOT_UUID)], [Sym("paper"), PAPER],
                [Sym("title_block"), [Sym("title"), TITLE], [Sym("date"), DATE], [Sym("rev"), REV],
                 [Sym("company"), "BlockIoT"],
                 [Sym("comment"), 1, "Generated by hardware/schematics/generate.py; edit field_node.py, not this file"],
                 [Sym("comment"), 2, "Board pinout: Heltec WiFi LoRa 32 (V3.2) datasheet, section 2.2 (headers J2/J3)"],
                 [Sym("comment"), 3, "Not built or measured: see hardware/schematics/field-node.md"]],
                [Sym("lib_symbols"), *self.libs.values()]]
        items = head[3:] + self.items + [[Sym("sheet_instances"), [Sym("path"), "/", [Sym("page"), "1"]]]]
        lines = ["(kicad_sch (version 20230121) (generator eeschema)"]
        lines += ["  " + dump(item, 2) for item in items]
        return "\n".join(lines) + "\n)\n"


def two(sheet, sd, ref, part, x, y, top, bottom, **kw):
    """A vertical two-pin part at (x, y): pin 1 (top) on `top`, pin 2 (bottom) on `bottom`."""
    first, second = (str(sd.pins[0][6]), str(sd.pins[1][6]))
    sheet.place(sd, ref, part, (x, y), {first: top, second: bottom}, **kw)


def build() -> Sheet:
    sh = Sheet()
    T = sh.text

    # ---------------------------------------------------------------- 1. solar charger
    T("1  Solar charger: CN3791 MPPT buck into 1S Li-ion (4.2 V)", (15, 19), 1.8)
    T("ICH = 120 mV / R1 = 2.4 A;  MPPT: 1.205 V x (1 + R2/R3) = 17.3 V for a 12 V-nominal panel (Vmp 17-19 V)", (15, 24))
    two(sh, S.SOLAR, "SC1", "PANEL", 20.32, 45.72, "PV_IN", "GND")
    sh.place(S.CONN2, "J1", "TB2", (45.72, 43.18), {"1": "PV_IN", "2": "GND"}, value="SOLAR")
    two(sh, S.D_SCHOTTKY, "D1", "SCHOTTKY", 55.88, 45.72, "PV_IN", "VSOLAR",
        note="blocks reverse panel polarity and night-time battery drain through the panel")
    two(sh, S.CP, "C1", "C100u", 67.31, 45.72, "VSOLAR", "GND")
    two(sh, S.C, "C2", "C10u", 74.93, 45.72, "VSOLAR", "GND")
    two(sh, S.C, "C3", "C100n", 82.55, 45.72, "VSOLAR", "GND")
    sh.place(S.CN3791, "U1", "CN3791", (111.76, 43.18),
             {"9": "VSOLAR", "1": "CN_VG", "6": "CN_MPPT", "5": "CN_COM", "2": "GND",
              "10": "", "8": "CN_CSP", "7": "VBAT", "3": "CN_CHRG", "4": "CN_DONE"}, stub=5.08)
    two(sh, S.C, "C4", "C100n", 96.52, 76.2, "VSOLAR", "CN_VG", note="VG to VCC, per datasheet")
    two(sh, S.R, "R2", "R200k", 106.68, 76.2, "VSOLAR", "")
    two(sh, S.R, "R3", "R15k", 106.68, 88.9, "", "GND")
    sh.link(("R2", "2"), ("R3", "1"), "CN_MPPT")
    two(sh, S.R, "R4", "R120", 119.38, 76.2, "CN_COM", "")
    two(sh, S.C, "C7", "C220n", 119.38, 88.9, "", "GND")
    sh.link(("R4", "2"), ("C7", "1"), "CN_COM_RC")
    sh.place(S.Q_PMOS, "Q1", "PMOS", (144.78, 43.18), {"1": "", "2": "VSOLAR", "3": "CHG_SW"})
    sh.link(("U1", "10"), ("Q1", "1"), "CN_DRV")
    two(sh, S.D_SCHOTTKY, "D2", "SCHOTTKY", 160.02, 45.72, "GND", "CHG_SW",
        note="freewheel diode: anode GND, cathode switch node")
    two(sh, S.L, "L1", "L22u", 170.18, 45.72, "CHG_SW", "CN_CSP")
    two(sh, S.R, "R1", "RCS", 180.34, 45.72, "CN_CSP", "VBAT", note="sets ICH = 0.12 V / 0.05 Ohm = 2.4 A")
    two(sh, S.C, "C5", "C10u", 190.5, 45.72, "VBAT", "GND")
    two(sh, S.CP, "C6", "C100u", 198.12, 45.72, "VBAT", "GND")
    two(sh, S.R, "R5", "R3k3", 147.32, 76.2, "VSOLAR", "")
    two(sh, S.LED, "D3", "LED_R", 147.32, 88.9, "", "CN_CHRG", note="on while charging")
    sh.link(("R5", "2"), ("D3", "2"), "LED_CHRG")
    two(sh, S.R, "R6", "R3k3", 165.1, 76.2, "VSOLAR", "")
    two(sh, S.LED, "D4", "LED_G", 165.1, 88.9, "", "CN_DONE", note="on when charge terminated")
    sh.link(("R6", "2"), ("D4", "2"), "LED_DONE")

    # ---------------------------------------------------------------- 2. battery, 5 V
    T("2  Battery, fuse, 5 V for the gateway, battery sense", (210, 19), 1.8)
    two(sh, S.BATTERY, "BT1", "BATTERY", 215.9, 45.72, "BAT_P", "GND", value="1S6P Li-ion 21 Ah",
        note="6 cells in parallel (BOM quantity counts cells)", bom_qty=6)
    two(sh, S.FUSE, "F1", "FUSE", 228.6, 45.72, "BAT_P", "VBAT")
    sh.place(S.POLOLU_5V, "A4", "REG5V", (256.54, 43.18), {"VIN": "VBAT", "EN": None, "GND": "GND", "VOUT": "V5"},
             note="low-voltage cutoff trimmed to 3.3 V; EN left open (on-board pull-up)")
    two(sh, S.R, "R7", "R470k", 284.48, 45.72, "VBAT", "")
    two(sh, S.R, "R8", "R470k", 284.48, 60.96, "", "GND")
    sh.link(("R7", "2"), ("R8", "1"), "VBAT_SENSE")
    two(sh, S.C, "C8", "C100n", 294.64, 60.96, "VBAT_SENSE", "GND")
    T("VBAT_SENSE = VBAT / 2 (max 2.1 V) to ADS1115 AIN1 and Heltec GPIO4", (210, 80))

    # ---------------------------------------------------------------- 5a. valve supply
    T("5  Latching valve driver: 9 V reservoir, DRV8833 bridges in parallel", (305, 19), 1.8)
    sh.place(S.POLOLU_ADJ, "A5", "REGADJ", (327.66, 43.18),
             {"VIN": "VBAT", "EN": "VALVE_PWR_EN", "GND": "GND", "VOUT": "VBOOST", "PG": None},
             note="output trimmed to 9.0 V")
    two(sh, S.R, "R10", "R10k", 342.9, 68.58, "VALVE_PWR_EN", "GND", note="keeps the boost off until driven high")
    two(sh, S.R, "R12", "R220_2512", 355.6, 45.72, "VBOOST", "VVALVE", note="limits charging and hold current")
    two(sh, S.CP, "C10", "C10000u", 365.76, 45.72, "VVALVE", "GND", note="reservoir: 0.4 J at 9 V per pulse")
    two(sh, S.C, "C11", "C10u", 375.92, 45.72, "VVALVE", "GND")
    two(sh, S.C, "C13", "C10n", 386.08, 45.72, "DRV_VCP", "VVALVE", note="VCP to VM")
    two(sh, S.C, "C12", "C2u2", 396.24, 45.72, "DRV_VINT", "GND")
    two(sh, S.R, "R11", "R10k", 355.6, 71.12, "3V3", "VALVE_nFAULT")

    # ---------------------------------------------------------------- 3. gateway computer
    T("3  Gateway computer (runs blockiot node) and its ADC", (15, 112), 1.8)
    sh.place(S.RPI, "A1", "RPI", (40.64, 132.08),
             {"2": "V5", "4": "V5", "6": "GND", "14": "GND", "1": "PI_3V3", "3": "PI_SDA", "5": "PI_SCL",
              "11": "PI_GPIO17", "13": "PI_GPIO27", "15": "PI_GPIO22", "16": "PI_GPIO23", "18": "PI_GPIO24",
              "USB1": "USB_VBUS", "USB2": "USB_DM", "USB3": "USB_DP", "USB5": "GND"}, stub=5.08)
    sh.place(S.ADS1115, "U3", "ADS1115", (104.14, 134.62),
             {"4": "SOIL_ADC", "5": "VBAT_SENSE", "6": None, "7": None, "9": "PI_SDA", "10": "PI_SCL",
              "1": "GND", "2": None, "8": "PI_3V3", "3": "GND"}, stub=5.08, note="I2C address 0x48 (ADDR to GND)")
    two(sh, S.C, "C14", "C100n", 137.16, 134.62, "PI_3V3", "GND")

    # ---------------------------------------------------------------- 4. radio board, probe
    T("4  LoRa board (Meshtastic), USB to the gateway; soil probe", (150, 112), 1.8)
    heltec = {f"J2-{i}": None for i in range(1, 19)} | {f"J3-{i}": None for i in range(1, 19)}
    heltec |= {"J2-1": "GND", "J3-1": "GND", "J3-2": "3V3", "J3-3": "3V3", "J3-13": "SOIL_ADC", "J3-15": "VBAT_SENSE",
               "J2-13": "HT_GPIO47", "J2-14": "HT_GPIO48", "J2-12": "HT_GPIO33", "J2-11": "HT_GPIO34",
               "J2-15": "HT_GPIO26", "USB-A4": "USB_VBUS", "USB-A7": "USB_DM", "USB-A6": "USB_DP", "USB-A1": "GND",
               "BAT+": None, "BAT-": None}
    sh.place(S.HELTEC, "A2", "HELTEC", (190.5, 134.62), heltec, stub=5.08,
             note="battery connector left empty: powered from the gateway's USB")
    sh.place(S.CONN3, "J3", "PH3", (259.08, 137.16), {"1": "SOIL_AOUT", "2": "3V3", "3": "GND"}, value="PROBE")
    sh.place(S.PROBE, "A3", "PROBE", (276.86, 137.16), {"AOUT": "SOIL_AOUT", "VCC": "3V3", "GND": "GND"})
    two(sh, S.R, "R9", "R1k", 256.54, 165.1, "SOIL_AOUT", "")
    two(sh, S.C, "C9", "C100n", 256.54, 180.34, "", "GND")
    sh.link(("R9", "2"), ("C9", "1"), "SOIL_ADC")
    T("Probe out 0-3.0 V at 3.3 V supply: within the ESP32-S3", (245, 200))
    T("ADC's 12 dB range (0-3.1 V) and the ADS1115's", (245, 204))
    T("+-4.096 V range (inputs <= VDD): no divider", (245, 208))

    # ---------------------------------------------------------------- 5b. H-bridge
    sh.place(S.DRV8833, "U2", "DRV8833", (345.44, 137.16),
             {"16": "VALVE_IN1", "9": "VALVE_IN1", "15": "VALVE_IN2", "10": "VALVE_IN2", "1": "VALVE_nSLEEP",
              "8": "VALVE_nFAULT", "2": "VALVE_A", "7": "VALVE_A", "4": "VALVE_B", "5": "VALVE_B",
              "3": "GND", "6": "GND", "11": "DRV_VCP", "12": "VVALVE", "14": "DRV_VINT", "13": "GND", "17": "GND"},
             stub=5.08)
    sh.place(S.CONN2, "J2", "TB2", (391.16, 137.16), {"1": "VALVE_A", "2": "VALVE_B"}, value="VALVE")
    two(sh, S.SOLENOID, "SOL1", "VALVE", 401.32, 160.02, "VALVE_A", "VALVE_B")

    # ---------------------------------------------------------------- 6. input selection
    T("6  Who drives the valve: fit the Pi links (default) or the Heltec links, never both", (15, 222), 1.8)
    T("Pi GPIO: fitted", (15, 230))
    T("Heltec GPIO: DNP", (91, 230))
    rows = [("VALVE_IN1", "PI_GPIO17", "HT_GPIO47"), ("VALVE_IN2", "PI_GPIO27", "HT_GPIO48"),
            ("VALVE_nSLEEP", "PI_GPIO22", "HT_GPIO33"), ("VALVE_PWR_EN", "PI_GPIO23", "HT_GPIO34"),
            ("VALVE_nFAULT", "PI_GPIO24", "HT_GPIO26")]
    for i, (net, pi, ht) in enumerate(rows):
        x = 20.32 + i * 12.7
        two(sh, S.R, f"R{13 + i}", "R0", x, 248.92, pi, net)
        two(sh, S.R, f"R{18 + i}", "R0", x + 76.2, 248.92, ht, net, dnp=True,
            note="fit instead of the Pi-side link for board-driven valves (custom firmware)")

    # ---------------------------------------------------------------- power flags, notes
    for i, net in enumerate(POWER_FLAGS):
        sh.power_flag(net, (187.96 + i * 15.24, 271.78 if net == "GND" else 276.86))
    notes = [
        "Notes",
        "- Nets join by name (labels, power symbols). Rails: VSOLAR (panel after D1), VBAT (battery after F1),",
        "  V5 (gateway), 3V3 (Heltec regulator), PI_3V3 (Pi regulator), VBOOST (9 V boost), VVALVE (reservoir).",
        "- USB_VBUS/DP/DM: cable from the Pi's micro-USB data port to the Heltec's USB-C (CP2102): the Meshtastic",
        "  serial link, and the Heltec's supply; the Heltec's own battery connector stays empty.",
        "- Heltec pins avoid those Meshtastic's heltec_v3 variant uses (LoRa 8-14, OLED 17/18/21, Vext 36,",
        "  ADC_Ctrl 37, VBAT 1, LED 35, button 0, I2C1 41/42) and ESP32-S3 strapping pins (0, 3, 45, 46).",
        "- Not built or measured: see field-node.md for what is and is not verified.",
    ]
    for i, line in enumerate(notes):
        T(line, (180, 226 + i * 4.2), 1.5 if i == 0 else 1.2)
    return sh


def schematic_text() -> str:
    return build().write()
