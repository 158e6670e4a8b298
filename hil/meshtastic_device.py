"""A virtual Meshtastic device: the firmware's serial API on one side, the simulated air on the other.

Sans-IO personality (hil/personality.py). The host talks the real Meshtastic serial
API (0x94 0xC3 + length framing via `StreamFramer.meshtastic()`, ToRadio / FromRadio
protobufs from `meshtastic.protobuf`), so the official library and CLI work against
it unchanged. It follows firmware 2.7 (tag v2.7.11; src/mesh/PhoneAPI.cpp,
MeshService.cpp, Router.cpp, ReliableRouter.cpp, modules/NodeInfoModule.cpp):

- `want_config_id`: my_info, own node_info, metadata, 8 channels, every `Config` and
  `ModuleConfig` variant, the node infos of the node DB, then `config_complete_id`.
  Nonce 69420 skips the other nodes and 69421 sends only nodes, as the firmware's
  special nonces do. `heartbeat` -> `queueStatus`; `disconnect` stops the stream.
- A packet from the host is handled as `MeshService::sendToMesh`: it is queued first,
  then a `QueueStatus` for its id reports the free space after queuing. A full TX
  queue refuses it with `res` = 32 (ERRNO_UNKNOWN) and `free` = 0, and nothing else: no
  Routing error. When space frees after a status that said `free` = 0, an unsolicited
  `QueueStatus` (id 0) says so (`MeshService::loop`). A packet id seen in the last 20
  is ignored (`wasSeenRecently`). A Data too large for one LoRa packet (with the 2-byte
  `bitfield` the firmware adds) gets a Routing TOO_LARGE and `res` = TOO_LARGE.
- One shared TX queue of 16 for own packets and relays, in priority order, with the
  firmware's single transmit timer and channel activity detection (hil/txqueue.py).
- On air: the firmware's 16-byte header (`flooding.MeshPacket`: to, from, id, hop
  limit, want_ack, hop_start, channel hash, relay node), then the Data protobuf,
  unencrypted (AES-CTR adds no bytes, so airtime is unchanged). want_ack is carried on
  unicast and cleared on broadcasts, as `Router::send` does.
- want_ack (hil/reliable.py): a direct message is acknowledged by its recipient with a
  Routing ACK over the air, a broadcast by hearing a relay of it (implicit ACK, from
  this node); without either the packet is sent again twice, then the host gets a
  Routing MAX_RETRANSMIT. A recipient that hears the originator repeat a want-ack
  packet it already has acknowledges it again.
- From the air: hop-limited managed flooding by `FloodRouter` (hil/sim/flooding.py); a
  first copy on one of our channels updates the node DB (`NodeDB::updateFrom`: SNR,
  last heard, hops away = hop_start - hop_limit, the user from NODEINFO_APP) and,
  addressed to everyone or to this node, goes to the host with rx_rssi / rx_snr /
  rx_time / hop_start. Reported SNR is what an SX126x reports, not the link budget:
  the chip's packet SNR estimate saturates on strong links, so it is clamped at
  `REPORTED_SNR_MAX_DB` and quantised to its 0.25 dB steps; RSSI to whole dBm.
- NodeInfo (NodeInfoModule): the owner is broadcast 30 s after boot (asking for
  replies the first time) and every `node_info_broadcast_secs` (3 h by default); a
  NodeInfo that wants a response is answered with ours, and a packet from a node whose
  user is unknown is answered with ours, asking for theirs; never more often than once
  in 5 min. Boards do not boot in the same millisecond: each starts 0..2 s late.
- Admin to this node: getters and setters as hil/meshtastic_settings.py describes.
  A new owner is announced with a NodeInfo broadcast; a new hop limit takes effect at
  once, and a new region, preset, LoRa setting or primary channel name retunes the
  radio at once (`Tune`: another frequency slot or modulation, where it hears and
  reaches only boards tuned alike; region UNSET: neither). What the firmware saves is
  handed to the rig as flash files (`Persist`): each admin change, a node's new user
  (not within a minute of boot or of the last such save, as NodeDB::updateUser), and
  everything at a shutdown. A board boots from its `RadioSetup.flash`: settings and node
  DB as saved, RAM (host connection, TX queue, retransmissions, toPhone queue) empty.
- `reboot_seconds` N (the CLI's `--reboot` sends 10): the board runs N s more, then
  resets (`Reboot`): its port disappears, as the USB CDC port of a board with native
  USB (ESP32-S3, nRF52840) does, for `BOOT_S`, and the rig boots a new device from the
  flash on the same path. `shutdown_seconds` N: it saves everything and turns off
  (`Shutdown`) until powered again. A negative N cancels a pending one, as firmware.
- While no host is connected, packets for it wait in a 32-deep toPhone queue; when it
  is full a text message pushes out the oldest, anything else is dropped (counted).

Not modelled: PKI encryption of direct messages, next-hop routing (direct messages
are flooded), position and telemetry broadcasts, the rate limits on text and position
packets from the host, region duty-cycle refusals, the serial log a booting board
prints, a board with a USB-UART bridge (its port stays through a reboot).
"""
from __future__ import annotations

