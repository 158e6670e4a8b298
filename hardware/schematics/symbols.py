"""The schematic symbols of the reference field node, as KiCad library symbols
(embedded in the `.kicad_sch`, library nickname `BlockIoT`, so the file opens without
any library installed).

Pin numbers follow each part's published pinout (document named next to the symbol).
Off-the-shelf boards whose connections are not numbered by their maker (the Pololu
regulators, the probe's cable) use the connection's name as its number.
"""
from __future__ import annotations

from kicad import Sym

LIB = "BlockIoT"
G = 2.54  # grid


def _eff(size=1.27, hide=False, justify=None):
    e = [Sym("effects"), [Sym("font"), [Sym("size"), size, size]]]
    if justify:
        e.append([Sym("justify"), *[Sym(j) for j in justify.split()]])
    if hide:
        e.append(Sym("hide"))
    return e


def _stroke(w=0.254):
    return [Sym("stroke"), [Sym("width"), w], [Sym("type"), Sym("default")]]


def _fill(kind="none"):
    return [Sym("fill"), [Sym("type"), Sym(kind)]]


def rect(x1, y1, x2, y2, fill="background", w=0.254):
    return [Sym("rectangle"), [Sym("start"), x1, y1], [Sym("end"), x2, y2], _stroke(w), _fill(fill)]


def poly(*pts, w=0.254, fill="none"):
    return [Sym("polyline"), [Sym("pts"), *[[Sym("xy"), x, y] for x, y in pts]], _stroke(w), _fill(fill)]


def circle(cx, cy, r, fill="none", w=0.254):
    return [Sym("circle"), [Sym("center"), cx, cy], [Sym("radius"), r], _stroke(w), _fill(fill)]


def text(s, x, y, size=1.27):
    return [Sym("text"), s, [Sym("at"), x, y, 0], _eff(size)]


def pin(etype, x, y, angle, length, name, number, hide=False):
    p = [Sym("pin"), Sym(etype), Sym("line"), [Sym("at"), x, y, angle], [Sym("length"), length]]
    if hide:
        p.append(Sym("hide"))
    p.append([Sym("name"), name, _eff()])
    p.append([Sym("number"), str(number), _eff()])
    return p


def prop(name, value, x, y, angle=0, hide=False, justify=None, size=1.27):
    return [Sym("property"), name, value, [Sym("at"), x, y, angle], _eff(size, hide, justify)]


class SymbolDef:
    """A library symbol plus where its placed fields go (relative to its origin)."""

    def __init__(self, name, ref_prefix, graphics, pins, *, power=False, hide_pin_numbers=False,
                 hide_pin_names=False, ref_at=(2.54, -1.27, "left"), value_at=(2.54, 1.27, "left"),
                 description="", pin_name_offset=1.016):
        self.name = name
        self.lib_id = f"{'power' if power else LIB}:{name}"
        self.ref_prefix = ref_prefix
        self.graphics = graphics
        self.pins = pins
        self.power = power
        self.hide_pin_numbers = hide_pin_numbers
        self.hide_pin_names = hide_pin_names
        self.ref_at = ref_at  # sheet offsets (y down) and justification of the placed Reference
        self.value_at = value_at
        self.description = description
        self.pin_name_offset = pin_name_offset

    def expr(self):
        e = [Sym("symbol"), self.lib_id]
        if self.power:
            e.append([Sym("power")])
        if self.hide_pin_numbers:
            e.append([Sym("pin_numbers"), Sym("hide")])
        pn = [Sym("pin_names"), [Sym("offset"), self.pin_name_offset]]
        if self.hide_pin_names:
            pn.append(Sym("hide"))
        e.append(pn)
        e += [[Sym("in_bom"), Sym("no" if self.power else "yes")], [Sym("on_board"), Sym("yes")]]
        rx, ry, _ = self.ref_at
        vx, vy, _ = self.value_at
        e.append(prop("Reference", self.ref_prefix, rx, -ry, hide=self.power))
        e.append(prop("Value", self.name, vx, -vy))
        e.append(prop("Footprint", "", 0, 0, hide=True))
        e.append(prop("Datasheet", "~", 0, 0, hide=True))
        if self.description:
            e.append(prop("ki_description", self.description, 0, 0, hide=True))
        e.append([Sym("symbol"), f"{self.name}_0_1", *self.graphics])
        e.append([Sym("symbol"), f"{self.name}_1_1", *[pin(*p) for p in self.pins]])
        return e


