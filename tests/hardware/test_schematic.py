"""The reference field node's schematic (hardware/schematics/): its connectivity, read from
the committed `.kicad_sch` with a small S-expression reader, checked against the nets
field-node.md documents; the netlist, BOM and picture checked against the schematic."""
from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pytest

SCHEMATICS = Path(__file__).resolve().parents[2] / "hardware" / "schematics"
sys.path.insert(0, str(SCHEMATICS))

import generate  # noqa: E402
from kicad import Schematic, parse, read_netlist_kicad  # noqa: E402

SCH_FILE = SCHEMATICS / "field-node.kicad_sch"
DOC = SCHEMATICS / "field-node.md"


@pytest.fixture(scope="module")
def sch() -> Schematic:
    return Schematic(SCH_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def conn(sch):
    return sch.connectivity()


@pytest.fixture(scope="module")
def nets(conn) -> dict[str, set[str]]:
    return conn.pin_map()


def net_of(conn, pin: str) -> str:
    ref, num = pin.split(".", 1)
    net = conn.net_of(ref, num)
    assert net is not None, f"{pin} is on no net"
    return net.name


def pin_name(sch, pin: str) -> str:
    ref, num = pin.split(".", 1)
    part = sch.part(ref)
    return next(p.name for p in sch.lib_symbols[part.lib_id].pins if p.number == num)


# ---------------------------------------------------------------- the file itself

def test_is_a_kicad7_schematic(sch):
    text = SCH_FILE.read_text(encoding="utf-8")
    assert text.startswith("(kicad_sch (version 20230121) (generator eeschema)")
    assert sch.version >= 20230121
    assert sch.paper == "A3"
    # every placed symbol's library symbol is embedded, so the file opens without libraries
    for s in sch.symbols:
        assert s.lib_id in sch.lib_symbols, s.lib_id
    # one instance path per symbol, as KiCad 7 writes them
    root = str(parse(text)[3][1])
    assert text.count(f'(path "/{root}"') == len(sch.symbols)
    refs = [s.ref for s in sch.symbols]
    assert len(refs) == len(set(refs)), "duplicate references"


def test_no_floating_pins_or_ambiguous_wiring(sch, conn):
    generate.check_design(sch)  # raises on conflicts, floating pins, T-joints, single-pin nets
    assert not conn.conflicts
    assert not conn.unconnected
    assert not conn.interior_hits
    # every pin left unconnected carries a no-connect flag and is documented as unused
    nc = {f"{p.ref}.{p.number}" for p in conn.no_connect_pins}
    assert {"A2.BAT+", "A2.BAT-", "A4.EN", "A5.PG", "U3.2", "U3.6", "U3.7"} <= nc


# ---------------------------------------------------------------- the documented nets

def documented_nets() -> dict[str, list[str]]:
    """The net table of field-node.md between its nets:begin/end markers:
    | `NET` | `REF.PIN`, `REF.PIN` ... | comment |"""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- nets:begin -->", 1)[1].split("<!-- nets:end -->", 1)[0]
    table = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        net = cells[0].strip("`")
        table[net] = re.findall(r"`([A-Z]+[0-9]+\.[A-Za-z0-9+\-]+)`", cells[1])
    return table


def test_doc_lists_the_nets():
    table = documented_nets()
    for net in ("SOIL_AOUT", "SOIL_ADC", "VALVE_IN1", "VALVE_IN2", "VALVE_nSLEEP", "VALVE_PWR_EN", "VALVE_nFAULT",
                "VALVE_A", "VALVE_B", "VSOLAR", "VBAT", "V5", "3V3", "PI_3V3", "VBOOST", "VVALVE", "GND",
                "USB_VBUS", "USB_DP", "USB_DM", "VBAT_SENSE"):
        assert table.get(net), f"field-node.md documents no pins for {net}"


@pytest.mark.parametrize("net", sorted(documented_nets()))
def test_documented_net_matches_schematic(net, nets):
    assert net in nets, f"{net} is in field-node.md but not in the schematic"
    for pin in documented_nets()[net]:
        assert pin in nets[net], f"field-node.md puts {pin} on {net}; the schematic does not"


def test_probe_output_reaches_the_adc_pins(sch, conn):
    # probe -> connector -> 1k -> SOIL_ADC -> Heltec GPIO2 (ADC1_CH1, header J3 pin 13) and ADS1115 AIN0
    assert net_of(conn, "A3.AOUT") == net_of(conn, "J3.1") == net_of(conn, "R9.1") == "SOIL_AOUT"
    assert net_of(conn, "R9.2") == net_of(conn, "A2.J3-13") == net_of(conn, "U3.4") == "SOIL_ADC"
    assert pin_name(sch, "A2.J3-13") == "GPIO2/ADC1_CH1"
    assert pin_name(sch, "U3.4") == "AIN0"
    # the probe's supply is the Heltec's 3.3 V (so its output stays below the ADC range)
    assert net_of(conn, "A3.VCC") == net_of(conn, "A2.J3-2") == "3V3"


# Valve driver inputs: (net, DRV8833 pins, Pi header pin, Pi GPIO, Heltec pin, Heltec GPIO)
VALVE_SIGNALS = [
    ("VALVE_IN1", ["U2.16", "U2.9"], "A1.11", "GPIO17", "A2.J2-13", "GPIO47"),
    ("VALVE_IN2", ["U2.15", "U2.10"], "A1.13", "GPIO27", "A2.J2-14", "GPIO48"),
    ("VALVE_nSLEEP", ["U2.1"], "A1.15", "GPIO22", "A2.J2-12", "GPIO33"),
    ("VALVE_PWR_EN", ["A5.EN"], "A1.16", "GPIO23", "A2.J2-11", "GPIO34"),
    ("VALVE_nFAULT", ["U2.8"], "A1.18", "GPIO24", "A2.J2-15", "GPIO26"),
]


def _link(sch, nets, net, side_pin):
    """The 0-ohm link between `net` and the net of `side_pin`: (ref, fitted)."""
    side = next(n for n, pins in nets.items() if side_pin in pins)
    links = [p.split(".")[0] for p in nets[net] if p.startswith("R")
             and {f"{p.split('.')[0]}.1", f"{p.split('.')[0]}.2"} <= nets[net] | nets[side]]
    assert len(links) == 1, f"no single link between {net} and {side_pin}: {links}"
    part = sch.part(links[0])
    assert part.value == "0"
    return links[0], not part.dnp


@pytest.mark.parametrize("net,driver_pins,pi_pin,pi_gpio,ht_pin,ht_gpio", VALVE_SIGNALS)
def test_valve_driver_inputs_reach_their_gpios(sch, nets, net, driver_pins, pi_pin, pi_gpio, ht_pin, ht_gpio):
    for p in driver_pins:
        assert p in nets[net]
    assert pin_name(sch, pi_pin) == pi_gpio
    assert pin_name(sch, ht_pin) == ht_gpio
    pi_link, pi_fitted = _link(sch, nets, net, pi_pin)
    ht_link, ht_fitted = _link(sch, nets, net, ht_pin)
    assert pi_fitted and not ht_fitted, "default build: the Pi drives the valve, Heltec links DNP"


def test_bridges_in_parallel_drive_the_valve(nets):
    assert {"U2.2", "U2.7", "J2.1", "SOL1.1"} <= nets["VALVE_A"]
    assert {"U2.4", "U2.5", "J2.2", "SOL1.2"} <= nets["VALVE_B"]


def test_power_rails(sch, nets):
    assert {"D1.1", "U1.9", "Q1.2", "R2.1", "C1.1"} <= nets["VSOLAR"]          # panel after the blocking diode
    assert {"SC1.1", "J1.1", "D1.2"} <= nets["PV_IN"]
    assert {"BT1.1", "F1.1"} == nets["BAT_P"]                                 # battery, then the fuse
    assert {"F1.2", "U1.7", "R1.2", "A4.VIN", "A5.VIN", "R7.1"} <= nets["VBAT"]  # charger output, loads
    assert {"A4.VOUT", "A1.2", "A1.4"} == nets["V5"]                         # 5 V to the Pi header
    assert {"A2.J3-2", "A2.J3-3", "A3.VCC", "R11.1"} <= nets["3V3"]
    assert {"A1.1", "U3.8"} <= nets["PI_3V3"]
    assert nets["3V3"].isdisjoint(nets["PI_3V3"]), "two regulators' outputs must not be joined"
    assert {"A5.VOUT", "R12.1"} == nets["VBOOST"]
    assert {"R12.2", "C10.1", "U2.12"} <= nets["VVALVE"]
    # every ground pin of every part is on GND
    for s in sch.symbols:
        if s.is_virtual:
            continue
        for p in sch.lib_symbols[s.lib_id].pins:
            if p.name in ("GND", "PAD", "-") or (s.ref.startswith("C") and p.number == "2"
                                                  and s.ref not in ("C4", "C13")):
                assert f"{s.ref}.{p.number}" in nets["GND"], f"{s.ref}.{p.number} ({p.name}) not on GND"
    # the USB link: Pi data port to the Heltec's USB-C
    assert nets["USB_DP"] == {"A1.USB3", "A2.USB-A6"}
    assert nets["USB_DM"] == {"A1.USB2", "A2.USB-A7"}
    assert nets["USB_VBUS"] == {"A1.USB1", "A2.USB-A4"}


def test_charger_follows_the_cn3791_application_circuit(nets):
    assert {"U1.10", "Q1.1"} == nets["CN_DRV"]                 # DRV drives the P-MOSFET gate
    assert {"Q1.3", "D2.1", "L1.1"} == nets["CHG_SW"]         # switch node: drain, freewheel cathode, inductor
    assert {"L1.2", "R1.1", "U1.8"} == nets["CN_CSP"]         # sense resistor between CSP and BAT
    assert {"R2.2", "R3.1", "U1.6"} == nets["CN_MPPT"]        # MPPT divider
    assert {"U1.1", "C4.2"} == nets["CN_VG"] and "C4.1" in nets["VSOLAR"]  # 100 nF from VG to VCC
    assert {"U1.5", "R4.1"} == nets["CN_COM"] and {"R4.2", "C7.1"} == nets["CN_COM_RC"]


# Pins the Meshtastic heltec_v3 variant uses (variant.h and the board's pins_arduino.h):
# LoRa SPI/control 8-14, OLED 17/18/21, Vext 36, ADC_Ctrl 37, battery 1, LED 35, button 0,
# second I2C bus 41/42, UART0 43/44, native USB 19/20; ESP32-S3 strapping pins 0, 3, 45, 46.
RESERVED_GPIOS = {0, 1, 3, 8, 9, 10, 11, 12, 13, 14, 17, 18, 19, 20, 21, 35, 36, 37, 41, 42, 43, 44, 45, 46}


def test_heltec_pin_choices_avoid_reserved_pins(sch, conn):
    used = []
    for net in conn.nets.values():
        if net.name.startswith("unconnected-"):
            continue
        for p in net.nodes:
            if p.ref == "A2" and p.name.startswith("GPIO"):
                used.append(int(re.match(r"GPIO(\d+)", p.name).group(1)))
    assert sorted(used) == [2, 4, 26, 33, 34, 47, 48]
    assert not set(used) & RESERVED_GPIOS
    # ADC inputs on ADC1 (GPIO1-10), which works while the radio/Wi-Fi use ADC2's arbiter
    assert all(1 <= g <= 10 for g in (2, 4))


# ---------------------------------------------------------------- derived files

def test_netlist_agrees_with_schematic(nets):
    kicad_net = read_netlist_kicad((SCHEMATICS / "field-node.net").read_text(encoding="utf-8"))
    assert {k: v for k, v in kicad_net.items() if not k.startswith("unconnected-")} == \
        {k: v for k, v in nets.items() if not k.startswith("unconnected-")}
    rows = list(csv.DictReader((SCHEMATICS / "field-node-nets.csv").open(encoding="utf-8")))
    from_csv = {r["net"]: {re.sub(r"\(.*\)$", "", p) for p in r["pins"].split()} for r in rows}
    assert from_csv == nets


def test_bom_matches_schematic_references(sch):
    rows = list(csv.DictReader((SCHEMATICS / "field-node-bom.csv").open(encoding="utf-8")))
    bom_refs = [r for row in rows for r in row["references"].split()]
    assert len(bom_refs) == len(set(bom_refs)), "a reference on two BOM lines"
    assert set(bom_refs) == {s.ref for s in sch.symbols if not s.is_virtual}
    for row in rows:
        refs = row["references"].split()
        parts = [sch.part(r) for r in refs]
        assert row["manufacturer"] and row["mpn"] and row["description"], row
        assert {p.props["MPN"] for p in parts} == {row["mpn"]}
        assert {p.dnp for p in parts} == {row["fitted"] == "DNP"}
        expected = sum(int(p.props.get("BOM_Qty", "1")) for p in parts)
        assert int(row["qty"]) == expected
    assert next(r for r in rows if r["references"] == "BT1")["qty"] == "6"


def test_committed_files_are_what_the_generator_writes():
    outputs = generate.build_outputs()
    for name, text in outputs.items():
        assert (SCHEMATICS / name).read_text(encoding="utf-8") == text, \
            f"{name} is stale: run python3 hardware/schematics/generate.py"
    assert (SCHEMATICS / "field-node.png").stat().st_size > 10_000


def test_picture_is_drawn_from_the_schematic(sch):
    svg = (SCHEMATICS / "field-node.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg")
    for s in sch.symbols:
        if not s.is_virtual:
            assert f">{s.ref}<" in svg, f"{s.ref} missing from the picture"
    for lab in {lab.text for lab in sch.labels}:
        assert f">{lab}<" in svg
    png = (SCHEMATICS / "field-node.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the reader on its own

SMALL = """(kicad_sch (version 20230121) (generator eeschema)
  (uuid 00000000-0000-0000-0000-000000000001)
  (paper "A4")
  (lib_symbols
    (symbol "t:R" (in_bom yes) (on_board yes)
      (symbol "R_1_1"
        (pin passive line (at 0 3.81 270) (length 1.27) (name "~" (effects (font (size 1.27 1.27))))
          (number "1" (effects (font (size 1.27 1.27)))))
        (pin passive line (at 0 -3.81 90) (length 1.27) (name "~" (effects (font (size 1.27 1.27))))
          (number "2" (effects (font (size 1.27 1.27)))))))
    (symbol "power:GND" (power) (in_bom yes) (on_board yes)
      (symbol "GND_1_1"
        (pin power_in line (at 0 0 270) (length 0) hide (name "GND" (effects (font (size 1.27 1.27))))
          (number "1" (effects (font (size 1.27 1.27)))))))
    (symbol "power:PWR_FLAG" (power) (in_bom yes) (on_board yes)
      (symbol "PWR_FLAG_1_1"
        (pin power_out line (at 0 0 90) (length 0) hide (name "pwr" (effects (font (size 1.27 1.27))))
          (number "1" (effects (font (size 1.27 1.27))))))))
  (symbol (lib_id "t:R") (at 10 10 0) (unit 1) (property "Reference" "R1" (at 0 0 0)) (property "Value" "1k" (at 0 0 0)))
  (symbol (lib_id "t:R") (at 30 10 90) (unit 1) (property "Reference" "R2" (at 0 0 0)) (property "Value" "1k" (at 0 0 0)))
  (symbol (lib_id "t:R") (at 50 10 180) (unit 1) (property "Reference" "R3" (at 0 0 0)) (property "Value" "1k" (at 0 0 0)))
  (symbol (lib_id "power:GND") (at 10 20 0) (unit 1) (property "Reference" "#PWR1" (at 0 0 0)) (property "Value" "GND" (at 0 0 0)))
  (symbol (lib_id "power:GND") (at 50 20 0) (unit 1) (property "Reference" "#PWR2" (at 0 0 0)) (property "Value" "GND" (at 0 0 0)))
  (symbol (lib_id "power:PWR_FLAG") (at 30 2 0) (unit 1) (property "Reference" "#FLG1" (at 0 0 0)) (property "Value" "PWR_FLAG" (at 0 0 0)))
  (wire (pts (xy 10 6.19) (xy 10 2)) (stroke (width 0) (type default)))
  (wire (pts (xy 10 2) (xy 40 2)) (stroke (width 0) (type default)))
  (wire (pts (xy 26.19 10) (xy 26.19 2)) (stroke (width 0) (type default)))
  (wire (pts (xy 10 13.81) (xy 10 20)) (stroke (width 0) (type default)))
  (wire (pts (xy 33.81 10) (xy 40 10)) (stroke (width 0) (type default)))
  (wire (pts (xy 50 13.81) (xy 50 20)) (stroke (width 0) (type default)))
  (label "MID" (at 40 6 0) (effects (font (size 1.27 1.27))))
  (wire (pts (xy 40 4) (xy 40 8)) (stroke (width 0) (type default)))
  (label "MID" (at 50 6.19 0) (effects (font (size 1.27 1.27))))
)
"""


def test_reader_follows_kicad_connectivity_rules():
    sch = Schematic(SMALL)
    pins = {(p.ref, p.number): (p.x, p.y) for p in sch.pins()}
    assert pins[("R2", "1")] == (26.19, 10) and pins[("R2", "2")] == (33.81, 10)  # rotated 90: pin 1 left
    assert pins[("R3", "1")] == (50, 13.81) and pins[("R3", "2")] == (50, 6.19)   # rotated 180: pin 1 below
    conn = sch.connectivity()
    nets = conn.pin_map()
    # R1.1 and R2.1 share a net through a wire end landing mid-wire (a T-joint, reported)
    assert net_of(conn, "R1.1") == net_of(conn, "R2.1")
    assert conn.interior_hits
    # the flag's output pin sits on that wire's middle but names no net
    assert "PWR_FLAG" not in nets and "pwr" not in nets
    # a label on a wire's middle names it; two labels with one text join two islands
    assert nets["MID"] == {"R3.2"} | set()  # the 40,4-40,8 wire carries no pin
    # power symbols name GND globally: R1.2 and R3.1 are joined without a wire between them
    assert nets["GND"] == {"R1.2", "R3.1"}
    assert net_of(conn, "R2.2").startswith("Net-(")  # unnamed: KiCad-style name
