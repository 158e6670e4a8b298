"""Discovery of attached radios with injected enumerations, `resolve_port`, and `blockiot radio list`."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import usb.core

from blockiot.radio.discovery import (
    DiscoveryError,
    NoRadioFound,
    discover,
    resolve_port,
)
from blockiot.radio.errors import RadioUnavailable
from blockiot.tools import radio as radio_cli
from blockiot.tools.cli import main


def port(device, vid=None, pid=None, description="n/a"):
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=description)


def usb_device(vid, pid):
    return SimpleNamespace(idVendor=vid, idProduct=pid)


def no_usb():
    return []


def no_backend():
    raise usb.core.NoBackendError("No backend available")


HELTEC = port("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller")
E22_DONGLE = port("/dev/ttyUSB1", 0x1A86, 0x7523, "USB Serial")
RAK = port("/dev/ttyACM0", 0x239A, 0x8029, "WisCore RAK4631 Board")


def test_known_boards_are_classified_and_builtin_uarts_skipped():
    found = discover(comports=lambda: [port("/dev/ttyS0"), E22_DONGLE, HELTEC], usb_devices=no_usb)
    assert [(c.port, c.vid_pid, c.personality) for c in found.candidates] == [
        ("/dev/ttyUSB0", "10c4:ea60", "meshtastic"),
        ("/dev/ttyUSB1", "1a86:7523", "modem"),
    ]
    assert "E22-900T22U" in found.candidates[1].board
    assert found.notes == ()


def test_unknown_usb_serial_is_listed_as_unknown():
    found = discover(comports=lambda: [port("/dev/ttyUSB3", 0x1234, 0x5678)], usb_devices=no_usb)
    assert found.candidates[0].personality == "unknown"


def test_without_libusb_falls_back_to_pyserial_and_says_so():
    found = discover(comports=lambda: [RAK], usb_devices=no_backend)
    assert [c.port for c in found.candidates] == ["/dev/ttyACM0"]
    assert "libusb not found" in found.notes[0]


def test_usb_board_without_serial_port_is_reported():
    found = discover(comports=lambda: [], usb_devices=lambda: [usb_device(0x239A, 0x0029), usb_device(0x8087, 0x0026)])
    assert [(c.port, c.vid_pid) for c in found.candidates] == [(None, "239a:0029")]
    assert "no serial port" in found.notes[0]
    assert found.openable == ()


def test_resolve_explicit_port_is_untouched():
    assert resolve_port("/dev/ttyUSB7", discovery=discover(comports=lambda: [], usb_devices=no_usb)) == "/dev/ttyUSB7"


def test_resolve_auto_picks_the_only_radio():
    found = discover(comports=lambda: [port("/dev/ttyUSB2", 0x1234, 0x5678), HELTEC], usb_devices=no_usb)
    assert resolve_port("auto", discovery=found) == "/dev/ttyUSB0"


def test_resolve_auto_by_personality():
    found = discover(comports=lambda: [HELTEC, E22_DONGLE], usb_devices=no_usb)
    assert resolve_port("auto", personality="modem", discovery=found) == "/dev/ttyUSB1"


def test_resolve_auto_with_nothing_says_what_to_plug_in():
    with pytest.raises(NoRadioFound, match="plug in") as info:
        resolve_port("auto", discovery=discover(comports=lambda: [], usb_devices=no_usb))
    assert isinstance(info.value, RadioUnavailable) and info.value.user_facing


def test_resolve_auto_with_several_lists_them():
    found = discover(comports=lambda: [HELTEC, RAK], usb_devices=no_usb)
    with pytest.raises(DiscoveryError, match="2 candidates") as info:
        resolve_port("auto", discovery=found)
    assert "/dev/ttyUSB0" in str(info.value) and "/dev/ttyACM0" in str(info.value)


def test_cli_table(monkeypatch, capsys):
    found = discover(comports=lambda: [HELTEC, E22_DONGLE], usb_devices=no_backend)
    monkeypatch.setattr(radio_cli, "discover", lambda: found)
    assert main(["radio", "list"]) == 0
    out = capsys.readouterr().out
    assert "libusb not found" in out
    assert "/dev/ttyUSB1  1a86:7523  modem" in out


def test_cli_none_attached(monkeypatch, capsys):
    monkeypatch.setattr(radio_cli, "discover", lambda: discover(comports=lambda: [], usb_devices=no_usb))
    assert main(["radio", "list"]) == 0
    assert "No LoRa radio found: plug in" in capsys.readouterr().out


def test_cli_json(monkeypatch, capsys):
    monkeypatch.setattr(radio_cli, "discover", lambda: discover(comports=lambda: [RAK], usb_devices=no_usb))
    assert main(["radio", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["radios"][0]["vid_pid"] == "239a:8029"
    assert data["radios"][0]["personality"] == "meshtastic"
