"""Time on air: Semtech AN1200.13 known answers, Meshtastic presets and packet overhead."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from meshtastic.protobuf import config_pb2, mesh_pb2, portnums_pb2

from blockiot.radio.airtime import (
    MAX_LORA_PAYLOAD,
    MESHTASTIC_OVERHEAD,
    PRESETS,
    PRIVATE_APP_PORTNUM,
    LoRaParams,
    canonical_preset_name,
    meshtastic_max_payload,
    meshtastic_packet_len,
    meshtastic_time_on_air,
    payload_symbols,
    preset,
    time_on_air,
)
from blockiot.radio.errors import ConfigError, MessageTooLarge


def test_semtech_known_answer_sf9():
    params = LoRaParams(sf=9, bw_hz=125e3, cr=5, preamble_symbols=8)
    assert time_on_air(13, params) == pytest.approx(0.164864, abs=1e-9)


def test_lorasim_known_answer_sf12_uses_low_data_rate_optimisation():
    params = LoRaParams(sf=12, bw_hz=125e3, cr=8, preamble_symbols=8)
    assert params.ldro
    assert time_on_air(20, params) == pytest.approx(1.712128, abs=1e-9)


def test_low_data_rate_optimisation_follows_symbol_time_unless_forced():
    assert LoRaParams(sf=11, bw_hz=125e3, cr=5, preamble_symbols=8).ldro  # 16.4 ms symbols
    assert not LoRaParams(sf=11, bw_hz=250e3, cr=5, preamble_symbols=8).ldro  # 8.2 ms
    forced = LoRaParams(sf=7, bw_hz=500e3, cr=5, preamble_symbols=8, low_data_rate_optimize=True)
    assert forced.ldro


# modemPresetToParams() in meshtastic/firmware src/mesh/MeshRadio.h (non-wide LoRa); firmware 2.7
# runs VERY_LONG_SLOW as LONG_FAST; LITE_* and NARROW_* as firmware 2.8 defines them.
FIRMWARE_PRESETS = {
    "SHORT_TURBO": (7, 500e3, 5),
    "SHORT_FAST": (7, 250e3, 5),
    "SHORT_SLOW": (8, 250e3, 5),
    "MEDIUM_FAST": (9, 250e3, 5),
    "MEDIUM_SLOW": (10, 250e3, 5),
    "LONG_TURBO": (11, 500e3, 8),
    "LONG_FAST": (11, 250e3, 5),
    "LONG_MODERATE": (11, 125e3, 8),
    "LONG_SLOW": (12, 125e3, 8),
    "VERY_LONG_SLOW": (11, 250e3, 5),
    "LITE_FAST": (9, 125e3, 5),
    "LITE_SLOW": (10, 125e3, 5),
    "NARROW_FAST": (7, 62.5e3, 6),
    "NARROW_SLOW": (8, 62.5e3, 6),
}


@pytest.mark.parametrize("name", FIRMWARE_PRESETS)
def test_presets_match_the_firmware(name):
    assert name in config_pb2.Config.LoRaConfig.ModemPreset.keys()  # every preset the pinned library can name
    params = PRESETS[name]
    assert (params.sf, params.bw_hz, params.cr) == FIRMWARE_PRESETS[name]
    assert params.preamble_symbols == 16 and params.explicit_header and params.crc


def test_every_preset_of_the_pinned_library_is_known():
    assert set(PRESETS) == set(config_pb2.Config.LoRaConfig.ModemPreset.keys())


@pytest.mark.parametrize("spelling", ["LongFast", "LONG_FAST", "long_fast", "longfast", "Long-Fast", " long fast "])
def test_preset_names_are_accepted_in_any_spelling(spelling):
    assert canonical_preset_name(spelling) == "LONG_FAST"
    assert preset(spelling) is PRESETS["LONG_FAST"]


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown preset 'LongFaster'.*LongFast.*VeryLongSlow"):
        preset("LongFaster")


@pytest.mark.parametrize("portnum", [PRIVATE_APP_PORTNUM, portnums_pb2.TEXT_MESSAGE_APP])
@pytest.mark.parametrize("size", [0, 1, 57, 127, 128, 200, 231])
def test_meshtastic_packet_len_matches_the_protobuf_encoding(portnum, size):
    data = mesh_pb2.Data(portnum=portnum, payload=bytes(size), bitfield=0)
    assert meshtastic_packet_len(size, portnum) == 16 + data.ByteSize()


def test_meshtastic_max_payload_fills_the_lora_limit_exactly():
    for portnum in (PRIVATE_APP_PORTNUM, portnums_pb2.TEXT_MESSAGE_APP):
        largest = meshtastic_max_payload(portnum)
        assert meshtastic_packet_len(largest, portnum) <= MAX_LORA_PAYLOAD
        with pytest.raises(MessageTooLarge, match=f"max {largest} B"):
            meshtastic_packet_len(largest + 1, portnum)
    assert meshtastic_max_payload() == 231
    assert MESHTASTIC_OVERHEAD == 24  # 16 B header + 3 portnum + 1 tag + 2 length + 2 bitfield


def test_design_table_is_time_on_air_of_the_packet_on_air():
    # DESIGN.md: columns are bytes on air (payload + Meshtastic overhead), 16-symbol preamble.
    table = {
        "ShortFast": [0.032, 0.076, 0.127, 0.191],
        "MediumFast": [0.109, 0.242, 0.406, 0.601],
        "LongFast": [0.395, 0.846, 1.38, 2.03],
    }
    for name, row in table.items():
        for phy_bytes, expected in zip([20, 80, 150, 237], row):
            assert time_on_air(phy_bytes, preset(name)) == pytest.approx(expected, rel=0.03)
    payload = 80 - (meshtastic_packet_len(1) - 1)  # what 80 B on air leave for our payload
    assert meshtastic_packet_len(payload) == 80
    assert meshtastic_time_on_air(payload, "LongFast") == pytest.approx(0.846, rel=0.03)


@given(
    sf=st.integers(6, 12),
    bw=st.sampled_from([62.5e3, 125e3, 250e3, 500e3]),
    cr=st.integers(5, 8),
    size=st.integers(0, MAX_LORA_PAYLOAD - 1),
)
def test_time_on_air_grows_with_payload_in_whole_coding_blocks(sf, bw, cr, size):
    params = LoRaParams(sf=sf, bw_hz=bw, cr=cr, preamble_symbols=8)
    assert time_on_air(size + 1, params) >= time_on_air(size, params)
    assert (payload_symbols(size, params) - 8) % cr == 0


@pytest.mark.parametrize(
    "kwargs", [dict(sf=13), dict(sf=5), dict(cr=4), dict(cr=9), dict(bw_hz=0), dict(preamble_symbols=-1)]
)
def test_impossible_lora_parameters_are_refused(kwargs):
    with pytest.raises(ConfigError):
        LoRaParams(**{**dict(sf=9, bw_hz=125e3, cr=5, preamble_symbols=8), **kwargs})


def test_payload_beyond_the_lora_limit_is_refused():
    with pytest.raises(MessageTooLarge):
        time_on_air(MAX_LORA_PAYLOAD + 1, preset("LongFast"))
