"""A virtual Meshtastic device: the firmware's serial API on one side, the simulated air on the other.

Sans-IO personality (hil/personality.py). The host talks the real Meshtastic serial
API (0x94 0xC3 + length framing via `StreamFramer.meshtastic()`, ToRadio / FromRadio
protobufs from `meshtastic.protobuf`), so the official library and CLI work against
it unchanged. What it does, after the firmware (src/mesh/PhoneAPI.cpp, Router.cpp):

- `want_config_id`: my_info, own node_info, metadata, 8 channels (0 primary, 1..7
  disabled), every `Config` (device .. device_ui) and `ModuleConfig` variant, the
  node infos of nodes heard, then `config_complete_id`. Nonce 69420 skips the other
  nodes and 69421 sends only nodes, as the firmware's special nonces do.
- `heartbeat` -> `queueStatus`; `disconnect` stops the stream to the host.
- `packet` from the host -> `queueStatus` for its id (the library keeps resending a
  packet until it sees one), then on air as the firmware would: `from` = this node,
  `bitfield` added to the Data (so, like real firmware, PRIVATE_APP carries at most
  231 B, and a larger Data is refused with a Routing TOO_LARGE to the host), hop limit
  as the host set it. A packet id seen in the last 20 is ignored (firmware
  `wasSeenRecently`). `want_ack` is answered by an implicit ACK from this node once
  the packet is on air.
- Admin to this node (what `meshtastic --get`, `--device-metadata`, channel and
  session-key requests send): get_channel / get_owner / get_config (incl. the session
  key) / get_module_config / get_device_metadata answer with the device's values and a
  session passkey; setters get a Routing BAD_REQUEST: the rig fixes the configuration.
- From the air: hop-limited managed flooding by `FloodRouter` (hil/flooding.py):
  duplicates dropped, relays with SNR-weighted delay and cancellation; a first copy
  addressed to everyone or to this node goes to the host as a FromRadio packet with
  rx_rssi / rx_snr / rx_time, and the sender enters the node DB.
- Transmissions: one at a time, in order, after a random listen-before-talk backoff of
  0..2^CW_MIN slots, repeated while `carrier_sense` reports the channel busy.
- While no host is connected, packets for it wait in a 32-deep queue (oldest dropped
  first, counted) and follow the next config download, like the firmware's toPhone queue.

Simplifications, on purpose: the virtual air uses `flooding.MeshPacket`, the 16-byte
Meshtastic radio header followed by the Data protobuf, unencrypted (real firmware
encrypts Data with the channel key; AES-CTR adds no bytes, so airtime is unchanged).
That header carries only broadcasts, so a unicast destination rides in `Data.dest`
(5 more bytes on air); `hop_start` is not carried and `hops_away` is estimated from this
node's own hop limit. No periodic traffic (node info, position, telemetry) is sent:
the air carries only what hosts send and what the mesh relays.
"""
from __future__ import annotations

import hashlib
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

from google.protobuf.message import DecodeError
from meshtastic.protobuf import (
    admin_pb2,
    channel_pb2,
    config_pb2,
    localonly_pb2,
    mesh_pb2,
    module_config_pb2,
    portnums_pb2,
)

from blockiot.hil.flooding import (
    BROADCAST,
    CW_MIN,
    HOP_MAX,
    FloodRouter,
    MeshPacket,
    MeshPacketError,
    slot_time,
)
from blockiot.hil.medium import Delivery
from blockiot.hil.personality import Action, RadioSetup, ToHost, Transmit
from blockiot.radio.airtime import (
    MAX_LORA_PAYLOAD,
    MESHTASTIC_HEADER_LEN,
    canonical_preset_name,
    preset,
    time_on_air,
)
from blockiot.radio.streamframe import Noise, StreamFramer

# Node numbers: 0xB10C0000 + radio id, so "!b10c0001" is radio 1 in every run.
NODE_NUM_BASE = 0xB10C0000
MAX_RADIO_ID = 0xFFFF
TX_QUEUE_LEN = 16  # firmware MAX_TX_QUEUE
TO_PHONE_LEN = 32  # packets kept for a host that is not connected
RECENT_TO_RADIO_IDS = 20  # firmware PhoneAPI::wasSeenRecently
MAX_NODES = 100  # node DB entries kept (least recently heard dropped first)
NUM_CHANNELS = 8
ONLY_CONFIG_NONCE = 69420  # firmware SPECIAL_NONCE_ONLY_CONFIG (the library's NODELESS_WANT_CONFIG_ID)
ONLY_NODES_NONCE = 69421  # firmware SPECIAL_NONCE_ONLY_NODES
DEFAULT_HOP_LIMIT = 3
DEFAULT_REGION = "EU_868"
FIRMWARE_VERSION = "2.7.0.virtual"
DEVICE_STATE_VERSION = 24
MIN_APP_VERSION = 30200
PIO_ENV = "blockiot-virtual"
BITFIELD_OK_TO_MQTT_SHIFT = 0  # firmware Router::perhapsEncode
BITFIELD_WANT_RESPONSE_SHIFT = 1
SESSION_PASSKEY_LEN = 8