import hashlib
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

from google.protobuf.message import DecodeError
from meshtastic.protobuf import admin_pb2, config_pb2, mesh_pb2, module_config_pb2, portnums_pb2

from blockiot.hil.sim.flooding import BROADCAST, HOP_MAX, FloodRouter, MeshPacket, MeshPacketError, slot_time
from blockiot.hil.sim.medium import Delivery
from blockiot.hil.meshtastic_settings import AdminResult, Segment, Settings
from blockiot.hil.personality import DeviceAction, Persist, RadioSetup, Reboot, Shutdown, ToAir, ToHost, Tune
from blockiot.hil.reliable import Retransmissions
from blockiot.hil.txqueue import MAX_TX_QUEUE, TxQueue
from blockiot.radio.airtime import MAX_LORA_PAYLOAD, MESHTASTIC_HEADER_LEN, time_on_air
from blockiot.radio.streamframe import Noise, StreamFramer

# Node numbers: 0xB10C0000 + radio id, so "!b10c0001" is radio 1 in every run.
NODE_NUM_BASE = 0xB10C0000
MAX_RADIO_ID = 0xFFFF
TX_QUEUE_LEN = MAX_TX_QUEUE
TO_PHONE_LEN = 32  # firmware MAX_RX_TOPHONE
RECENT_TO_RADIO_IDS = 20  # firmware PhoneAPI::wasSeenRecently
MAX_NODES = 100  # node DB entries kept (least recently heard dropped first)
ONLY_CONFIG_NONCE = 69420  # firmware SPECIAL_NONCE_ONLY_CONFIG (the library's NODELESS_WANT_CONFIG_ID)
ONLY_NODES_NONCE = 69421  # firmware SPECIAL_NONCE_ONLY_NODES
DEFAULT_HOP_LIMIT = 3
HOP_RELIABLE = 3  # firmware: a hop limit above HOP_MAX becomes this
MIN_APP_VERSION = 30200
PIO_ENV = "blockiot-virtual"
BITFIELD_OK_TO_MQTT_SHIFT = 0  # firmware Router::perhapsEncode
BITFIELD_WANT_RESPONSE_SHIFT = 1
SESSION_PASSKEY_LEN = 8
ERRNO_OK = 0  # firmware MeshTypes.h
ERRNO_UNKNOWN = 32  # what QueueStatus.res says when the TX queue is full
REPORTED_SNR_MAX_DB = 12.0
NODE_INFO_FIRST_S = 30.0  # MESHMODULE_MIN_BROADCAST_DELAY_MS
NODE_INFO_MIN_GAP_S = 5 * 60  # NodeInfoModule::allocReply: not again within 5 min
BOOT_JITTER_S = 2.0
BOOT_S = 3.0  # reset until the USB CDC port is back: ESP32-S3 and nRF52840 boards take 2-4 s
NODE_DB_SAVE_GAP_S = 60.0  # NodeDB::updateUser: not saved again within a minute (of boot, too)

_PORT = portnums_pb2.PortNum
_ROUTING = mesh_pb2.Routing.Error
_PRIORITY = mesh_pb2.MeshPacket.Priority


