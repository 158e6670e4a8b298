"""RadioDriver for a Meshtastic device, over USB serial or meshtasticd TCP, via the official library.

Frames travel as binary PRIVATE_APP (portnum 256) data, broadcast, `wantAck=False`,
with the hop limit the caller gives (0: direct neighbours only, as answers to a
neighbour's request go) or the device's configured one. Received PRIVATE_APP packets
from any node but ourselves wait in a bounded queue (oldest dropped first, counted in
`dropped`) until `receive` hands them out; the sender is the packet's `from` node
number, the hops it crossed `hopStart - hopLimit`, with its RSSI and SNR. Firmware older
than 2.3 sends no hop start: its packets count as heard directly (0), as a packet sent
with hop limit 0 is.

MTU: 231 B, not the library's DATA_PAYLOAD_LEN of 233. Firmware adds a 2-byte
`bitfield` to the Data of every packet it originates (Router::perhapsEncode) and
refuses a packet whose Data exceeds 255 - 16 B with Routing TOO_LARGE; on PRIVATE_APP
that leaves 231 B (`blockiot.radio.airtime.meshtastic_max_payload`). The library
would pass 232-233 B to the device and the frame would be lost.

Quirks of meshtastic 2.7.11 this driver handles (see the library's
stream_interface.py / mesh_interface.py):
- pypubsub is one process-wide bus holding WEAK references to listeners: the driver
  keeps its bound listeners, ignores events of other interfaces (the `interface`
  argument), and unsubscribes on close so nothing leaks between drivers.
- `waitForConfig` waits `timeout` seconds (default 300) and `connect()` waits a
  hard-coded 30 s for the config download; both are capped at our `timeout`. The TCP
  connect has no timeout of its own; ours is applied.
- A lost device (unplugged, crashed) ends the library's reader thread, which closes the
  port and publishes `meshtastic.connection.lost`; later writes are silently ignored
  and a send would wait for the connection. The driver notes the loss (event, or
  SerialException/OSError on write) and raises `RadioUnavailable` on the next
  send/receive (frames already queued are handed out first). `open()` reconnects.
- Flow control (firmware 2.7 MeshService::sendToMesh): the device queues a packet
  first, then answers with a QueueStatus giving the free space after queuing; a full
  TX queue answers `res` = 32 and `free` = 0, and says when room comes back with an
  unsolicited QueueStatus. The library sleeps in 0.5 s steps, forever if the device is
  gone, while `free` is 0, and on a `res` other than 0 it forgets the packet (its
  resend check takes a missing entry for an ACK), so a frame a full queue refused
  would be lost. The driver waits for room itself (watching for loss, at most
  `timeout` seconds), waits for the status of each frame it sends, and sends a
  refused frame again under a new packet id (the firmware ignores an id it has seen
  among the last 20) once there is room; `held_back` counts those refusals.
- The TX queue is shared with relays, ACKs and NodeInfo answers, and a full queue
  makes room for a packet of higher priority by dropping the newest lower-priority one
  (MeshPacketQueue::replaceLowerPriorityPacket), silently, after the host was told it
  was queued. Our frames go with the library's default priority, RELIABLE: above
  ordinary relays, below ACKs, responses and text. So the driver leaves `TX_RESERVE`
  places free for the device's own traffic. The device says by itself
  when a full queue has room again, not when a nearly full one has; meanwhile the
  driver asks with a heartbeat (answered with a QueueStatus) every `_ROOM_POLL_S`.
- Packets whose `from` is 0 are dropped by the library as echoes of our own.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import termios
import threading
import time
from collections import OrderedDict, deque
from typing import Callable, TypeVar

import serial
from meshtastic import BROADCAST_NUM
from meshtastic.mesh_interface import MeshInterface
from meshtastic.protobuf import config_pb2, mesh_pb2, portnums_pb2
from meshtastic.serial_interface import SerialInterface
from meshtastic.tcp_interface import DEFAULT_TCP_PORT, TCPInterface
from pubsub import pub

from blockiot.radio.airtime import (
    MESHTASTIC_PREAMBLE_SYMBOLS,
    PRIVATE_APP_PORTNUM,
    LoRaParams,
    meshtastic_max_payload,
    meshtastic_packet_len,
    preset,
    time_on_air,
)
from blockiot.radio.drivers.base import Received
from blockiot.radio.errors import ConfigError, MessageTooLarge, RadioUnavailable

# Our regions (radio/dutycycle.py) as Meshtastic's LoRaConfig.RegionCode names them.
MESHTASTIC_REGION = {"EU868": "EU_868", "US915": "US"}
DEFAULT_TIMEOUT = 20.0
DEFAULT_RX_QUEUE = 256
MTU = meshtastic_max_payload(PRIVATE_APP_PORTNUM)
RECEIVE_TOPIC = "meshtastic.receive.data.PRIVATE_APP"
LOST_TOPIC = "meshtastic.connection.lost"
_QUEUE_POLL_S = 0.01
_ROOM_POLL_S = 0.2
QUEUE_OK = 0
QUEUE_FULL = 32  # QueueStatus.res of a packet a full TX queue refused (firmware ERRNO_UNKNOWN)
TX_RESERVE = 2  # TX queue places the driver leaves to the device's relays, ACKs and answers
_STATUSES_KEPT = 64  # QueueStatus results kept by packet id until `send` collects them
T = TypeVar("T")
# LoRaConfig.bandwidth is in kHz with these shorthands (firmware RadioInterface::applyModemConfig).
_BANDWIDTH_KHZ = {31: 31.25, 62: 62.5, 200: 203.125, 400: 406.25, 800: 812.5, 1600: 1625.0}


class _DriverHooks:
    """Caps the library's hard-coded 30 s wait for the config download at our timeout, and
    hands every QueueStatus to the driver (the library publishes none)."""

    connect_timeout: float = DEFAULT_TIMEOUT
    on_queue_status: Callable[[mesh_pb2.QueueStatus], None] | None = None

    def _waitConnected(self, timeout: float = 30.0) -> None:  # noqa: N802 (library name)
        super()._waitConnected(min(timeout, self.connect_timeout))  # type: ignore[misc]

    def _handleQueueStatusFromRadio(self, queueStatus: mesh_pb2.QueueStatus) -> None:  # noqa: N802, N803
        super()._handleQueueStatusFromRadio(queueStatus)  # type: ignore[misc]
        if self.on_queue_status is not None:
            self.on_queue_status(queueStatus)


class _SerialInterface(_DriverHooks, SerialInterface):
    pass


class _TCPInterface(_DriverHooks, TCPInterface):
    def myConnect(self) -> None:  # noqa: N802 (library name)
        self.socket = socket.create_connection((self.hostname, self.portNumber), timeout=self.connect_timeout)
        self.socket.settimeout(None)


def lora_params(lora: config_pb2.Config.LoRaConfig) -> LoRaParams:
    """The modem settings a device's `config.lora` selects: its preset, or its explicit SF/BW/CR."""
    if lora.use_preset:
        return preset(config_pb2.Config.LoRaConfig.ModemPreset.Name(lora.modem_preset))
    bw_khz = _BANDWIDTH_KHZ.get(lora.bandwidth, float(lora.bandwidth))
    return LoRaParams(
        sf=lora.spread_factor,
        bw_hz=bw_khz * 1000.0,
        cr=lora.coding_rate,
        preamble_symbols=MESHTASTIC_PREAMBLE_SYMBOLS,
    )