# -- two-pin parts, vertical: pin 1 on top at (0, 3.81), pin 2 below at (0, -3.81)

def _two(name, prefix, graphics, n1="~", n2="~", t1="passive", t2="passive", length=1.27, numbers=("1", "2"),
         hide_names=True, description="", half_width=1.27):
    pins = [(t1, 0, 3.81, 270, length, n1, numbers[0]), (t2, 0, -3.81, 90, length, n2, numbers[1])]
    dx = half_width + 1.27
    return SymbolDef(name, prefix, graphics, pins, hide_pin_numbers=True, hide_pin_names=hide_names,
                     description=description, ref_at=(dx, -1.27, "left"), value_at=(dx, 1.27, "left"))


R = _two("R", "R", [rect(-1.016, -2.54, 1.016, 2.54, fill="none")], description="Resistor")
C = _two("C", "C", [poly((-2.032, 0.762), (2.032, 0.762), w=0.508), poly((-2.032, -0.762), (2.032, -0.762), w=0.508)],
         length=3.048, description="Capacitor", half_width=2.032)
CP = _two("C_Polarized", "C", [rect(-2.286, 0.508, 2.286, 1.016, fill="none"), rect(-2.286, -0.508, 2.286, -1.016, fill="outline"),
                               poly((-1.778, 2.286), (-0.762, 2.286)), poly((-1.27, 2.794), (-1.27, 1.778))],
          length=2.794, description="Polarized capacitor, pin 1 positive", half_width=2.286)


def _coil_points(y_top=2.54, n=4, r=0.635):
    pts = []
    for k in range(n):
        cy = y_top - r - 2 * r * k
        for j in range(9):
            import math
            a = math.pi / 2 - math.pi * j / 8
            pts.append((round(r * math.cos(a), 3), round(cy + r * math.sin(a), 3)))
    return pts


L = _two("L", "L", [poly(*_coil_points())], description="Inductor")
SOLENOID = _two("Valve_Solenoid_Latching", "SOL", [rect(-2.54, -2.54, 2.54, 2.54, fill="background"),
                                                   poly(*_coil_points(), w=0.254),
                                                   poly((1.27, -1.778), (1.27, 1.778)), poly((1.778, -1.778), (1.778, 1.778))],
                n1="A", n2="B", description="2-wire DC latching solenoid (valve)", half_width=2.54)
# Diodes: anode on top (pin 2, "A"), cathode below (pin 1, "K"), as KiCad's D symbols number them.
_DIODE = [poly((-1.27, 1.016), (1.27, 1.016), (0, -1.016), (-1.27, 1.016), fill="none"),
          poly((-1.27, -1.016), (1.27, -1.016))]
D_SCHOTTKY = SymbolDef("D_Schottky", "D", _DIODE + [poly((-1.27, -1.016), (-1.27, -0.508)), poly((1.27, -1.016), (1.27, -1.524))],
                       [("passive", 0, 3.81, 270, 2.794, "A", "2"), ("passive", 0, -3.81, 90, 2.794, "K", "1")],
                       hide_pin_numbers=True, hide_pin_names=True, description="Schottky diode")
LED = SymbolDef("LED", "D", _DIODE + [poly((1.778, 0.254), (3.048, 1.016)), poly((1.778, -0.508), (3.048, 0.254))],
                [("passive", 0, 3.81, 270, 2.794, "A", "2"), ("passive", 0, -3.81, 90, 2.794, "K", "1")],
                hide_pin_numbers=True, hide_pin_names=True, description="Light emitting diode")
FUSE = _two("Fuse", "F", [rect(-0.762, -2.54, 0.762, 2.54, fill="none"), poly((0, 2.54), (0, -2.54))],
            description="Fuse")
BATTERY = _two("Battery_Cell", "BT", [poly((-2.54, 1.016), (2.54, 1.016), w=0.254), poly((-1.524, 0.254), (1.524, 0.254), w=0.762),
                                      poly((-1.778, 2.286), (-0.762, 2.286)), poly((-1.27, 2.794), (-1.27, 1.778)),
                                      poly((0, 1.016), (0, 2.54)), poly((0, 0.254), (0, -2.54))],
               n1="+", n2="-", description="Battery (cell or pack), pin 1 positive", half_width=2.54)
