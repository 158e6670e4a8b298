"""The virtual Meshtastic device: its serial API sans-IO, then the official library and CLI against it."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from meshtastic.protobuf import admin_pb2, channel_pb2, config_pb2, mesh_pb2, portnums_pb2
from meshtastic.serial_interface import SerialInterface
from pubsub import pub

from blockiot.hil.flooding import BROADCAST, MeshPacket
from blockiot.hil.medium import Delivery
from blockiot.hil.meshtastic_device import (
    ONLY_CONFIG_NONCE,
    ONLY_NODES_NONCE,
    TO_PHONE_LEN,
    TX_QUEUE_LEN,
    MeshtasticDevice,
    node_id,
    node_num,
)
from blockiot.hil.personality import RadioSetup, ToHost, Transmit
from blockiot.hil.rig import VirtualRig
from blockiot.radio.airtime import meshtastic_max_payload, meshtastic_packet_len
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
    return [MeshPacket.from_bytes(action.packet) for action in actions if isinstance(action, Transmit)]


def variants(messages) -> list[str]:
    return [message.WhichOneof("payload_variant") for message in messages]


def packet(to: int = BROADCAST, portnum: int = PORT.PRIVATE_APP, payload: bytes = b"abc", **fields) -> mesh_pb2.MeshPacket:
    mesh = mesh_pb2.MeshPacket(to=to, hop_limit=3, **fields)
    mesh.decoded.portnum = portnum
    mesh.decoded.payload = payload
    return mesh


def device(radio_id: int = 0, **setup) -> MeshtasticDevice:
    return MeshtasticDevice(RadioSetup(radio_id, **setup))


def connected(radio_id: int = 0, **setup) -> MeshtasticDevice:
    dev = device(radio_id, **setup)
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
    return next(a.packet for a in actions if isinstance(a, Transmit))


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


def test_host_packet_is_queued_then_sent_like_firmware():
    dev = connected(0)
    [status] = from_radio(dev.from_host(to_radio(packet=packet(id=42, want_ack=True)), 1.0))
    assert status.queueStatus.mesh_packet_id == 42 and status.queueStatus.res == 0
    actions, _ = run_until_transmit(dev, 1.0)
    [air] = transmitted(actions)
    assert (air.origin, air.packet_id, air.hop_limit) == (node_num(0), 42, 3)
    data = mesh_pb2.Data.FromString(air.payload)
    assert data.portnum == PORT.PRIVATE_APP and data.payload == b"abc" and data.HasField("bitfield")
    raw = next(a.packet for a in actions if isinstance(a, Transmit))
    assert len(raw) == meshtastic_packet_len(3)  # same bytes on air as real firmware
    [ack] = from_radio(actions)
    assert getattr(ack.packet, "from") == node_num(0)
    assert ack.packet.decoded.portnum == PORT.ROUTING_APP and ack.packet.decoded.request_id == 42
    assert mesh_pb2.Routing.FromString(ack.packet.decoded.payload).error_reason == mesh_pb2.Routing.Error.NONE


def test_largest_private_app_payload_fills_a_lora_packet_and_one_more_byte_is_refused():
    largest = meshtastic_max_payload()
    assert len(on_air(bytes(largest))) == 255
    dev = connected(0)
    messages = from_radio(dev.from_host(to_radio(packet=packet(payload=bytes(largest + 1), id=7)), 0.0))
    assert variants(messages) == ["queueStatus", "packet"]
    assert mesh_pb2.Routing.FromString(messages[1].packet.decoded.payload).error_reason == mesh_pb2.Routing.Error.TOO_LARGE
    assert dev.next_deadline() is None and dev.stats.refused == 1


def test_a_resent_packet_id_is_ignored():
    dev = connected(0)
    assert dev.from_host(to_radio(packet=packet(id=5)), 0.0)
    assert dev.from_host(to_radio(packet=packet(id=5)), 0.0) == []


def test_full_tx_queue_refuses_and_frees_with_a_queue_status():
    busy = {"now": True}  # the channel stays busy: nothing leaves
    dev = connected(0, carrier_sense=lambda now: busy["now"])
    for i in range(TX_QUEUE_LEN):
        dev.from_host(to_radio(packet=packet(id=100 + i)), 0.0)
    messages = from_radio(dev.from_host(to_radio(packet=packet(id=999)), 0.0))
    assert messages[0].queueStatus.free == 0
    assert mesh_pb2.Routing.FromString(messages[1].packet.decoded.payload).error_reason == mesh_pb2.Routing.Error.NO_INTERFACE
    busy["now"] = False
    actions, _ = run_until_transmit(dev)
    assert from_radio(actions)[-1].queueStatus.free == 1


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
    assert (relay.origin, relay.packet_id, relay.hop_limit) == (node_num(0), 0x1234, 2)


def test_unicast_reaches_only_its_destination():
    air = on_air(to=node_num(2))
    assert from_radio(connected(1).from_air(delivery(air, receiver=1), 1.0)) == []
    [message] = from_radio(connected(2).from_air(delivery(air, receiver=2), 1.0))
    assert message.packet.to == node_num(2)


def test_packets_wait_for_a_host_and_the_oldest_are_dropped():
    dev = device(1)
    for i in range(TO_PHONE_LEN + 1):
        sender = connected(0)
        sender.from_host(to_radio(packet=packet(id=1000 + i)), 0.0)
        actions, _ = run_until_transmit(sender)
        assert dev.from_air(delivery(next(a.packet for a in actions if isinstance(a, Transmit))), 1.0 + i) == []
    assert dev.stats.dropped_for_host == 1
    messages = from_radio(dev.from_host(to_radio(want_config_id=3), 100.0))
    ids = [m.packet.id for m in messages if m.HasField("packet")]
    assert ids == [1000 + i for i in range(1, TO_PHONE_LEN + 1)]
    assert variants(messages).index("config_complete_id") < variants(messages).index("packet")


def test_malformed_air_packet_is_counted():
    dev = connected(1)
    assert dev.from_air(delivery(b"\x00" * 5), 1.0) == []
    assert dev.stats.malformed_from_air == 1


def admin_request(dev: MeshtasticDevice, packet_id: int, **request) -> mesh_pb2.MeshPacket:
    admin = admin_pb2.AdminMessage(**request)
    mesh = packet(to=dev.node_num, portnum=PORT.ADMIN_APP, payload=admin.SerializeToString(), id=packet_id)
    messages = from_radio(dev.from_host(to_radio(packet=mesh), 0.0))
    assert variants(messages) == ["queueStatus", "packet"]
    assert messages[1].packet.decoded.request_id == packet_id
    return messages[1].packet


def test_admin_getters_answer_with_the_device_config():
    dev = connected(0)
    reply = admin_request(dev, 1, get_config_request=admin_pb2.AdminMessage.ConfigType.LORA_CONFIG)
    admin = admin_pb2.AdminMessage.FromString(reply.decoded.payload)
    assert admin.get_config_response.lora.hop_limit == 3 and len(admin.session_passkey) == 8
    owner = admin_pb2.AdminMessage.FromString(admin_request(dev, 2, get_owner_request=True).decoded.payload)
    assert owner.get_owner_response.id == "!b10c0000"
    channel = admin_pb2.AdminMessage.FromString(admin_request(dev, 3, get_channel_request=1).decoded.payload)
    assert channel.get_channel_response.role == channel_pb2.Channel.Role.PRIMARY


def test_admin_setters_are_refused():
    dev = connected(0)
    reply = admin_request(dev, 4, set_owner=mesh_pb2.User(long_name="x"))
    assert reply.decoded.portnum == PORT.ROUTING_APP
    assert mesh_pb2.Routing.FromString(reply.decoded.payload).error_reason == mesh_pb2.Routing.Error.BAD_REQUEST


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


def test_cli_nodes(rig):
    result = meshtastic_cli(rig.ports[0], "--nodes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "!b10c0000" in result.stdout and "BlockIoT virtual 0" in result.stdout


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