def node_num(radio_id: int) -> int:
    """The Meshtastic node number of the virtual device on radio `radio_id`."""
    if not 0 <= radio_id <= MAX_RADIO_ID:
        raise ValueError(f"radio id must be 0..{MAX_RADIO_ID} for a virtual Meshtastic device, got {radio_id}")
    return NODE_NUM_BASE + radio_id


def node_id(num: int) -> str:
    """A node number as Meshtastic writes it: !b10c0001."""
    return f"!{num:08x}"


def fix_priority(want_ack: bool, data: mesh_pb2.Data | None) -> int:
    """The TX queue priority of a packet that has none set (firmware MeshPacketQueue.cpp fixPriority)."""
    if data is not None:
        if data.portnum == _PORT.ROUTING_APP:
            return _PRIORITY.ACK
        if data.portnum in (_PORT.TEXT_MESSAGE_APP, _PORT.ADMIN_APP):
            return _PRIORITY.HIGH
        if data.request_id:
            return _PRIORITY.RESPONSE
        if data.want_response:
            return _PRIORITY.RELIABLE
    return _PRIORITY.RELIABLE if want_ack else _PRIORITY.DEFAULT


def reported_snr(snr: float) -> float:
    """The SNR an SX126x reports for a packet received at `snr` dB: clamped, in 0.25 dB steps."""
    return round(min(snr, REPORTED_SNR_MAX_DB) * 4) / 4


def _relay_priority(packet: MeshPacket) -> int:
    try:
        data = mesh_pb2.Data.FromString(packet.payload)
    except DecodeError:
        data = None
    return fix_priority(packet.want_ack, data)


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
    refused: int = 0  # host packets refused (too large, no decoded payload, TX queue full)