SOLAR = _two("Solar_Panel", "SC", [rect(-3.81, -2.032, 3.81, 2.032, fill="background"), poly((-3.81, 0), (3.81, 0)),
                                    poly((-5.588, 4.064), (-4.064, 2.54)), poly((-4.572, 4.826), (-3.048, 3.302)),
                                    poly((-1.778, 2.794), (-0.762, 2.794)), poly((-1.27, 3.302), (-1.27, 2.286))],
             n1="+", n2="-", description="Photovoltaic panel, pin 1 positive", half_width=3.81)


def conn(n, name=None):
    """A 1xN connector, pins 1..N from the top on its left side."""
    h = (n - 1) * G
    graphics = [rect(-1.27, 1.27, 1.778, -h - 1.27)]
    for i in range(n):
        graphics.append(rect(-1.27, -i * G + 0.127, 0, -i * G - 0.127, fill="outline"))
    pins = [("passive", -5.08, -i * G, 0, 3.81, f"Pin_{i + 1}", str(i + 1)) for i in range(n)]
    return SymbolDef(name or f"Conn_01x{n:02d}", "J", graphics, pins, hide_pin_names=True,
                     ref_at=(-1.27, -3.81, "left"), value_at=(-1.27, h + 3.81, "left"),
                     description=f"Connector, {n} positions")


CONN2 = conn(2)
CONN3 = conn(3)

Q_PMOS = SymbolDef(
    "Q_PMOS_GSD", "Q",
    [circle(0.762, 0, 2.794, fill="none"),
     poly((-0.508, 1.905), (-0.508, -1.905), w=0.254),  # gate plate
     poly((0.254, 1.905), (0.254, 1.27)), poly((0.254, 0.635), (0.254, -0.635)), poly((0.254, -1.27), (0.254, -1.905)),
     poly((0.254, 1.524), (2.54, 1.524), (2.54, 2.54)),  # source
     poly((0.254, -1.524), (2.54, -1.524), (2.54, -2.54)),  # drain
     poly((0.254, 0), (2.54, 0), (2.54, 1.524)),
     poly((2.032, 0), (1.016, 0.381), (1.016, -0.381), (2.032, 0), fill="outline")],  # arrow out of the channel: P
    [("input", -5.08, 0, 0, 4.572, "G", "1"), ("passive", 2.54, 5.08, 270, 2.54, "S", "2"),
     ("passive", 2.54, -5.08, 90, 2.54, "D", "3")],
    hide_pin_numbers=False, hide_pin_names=True, ref_at=(5.08, -1.27, "left"), value_at=(5.08, 1.27, "left"),
    description="P-channel MOSFET, SOT-23 pinout 1=G 2=S 3=D")


def box(name, prefix, left=(), right=(), top=(), bottom=(), width=20.32, description="", pin_len=G):
    """A rectangular part: `left`/`right` lists of (number, name, type) or None (a gap),
    top to bottom; `top`/`bottom` lists left to right."""
    rows = max(len(left), len(right), 1)
    half_w = width / 2
    y_top = G * (3 if top else 1)  # body from above the first row to below the last one,
    y_bot = -(rows + (2 if bottom else 0)) * G  # with room for top/bottom pin names
    pins = []
    for i, p in enumerate(left):
        if p:
            pins.append((p[2], -half_w - pin_len, -i * G, 0, pin_len, p[1], p[0]))
    for i, p in enumerate(right):
        if p:
            pins.append((p[2], half_w + pin_len, -i * G, 180, pin_len, p[1], p[0]))
    for seq, y, ang in ((top, y_top + pin_len, 270), (bottom, y_bot - pin_len, 90)):
        n = len(seq)
        for i, p in enumerate(seq):
            if p:
                x = (i - (n - 1) / 2) * G * 2
                pins.append((p[2], round(x, 4), y, ang, pin_len, p[1], p[0]))
    graphics = [rect(-half_w, y_top, half_w, y_bot)]
    if bottom:  # value below the body, left of the bottom pins
        value_at = (-half_w - 1.27, -y_bot + 1.27, "right top")
    else:
        value_at = (-half_w, -y_bot + 2.54, "left top")
    return SymbolDef(name, prefix, graphics, pins, ref_at=(-half_w, -y_top - 1.27, "left bottom"),
                     value_at=value_at, description=description)


