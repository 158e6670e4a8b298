"""A demo cluster and its field workload: soil probes, a weather station, valves, a battery
and street lights with realistic slowly-varying readings, signed by their own keys.

Used by the demo (`blockiot demo`), the codec benchmark and the dictionary trainer, so
they all see the same kind of traffic. Keys come from a seed: for demos and tests only.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from blockiot.chain.crypto import Identity, blake2b256
from blockiot.chain.genesis import Genesis, Member, Params
from blockiot.chain.wire import Action, Command, Reading, Sensor, Tx, sign_tx

# (name prefix, role, groups, sensors it reports: (sensor, start value, step, min, max))
DEVICE_KINDS = {
    "gateway": ("validator", ("core",), ()),
    "probe": ("member", ("field-a",), ((Sensor.MOISTURE, 320, 6, 80, 600), (Sensor.TEMPERATURE, 1650, 40, -500, 4500))),
    "weather": ("validator", ("core",), ((Sensor.RAIN_FORECAST, 20, 5, 0, 100), (Sensor.HUMIDITY, 620, 15, 50, 1000))),
    "valve": ("member", ("field-a",), ()),
    "battery": ("member", ("grid",), ((Sensor.STATE_OF_CHARGE, 640, 8, 0, 1000), (Sensor.POWER, 0, 120, -30000, 30000))),
    "light": ("member", ("street",), ((Sensor.MOTION, 0, 2, 0, 40), (Sensor.LIGHT, 300, 40, 0, 20000))),
}

DEFAULT_LAYOUT = (("gateway", 2), ("weather", 1), ("probe", 8), ("valve", 3), ("battery", 2), ("light", 4))


@dataclass
class Device:
    member: Member
    identity: Identity
    kind: str
    values: dict[int, int] = field(default_factory=dict)
    nonce: int = 0


class DemoCluster:
    def __init__(self, seed: int = 1, layout=DEFAULT_LAYOUT, genesis_time: int = 1_764_000_000,
                 params: Params = Params(slot_seconds=30, epoch_slots=120)):
        self.rng = random.Random(seed)
        self.devices: list[Device] = []
        members = []
        for kind, count in layout:
            role, groups, sensors = DEVICE_KINDS[kind]
            for n in range(count):
                index = len(members)
                identity = Identity.from_seed(blake2b256(f"blockiot-demo/{seed}/{kind}/{n}".encode()))
                member = Member(index, identity.public_key, role, groups, f"{kind}-{n + 1}")
                members.append(member)
                self.devices.append(Device(member, identity, kind, {s: v for s, v, *_ in sensors}))
        self.genesis = Genesis(f"demo-{seed}", genesis_time, params, tuple(members))

    def identity_of(self, index: int) -> Identity:
        return self.devices[index].identity

    def _sign(self, device: Device, body) -> Tx:
        device.nonce += 1
        return sign_tx(device.identity, self.genesis.chain_id, device.member.index, device.nonce, body)

    def readings(self, fraction: float = 1.0) -> list[Tx]:
        """One round of readings: each sensing device reports each sensor with probability
        `fraction`, values following a bounded random walk."""
        txs = []
        for device in self.devices:
            for sensor, _start, step, low, high in DEVICE_KINDS[device.kind][2]:
                if self.rng.random() > fraction:
                    continue
                value = device.values[sensor] + self.rng.randint(-step, step)
                device.values[sensor] = max(low, min(high, value))
                txs.append(self._sign(device, Reading(sensor, device.values[sensor])))
        return txs

    def commands(self) -> list[Tx]:
        """Occasional commands from the gateways to valves and lights."""
        txs = []
        gateways = [d for d in self.devices if d.kind == "gateway"]
        targets = [d for d in self.devices if d.kind in ("valve", "light")]
        if gateways and targets and self.rng.random() < 0.3:
            target = self.rng.choice(targets)
            if target.kind == "valve":
                body = Command(target.member.index, Action.OPEN, (self.rng.choice((300, 600, 900)),))
            else:
                body = Command(target.member.index, Action.DIM, (self.rng.randint(10, 100),))
            txs.append(self._sign(self.rng.choice(gateways), body))
        return txs