_PORT = portnums_pb2.PortNum
_ROUTING = mesh_pb2.Routing.Error


def node_num(radio_id: int) -> int:
    """The Meshtastic node number of the virtual device on radio `radio_id`."""
    if not 0 <= radio_id <= MAX_RADIO_ID:
        raise ValueError(f"radio id must be 0..{MAX_RADIO_ID} for a virtual Meshtastic device, got {radio_id}")
    return NODE_NUM_BASE + radio_id


def node_id(num: int) -> str:
    """A node number as Meshtastic writes it: !b10c0001."""
    return f"!{num:08x}"


@dataclass
class DeviceStats:
    """Counters of one virtual device (`MeshtasticDevice.stats` hands out a copy)."""

    from_host: int = 0  # ToRadio messages handled
    malformed_from_host: int = 0  # frames that are not a ToRadio protobuf
    noise_from_host: int = 0  # stray bytes outside frames
    transmitted: int = 0  # packets put on air (own and relayed)
    to_host: int = 0  # mesh packets handed to the host
    dropped_for_host: int = 0  # mesh packets lost because the toPhone queue was full
    malformed_from_air: int = 0
    refused: int = 0  # host packets refused (too large, no decoded payload, queue full)


@dataclass
class _Outgoing:
    air: bytes
    packet_id: int
    ack_to_host: bool  # answer want_ack with an implicit ACK once on air