# Heltec WiFi LoRa 32 V3 (HTIT-WB32LA): header J2 and J3 as in the V3.2 datasheet's pin
# definition tables (section 2.2) and Heltec's V3 pin map; USB-C through its CP2102 bridge
# to U0TXD/U0RXD (GPIO43/44); SH1.25 battery connector.
HELTEC = box(
    "Heltec_WiFi_LoRa_32_V3", "A",
    left=[("J2-1", "GND", "power_in"), ("J2-2", "5V", "power_in"), ("J2-3", "Ve", "power_out"),
          ("J2-4", "Ve", "power_out"), ("J2-5", "GPIO44/U0RXD", "bidirectional"),
          ("J2-6", "GPIO43/U0TXD", "bidirectional"), ("J2-7", "RST", "input"), ("J2-8", "GPIO0/PRG", "bidirectional"),
          ("J2-9", "GPIO36/Vext_Ctrl", "bidirectional"), ("J2-10", "GPIO35/LED", "bidirectional"),
          ("J2-11", "GPIO34", "bidirectional"), ("J2-12", "GPIO33", "bidirectional"),
          ("J2-13", "GPIO47", "bidirectional"), ("J2-14", "GPIO48", "bidirectional"),
          ("J2-15", "GPIO26", "bidirectional"), ("J2-16", "GPIO21/OLED_RST", "bidirectional"),
          ("J2-17", "GPIO20/USB_D+", "bidirectional"), ("J2-18", "GPIO19/USB_D-", "bidirectional")],
    right=[("J3-1", "GND", "power_in"), ("J3-2", "3V3", "power_out"), ("J3-3", "3V3", "power_out"),
           ("J3-4", "GPIO37/ADC_Ctrl", "bidirectional"), ("J3-5", "GPIO46", "bidirectional"),
           ("J3-6", "GPIO45", "bidirectional"), ("J3-7", "GPIO42", "bidirectional"), ("J3-8", "GPIO41", "bidirectional"),
           ("J3-9", "GPIO40", "bidirectional"), ("J3-10", "GPIO39", "bidirectional"), ("J3-11", "GPIO38", "bidirectional"),
           ("J3-12", "GPIO1/VBAT_Read", "bidirectional"), ("J3-13", "GPIO2/ADC1_CH1", "bidirectional"),
           ("J3-14", "GPIO3", "bidirectional"), ("J3-15", "GPIO4/ADC1_CH3", "bidirectional"),
           ("J3-16", "GPIO5", "bidirectional"), ("J3-17", "GPIO6", "bidirectional"), ("J3-18", "GPIO7", "bidirectional")],
    bottom=[("USB-A4", "VBUS", "power_in"), ("USB-A7", "D-", "bidirectional"), ("USB-A6", "D+", "bidirectional"),
            ("USB-A1", "GND", "power_in"), ("BAT+", "BAT+", "passive"), ("BAT-", "BAT-", "passive")],
    width=45.72, description="Heltec WiFi LoRa 32 V3 (ESP32-S3 + SX1262), headers J2/J3, USB-C, battery")

# Raspberry Pi Zero 2 W: the 40-pin header pins used (Raspberry Pi documentation, "GPIO and
# the 40-pin header") and the micro-USB data port (USB micro-B pinout: 1 VBUS, 2 D-, 3 D+, 5 GND).
RPI = box(
    "RaspberryPi_Zero_2_W", "A",
    left=[("2", "5V", "power_in"), ("4", "5V", "power_in"), ("6", "GND", "power_in"), ("14", "GND", "power_in")],
    right=[("1", "3V3", "power_out"), ("3", "GPIO2/SDA1", "bidirectional"), ("5", "GPIO3/SCL1", "bidirectional"),
           ("11", "GPIO17", "bidirectional"), ("13", "GPIO27", "bidirectional"), ("15", "GPIO22", "bidirectional"),
           ("16", "GPIO23", "bidirectional"), ("18", "GPIO24", "bidirectional")],
    bottom=[("USB1", "VBUS", "power_out"), ("USB2", "D-", "bidirectional"), ("USB3", "D+", "bidirectional"),
            ("USB5", "GND", "power_in")],
    width=25.4, description="Raspberry Pi Zero 2 W (gateway computer): header pins used, USB data port")

# DFRobot SEN0193 capacitive soil moisture probe (Gravity 3-pin: signal, VCC, GND).
PROBE = box("SEN0193", "A", right=[("AOUT", "AOUT", "output"), ("VCC", "VCC", "power_in"), ("GND", "GND", "power_in")],
            width=15.24, description="Capacitive soil moisture probe, analog out 0-3.0 V")