class MeshtasticDriver:
    """One Meshtastic device: `MeshtasticDriver("/dev/ttyACM0")` or `MeshtasticDriver(host="mesh.local")`."""

    mtu = MTU

    def __init__(
        self,
        port: str | None = None,
        *,
        host: str | None = None,
        tcp_port: int = DEFAULT_TCP_PORT,
        timeout: float = DEFAULT_TIMEOUT,
        rx_queue: int = DEFAULT_RX_QUEUE,
    ) -> None:
        if (port is None) == (host is None):
            raise ConfigError("give a Meshtastic device either a serial port or a TCP host, not both or neither")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout}")
        if rx_queue < 1:
            raise ConfigError(f"rx_queue must be >= 1, got {rx_queue}")
        if host is not None and ":" in host:
            host, _, port_text = host.rpartition(":")
            if not port_text.isdigit():
                raise ConfigError(f"TCP port must be a number, got {port_text!r}")
            tcp_port = int(port_text)
        self.port = port
        self.host = host
        self.tcp_port = tcp_port
        self.timeout = timeout
        self.name = f"meshtastic:{port}" if port is not None else f"meshtastic:tcp://{host}:{tcp_port}"
        self.dropped = 0
        self.held_back = 0  # frames a full TX queue refused and the driver sent again
        self._iface: MeshInterface | None = None
        self._node_num: int | None = None
        self._params: LoRaParams | None = None
        self._region: str | None = None
        self._lost = False
        self._rx: deque[Received] = deque(maxlen=rx_queue)
        self._status: OrderedDict[int, int] = OrderedDict()  # packet id -> QueueStatus.res
        self._cond = threading.Condition()
        # pypubsub keeps only weak references: these bound methods live as long as the driver.
        self._listeners = ((self._on_receive, RECEIVE_TOPIC), (self._on_lost, LOST_TOPIC))

    # -- RadioDriver --------------------------------------------------------------------

    def open(self) -> None:
        """Connect and download the device's config; reconnects if already open."""
        self.close()
        if self.port is not None and not os.path.exists(self.port):
            raise RadioUnavailable(f"{self.name}: no such serial port (is the device plugged in?)")
        iface = self._make_interface()
        with self._cond:
            self._iface, self._lost = iface, False
            self._status.clear()
        for listener, topic in self._listeners:
            pub.subscribe(listener, topic)
        try:
            iface.connect()
            iface.waitForConfig()
            self._node_num = iface.myInfo.my_node_num
            self._params = lora_params(iface.localNode.localConfig.lora)
            self._region = config_pb2.Config.LoRaConfig.RegionCode.Name(iface.localNode.localConfig.lora.region)
        except BaseException as exc:
            self.close()
            unavailable = self._unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    def send(self, frame: bytes, *, hop_limit: int | None = None) -> None:
        """Broadcast one frame as PRIVATE_APP data, relayed at most `hop_limit` times (None:
        the device's hop limit); returns once the device has queued it."""
        frame = bytes(frame)
        if len(frame) > MTU:
            raise MessageTooLarge(
                f"{self.name}: a frame of {len(frame)} B exceeds the Meshtastic MTU of {MTU} B "
                f"(PRIVATE_APP payload the firmware accepts)"
            )
        iface = self._connected_interface()
        deadline = time.monotonic() + self.timeout
        while True:
            self._wait_for_tx_room(iface, deadline)
            packet = self._to_device(
                lambda: iface.sendData(frame, BROADCAST_NUM, portNum=portnums_pb2.PortNum.PRIVATE_APP, wantAck=False,
                                       hopLimit=hop_limit)
            )
            res = self._wait_for_status(iface, packet.id, deadline)
            if res == QUEUE_OK:
                return
            if res != QUEUE_FULL:
                raise RadioUnavailable(f"{self.name}: the device refused the frame (QueueStatus res={res})")
            with self._cond:
                self.held_back += 1

    def receive(self, timeout: float) -> Received | None:
        """The next PRIVATE_APP frame from another node, or None after `timeout` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                if self._rx:
                    return self._rx.popleft()
                if self._iface is None:
                    raise RadioUnavailable(f"{self.name}: not open")
                if self._lost:
                    raise RadioUnavailable(f"{self.name}: connection to the device was lost (unplugged?)")
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        """Disconnect; frames not yet received are discarded. Never raises."""
        for listener, topic in self._listeners:
            with contextlib.suppress(Exception):
                pub.unsubscribe(listener, topic)
        with self._cond:
            iface, self._iface = self._iface, None
            self._rx.clear()
            self._cond.notify_all()
        if iface is not None:
            with contextlib.suppress(Exception):
                iface.close()

    def airtime(self, frame_len: int) -> float:
        """Seconds on air of a frame, with the preset the device reported when it was opened."""
        if self._params is None:
            raise RadioUnavailable(f"{self.name}: open it first, the airtime depends on the device's LoRa config")
        return time_on_air(meshtastic_packet_len(frame_len), self._params)

    # -- extras -------------------------------------------------------------------------

    def reboot(self, seconds: int) -> None:
        """Ask the device to reboot in `seconds` (what `meshtastic --reboot` sends); its port
        goes away for the boot, and the next send or receive says so."""
        iface = self._connected_interface()
        self._to_device(lambda: iface.localNode.reboot(seconds))

    @property
    def node_num(self) -> int | None:
        """This device's node number, known once opened."""
        return self._node_num

    @property
    def queued(self) -> int:
        """Frames heard and waiting for `receive`."""
        with self._cond:
            return len(self._rx)

    @property
    def region(self) -> str | None:
        """The device's LoRa region as Meshtastic names it (`EU_868`, `US`, `UNSET`), once opened."""
        return self._region

    @property
    def lora(self) -> LoRaParams | None:
        """The modem settings the device reported when it was opened."""
        return self._params

    # -- internals ----------------------------------------------------------------------

    def _make_interface(self) -> MeshInterface:
        iface: _SerialInterface | _TCPInterface
        if self.port is not None:
            iface = _SerialInterface(self.port, connectNow=False, timeout=self.timeout)
        else:
            iface = _TCPInterface(self.host, portNumber=self.tcp_port, connectNow=False, timeout=self.timeout)
        iface.connect_timeout = self.timeout
        iface.on_queue_status = self._on_queue_status
        return iface

    def _unavailable(self, exc: BaseException) -> RadioUnavailable | None:
        """The RadioUnavailable a failed open means, or None for an error that is not about the device."""
        where = self.name
        if isinstance(exc, FileNotFoundError):
            return RadioUnavailable(f"{where}: no such serial port (is the device plugged in?)")
        if isinstance(exc, termios.error) or (isinstance(exc, OSError) and exc.errno == errno.ENOTTY):
            return RadioUnavailable(f"{where}: not a serial port (give the radio's port, e.g. /dev/ttyACM0, or `auto`)")
        if isinstance(exc, PermissionError):
            return RadioUnavailable(f"{where}: permission denied (add yourself to the 'dialout' group)")
        if isinstance(exc, serial.SerialException) and "lock" in str(exc):
            return RadioUnavailable(f"{where}: busy, another program has the port open")
        if isinstance(exc, MeshInterface.MeshInterfaceError):
            return RadioUnavailable(
                f"{where}: no Meshtastic config reply within {self.timeout:g} s "
                f"(not a Meshtastic device, serial API disabled, or still booting)"
            )
        if isinstance(exc, (serial.SerialException, OSError)):
            return RadioUnavailable(f"{where}: cannot connect ({exc})")
        return None

    def _connected_interface(self) -> MeshInterface:
        with self._cond:
            iface = self._iface
            if iface is None:
                raise RadioUnavailable(f"{self.name}: not open")
            if self._lost or not iface.isConnected.is_set():
                self._lost = True
                raise RadioUnavailable(f"{self.name}: connection to the device was lost (unplugged?)")
            return iface

    def _wait_for_tx_room(self, iface: MeshInterface, deadline: float) -> None:
        """Wait until the device's TX queue has more than `TX_RESERVE` places free (the library would
        wait only for a full queue, in 0.5 s sleeps, forever if the device is gone)."""
        asked = time.monotonic()
        while True:
            with self._cond:
                status = iface.queueStatus
                if status is None or status.free > min(TX_RESERVE, status.maxlen - 1):
                    return
                self._check_waiting(iface, deadline, "the device's transmit queue stayed full")
                if status.free == 0 or time.monotonic() - asked < _ROOM_POLL_S:
                    self._cond.wait(_QUEUE_POLL_S)  # a full queue says itself when it has room
                    continue
            asked = time.monotonic()
            self._to_device(iface.sendHeartbeat)  # answered with a QueueStatus

    def _to_device(self, write: Callable[[], T]) -> T:
        """Run a library call that writes to the device; a failed write means the device is gone."""
        try:
            return write()
        except (serial.SerialException, OSError, termios.error, MeshInterface.MeshInterfaceError) as exc:
            self._mark_lost()
            raise RadioUnavailable(f"{self.name}: device lost while sending ({exc})") from exc
        except AttributeError as exc:
            if self._iface is not None and getattr(self._iface, "stream", True) is not None:
                raise  # our bug, not the device's
            # The library's reader thread dropped the stream (the port hung up) mid-write.
            self._mark_lost()
            raise RadioUnavailable(f"{self.name}: device lost while sending (port closed)") from exc

    def _wait_for_status(self, iface: MeshInterface, packet_id: int, deadline: float) -> int:
        """The QueueStatus.res the device answered for `packet_id`."""
        with self._cond:
            while packet_id not in self._status:
                self._check_waiting(iface, deadline, "no QueueStatus came for the frame")
                self._cond.wait(_QUEUE_POLL_S)
            return self._status.pop(packet_id)

    def _check_waiting(self, iface: MeshInterface, deadline: float, what: str) -> None:
        """Raise if waiting on `iface` must stop: the device is gone, or `deadline` passed. Holds `_cond`."""
        if self._lost or self._iface is not iface:
            raise RadioUnavailable(f"{self.name}: connection to the device was lost (unplugged?)")
        if time.monotonic() >= deadline:
            raise RadioUnavailable(f"{self.name}: {what} within {self.timeout:g} s")

    def _on_queue_status(self, status: mesh_pb2.QueueStatus) -> None:
        with self._cond:
            if status.mesh_packet_id:
                self._status[status.mesh_packet_id] = status.res
                while len(self._status) > _STATUSES_KEPT:
                    self._status.popitem(last=False)
            self._cond.notify_all()

    def _mark_lost(self) -> None:
        with self._cond:
            self._lost = True
            self._cond.notify_all()

    def _on_lost(self, interface: MeshInterface) -> None:
        with self._cond:
            if interface is self._iface:
                self._lost = True
                self._cond.notify_all()

    def _on_receive(self, packet: dict, interface: MeshInterface) -> None:
        with self._cond:
            if interface is not self._iface:
                return
            sender = packet.get("from")
            own = interface.myInfo.my_node_num if interface.myInfo is not None else None
            if not sender or sender == own:
                return
            payload = packet.get("decoded", {}).get("payload", b"")
            if len(self._rx) == self._rx.maxlen:
                self.dropped += 1
            hops = max(packet.get("hopStart", 0) - packet.get("hopLimit", 0), 0)
            self._rx.append(Received(bytes(payload), sender, packet.get("rxRssi"), packet.get("rxSnr"), hops))
            self._cond.notify_all()
