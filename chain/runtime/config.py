"""A node's settings: flags of `blockiot node` over an optional TOML file, checked so that a
wrong value names its key and what is allowed.

    genesis = "cluster.toml"      # the cluster's genesis
    key = "keys/gw-1.key"         # this device's key
    data_dir = "/var/lib/blockiot"
    port = "auto"                 # serial port, or "auto"; or host = "meshtasticd.local"
    radio = "meshtastic"          # meshtastic | e22 (default: what the port's USB id says)
    frequency = 869.525e6         # carrier in Hz: picks the duty-cycle sub-band
    budget = 0.05                 # self-imposed duty cycle, at most the legal one
    hook = "/usr/local/bin/relay" # run for each final command addressed to this device
    log_json = false
    mqtt = "mqtt://user:pass@broker.local:1883"  # optional MQTT bridge (docs/MQTT.md)

Relative paths in the file are relative to the file.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from blockiot.chain.errors import ChainError

from .mqtt import MqttError, load_paho, parse_broker_url

RADIOS = ("meshtastic", "e22")
FREQUENCY_RANGE_HZ = (137e6, 1020e6)  # the bands LoRa transceivers tune (SX126x: 150-960 MHz)


class NodeConfigError(ChainError):
    """A node setting that is missing or out of range."""


@dataclass(frozen=True)
class NodeConfig:
    genesis: Path | None = None
    key: Path | None = None
    data_dir: Path | None = None
    port: str | None = None
    host: str | None = None
    radio: str | None = None
    frequency: float | None = None
    budget: float | None = None
    hook: Path | None = None
    mqtt: str | None = None
    log_json: bool = False
    seconds: float = math.inf

    def check(self) -> "NodeConfig":
        """Self, once every setting is present and within range; else `NodeConfigError`."""
        for name in ("genesis", "key", "data_dir"):
            if getattr(self, name) is None:
                raise NodeConfigError(f"`{name}` is required (flag --{name.replace('_', '-')} or key `{name}` in --config)")
        if (self.port is None) == (self.host is None):
            raise NodeConfigError("give exactly one of `port` (a serial port or `auto`) and `host` (meshtasticd)")
        if self.radio is not None and self.radio not in RADIOS:
            raise NodeConfigError(f"`radio` must be one of {', '.join(RADIOS)}, not {self.radio!r}")
        if self.host is not None and self.radio == "e22":
            raise NodeConfigError("an E22 modem attaches by serial port, not `host`")
        if self.frequency is not None and not FREQUENCY_RANGE_HZ[0] <= self.frequency <= FREQUENCY_RANGE_HZ[1]:
            raise NodeConfigError(f"`frequency` is the carrier in Hz, {FREQUENCY_RANGE_HZ[0]:.0f}..{FREQUENCY_RANGE_HZ[1]:.0f}, "
                                  f"not {self.frequency!r} (869.525 MHz is 869.525e6)")
        if self.budget is not None and not 0 < self.budget <= 1:
            raise NodeConfigError(f"`budget` is a duty-cycle fraction in (0, 1], not {self.budget!r} (5 % is 0.05)")
        if self.mqtt is not None:
            try:
                parse_broker_url(self.mqtt)
                load_paho()
            except MqttError as exc:
                raise NodeConfigError(f"`mqtt`: {exc}") from None
        if not self.seconds > 0:
            raise NodeConfigError(f"`seconds` must be positive, not {self.seconds!r}")
        return self


_TYPES = {"genesis": Path, "key": Path, "data_dir": Path, "hook": Path, "port": str, "host": str, "radio": str,
          "frequency": float, "budget": float, "log_json": bool, "seconds": float, "mqtt": str}


def load_node_config(path: Path) -> NodeConfig:
    """The settings in a node TOML file (not yet `check`ed: flags may complete them)."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise NodeConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NodeConfigError(f"{path} is not valid TOML: {exc}") from None
    values = {}
    for key, value in raw.items():
        kind = _TYPES.get(key)
        if kind is None:
            raise NodeConfigError(f"{path}: unknown key `{key}`; known: {', '.join(_TYPES)}")
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        expected = str if kind is Path else kind
        if not isinstance(value, expected) or (expected is float and isinstance(value, bool)):
            raise NodeConfigError(f"{path}: `{key}` must be {expected.__name__}, not {value!r}")
        values[key] = (Path(path).parent / value) if kind is Path else value
    return NodeConfig(**values)


def merge(base: NodeConfig, overrides: dict) -> NodeConfig:
    """`base` with every setting given in `overrides` (None: not given) replaced."""
    known = {f.name for f in fields(NodeConfig)}
    return replace(base, **{k: v for k, v in overrides.items() if k in known and v is not None})
