"""Names a rule may use for sensors, command actions and transaction kinds, taken from the chain's wire tables.

A rule writes the lowercase enum name (`moisture`, `rain_forecast`, `open`, `notify`,
`reading`). Reading values travel in each sensor's own fixed-point unit (SENSOR_UNITS);
the VM works in thousandths, so `to_vm_fixed` rescales them.
"""
from __future__ import annotations

from types import MappingProxyType

from blockiot.chain.contracts.arith import FIXED_DECIMALS
from blockiot.chain.wire import SENSOR_UNITS, Action, Sensor, TxKind

SENSORS = MappingProxyType({s.name.lower(): int(s) for s in Sensor})
ACTIONS = MappingProxyType({a.name.lower(): int(a) for a in Action})
KINDS = MappingProxyType({k.name.lower(): int(k) for k in TxKind})

# Multiplier from a sensor's wire unit to VM thousandths (a MOISTURE of 287 = 28.7 % -> 28700).
_RESCALE = MappingProxyType({int(s): 10 ** (FIXED_DECIMALS - decimals) for s, (_, decimals) in SENSOR_UNITS.items()})


def to_vm_fixed(sensor: int, raw: int) -> int | None:
    """A reading's wire value in VM thousandths, or None for an unknown sensor."""
    scale = _RESCALE.get(sensor)
    return None if scale is None else raw * scale