# Pololu S9V11 family step-up/step-down regulators (connections named on the board).
POLOLU_5V = box("Pololu_S9V11F5S6CMA", "A", left=[("VIN", "VIN", "power_in"), ("EN", "EN", "input"), ("GND", "GND", "power_in")],
                right=[("VOUT", "VOUT", "power_out")], width=15.24,
                description="5 V step-up/step-down regulator, adjustable low-voltage cutoff")
POLOLU_ADJ = box("Pololu_S9V11MA", "A", left=[("VIN", "VIN", "power_in"), ("EN", "EN", "input"), ("GND", "GND", "power_in")],
                 right=[("VOUT", "VOUT", "power_out"), ("PG", "PG", "open_collector")], width=15.24,
                 description="2.5-9 V adjustable step-up/step-down regulator")

# Consonance CN3791 (datasheet Rev 1.0, "Pin Assignment"/"Pin Description").
CN3791 = box("CN3791", "U",
             left=[("9", "VCC", "power_in"), ("1", "VG", "passive"), ("6", "MPPT", "input"), ("5", "COM", "passive"),
                   ("2", "GND", "power_in")],
             right=[("10", "DRV", "output"), ("8", "CSP", "input"), ("7", "BAT", "input"),
                    ("3", "~{CHRG}", "open_collector"), ("4", "~{DONE}", "open_collector")],
             width=15.24, description="MPPT Li-ion solar charger controller, SSOP-10")

# TI DRV8833, PWP (HTSSOP-16 + pad) pinout.
DRV8833 = box("DRV8833PWP", "U",
              left=[("16", "AIN1", "input"), ("9", "BIN1", "input"), ("15", "AIN2", "input"), ("10", "BIN2", "input"),
                    None, ("1", "~{SLEEP}", "input"), ("8", "~{FAULT}", "open_collector")],
              right=[("2", "AOUT1", "output"), ("7", "BOUT1", "output"), ("4", "AOUT2", "output"), ("5", "BOUT2", "output"),
                     None, ("3", "AISEN", "passive"), ("6", "BISEN", "passive")],
              top=[("11", "VCP", "passive"), ("12", "VM", "power_in"), ("14", "VINT", "passive")],
              bottom=[("13", "GND", "power_in"), ("17", "PAD", "power_in")],
              width=17.78, description="Dual H-bridge, 2.7-10.8 V, HTSSOP-16")

# TI ADS1115, DGS (VSSOP-10) pinout.
ADS1115 = box("ADS1115IDGS", "U",
              left=[("4", "AIN0", "input"), ("5", "AIN1", "input"), ("6", "AIN2", "input"), ("7", "AIN3", "input")],
              right=[("9", "SDA", "bidirectional"), ("10", "SCL", "input"), ("1", "ADDR", "input"),
                     ("2", "ALERT/RDY", "open_collector")],
              top=[("8", "VDD", "power_in")], bottom=[("3", "GND", "power_in")],
              width=15.24, description="16-bit I2C ADC")


def power_symbol(net, ground=False):
    if ground:
        g = [poly((0, 0), (0, -1.27), (1.27, -1.27), (0, -2.54), (-1.27, -1.27), (0, -1.27))]
        pins = [("power_in", 0, 0, 270, 0, net, "1", True)]
        s = SymbolDef(net, "#PWR", g, pins, power=True, ref_at=(0, 6.35, "left"), value_at=(0, 3.81, "left"))
    else:
        g = [poly((-0.762, 1.27), (0, 2.54)), poly((0, 0), (0, 2.54)), poly((0, 2.54), (0.762, 1.27))]
        pins = [("power_in", 0, 0, 90, 0, net, "1", True)]
        s = SymbolDef(net, "#PWR", g, pins, power=True, ref_at=(0, -3.81, "left"), value_at=(0, -3.556, "left"))
    s.description = f"Power symbol creates a global label with name \"{net}\""
    return s


PWR_FLAG = SymbolDef("PWR_FLAG", "#FLG", [poly((0, 0), (0, 1.27), (-1.016, 1.905), (0, 2.54), (1.016, 1.905), (0, 1.27))],
                     [("power_out", 0, 0, 90, 0, "pwr", "1", True)], power=True,
                     ref_at=(0, -1.905, "left"), value_at=(0, -3.81, "left"),
                     description="Special symbol for telling ERC where power comes from")