class MeshtasticDevice:
    """One virtual Meshtastic node behind a serial port."""

    name = "meshtastic"
    boot_s = BOOT_S  # how long a reboot keeps its port away

    def __init__(self, setup: RadioSetup, *, hop_limit: int = DEFAULT_HOP_LIMIT) -> None:
        """Boot at medium time `setup.booted_at` with RAM empty and the settings and node DB of `setup.flash`.

        The boot takes 0..2 s more, then the first NodeInfo goes 30 s later.
        """
        if not 0 <= hop_limit <= HOP_MAX:
            raise ValueError(f"hop_limit must be 0..{HOP_MAX}, got {hop_limit}")
        self.setup = setup
        self.node_num = node_num(setup.radio_id)
        now = setup.booted_at
        # Randomness is drawn afresh per boot, the same in every run.
        boot = f"{setup.seed}:{setup.radio_id}:{now}"
        self._rng = random.Random(f"meshtastic-device:{boot}")
        self._framer = StreamFramer.meshtastic()
        self.settings = Settings(
            node_num=self.node_num,
            long_name=f"BlockIoT virtual {setup.radio_id}",
            short_name=f"{self.node_num & 0xFFFF:04x}",
            preset=setup.preset,
            hop_limit=hop_limit,
            region=setup.region,
            passkey=self._rng.randbytes(SESSION_PASSKEY_LEN),
        )
        # The node DB, kept in flash; least recently heard first.
        self._nodes = OrderedDict((info.num, info) for info in self.settings.restore(setup.flash))
        self.channel = self.settings.apply_modem_config()
        self.params = self.settings.modulation
        slot = slot_time(self.params)
        self._txq = TxQueue(slot=slot, rng=random.Random(f"meshtastic-tx:{boot}"), priority=_relay_priority)
        self._router = FloodRouter(
            self.node_num,
            params=self.params,
            rng=random.Random(f"meshtastic-flood:{boot}"),
            hop_limit=self.settings.config.lora.hop_limit,
            relays=self._txq,
        )
        self._retx = Retransmissions(slot)
        self._from_radio_seq = 0
        self._stats = DeviceStats()
        self._tune = True  # the radio must be tuned: at boot, and after a LoRa change
        self._connected = False  # a host downloaded the config and has not disconnected
        self._to_phone: deque[mesh_pb2.MeshPacket] = deque()  # packets waiting for a host
        self._recent_ids: deque[int] = deque(maxlen=RECENT_TO_RADIO_IDS)
        self._busy_until = now  # end of this radio's current transmission
        self._tx_end: float | None = None  # a transmission whose end the TX timer must hear of
        self._status_free = 0  # firmware lastQueueStatus.free, {0, 0, 16, 0} at boot
        self._reboot_at: float | None = None
        self._shutdown_at: float | None = None
        self._nodes_saved_at = now  # NodeDB lastNodeDbSave: millis() at boot
        self._node_info_at = now + NODE_INFO_FIRST_S + self._rng.uniform(0.0, BOOT_JITTER_S)
        self._node_info_sent: float | None = None  # NodeInfoModule lastSentToMesh
        self._node_info_id = 0  # its last packet, cancelled if still queued when the next is sent
        self._asked_for_node_infos = False

    # -- Personality --------------------------------------------------------------------

    def from_host(self, data: bytes, now: float) -> list[DeviceAction]:
        actions: list[DeviceAction] = []
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

    def from_air(self, delivery: Delivery, now: float) -> list[DeviceAction]:
        self._txq.wake(now)  # a reception ended: RadioLibInterface ISR_RX -> setTransmitDelay
        try:
            packet = MeshPacket.from_bytes(delivery.packet)
        except MeshPacketError:
            self._stats.malformed_from_air += 1
            return []
        snr = reported_snr(delivery.snr)
        actions: list[DeviceAction] = []
        if packet.origin == self.node_num and self._retx.stop(packet.key):
            actions += self._routing_reply(packet.packet_id, _ROUTING.NONE)  # implicit ACK: someone relayed it
        self._retx.deaf_for(self._airtime(packet))
        verdict = self._router.receive(packet, snr, now)
        channel = self.settings.channel_index(packet.channel)
        if packet.origin == self.node_num or channel is None:
            return actions  # ours, or a channel we have no key for: relayed (if due) but not read
        if not verdict.deliver:
            if packet.to == self.node_num and packet.want_ack and 0 < packet.hop_start == packet.hop_limit:
                self._send_ack(packet, hop_limit=0, now=now)  # the originator repeats: our ACK was lost
            return actions
        try:
            data = mesh_pb2.Data.FromString(packet.payload)
        except DecodeError:
            self._stats.malformed_from_air += 1
            return actions
        knew_user, user_changed = self._heard(packet, data, channel, snr, now)
        if user_changed and now - self._nodes_saved_at >= NODE_DB_SAVE_GAP_S:
            actions += self._save(Segment.NODE_DATABASE)  # NodeDB::updateUser
            self._nodes_saved_at = now
        if packet.to not in (BROADCAST, self.node_num):
            if data.request_id:  # an answer to someone else's direct message: stop relaying that
                self._router.cancel_relay((packet.to, data.request_id))
            return actions
        if packet.to == self.node_num:
            if data.portnum == _PORT.ROUTING_APP and data.request_id:
                self._retx.stop((self.node_num, data.request_id))  # an ACK or NAK of ours
            elif packet.want_ack and not data.request_id and not data.reply_id:
                self._send_ack(packet, hop_limit=self._response_hop_limit(packet), now=now)
        if data.portnum == _PORT.NODEINFO_APP and data.want_response:
            self._send_node_info(now, want_response=False, reply_to=packet)
        elif not knew_user and data.portnum != _PORT.NODEINFO_APP:  # MeshService::handleFromRadio
            self._send_node_info(now, want_response=True, to=packet.origin, channel=packet.channel)
        mesh = mesh_pb2.MeshPacket(
            to=packet.to,
            id=packet.packet_id,
            channel=channel,
            hop_limit=packet.hop_limit,
            hop_start=packet.hop_start,
            want_ack=packet.want_ack,
            relay_node=packet.relay_node,
            rx_time=self._clock(now),
            rx_snr=snr,
            rx_rssi=round(delivery.rssi),
            transport_mechanism=mesh_pb2.MeshPacket.TransportMechanism.TRANSPORT_LORA,
        )
        setattr(mesh, "from", packet.origin)
        mesh.decoded.CopyFrom(data)
        return actions + self._for_host(mesh)

    def poll(self, now: float) -> list[DeviceAction]:
        if self._reboot_at is not None and now >= self._reboot_at:
            return [Reboot(self.boot_s)]  # Power::reboot: what is not in flash is gone
        if self._shutdown_at is not None and now >= self._shutdown_at:
            return self._save(Segment.ALL) + [Shutdown()]  # Power::shutdown saves everything first
        actions: list[DeviceAction] = []
        if self._tune:
            self._tune = False
            actions.append(Tune(self.channel))
        if self._tx_end is not None and now >= self._tx_end:
            self._txq.wake(self._tx_end)  # ISR_TX -> setTransmitDelay
            self._tx_end = None
        actions += self._retransmit(now)
        if now >= self._node_info_at:
            interval = self.settings.config.device.node_info_broadcast_secs
            self._node_info_at = now + interval
            self._send_node_info(now, want_response=not self._asked_for_node_infos)
            self._asked_for_node_infos = True
        busy = now < self._busy_until or self.setup.carrier_sense(now)
        packet = self._router.pop_due(now, channel_busy=busy)
        if packet is not None:
            actions += self._transmit(packet, now)
        if self._status_free == 0 and self._txq.free != 0:  # MeshService::loop: room again
            actions += self._queue_status(ERRNO_OK)
        return actions

    def next_deadline(self) -> float | None:
        deadlines = [
            self._txq.next_deadline(),
            self._tx_end,
            self._retx.next_deadline(),
            self._node_info_at,
            self._reboot_at,
            self._shutdown_at,
        ]
        if self._tune or (self._status_free == 0 and self._txq.free != 0):
            deadlines.append(0.0)
        return min((d for d in deadlines if d is not None), default=None)

    # -- state -------------------------------------------------------------------------

    @property
    def stats(self) -> DeviceStats:
        return replace(self._stats)

    @property
    def queued(self) -> int:
        """Packets in the TX queue (own and relays)."""
        return len(self._txq)

    def heard_nodes(self) -> list[int]:
        """Node numbers in the node DB other than this one, least recently heard first."""
        return list(self._nodes)

    def node_info(self, num: int) -> mesh_pb2.NodeInfo | None:
        """The node DB entry of node `num`, as the host would get it."""
        return self._nodes.get(num)

    # -- ToRadio ------------------------------------------------------------------------

    def _handle_to_radio(self, message: mesh_pb2.ToRadio, now: float) -> list[DeviceAction]:
        variant = message.WhichOneof("payload_variant")
        if variant == "want_config_id":
            return self._config_download(message.want_config_id, now)
        if variant == "packet":
            return self._packet_from_host(message.packet, now)
        if variant == "heartbeat":
            return self._queue_status(ERRNO_OK, answer=True)
        if variant == "disconnect":
            self._connected = False
        return []

    def _config_download(self, nonce: int, now: float) -> list[DeviceAction]:
        self._connected = False  # as the firmware, restart the state machine
        out: list[DeviceAction] = []
        if nonce != ONLY_NODES_NONCE:
            out.append(self._to_host(my_info=self._my_info()))
        out.append(self._to_host(node_info=self._own_node_info(now)))
        if nonce != ONLY_NODES_NONCE:
            settings = self.settings
            out.append(self._to_host(metadata=settings.metadata()))
            out += [self._to_host(channel=channel) for channel in settings.channels]
            out += [self._to_host(config=settings.config_variant(f.name)) for f in config_pb2.Config.DESCRIPTOR.fields]
            out += [
                self._to_host(moduleConfig=settings.module_config_variant(f.name))
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

    def _packet_from_host(self, packet: mesh_pb2.MeshPacket, now: float) -> list[DeviceAction]:
        if packet.id and packet.id in self._recent_ids:
            return []  # firmware: "Ignore packet from phone, already seen recently"
        if packet.id:
            self._recent_ids.append(packet.id)
        packet_id = packet.id or self._new_packet_id()
        if packet.to == self.node_num:  # Router::sendLocal: for this node, never on air
            out = self._queue_status(ERRNO_OK, packet_id)
            if packet.decoded.portnum == _PORT.ADMIN_APP:
                out += self._admin(packet, packet_id, now)
            return out
        if packet.WhichOneof("payload_variant") != "decoded" or packet.to == 0:
            self._stats.refused += 1
            return self._queue_status(_ROUTING.BAD_REQUEST, packet_id) + self._routing_reply(
                packet_id, _ROUTING.BAD_REQUEST
            )
        data = mesh_pb2.Data()
        data.CopyFrom(packet.decoded)
        payload = self._encode(data)
        if MESHTASTIC_HEADER_LEN + len(payload) > MAX_LORA_PAYLOAD:
            self._stats.refused += 1  # perhapsEncode's error is what sendToMesh reports as res
            return self._queue_status(_ROUTING.TOO_LARGE, packet_id) + self._routing_reply(
                packet_id, _ROUTING.TOO_LARGE
            )
        hop_limit = packet.hop_limit if packet.hop_limit <= HOP_MAX else HOP_RELIABLE
        if packet.want_ack and hop_limit == 0:
            hop_limit = self._router.hop_limit  # ReliableRouter::send: want_ack needs at least one relay
        air = self._router.originate(
            packet_id,
            payload,
            to=packet.to,
            want_ack=packet.want_ack,
            hop_limit=hop_limit,
            channel=self.settings.channel_hash(packet.channel),
        )
        # Router::send clears want_ack on broadcasts before fixPriority, retransmissions included.
        priority = packet.priority or fix_priority(packet.want_ack and packet.to != BROADCAST, data)
        if self._send(air, priority, now):
            return self._queue_status(ERRNO_OK, packet_id)
        self._stats.refused += 1
        return self._queue_status(ERRNO_UNKNOWN, packet_id)

    # -- sending to the mesh --------------------------------------------------------------

    def _send(self, packet: MeshPacket, priority: int, now: float) -> bool:
        """ReliableRouter::send then Router::send: track want_ack, then queue; False if the queue refused."""
        airtime = self._airtime(packet)
        if packet.want_ack:
            if packet.to == BROADCAST:
                packet = replace(packet, want_ack=False)  # never on air for broadcasts; a relay is the ACK
            self._retx.start(packet, priority, airtime, now)
        self._retx.deaf_for(airtime, except_key=packet.key)
        return self._txq.push(packet, priority, now)

    def _retransmit(self, now: float) -> list[DeviceAction]:
        again, failed = self._retx.due(now, self._airtime)
        for packet, priority in again:
            self._router.sent(packet)
            self._txq.push(packet, priority, now)
        actions: list[DeviceAction] = []
        for packet in failed:
            actions += self._routing_reply(packet.packet_id, _ROUTING.MAX_RETRANSMIT)
        return actions

    def _send_ack(self, request: MeshPacket, *, hop_limit: int, now: float) -> None:
        """A Routing ACK over the air to the originator of `request` (Router::sendAckNak)."""
        data = mesh_pb2.Data(
            portnum=_PORT.ROUTING_APP,
            payload=mesh_pb2.Routing(error_reason=_ROUTING.NONE).SerializeToString(),
            request_id=request.packet_id,
        )
        ack = self._router.originate(
            self._new_packet_id(), self._encode(data), to=request.origin, hop_limit=hop_limit, channel=request.channel
        )
        self._send(ack, _PRIORITY.ACK, now)

    def _send_node_info(
        self,
        now: float,
        *,
        want_response: bool,
        to: int = BROADCAST,
        channel: int | None = None,
        reply_to: MeshPacket | None = None,
    ) -> None:
        """Our owner as NODEINFO_APP (NodeInfoModule::sendOurNodeInfo), or as the answer to
        `reply_to` (MeshModule::setReplyTo: its hops, RELIABLE); never twice within 5 min."""
        if self._node_info_sent is not None and now - self._node_info_sent < NODE_INFO_MIN_GAP_S:
            return
        self._node_info_sent = now
        self._txq.cancel((self.node_num, self._node_info_id))
        data = mesh_pb2.Data(portnum=_PORT.NODEINFO_APP, payload=self.settings.owner.SerializeToString())
        data.want_response = want_response
        header = {"to": to, "channel": self.settings.channel_hash(0) if channel is None else channel}
        priority = _PRIORITY.BACKGROUND
        if reply_to is not None:
            header = {"to": reply_to.origin, "channel": reply_to.channel, "hop_limit": self._response_hop_limit(reply_to)}
            data.request_id = reply_to.packet_id
            priority = _PRIORITY.RELIABLE
        self._node_info_id = self._new_packet_id()
        self._send(self._router.originate(self._node_info_id, self._encode(data), **header), priority, now)

    def _encode(self, data: mesh_pb2.Data) -> bytes:
        """Data as this node puts it on air, with the bitfield (Router::perhapsEncode)."""
        data.bitfield = (self.settings.config.lora.config_ok_to_mqtt << BITFIELD_OK_TO_MQTT_SHIFT) | (
            data.want_response << BITFIELD_WANT_RESPONSE_SHIFT
        )
        return data.SerializeToString()

    def _response_hop_limit(self, request: MeshPacket) -> int:
        """Hops for an answer to `request` (RoutingModule::getHopLimitForResponse)."""
        configured = self._router.hop_limit
        if request.hop_start != 0:
            used = configured if request.hop_start < request.hop_limit else request.hop_start - request.hop_limit
            if used > configured:
                return used
            if used + 2 < configured:
                return used + 2
        return configured

    # -- admin --------------------------------------------------------------------------

    def _admin(self, packet: mesh_pb2.MeshPacket, packet_id: int, now: float) -> list[DeviceAction]:
        """AdminModule for the local host: the answer, and what a change sets going."""
        try:
            request = admin_pb2.AdminMessage.FromString(packet.decoded.payload)
        except DecodeError:
            return self._routing_reply(packet_id, _ROUTING.BAD_REQUEST)
        result = self.settings.admin(request)
        saved = self._apply_admin(result, now)
        if result.response is None:
            return self._routing_reply(packet_id, result.error) + saved
        reply = self._local_packet(_PORT.ADMIN_APP, result.response.SerializeToString(), packet_id)
        reply.channel = packet.channel
        return self._for_host(reply) + saved

    def _apply_admin(self, result: AdminResult, now: float) -> list[DeviceAction]:
        """Carry out what an admin message changed; the flash files it wrote."""
        saved = result.saved
        if result.lora_changed:
            self._router.hop_limit = min(self.settings.config.lora.hop_limit, HOP_MAX)
            self._retune()
        if result.owner_changed and not self.settings.editing:
            self._send_node_info(now, want_response=False)  # MeshService::reloadOwner
        if result.forget_node is not None:
            self._nodes.pop(result.forget_node, None)
        if result.node_flag is not None:
            num, flag, value = result.node_flag
            if num in self._nodes and getattr(self._nodes[num], flag) != value:
                setattr(self._nodes[num], flag, value)
                saved |= Segment.NODE_DATABASE
        if result.reboot_in is not None:  # Power: rebootAtMsec = 0 (none) for a negative delay
            self._reboot_at = now + result.reboot_in if result.reboot_in >= 0 else None
        if result.shutdown_in is not None:
            self._shutdown_at = now + result.shutdown_in if result.shutdown_in >= 0 else None
        return self._save(saved)

    def _retune(self) -> None:
        """RadioInterface::reconfigure: new frequency, modulation and slot time, at once."""
        channel = self.settings.apply_modem_config()
        self._tune |= channel != self.channel
        self.channel = channel
        self.params = self.settings.modulation
        self._txq.slot = self._router.slot = self._retx.slot = slot_time(self.params)

    def _save(self, segments: Segment) -> list[DeviceAction]:
        """NodeDB::saveToDisk of `segments`, as flash files for the rig to keep."""
        if not segments:
            return []
        return [Persist(self.settings.flash_files(segments, self._nodes.values()))]

    # -- building FromRadio -------------------------------------------------------------

    def _to_host(self, **field: object) -> ToHost:
        message = mesh_pb2.FromRadio(**field)
        self._from_radio_seq += 1
        message.id = self._from_radio_seq
        return ToHost(self._framer.frame(message.SerializeToString()))

    def _for_host(self, packet: mesh_pb2.MeshPacket) -> list[DeviceAction]:
        """A mesh packet for the host: now if one is connected, else kept in the toPhone queue."""
        if self._connected:
            self._stats.to_host += 1
            return [self._to_host(packet=packet)]
        if len(self._to_phone) >= TO_PHONE_LEN:
            self._stats.dropped_for_host += 1
            if packet.decoded.portnum not in (_PORT.TEXT_MESSAGE_APP, _PORT.RANGE_TEST_APP):
                return []  # MeshService::sendToPhone: "ToPhone queue is full, drop packet"
            self._to_phone.popleft()  # "... discard oldest"
        self._to_phone.append(packet)
        return []

    def _local_packet(self, portnum: int, payload: bytes, request_id: int) -> mesh_pb2.MeshPacket:
        packet = mesh_pb2.MeshPacket(to=self.node_num, id=self._new_packet_id())
        setattr(packet, "from", self.node_num)
        packet.decoded.portnum = portnum
        packet.decoded.payload = payload
        packet.decoded.request_id = request_id
        return packet

    def _routing_reply(self, request_id: int, error: int) -> list[DeviceAction]:
        routing = mesh_pb2.Routing(error_reason=error)
        return self._for_host(self._local_packet(_PORT.ROUTING_APP, routing.SerializeToString(), request_id))

    def _queue_status(self, res: int, packet_id: int = 0, *, answer: bool = False) -> list[DeviceAction]:
        """A QueueStatus with the free space now (MeshService::sendQueueStatusToPhone); kept as lastQueueStatus.

        One that answers nothing (`packet_id` 0, not `answer`ing a heartbeat) reaches only a connected host.
        """
        self._status_free = self._txq.free
        if not (self._connected or packet_id or answer):
            return []
        status = mesh_pb2.QueueStatus(res=res, free=self._txq.free, maxlen=TX_QUEUE_LEN, mesh_packet_id=packet_id)
        return [self._to_host(queueStatus=status)]

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
        info = mesh_pb2.NodeInfo(num=self.node_num, user=self.settings.owner, last_heard=self._clock(now), is_favorite=True)
        if self.settings.position is not None:
            info.position.CopyFrom(self.settings.position)
        return info

    # -- air ----------------------------------------------------------------------------

    def _airtime(self, packet: MeshPacket) -> float:
        return time_on_air(MESHTASTIC_HEADER_LEN + len(packet.payload), self.params)

    def _transmit(self, packet: MeshPacket, now: float) -> list[DeviceAction]:
        self._busy_until = self._tx_end = now + self._airtime(packet)
        self._stats.transmitted += 1
        return [ToAir(packet.to_bytes())]

    def _heard(
        self, packet: MeshPacket, data: mesh_pb2.Data, channel: int, snr: float, now: float
    ) -> tuple[bool, bool]:
        """NodeDB::updateFrom (and NodeInfoModule for a user): whether the sender's user was known
        before, and whether this packet changed it."""
        info = self._nodes.pop(packet.origin, None) or mesh_pb2.NodeInfo(num=packet.origin)
        knew_user = info.HasField("user")
        user_before = info.user.SerializeToString() if knew_user else None
        info.last_heard = self._clock(now)
        info.snr = snr
        info.channel = channel
        if packet.hop_start != 0 and packet.hop_limit <= packet.hop_start:
            info.hops_away = packet.hop_start - packet.hop_limit
        if data.portnum == _PORT.NODEINFO_APP:
            try:
                info.user.CopyFrom(mesh_pb2.User.FromString(data.payload))
                info.user.id = node_id(packet.origin)
            except DecodeError:
                self._stats.malformed_from_air += 1
        self._nodes[packet.origin] = info
        if len(self._nodes) > MAX_NODES:
            self._nodes.popitem(last=False)
        return knew_user, info.HasField("user") and info.user.SerializeToString() != user_before

    # -- helpers ------------------------------------------------------------------------

    def _clock(self, now: float) -> int:
        return int(self.setup.epoch + now)

    def _new_packet_id(self) -> int:
        return self._rng.getrandbits(32) or 1
