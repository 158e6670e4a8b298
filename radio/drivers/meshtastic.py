"""RadioDriver for a Meshtastic device, over USB serial or meshtasticd TCP, via the official library.

Frames travel as binary PRIVATE_APP (portnum 256) data, broadcast, `wantAck=False`,
with the device's configured hop limit. Received PRIVATE_APP packets from any node
but ourselves wait in a bounded queue (oldest dropped first, counted in `dropped`)
until `receive` hands them out; the sender is the packet's `from` node number.

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
- The library sleeps 0.1 s after every write, and waits in 0.5 s sleeps, forever if
  the device is gone, while the device's TX queue is full: the driver waits for room
  itself, watching for loss, at most `timeout` seconds.
- Packets whose `from` is 0 are dropped by the library as echoes of our own.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque

import serial
from meshtastic import BROADCAST_NUM
from meshtastic.mesh_interface import MeshInterface
from meshtastic.protobuf import config_pb2, portnums_pb2
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

DEFAULT_TIMEOUT = 20.0
DEFAULT_RX_QUEUE = 256
MTU = meshtastic_max_payload(PRIVATE_APP_PORTNUM)
RECEIVE_TOPIC = "meshtastic.receive.data.PRIVATE_APP"
LOST_TOPIC = "meshtastic.connection.lost"
_QUEUE_POLL_S = 0.01
# LoRaConfig.bandwidth is in kHz with these shorthands (firmware RadioInterface::applyModemConfig).
_BANDWIDTH_KHZ = {31: 31.25, 62: 62.5, 200: 203.125, 400: 406.25, 800: 812.5, 1600: 1625.0}


class _BoundedConnectWait:
    """Caps the library's hard-coded 30 s wait for the config download at our timeout."""

    connect_timeout: float = DEFAULT_TIMEOUT

    def _waitConnected(self, timeout: float = 30.0) -> None:  # noqa: N802 (library name)
        super()._waitConnected(min(timeout, self.connect_timeout))  # type: ignore[misc]


class _SerialInterface(_BoundedConnectWait, SerialInterface):
    pass


class _TCPInterface(_BoundedConnectWait, TCPInterface):
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
        self._iface: MeshInterface | None = None
        self._node_num: int | None = None
        self._params: LoRaParams | None = None
        self._lost = False
        self._rx: deque[Received] = deque(maxlen=rx_queue)
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
        for listener, topic in self._listeners:
            pub.subscribe(listener, topic)
        try:
            iface.connect()
            iface.waitForConfig()
            self._node_num = iface.myInfo.my_node_num
            self._params = lora_params(iface.localNode.localConfig.lora)
        except BaseException as exc:
            self.close()
            unavailable = self._unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    def send(self, frame: bytes) -> None:
        """Broadcast one frame as PRIVATE_APP data."""
        frame = bytes(frame)
        if len(frame) > MTU:
            raise MessageTooLarge(
                f"{self.name}: a frame of {len(frame)} B exceeds the Meshtastic MTU of {MTU} B "
                f"(PRIVATE_APP payload the firmware accepts)"
            )
        iface = self._connected_interface()
        self._wait_for_tx_room(iface)
        try:
            iface.sendData(frame, BROADCAST_NUM, portNum=portnums_pb2.PortNum.PRIVATE_APP, wantAck=False)
        except (serial.SerialException, OSError, MeshInterface.MeshInterfaceError) as exc:
            self._mark_lost()
            raise RadioUnavailable(f"{self.name}: device lost while sending ({exc})") from exc

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
        return iface

    def _unavailable(self, exc: BaseException) -> RadioUnavailable | None:
        """The RadioUnavailable a failed open means, or None for an error that is not about the device."""
        where = self.name
        if isinstance(exc, FileNotFoundError):
            return RadioUnavailable(f"{where}: no such serial port (is the device plugged in?)")
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

    def _wait_for_tx_room(self, iface: MeshInterface) -> None:
        """Wait while the device reports a full TX queue (the library would sleep, forever if it is gone)."""
        deadline = time.monotonic() + self.timeout
        while iface.queueStatus is not None and iface.queueStatus.free <= 0:
            with self._cond:
                if self._lost or self._iface is not iface:
                    raise RadioUnavailable(f"{self.name}: connection to the device was lost (unplugged?)")
                if time.monotonic() >= deadline:
                    raise RadioUnavailable(f"{self.name}: the device's transmit queue stayed full for {self.timeout:g} s")
                self._cond.wait(_QUEUE_POLL_S)

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
            self._rx.append(Received(bytes(payload), sender, packet.get("rxRssi"), packet.get("rxSnr")))
            self._cond.notify_all()
