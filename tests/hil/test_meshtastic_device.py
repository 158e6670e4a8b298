"""The virtual Meshtastic device: its serial API sans-IO, then the official library and CLI against it."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from meshtastic.protobuf import admin_pb2, channel_pb2, config_pb2, mesh_pb2, portnums_pb2
from meshtastic.serial_interface import SerialInterface
from pubsub import pub

from blockiot.hil.sim.flooding import BROADCAST, MeshPacket
from blockiot.hil.sim.medium import Delivery
from blockiot.hil.sim.medium import LinkGraph, Medium
from blockiot.hil.meshtastic_device import (
    BOOT_JITTER_S,
    BOOT_S,
    NODE_DB_SAVE_GAP_S,
    NODE_INFO_FIRST_S,
    ONLY_CONFIG_NONCE,
    ONLY_NODES_NONCE,
    REPORTED_SNR_MAX_DB,
    TO_PHONE_LEN,
    TX_QUEUE_LEN,
    MeshtasticDevice,
    node_id,
    node_num,
    reported_snr,
)
from blockiot.hil.meshtastic_settings import DEVICE_STATE_FILE, NODES_FILE, channel_hash
from blockiot.hil.personality import AirChannel, Persist, RadioSetup, Reboot, Shutdown, ToAir, ToHost, Tune
from blockiot.hil.rig import VirtualRig
from blockiot.radio.airtime import (
    canonical_preset_name,
    meshtastic_max_payload,
    meshtastic_packet_len,
    preset,
    time_on_air,
)
from blockiot.radio.streamframe import StreamFramer

pytestmark = pytest.mark.timeout(60)

PORT = portnums_pb2.PortNum
TIME_SCALE = 0.01
CLI_TIMEOUT_S = 10  # the CLI's --timeout: waits for config and replies, not for the process


# -- helpers ------------------------------------------------------------------------------


def to_radio(**field) -> bytes:
    return StreamFramer.meshtastic().frame(mesh_pb2.ToRadio(**field).SerializeToString())


def from_radio(actions) -> list[mesh_pb2.FromRadio]:
    framer = StreamFramer.meshtastic()
    messages = []
    for action in actions:
        if isinstance(action, ToHost):
            for item in framer.feed(action.data):
                assert isinstance(item, bytes), f"noise on the serial port: {item!r}"
                messages.append(mesh_pb2.FromRadio.FromString(item))
    return messages


def transmitted(actions) -> list[MeshPacket]:
    return [MeshPacket.from_bytes(action.packet) for action in actions if isinstance(action, ToAir)]


def variants(messages) -> list[str]:
    return [message.WhichOneof("payload_variant") for message in messages]


def packet(to: int = BROADCAST, portnum: int = PORT.PRIVATE_APP, payload: bytes = b"abc", **fields) -> mesh_pb2.MeshPacket:
    mesh = mesh_pb2.MeshPacket(to=to, **{"hop_limit": 3, **fields})
    mesh.decoded.portnum = portnum
    mesh.decoded.payload = payload
    return mesh


def device(radio_id: int = 0, **setup) -> MeshtasticDevice:
    return MeshtasticDevice(RadioSetup(radio_id, **setup))


def connected(radio_id: int = 0, *, knows: tuple[int, ...] = (0,), **setup) -> MeshtasticDevice:
    """A device with a host connected that has heard the NodeInfo of the radios in `knows`
    (so a packet from them does not make it answer with its own NodeInfo)."""
    dev = device(radio_id, **setup)
    for other in knows:
        if other != radio_id:
            user = mesh_pb2.User(id=node_id(node_num(other)), long_name=f"radio {other}")
            data = mesh_pb2.Data(portnum=PORT.NODEINFO_APP, payload=user.SerializeToString())
            heard = MeshPacket(node_num(other), 0xAB00 + other, 0, data.SerializeToString(), hop_start=3, channel=8)
            dev.from_air(delivery(heard.to_bytes(), receiver=radio_id, sender=other), 0.0)
    dev.from_host(to_radio(want_config_id=1), 0.0)
    return dev


def run_until_transmit(dev: MeshtasticDevice, now: float = 0.0) -> tuple[list, float]:
    """Poll `dev` at its deadlines until it transmits; returns all actions and the time."""
    actions: list = []
    for _ in range(100):
        actions += dev.poll(now)
        if transmitted(actions):
            return actions, now
        deadline = dev.next_deadline()
        assert deadline is not None, "nothing left to transmit"
        now = max(now, deadline)
    raise AssertionError("never transmitted")


def delivery(air: bytes, receiver: int = 1, sender: int = 0, rssi: float = -95.4, snr: float = 7.25) -> Delivery:
    return Delivery(receiver, sender, air, rssi, snr, 0.0)


def on_air(payload: bytes = b"abc", **fields) -> bytes:
    """What radio 0 transmits for a PRIVATE_APP broadcast of `payload`."""
    sender = connected(0)
    sender.from_host(to_radio(packet=packet(payload=payload, id=0x1234, **fields)), 0.0)
    actions, _ = run_until_transmit(sender)
    return next(a.packet for a in actions if isinstance(a, ToAir))


# -- the serial API, sans-IO ------------------------------------------------------------


def test_node_numbers_are_fixed_per_radio():
    assert node_num(0) == 0xB10C0000
    assert node_id(node_num(7)) == "!b10c0007"
    with pytest.raises(ValueError):
        node_num(-1)


def test_config_download_in_firmware_order():
    messages = from_radio(device(3).from_host(to_radio(want_config_id=77), 0.0))
    assert variants(messages) == (
        ["my_info", "node_info", "metadata"] + ["channel"] * 8 + ["config"] * 10 + ["moduleConfig"] * 16
        + ["config_complete_id"]
    )
    assert messages[0].my_info.my_node_num == node_num(3)
    assert messages[1].node_info.user.id == "!b10c0003"
    assert messages[-1].config_complete_id == 77
    channels = [m.channel for m in messages if m.HasField("channel")]
    assert [c.role for c in channels] == [channel_pb2.Channel.Role.PRIMARY] + [channel_pb2.Channel.Role.DISABLED] * 7
    lora = next(m.config.lora for m in messages if m.config.HasField("lora"))
    assert lora.use_preset and lora.modem_preset == config_pb2.Config.LoRaConfig.ModemPreset.LONG_FAST
    assert lora.hop_limit == 3


def test_preset_and_hop_limit_come_from_the_setup():
    dev = MeshtasticDevice(RadioSetup(0, preset="medium-fast"), hop_limit=5)
    messages = from_radio(dev.from_host(to_radio(want_config_id=1), 0.0))
    lora = next(m.config.lora for m in messages if m.config.HasField("lora"))
    assert lora.modem_preset == config_pb2.Config.LoRaConfig.ModemPreset.MEDIUM_FAST
    assert lora.hop_limit == 5


@pytest.mark.parametrize(
    "name, channel", [("LongModerate", "LongMod"), ("LiteFast", "LiteFast"), ("NarrowSlow", "NarrowSlow")]
)
def test_presets_run_and_name_the_default_channel_like_firmware(name, channel):
    dev = device(0, preset=name)
    messages = from_radio(dev.from_host(to_radio(want_config_id=1), 0.0))
    lora = next(m.config.lora for m in messages if m.config.HasField("lora"))
    assert lora.modem_preset == config_pb2.Config.LoRaConfig.ModemPreset.Value(canonical_preset_name(name))
    dev.from_host(to_radio(packet=packet(id=9)), 0.0)
    [air] = transmitted(run_until_transmit(dev)[0])
    assert air.channel == channel_hash(channel, b"\x01")  # DisplayFormatters::getModemPresetDisplayName


def test_special_nonces_select_config_or_nodes():
    dev = connected(1)
    dev.from_air(delivery(on_air()), 1.0)
    nodes_too = variants(from_radio(dev.from_host(to_radio(want_config_id=5), 2.0)))
    assert nodes_too.count("node_info") == 2
    only_config = variants(from_radio(dev.from_host(to_radio(want_config_id=ONLY_CONFIG_NONCE), 2.0)))
    assert only_config.count("node_info") == 1 and "config" in only_config
    only_nodes = variants(from_radio(dev.from_host(to_radio(want_config_id=ONLY_NODES_NONCE), 2.0)))
    assert only_nodes == ["node_info", "node_info", "config_complete_id"]


def test_frames_split_anywhere_and_noise_is_skipped():
    whole = from_radio(device().from_host(to_radio(want_config_id=9), 0.0))
    dev = device()
    stream = b"boot log line\r\n" + to_radio(want_config_id=9)
    actions = []
    for i in range(len(stream)):
        actions += dev.from_host(stream[i : i + 1], 0.0)
    assert [m.SerializeToString() for m in from_radio(actions)] == [m.SerializeToString() for m in whole]
    assert dev.stats.noise_from_host == len(b"boot log line\r\n")


def test_malformed_to_radio_is_counted_and_ignored():
    dev = device()
    assert dev.from_host(StreamFramer.meshtastic().frame(b"\xff\xff\xff"), 0.0) == []
    assert dev.stats.malformed_from_host == 1


def test_heartbeat_gets_queue_status():
    [reply] = from_radio(device().from_host(to_radio(heartbeat=mesh_pb2.Heartbeat()), 0.0))
    assert reply.queueStatus.free == TX_QUEUE_LEN and reply.queueStatus.maxlen == TX_QUEUE_LEN


def status_of(message: mesh_pb2.FromRadio) -> tuple[int, int, int]:
    status = message.queueStatus
    return status.res, status.free, status.mesh_packet_id


def routing_error(message: mesh_pb2.FromRadio) -> int:
    assert message.packet.decoded.portnum == PORT.ROUTING_APP
    return mesh_pb2.Routing.FromString(message.packet.decoded.payload).error_reason


def test_host_packet_is_queued_then_sent_like_firmware():
    dev = connected(0)
    [status] = from_radio(dev.from_host(to_radio(packet=packet(id=42)), 1.0))
    assert status_of(status) == (0, TX_QUEUE_LEN - 1, 42)  # free space after queuing
    actions, _ = run_until_transmit(dev, 1.0)
    [air] = transmitted(actions)
    assert (air.origin, air.packet_id, air.hop_limit, air.hop_start) == (node_num(0), 42, 3, 3)
    assert air.to == BROADCAST and not air.want_ack and air.channel == 8  # LongFast's channel hash
    data = mesh_pb2.Data.FromString(air.payload)
    assert data.portnum == PORT.PRIVATE_APP and data.payload == b"abc" and data.HasField("bitfield")
    raw = next(a.packet for a in actions if isinstance(a, ToAir))
    assert len(raw) == meshtastic_packet_len(3)  # same bytes on air as real firmware
    assert from_radio(actions) == []  # no ACK just for being on air


def test_unicast_carries_destination_and_want_ack_in_the_header_at_no_extra_cost():
    dev = connected(0)
    dev.from_host(to_radio(packet=packet(to=node_num(2), id=43, want_ack=True)), 1.0)
    actions, _ = run_until_transmit(dev, 1.0)
    [air] = transmitted(actions)
    assert (air.to, air.want_ack) == (node_num(2), True)
    assert len(air.to_bytes()) == meshtastic_packet_len(3)


def test_largest_private_app_payload_fills_a_lora_packet_and_one_more_byte_is_refused():
    largest = meshtastic_max_payload()
    assert len(on_air(bytes(largest))) == 255
    dev = connected(0)
    messages = from_radio(dev.from_host(to_radio(packet=packet(payload=bytes(largest + 1), id=7)), 0.0))
    assert variants(messages) == ["queueStatus", "packet"]
    assert status_of(messages[0]) == (mesh_pb2.Routing.Error.TOO_LARGE, TX_QUEUE_LEN, 7)
    assert routing_error(messages[1]) == mesh_pb2.Routing.Error.TOO_LARGE
    assert dev.queued == 0 and dev.stats.refused == 1


def test_a_resent_packet_id_is_ignored():
    dev = connected(0)
    assert dev.from_host(to_radio(packet=packet(id=5)), 0.0)
    assert dev.from_host(to_radio(packet=packet(id=5)), 0.0) == []


def test_full_tx_queue_answers_res_32_and_says_when_there_is_room_again():
    busy = {"now": True}  # the channel stays busy: nothing leaves
    dev = connected(0, carrier_sense=lambda now: busy["now"])
    frees = []
    for i in range(TX_QUEUE_LEN):
        [status] = from_radio(dev.from_host(to_radio(packet=packet(id=100 + i)), 0.0))
        frees.append(status_of(status)[1])
    assert frees == list(range(TX_QUEUE_LEN - 1, -1, -1))
    [refused] = from_radio(dev.from_host(to_radio(packet=packet(id=999)), 0.0))  # no Routing error besides
    assert status_of(refused) == (32, 0, 999) and dev.stats.refused == 1
    assert from_radio(dev.poll(0.0)) == []  # still full: nothing to say
    busy["now"] = False
    actions, _ = run_until_transmit(dev)
    assert [status_of(m) for m in from_radio(actions)] == [(0, 1, 0)]  # MeshService::loop: room again
    assert from_radio(dev.poll(dev.next_deadline() or 0.0)) == []  # said once


def test_relays_and_own_packets_share_the_queue():
    busy = {"now": True}
    dev = connected(1, carrier_sense=lambda now: busy["now"])
    for i in range(TX_QUEUE_LEN - 1):
        dev.from_host(to_radio(packet=packet(id=100 + i)), 0.0)
    dev.from_air(delivery(on_air()), 0.5)  # a broadcast to relay takes the last place
    assert dev.queued == TX_QUEUE_LEN
    [refused] = from_radio(dev.from_host(to_radio(packet=packet(id=999)), 1.0))
    assert status_of(refused) == (32, 0, 999)
    busy["now"] = False
    actions, _ = run_until_transmit(dev, 1.0)
    first = transmitted(actions)[0]
    assert (first.origin, first.hop_limit) == (node_num(0), 2)  # at equal priority the relay goes first


def test_busy_channel_defers_transmission():
    busy = {"now": True}
    dev = connected(0, carrier_sense=lambda now: busy["now"])
    dev.from_host(to_radio(packet=packet(id=1)), 0.0)
    deadline = dev.next_deadline()
    assert transmitted(dev.poll(deadline)) == []
    assert dev.next_deadline() >= deadline
    busy["now"] = False
    assert transmitted(run_until_transmit(dev, deadline)[0])


def test_air_packet_reaches_the_host_once_with_its_signal():
    air = on_air(b"hello")
    dev = connected(1)
    [message] = from_radio(dev.from_air(delivery(air), 3.0))
    mesh = message.packet
    assert getattr(mesh, "from") == node_num(0) and mesh.to == BROADCAST and mesh.id == 0x1234
    assert mesh.decoded.payload == b"hello" and mesh.rx_rssi == -95 and mesh.rx_snr == pytest.approx(7.25)
    assert dev.from_air(delivery(air), 3.5) == []  # the duplicate
    assert dev.heard_nodes() == [node_num(0)]


def test_first_copy_is_relayed_with_one_hop_less():
    dev = connected(1)
    dev.from_air(delivery(on_air()), 3.0)
    [relay] = transmitted(run_until_transmit(dev, 3.0)[0])
    assert (relay.origin, relay.packet_id, relay.hop_limit, relay.hop_start) == (node_num(0), 0x1234, 2, 3)
    assert relay.relay_node == node_num(1) & 0xFF


def test_unicast_reaches_only_its_destination():
    air = on_air(to=node_num(2))
    assert from_radio(connected(1).from_air(delivery(air, receiver=1), 1.0)) == []
    [message] = from_radio(connected(2).from_air(delivery(air, receiver=2), 1.0))
    assert message.packet.to == node_num(2)


def air_packet(packet_id: int, portnum: int = PORT.PRIVATE_APP, origin: int = node_num(0)) -> bytes:
    data = mesh_pb2.Data(portnum=portnum, payload=b"x")
    return MeshPacket(origin, packet_id, 3, data.SerializeToString(), hop_start=3, channel=8).to_bytes()


def test_packets_wait_for_a_host_text_pushes_out_the_oldest_the_rest_is_dropped():
    dev = device(1)
    for i in range(TO_PHONE_LEN + 1):
        dev.from_air(delivery(air_packet(1000 + i)), 1.0 + i)
    dev.from_air(delivery(air_packet(2000, PORT.TEXT_MESSAGE_APP)), 50.0)
    assert dev.stats.dropped_for_host == 2
    messages = from_radio(dev.from_host(to_radio(want_config_id=3), 100.0))
    ids = [m.packet.id for m in messages if m.HasField("packet")]
    assert ids == [1000 + i for i in range(1, TO_PHONE_LEN)] + [2000]
    assert variants(messages).index("config_complete_id") < variants(messages).index("packet")


def test_reported_snr_is_what_an_sx126x_reports():
    assert reported_snr(24.1) == REPORTED_SNR_MAX_DB
    assert reported_snr(-7.13) == -7.25  # 0.25 dB steps
    dev = connected(1)
    [message] = from_radio(dev.from_air(delivery(on_air(), rssi=-60.0, snr=54.0), 1.0))
    assert message.packet.rx_snr == REPORTED_SNR_MAX_DB and message.packet.rx_rssi == -60


def test_a_channel_we_have_no_key_for_is_relayed_but_not_read():
    foreign = MeshPacket(node_num(0), 77, 3, b"secret", hop_start=3, channel=channel_hash("Other", b"\x01")).to_bytes()
    dev = connected(1, knows=())
    assert from_radio(dev.from_air(delivery(foreign), 1.0)) == [] and dev.heard_nodes() == []
    assert transmitted(run_until_transmit(dev, 1.0)[0])[0].packet_id == 77


def test_malformed_air_packet_is_counted():
    dev = connected(1)
    assert dev.from_air(delivery(b"\x00" * 5), 1.0) == []
    assert dev.stats.malformed_from_air == 1


# -- several devices on one medium, in virtual time ---------------------------------------


class Air:
    """Virtual devices on a simulated medium, run in virtual time: no ptys, no threads, no wall clock."""

    def __init__(self, links: dict) -> None:
        self.medium = Medium(preset("LongFast"), topology=LinkGraph(links), seed=1)
        ids = sorted(set(links) | {rx for hearers in links.values() for rx in hearers})
        self.devices: dict[int, MeshtasticDevice] = {}
        self.host: dict[int, list[mesh_pb2.FromRadio]] = {i: [] for i in ids}
        self.on_air: list[tuple[int, MeshPacket]] = []
        self.now = 0.0
        for i in ids:
            self.medium.add_radio(i)
            sense = lambda now, i=i: self.medium.busy(i, now)  # noqa: E731
            self.devices[i] = MeshtasticDevice(RadioSetup(i, carrier_sense=sense))
            self.apply(i, self.devices[i].from_host(to_radio(want_config_id=1), 0.0))

    def apply(self, i: int, actions) -> None:
        self.host[i] += from_radio(actions)
        for action in actions:
            if isinstance(action, ToAir):
                self.medium.transmit(i, action.packet, self.now)
                self.on_air.append((i, MeshPacket.from_bytes(action.packet)))

    def send(self, i: int, **fields) -> int:
        """The host of radio `i` sends a PRIVATE_APP packet; returns its id."""
        mesh = packet(id=self.devices[i]._new_packet_id(), **fields)
        self.apply(i, self.devices[i].from_host(to_radio(packet=mesh), self.now))
        return mesh.id

    def run(self, until: float) -> None:
        while True:
            deadlines = [self.medium.next_deadline(), *(d.next_deadline() for d in self.devices.values())]
            due = min(d for d in deadlines if d is not None)
            if due > until:
                self.now = until
                return
            self.now = max(self.now, due)
            for delivery_ in self.medium.poll(self.now):
                self.apply(delivery_.receiver, self.devices[delivery_.receiver].from_air(delivery_, self.now))
            for i, dev in self.devices.items():
                self.apply(i, dev.poll(self.now))

    def routing(self, i: int, request_id: int) -> list[tuple[int, int]]:
        """(from, error) of the Routing packets about `request_id` that reached host `i`."""
        return [
            (getattr(m.packet, "from"), routing_error(m))
            for m in self.host[i]
            if m.HasField("packet") and m.packet.decoded.portnum == PORT.ROUTING_APP
            and m.packet.decoded.request_id == request_id
        ]


def test_node_info_is_broadcast_after_boot_and_peers_enter_the_node_db():
    air = Air({0: {1}})
    air.run(NODE_INFO_FIRST_S - 0.1)
    assert air.on_air == [] and air.devices[0].heard_nodes() == []
    air.run(NODE_INFO_FIRST_S + BOOT_JITTER_S + 5.0)
    for me, peer in ((0, 1), (1, 0)):
        info = air.devices[me].node_info(node_num(peer))
        assert info.user.long_name == f"BlockIoT virtual {peer}" and info.user.id == node_id(node_num(peer))
        assert info.HasField("hops_away") and info.hops_away == 0  # hop_start - hop_limit of a direct neighbour
    first = air.on_air[0][1]
    assert first.to == BROADCAST and mesh_pb2.Data.FromString(first.payload).want_response
    own = [p.origin for radio, p in air.on_air if p.origin == node_num(radio)]
    assert sorted(own) == [node_num(0), node_num(1)]  # each its NodeInfo once (an answer counts): 5 min apart
    nodes = from_radio(air.devices[0].from_host(to_radio(want_config_id=ONLY_NODES_NONCE), air.now))
    assert [m.node_info.num for m in nodes if m.HasField("node_info")] == [node_num(0), node_num(1)]


def test_hops_away_counts_relays():
    air = Air({0: {1}, 1: {2}})
    air.send(2)
    air.run(20.0)
    assert air.devices[0].node_info(node_num(2)).hops_away == 1
    assert air.devices[0].node_info(node_num(1)).hops_away == 0  # its NodeInfo answer came direct


def test_direct_message_is_acknowledged_by_its_recipient_over_the_air():
    air = Air({0: {1}})
    packet_id = air.send(0, to=node_num(1), want_ack=True)
    air.run(0.5)
    assert air.routing(0, packet_id) == []  # on air is not acknowledged
    air.run(20.0)
    assert air.routing(0, packet_id) == [(node_num(1), mesh_pb2.Routing.Error.NONE)]
    acks = [p for radio, p in air.on_air if radio == 1 and p.to == node_num(0)]
    assert any(mesh_pb2.Data.FromString(p.payload).request_id == packet_id for p in acks)
    assert [p.packet_id for radio, p in air.on_air if radio == 0].count(packet_id) == 1  # no retransmission


def test_unanswered_want_ack_is_sent_three_times_then_nakked():
    air = Air({0: set()})
    packet_id = air.send(0, to=node_num(7), want_ack=True)
    air.run(25.0)
    assert [p.packet_id for _, p in air.on_air].count(packet_id) == 3
    assert air.routing(0, packet_id) == [(node_num(0), mesh_pb2.Routing.Error.MAX_RETRANSMIT)]


def test_broadcast_want_ack_gets_an_implicit_ack_when_a_relay_is_heard():
    air = Air({0: {1: -125.0}})  # a weak link: the relay waits only a few slots
    packet_id = air.send(0, want_ack=True)
    air.run(20.0)
    assert air.routing(0, packet_id) == [(node_num(0), mesh_pb2.Routing.Error.NONE)]
    sent = [(radio, p.want_ack, p.hop_limit) for radio, p in air.on_air if p.packet_id == packet_id]
    assert sent == [(0, False, 3), (1, False, 2)]  # want_ack never on air for a broadcast


def test_a_repeated_direct_message_is_acknowledged_again():
    dev = connected(1)
    dm = mesh_pb2.Data(portnum=PORT.PRIVATE_APP, payload=b"dm").SerializeToString()
    air = MeshPacket(node_num(0), 55, 3, dm, to=node_num(1), want_ack=True, hop_start=3, channel=8).to_bytes()
    assert len(from_radio(dev.from_air(delivery(air), 1.0))) == 1
    first, now = run_until_transmit(dev, 1.0)
    assert dev.from_air(delivery(air), now + 10.0) == []  # a duplicate for the host, but...
    second, _ = run_until_transmit(dev, now + 10.0)
    for actions in (first, second):
        [ack] = transmitted(actions)
        assert ack.to == node_num(0) and mesh_pb2.Data.FromString(ack.payload).request_id == 55


def admin_request(dev: MeshtasticDevice, packet_id: int, flash: dict | None = None, now: float = 0.0,
                  **request) -> mesh_pb2.MeshPacket:
    """The answer to an admin request; the flash files it wrote are added to `flash` if given."""
    admin = admin_pb2.AdminMessage(**request)
    mesh = packet(to=dev.node_num, portnum=PORT.ADMIN_APP, payload=admin.SerializeToString(), id=packet_id)
    actions = dev.from_host(to_radio(packet=mesh), now)
    messages = from_radio(actions)
    assert variants(messages) == ["queueStatus", "packet"]
    assert messages[1].packet.decoded.request_id == packet_id
    keep_flash(actions, flash)
    return messages[1].packet


def keep_flash(actions, flash: dict | None) -> None:
    for action in actions:
        if isinstance(action, Persist) and flash is not None:
            flash.update(action.files)


def test_admin_getters_answer_with_the_device_config():
    dev = connected(0)
    reply = admin_request(dev, 1, get_config_request=admin_pb2.AdminMessage.ConfigType.LORA_CONFIG)
    admin = admin_pb2.AdminMessage.FromString(reply.decoded.payload)
    assert admin.get_config_response.lora.hop_limit == 3 and len(admin.session_passkey) == 8
    owner = admin_pb2.AdminMessage.FromString(admin_request(dev, 2, get_owner_request=True).decoded.payload)
    assert owner.get_owner_response.id == "!b10c0000"
    channel = admin_pb2.AdminMessage.FromString(admin_request(dev, 3, get_channel_request=1).decoded.payload)
    assert channel.get_channel_response.role == channel_pb2.Channel.Role.PRIMARY


def test_admin_setters_are_acknowledged_and_take_effect():
    dev = connected(0)
    reply = admin_request(dev, 4, set_owner=mesh_pb2.User(long_name="Bob", short_name="bob"))
    assert reply.decoded.portnum == PORT.ROUTING_APP and getattr(reply, "from") == node_num(0)
    assert mesh_pb2.Routing.FromString(reply.decoded.payload).error_reason == mesh_pb2.Routing.Error.NONE
    [announce] = transmitted(run_until_transmit(dev)[0])  # the new owner goes out as a NodeInfo
    assert mesh_pb2.User.FromString(mesh_pb2.Data.FromString(announce.payload).payload).long_name == "Bob"
    blank = admin_request(dev, 5, set_owner=mesh_pb2.User(long_name="   "))
    assert mesh_pb2.Routing.FromString(blank.decoded.payload).error_reason == mesh_pb2.Routing.Error.BAD_REQUEST
    admin_request(dev, 6, set_fixed_position=mesh_pb2.Position(latitude_i=327767000, longitude_i=-967970000, altitude=1337))
    [own] = [m.node_info for m in from_radio(dev.from_host(to_radio(want_config_id=7), 1.0)) if m.HasField("node_info")]
    assert own.user.long_name == "Bob" and own.position.altitude == 1337


def test_hop_limit_and_preset_set_by_admin_take_effect():
    dev = connected(0)
    assert dev.poll(0.0)[0] == Tune(AirChannel(869_525_000, preset("LongFast")))  # tuned at boot
    lora = config_pb2.Config.LoRaConfig(use_preset=True, modem_preset=config_pb2.Config.LoRaConfig.LONG_FAST, hop_limit=5,
                                        region=config_pb2.Config.LoRaConfig.EU_868)
    admin_request(dev, 1, flash={}, set_config=config_pb2.Config(lora=lora))
    assert not any(isinstance(a, Tune) for a in dev.poll(0.0))  # same channel
    dev.from_host(to_radio(packet=packet(id=20, hop_limit=0, want_ack=True)), 0.0)  # 0: the device's choice
    [air] = transmitted(run_until_transmit(dev)[0])
    assert air.hop_start == air.hop_limit == 5
    lora.modem_preset = config_pb2.Config.LoRaConfig.SHORT_FAST  # another modulation and frequency slot
    admin_request(dev, 2, flash={}, set_config=config_pb2.Config(lora=lora))
    [tune] = [a for a in dev.poll(10.0) if isinstance(a, Tune)]
    assert tune.channel.modulation == preset("ShortFast") == dev.params and tune.channel.frequency_hz == 869_525_000
    dev.from_host(to_radio(packet=packet(id=21, payload=bytes(100))), 10.0)
    actions, now = run_until_transmit(dev, 10.0)
    [sent] = transmitted(actions)
    assert dev.next_deadline() == pytest.approx(now + time_on_air(len(sent.to_bytes()), preset("ShortFast")))


def collect(dev: MeshtasticDevice, until: float, flash: dict) -> list:
    """Poll `dev` at its deadlines up to `until`; its actions (flash writes kept in `flash`)."""
    actions, now = [], 0.0
    while (deadline := dev.next_deadline()) is not None and deadline <= until:
        now = max(now, deadline)
        step = dev.poll(now)
        keep_flash(step, flash)
        actions += step
        if any(isinstance(a, (Reboot, Shutdown)) for a in step):
            break
    return actions


def test_reboot_resets_the_board_which_boots_again_from_its_flash():
    dev, flash = connected(1), {}
    dev.from_air(delivery(on_air()), 1.0)
    admin_request(dev, 1, flash, set_owner=mesh_pb2.User(long_name="Carol"))  # saves owner and node DB
    admin_request(dev, 2, flash, reboot_seconds=5)
    dev.from_host(to_radio(packet=packet(id=30)), 2.0)
    actions = collect(dev, 4.99, flash)
    assert transmitted(actions) and not any(isinstance(a, Reboot) for a in actions)  # still running
    assert dev.poll(5.0) == [Reboot(BOOT_S)]  # 5 s after the request: the board resets
    booted = MeshtasticDevice(RadioSetup(1, flash=flash, booted_at=5.0 + BOOT_S))
    assert booted.queued == 0
    nodes = [m.node_info for m in from_radio(booted.from_host(to_radio(want_config_id=3), 9.0)) if m.HasField("node_info")]
    assert nodes[0].user.long_name == "Carol" and node_num(0) in [n.num for n in nodes]
    assert isinstance(booted.poll(9.0)[0], Tune)
    first = 5.0 + BOOT_S + NODE_INFO_FIRST_S
    assert first <= booted.next_deadline() <= first + BOOT_JITTER_S


def test_reboot_can_be_cancelled_and_shutdown_saves_everything():
    dev, flash = connected(1), {}
    admin_request(dev, 1, flash, reboot_seconds=5)
    admin_request(dev, 2, flash, reboot_seconds=-1)  # rebootAtMsec = 0
    admin_request(dev, 3, flash, shutdown_seconds=8)
    actions = collect(dev, 100.0, flash)
    assert not any(isinstance(a, Reboot) for a in actions) and isinstance(actions[-1], Shutdown)
    assert DEVICE_STATE_FILE in flash and NODES_FILE in flash


def test_a_new_user_is_saved_but_not_within_a_minute_of_the_last_save():
    dev, flash = connected(1, knows=()), {}

    def hear_node_info(radio: int, now: float) -> None:
        user = mesh_pb2.User(id=node_id(node_num(radio)), long_name=f"radio {radio}")
        data = mesh_pb2.Data(portnum=PORT.NODEINFO_APP, payload=user.SerializeToString())
        heard = MeshPacket(node_num(radio), 0xCD00 + radio, 0, data.SerializeToString(), hop_start=3, channel=8)
        keep_flash(dev.from_air(delivery(heard.to_bytes(), receiver=1, sender=radio), now), flash)

    hear_node_info(0, 10.0)
    assert flash == {}  # NodeDB::updateUser: lastNodeDbSave is the boot
    hear_node_info(2, NODE_DB_SAVE_GAP_S + 1.0)
    assert list(flash) == [NODES_FILE]
    saved = set(flash[NODES_FILE])
    hear_node_info(3, NODE_DB_SAVE_GAP_S + 30.0)
    assert set(flash[NODES_FILE]) == saved  # deferred
    restored = MeshtasticDevice(RadioSetup(1, flash=flash))
    assert restored.heard_nodes() == [node_num(0), node_num(2)]


# -- the official library and CLI on a virtual rig ---------------------------------------


@pytest.fixture(scope="module")
def rig():
    with VirtualRig(2, time_scale=TIME_SCALE) as rig:
        yield rig


def test_library_connects_and_reads_the_config(rig):
    iface = SerialInterface(rig.ports[0], timeout=CLI_TIMEOUT_S)
    try:
        assert iface.myInfo.my_node_num == node_num(0)
        assert "!b10c0000" in iface.nodes
        lora = iface.localNode.localConfig.lora
        assert lora.modem_preset == config_pb2.Config.LoRaConfig.ModemPreset.LONG_FAST and lora.hop_limit == 3
        assert len(iface.localNode.channels) == 8
    finally:
        iface.close()


def test_library_text_crosses_the_virtual_air(rig):
    got: list[dict] = []
    arrived = threading.Event()
    sender, receiver = (SerialInterface(port, timeout=CLI_TIMEOUT_S) for port in rig.ports)

    def on_text(packet, interface):
        if interface is receiver:
            got.append(packet)
            arrived.set()

    pub.subscribe(on_text, "meshtastic.receive.text")
    try:
        sender.sendText("over the air")
        assert arrived.wait(10)
        assert got[0]["decoded"]["text"] == "over the air" and got[0]["from"] == node_num(0)
        assert got[0]["rxRssi"] == -90
    finally:
        pub.unsubscribe(on_text, "meshtastic.receive.text")
        sender.close()
        receiver.close()


def meshtastic_cli(port: str, *args: str) -> subprocess.CompletedProcess:
    # The CLI's --info asks PyPI for a newer version: a dead proxy keeps the test offline.
    env = dict(os.environ, HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    return subprocess.run(
        [sys.executable, "-m", "meshtastic", "--port", port, "--timeout", str(CLI_TIMEOUT_S), *args],
        capture_output=True, text=True, timeout=50, env=env,
    )


def test_cli_info(rig):
    result = meshtastic_cli(rig.ports[0], "--info")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Owner: BlockIoT virtual 0 (0000)" in result.stdout
    assert f'"myNodeNum": {node_num(0)}' in result.stdout and '"hopLimit": 3' in result.stdout
    assert "Index 0: PRIMARY" in result.stdout


def knows_peer(port: str, peer: str) -> bool:
    iface = SerialInterface(port, timeout=CLI_TIMEOUT_S)
    try:
        return "user" in iface.nodes.get(peer, {})
    finally:
        iface.close()


def test_cli_nodes_shows_the_peer_without_a_reconnect(rig):
    # Radio 1 announces itself 30 s (medium time) after boot: no host action is needed.
    wait_until(lambda: knows_peer(rig.ports[0], "!b10c0001"))
    result = meshtastic_cli(rig.ports[0], "--nodes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "!b10c0000" in result.stdout and "BlockIoT virtual 0" in result.stdout
    [peer] = [line for line in result.stdout.splitlines() if "!b10c0001" in line]
    cells = [cell.strip() for cell in peer.split("│")]
    assert "BlockIoT virtual 1" in cells and "12 dB" in cells and cells[cells.index("12 dB") + 1] == "0"  # hops


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def test_cli_sendtext_arrives_at_the_other_radio(rig):
    arrived = threading.Event()
    receiver = SerialInterface(rig.ports[1], timeout=CLI_TIMEOUT_S)

    def on_text(packet, interface):
        if interface is receiver and packet["decoded"]["text"] == "hi from the cli":
            arrived.set()

    pub.subscribe(on_text, "meshtastic.receive.text")
    try:
        result = meshtastic_cli(rig.ports[0], "--sendtext", "hi from the cli")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Sending text message hi from the cli" in result.stdout
        assert arrived.wait(10)
    finally:
        pub.unsubscribe(on_text, "meshtastic.receive.text")
        receiver.close()


def test_cli_setters_change_the_board():
    with VirtualRig(1, time_scale=TIME_SCALE) as one:
        port = one.ports[0]
        for args in (
            ["--set-owner", "Bob"],
            ["--setlat", "32.7767", "--setlon", "-96.7970", "--setalt", "1337"],
            ["--ch-set", "name", "MyChannel", "--ch-index", "0"],
            ["--ch-add", "testing"],
        ):
            result = meshtastic_cli(port, *args)
            assert result.returncode == 0 and "Error" not in result.stdout + result.stderr, result.stdout + result.stderr
        info = meshtastic_cli(port, "--info").stdout
        assert "Owner: Bob" in info and "1337" in info and "32.7767" in info and "-96.797" in info
        assert '"name": "MyChannel"' in info and "Index 1: SECONDARY" in info and '"name": "testing"' in info
        assert meshtastic_cli(port, "--seturl", "https://www.meshtastic.org/d/#CgUYAyIBAQ").returncode == 0
        info = meshtastic_cli(port, "--info").stdout
        assert "MyChannel" not in info and "Index 0: PRIMARY" in info  # the URL's one channel replaced it