class MeshtasticDevice:
    """One virtual Meshtastic node behind a serial port."""

    name = "meshtastic"

    def __init__(self, setup: RadioSetup, *, hop_limit: int = DEFAULT_HOP_LIMIT, region: str = DEFAULT_REGION) -> None:
        if not 0 <= hop_limit <= HOP_MAX:
            raise ValueError(f"hop_limit must be 0..{HOP_MAX}, got {hop_limit}")
        self.setup = setup
        self.node_num = node_num(setup.radio_id)
        self.params = preset(setup.preset)
        self._rng = random.Random(f"meshtastic-device:{setup.seed}:{setup.radio_id}")
        self._router = FloodRouter(
            self.node_num,
            params=self.params,
            rng=random.Random(f"meshtastic-flood:{setup.seed}:{setup.radio_id}"),
            hop_limit=hop_limit,
        )
        self._slot = slot_time(self.params)
        self._framer = StreamFramer.meshtastic()
        self._session_passkey = self._rng.randbytes(SESSION_PASSKEY_LEN)
        self.owner = mesh_pb2.User(
            id=node_id(self.node_num),
            long_name=f"BlockIoT virtual {setup.radio_id}",
            short_name=f"{self.node_num & 0xFFFF:04x}",
            hw_model=mesh_pb2.HardwareModel.PORTDUINO,
        )
        self.config = _local_config(setup.preset, hop_limit, region)
        self.module_config = localonly_pb2.LocalModuleConfig()
        self.channels = _channels()
        self._nodes: OrderedDict[int, mesh_pb2.NodeInfo] = OrderedDict()
        self._connected = False  # a host downloaded the config and has not disconnected
        self._to_phone: deque[mesh_pb2.MeshPacket] = deque()  # packets waiting for a host
        self._recent_ids: deque[int] = deque(maxlen=RECENT_TO_RADIO_IDS)
        self._from_radio_seq = 0
        self._queue: deque[_Outgoing] = deque()
        self._own_due = 0.0  # when the head of the queue may try the channel
        self._busy_until = 0.0  # end of this radio's current transmission
        self._stats = DeviceStats()

    # -- Personality --------------------------------------------------------------------

    def from_host(self, data: bytes, now: float) -> list[Action]:
        actions: list[Action] = []
        for item in self._framer.feed(data):
            if isinstance(item, Noise):
                self._stats.noise_from_host += len(item.data)
                continue
            message = mesh_pb2.ToRadio()
            try:
                message.ParseFromString(item)
            except DecodeError:
                self._stats.malformed_from_host += 1
                continue
            self._stats.from_host += 1
            actions += self._handle_to_radio(message, now)
        return actions

    def from_air(self, delivery: Delivery, now: float) -> list[Action]:
        try:
            packet = MeshPacket.from_bytes(delivery.packet)
            data = mesh_pb2.Data.FromString(packet.payload)
        except (MeshPacketError, DecodeError):
            self._stats.malformed_from_air += 1
            return []
        verdict = self._router.on_receive(
            packet.packet_id, packet.origin, packet.hop_limit, packet.payload, delivery.snr, now
        )
        if not verdict.deliver:
            return []
        self._heard(packet, data, delivery, now)
        if data.dest in (0, self.node_num):
            mesh = mesh_pb2.MeshPacket(
                to=data.dest or BROADCAST,
                id=packet.packet_id,
                hop_limit=packet.hop_limit,
                rx_time=self._clock(now),
                rx_snr=delivery.snr,
                rx_rssi=round(delivery.rssi),
            )
            setattr(mesh, "from", packet.origin)
            data.ClearField("dest")
            mesh.decoded.CopyFrom(data)
            return self._for_host(mesh)
        return []

    def poll(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if now < self._busy_until:
            return actions
        relay = self._router.pop_due(now, channel_busy=self.setup.carrier_sense(now))
        if relay is not None:
            return self._transmit(relay.to_bytes(), now)
        if self._queue and now >= self._own_due:
            if self.setup.carrier_sense(now):
                self._own_due = now + self._backoff()
                return actions
            was_full = len(self._queue) >= TX_QUEUE_LEN
            outgoing = self._queue.popleft()
            actions += self._transmit(outgoing.air, now)
            self._own_due = self._busy_until + self._backoff()
            if outgoing.ack_to_host:
                actions += self._routing_reply(outgoing.packet_id, _ROUTING.NONE)
            if was_full and self._connected:
                actions.append(self._to_host(queueStatus=self._queue_status()))
        return actions

    def next_deadline(self) -> float | None:
        deadlines = []
        relay = self._router.next_deadline()
        if relay is not None:
            deadlines.append(max(relay, self._busy_until))
        if self._queue:
            deadlines.append(max(self._own_due, self._busy_until))
        return min(deadlines, default=None)

    # -- state -------------------------------------------------------------------------

    @property
    def stats(self) -> DeviceStats:
        return replace(self._stats)

    def heard_nodes(self) -> list[int]:
        """Node numbers in the node DB other than this one, least recently heard first."""
        return list(self._nodes)

    # -- ToRadio ------------------------------------------------------------------------

    def _handle_to_radio(self, message: mesh_pb2.ToRadio, now: float) -> list[Action]:
        variant = message.WhichOneof("payload_variant")
        if variant == "want_config_id":
            return self._config_download(message.want_config_id, now)
        if variant == "packet":
            return self._packet_from_host(message.packet, now)
        if variant == "heartbeat":
            return [self._to_host(queueStatus=self._queue_status())]
        if variant == "disconnect":
            self._connected = False
        return []

    def _config_download(self, nonce: int, now: float) -> list[Action]:
        self._connected = False  # as the firmware, restart the state machine
        out: list[Action] = []
        if nonce != ONLY_NODES_NONCE:
            out.append(self._to_host(my_info=self._my_info()))
        out.append(self._to_host(node_info=self._own_node_info(now)))
        if nonce != ONLY_NODES_NONCE:
            out.append(self._to_host(metadata=_metadata()))
            out += [self._to_host(channel=channel) for channel in self.channels]
            out += [self._to_host(config=self._config_variant(f.name)) for f in config_pb2.Config.DESCRIPTOR.fields]
            out += [
                self._to_host(moduleConfig=self._module_config_variant(f.name))
                for f in module_config_pb2.ModuleConfig.DESCRIPTOR.fields
            ]
        if nonce != ONLY_CONFIG_NONCE:
            out += [self._to_host(node_info=info) for info in self._nodes.values()]
        out.append(self._to_host(config_complete_id=nonce))
        self._connected = True
        while self._to_phone:
            out.append(self._to_host(packet=self._to_phone.popleft()))
            self._stats.to_host += 1
        return out

    def _packet_from_host(self, packet: mesh_pb2.MeshPacket, now: float) -> list[Action]:
        if packet.id and packet.id in self._recent_ids:
            return []  # firmware: "Ignore packet from phone, already seen recently"
        if packet.id:
            self._recent_ids.append(packet.id)
        packet_id = packet.id or self._new_packet_id()
        out: list[Action] = [self._to_host(queueStatus=self._queue_status(packet_id))]
        if packet.to == self.node_num:
            if packet.decoded.portnum == _PORT.ADMIN_APP:
                out += self._admin(packet, packet_id)
            return out
        if packet.WhichOneof("payload_variant") != "decoded":
            self._stats.refused += 1
            return out + self._routing_reply(packet_id, _ROUTING.BAD_REQUEST)
        data = mesh_pb2.Data()
        data.CopyFrom(packet.decoded)
        if packet.to != BROADCAST:
            data.dest = packet.to
        ok_to_mqtt = self.config.lora.config_ok_to_mqtt
        data.bitfield = (ok_to_mqtt << BITFIELD_OK_TO_MQTT_SHIFT) | (data.want_response << BITFIELD_WANT_RESPONSE_SHIFT)
        payload = data.SerializeToString()
        if MESHTASTIC_HEADER_LEN + len(payload) > MAX_LORA_PAYLOAD:
            self._stats.refused += 1
            return out + self._routing_reply(packet_id, _ROUTING.TOO_LARGE)
        if len(self._queue) >= TX_QUEUE_LEN:
            self._stats.refused += 1
            return out + self._routing_reply(packet_id, _ROUTING.NO_INTERFACE)
        air = self._router.originate(packet_id, payload)
        hop_limit = min(packet.hop_limit, HOP_MAX)
        if hop_limit != air.hop_limit:
            air = replace(air, hop_limit=hop_limit)
        if not self._queue:
            self._own_due = max(now, self._busy_until) + self._backoff()
        self._queue.append(_Outgoing(air.to_bytes(), packet_id, packet.want_ack))
        return out

    # -- admin --------------------------------------------------------------------------

    def _admin(self, packet: mesh_pb2.MeshPacket, packet_id: int) -> list[Action]:
        request = admin_pb2.AdminMessage()
        try:
            request.ParseFromString(packet.decoded.payload)
        except DecodeError:
            return self._routing_reply(packet_id, _ROUTING.BAD_REQUEST)
        variant = request.WhichOneof("payload_variant")
        response = admin_pb2.AdminMessage(session_passkey=self._session_passkey)
        if variant == "get_channel_request" and 1 <= request.get_channel_request <= NUM_CHANNELS:
            response.get_channel_response.CopyFrom(self.channels[request.get_channel_request - 1])
        elif variant == "get_owner_request":
            response.get_owner_response.CopyFrom(self.owner)
        elif variant == "get_config_request" and request.get_config_request + 1 in _CONFIG_BY_NUMBER:
            name = _CONFIG_BY_NUMBER[request.get_config_request + 1]
            response.get_config_response.CopyFrom(self._config_variant(name))
        elif variant == "get_module_config_request" and request.get_module_config_request + 1 in _MODULE_BY_NUMBER:
            name = _MODULE_BY_NUMBER[request.get_module_config_request + 1]
            response.get_module_config_response.CopyFrom(self._module_config_variant(name))
        elif variant == "get_device_metadata_request":
            response.get_device_metadata_response.CopyFrom(_metadata())
        else:
            return self._routing_reply(packet_id, _ROUTING.BAD_REQUEST)
        reply = self._local_packet(_PORT.ADMIN_APP, response.SerializeToString(), packet_id)
        reply.channel = packet.channel
        return self._for_host(reply)

    # -- building FromRadio -------------------------------------------------------------

    def _to_host(self, **field: object) -> ToHost:
        message = mesh_pb2.FromRadio(**field)
        self._from_radio_seq += 1
        message.id = self._from_radio_seq
        return ToHost(self._framer.frame(message.SerializeToString()))

    def _for_host(self, packet: mesh_pb2.MeshPacket) -> list[Action]:
        """A mesh packet for the host: now if one is connected, else kept in the toPhone queue."""
        if self._connected:
            self._stats.to_host += 1
            return [self._to_host(packet=packet)]
        if len(self._to_phone) >= TO_PHONE_LEN:
            self._to_phone.popleft()
            self._stats.dropped_for_host += 1
        self._to_phone.append(packet)
        return []

    def _local_packet(self, portnum: int, payload: bytes, request_id: int) -> mesh_pb2.MeshPacket:
        packet = mesh_pb2.MeshPacket(to=self.node_num, id=self._new_packet_id())
        setattr(packet, "from", self.node_num)
        packet.decoded.portnum = portnum
        packet.decoded.payload = payload
        packet.decoded.request_id = request_id
        return packet

    def _routing_reply(self, request_id: int, error: int) -> list[Action]:
        routing = mesh_pb2.Routing(error_reason=error)
        return self._for_host(self._local_packet(_PORT.ROUTING_APP, routing.SerializeToString(), request_id))

    def _queue_status(self, packet_id: int = 0) -> mesh_pb2.QueueStatus:
        free = TX_QUEUE_LEN - len(self._queue)
        return mesh_pb2.QueueStatus(res=0, free=free, maxlen=TX_QUEUE_LEN, mesh_packet_id=packet_id)

    def _my_info(self) -> mesh_pb2.MyNodeInfo:
        device_id = hashlib.blake2b(f"blockiot-virtual:{self.setup.radio_id}".encode(), digest_size=16).digest()
        return mesh_pb2.MyNodeInfo(
            my_node_num=self.node_num,
            min_app_version=MIN_APP_VERSION,
            device_id=device_id,
            pio_env=PIO_ENV,
            nodedb_count=len(self._nodes) + 1,
        )

    def _own_node_info(self, now: float) -> mesh_pb2.NodeInfo:
        return mesh_pb2.NodeInfo(num=self.node_num, user=self.owner, last_heard=self._clock(now), is_favorite=True)

    def _config_variant(self, name: str) -> config_pb2.Config:
        config = config_pb2.Config()
        part = getattr(config, name)
        if name in _LOCAL_CONFIG_FIELDS:
            part.CopyFrom(getattr(self.config, name))
        else:
            part.SetInParent()  # sessionkey, device_ui: present and empty, as the firmware sends them
        return config

    def _module_config_variant(self, name: str) -> module_config_pb2.ModuleConfig:
        module = module_config_pb2.ModuleConfig()
        getattr(module, name).CopyFrom(getattr(self.module_config, name))
        return module

    # -- air ----------------------------------------------------------------------------

    def _transmit(self, air: bytes, now: float) -> list[Action]:
        self._busy_until = now + time_on_air(len(air), self.params)
        self._stats.transmitted += 1
        return [Transmit(air)]

    def _backoff(self) -> float:
        return self._rng.randrange(1 << CW_MIN) * self._slot

    def _heard(self, packet: MeshPacket, data: mesh_pb2.Data, delivery: Delivery, now: float) -> None:
        info = self._nodes.pop(packet.origin, None) or mesh_pb2.NodeInfo(num=packet.origin)
        info.last_heard = self._clock(now)
        info.snr = delivery.snr
        info.hops_away = max(0, self._router.hop_limit - packet.hop_limit)
        if data.portnum == _PORT.NODEINFO_APP:
            try:
                info.user.CopyFrom(mesh_pb2.User.FromString(data.payload))
            except DecodeError:
                self._stats.malformed_from_air += 1
        self._nodes[packet.origin] = info
        if len(self._nodes) > MAX_NODES:
            self._nodes.popitem(last=False)

    # -- helpers ------------------------------------------------------------------------

    def _clock(self, now: float) -> int:
        return int(self.setup.epoch + now)

    def _new_packet_id(self) -> int:
        return self._rng.getrandbits(32) or 1



_CONFIG_BY_NUMBER = {f.number: f.name for f in config_pb2.Config.DESCRIPTOR.fields}
_MODULE_BY_NUMBER = {f.number: f.name for f in module_config_pb2.ModuleConfig.DESCRIPTOR.fields}
_LOCAL_CONFIG_FIELDS = frozenset(f.name for f in localonly_pb2.LocalConfig.DESCRIPTOR.fields)


def _local_config(preset_name: str, hop_limit: int, region: str) -> localonly_pb2.LocalConfig:
    config = localonly_pb2.LocalConfig()
    config.device.role = config_pb2.Config.DeviceConfig.Role.CLIENT
    lora = config.lora
    lora.use_preset = True
    lora.modem_preset = config_pb2.Config.LoRaConfig.ModemPreset.Value(canonical_preset_name(preset_name))
    lora.region = config_pb2.Config.LoRaConfig.RegionCode.Value(region)
    lora.hop_limit = hop_limit
    lora.tx_enabled = True
    config.bluetooth.enabled = False
    config.security.serial_enabled = True
    return config


def _channels() -> list[channel_pb2.Channel]:
    primary = channel_pb2.Channel(index=0, role=channel_pb2.Channel.Role.PRIMARY)
    primary.settings.psk = b"\x01"  # the default key; the empty name shows as the preset's name
    disabled = [channel_pb2.Channel(index=i, role=channel_pb2.Channel.Role.DISABLED) for i in range(1, NUM_CHANNELS)]
    return [primary, *disabled]


def _metadata() -> mesh_pb2.DeviceMetadata:
    return mesh_pb2.DeviceMetadata(
        firmware_version=FIRMWARE_VERSION,
        device_state_version=DEVICE_STATE_VERSION,
        role=config_pb2.Config.DeviceConfig.Role.CLIENT,
        hw_model=mesh_pb2.HardwareModel.PORTDUINO,
    )
