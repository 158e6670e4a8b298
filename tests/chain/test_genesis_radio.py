"""A genesis names only a region the node has airtime rules for and a preset the radio
layer knows, in TOML, in code and in an encoded genesis read from disk or air."""
from __future__ import annotations

import dataclasses

import pytest

from blockiot.chain.errors import DecodeError, GenesisError
from blockiot.chain.genesis import Genesis, decode_genesis


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("region", "AU915", "region 'AU915' is not one the node has airtime rules for; allowed: EU868, US915"),
        ("region", "NONE", "region 'NONE' is not one the node has airtime rules for"),
        ("region", "eu868", "region 'eu868' is not one"),
        ("preset", "SuperFast", "preset 'SuperFast' is not a Meshtastic preset the node supports; allowed: "
                                "ShortTurbo, ShortFast"),
        ("preset", "long_fast", "preset 'long_fast' is not a Meshtastic preset"),
    ],
)
def test_genesis_refuses_what_the_node_cannot_use(genesis, field, value, message):
    params = dataclasses.replace(genesis.params, **{field: value})
    with pytest.raises(GenesisError, match=message):
        Genesis(genesis.name, genesis.genesis_time, params, genesis.members)


def test_an_encoded_genesis_naming_an_unsupported_region_does_not_decode(genesis):
    raw = genesis.encoded
    assert raw.count(b"\x05EU868") == 1
    with pytest.raises(DecodeError, match="invalid genesis: region 'AU915'"):
        decode_genesis(raw.replace(b"\x05EU868", b"\x05AU915"))
    assert decode_genesis(raw.replace(b"\x05EU868", b"\x05US915")).params.region == "US915"
