"""The optional MQTT bridge of `blockiot node` (`--mqtt mqtt://[user:pass@]host[:port]`):
finalized blocks, readings and commands out as JSON, readings to submit in, so Home
Assistant, Node-RED and Meshtastic's MQTT users can plug in. docs/MQTT.md is the contract.

    blockiot/<cluster>/block                      the latest finalized block (retained)
    blockiot/<cluster>/reading/<device>/<sensor>  each final reading, in its unit (retained: the latest)
    blockiot/<cluster>/command/<device>           each final command to <device>, and its reports
    blockiot/<cluster>/<this device>/submit       in: {"kind": "reading", "sensor": ..., "value": ...}
    blockiot/<cluster>/<this device>/submit/result  out: the node's answer
    blockiot/<cluster>/<this device>/availability   "online" / "offline" (retained, the will)

`MqttFormat` is pure: runtime events to (topic, payload, retain) and submit payloads to
control requests. `MqttBridge` is the paho-mqtt adapter around it: paho's own thread
connects and reconnects; a submit becomes a `control.Request` on the queue the control
socket feeds, and the node loop's answer to it is published on the result topic.
"""
from __future__ import annotations

import contextlib
import json
import queue
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, NamedTuple
from urllib.parse import unquote, urlsplit

from blockiot.chain.errors import ChainError
from blockiot.chain.genesis import Genesis
from blockiot.chain.wire import SENSOR_UNITS, Command, Reading, Sensor, decode_tx

from .actuator import action_name
from .bodies import from_fixed
from .control import Request
from .log import NodeLog
from .runtime import FinalBlock

TOPIC_ROOT = "blockiot"
SCHEMES = {"mqtt": (1883, False), "mqtts": (8883, True)}
MAX_SUBMIT_BYTES = 4096
QOS = 1
MAX_QUEUED = 1000  # publications held while the broker is away; past that, new ones are dropped
KEEPALIVE_S = 60
RECONNECT_DELAY_S = (1, 30)
CLOSE_WAIT_S = 2.0  # for the "offline" message to leave at a clean stop
ONLINE, OFFLINE = "online", "offline"


class MqttError(ChainError):
    """An MQTT setting that cannot be used: a malformed URL, or paho-mqtt not installed."""


class SubmitError(ChainError):
    """A submit message that is not a reading to submit; its answer says why."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class Publication(NamedTuple):
    topic: str
    payload: str
    retain: bool


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        """Where, for a log line (never the password)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(text: str) -> BrokerUrl:
    """`mqtt://[user[:password]@]host[:port]` (port 1883), or `mqtts://` (TLS, port 8883);
    user and password percent-encoded. Errors name the part that is wrong, not the password."""
    parts = urlsplit(str(text).strip())
    if parts.scheme not in SCHEMES:
        raise MqttError("an MQTT broker URL starts with mqtt:// or mqtts:// (mqtt://[user:pass@]host[:port])")
    default_port, tls = SCHEMES[parts.scheme]
    try:
        port = default_port if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise MqttError("the MQTT broker URL's port is a number 1..65535")
    if not parts.hostname:
        raise MqttError("the MQTT broker URL names no host (mqtt://HOST[:PORT])")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MqttError("the MQTT broker URL is mqtt://[user:pass@]host[:port], with no path or query")
    return BrokerUrl(parts.hostname, port,
                     None if parts.username is None else unquote(parts.username),
                     None if parts.password is None else unquote(parts.password), tls)


def load_paho():
    """paho-mqtt's (`CallbackAPIVersion`, `Client`), or `MqttError` saying how to install it
    (the node's config check calls it too, so a missing extra fails before the node starts)."""
    try:
        from paho.mqtt.client import CallbackAPIVersion, Client
    except ImportError:
        raise MqttError("the MQTT bridge needs paho-mqtt: pip install 'blockiot[mqtt]'") from None
    return CallbackAPIVersion, Client


class MqttFormat:
    """The bridge's topics and payloads for the cluster of `genesis`, as `member` sees it."""

    def __init__(self, genesis: Genesis, member: int) -> None:
        self.genesis = genesis
        self.root = f"{TOPIC_ROOT}/{genesis.name}"
        me = self.name(member)
        device = f"{self.root}/{me}"
        self.block_topic = f"{self.root}/block"
        self.submit_topic = f"{device}/submit"
        self.result_topic = f"{device}/submit/result"
        self.availability_topic = f"{device}/availability"
        self.client_id = f"{TOPIC_ROOT}-{genesis.name}-{me}"

    def name(self, index: int) -> str:
        """A member's name in topics and payloads (`member-N` when the genesis gives none)."""
        return self.genesis.name_of(index)

    def reading_topic(self, device: int, sensor: int) -> str:
        return f"{self.root}/reading/{self.name(device)}/{Sensor(sensor).name.lower()}"

    def command_topic(self, device: int) -> str:
        return f"{self.root}/command/{self.name(device)}"

    def publications(self, event) -> list[Publication]:
        """What a runtime event puts on the broker (only `FinalBlock` puts anything)."""
        if not isinstance(event, FinalBlock):
            return []
        block = event.applied.block
        height, slot = block.header.height, block.header.slot
        when = {"height": height, "slot": slot, "time": self.time(slot)}
        out = [Publication(self.block_topic, _json({
            "height": height, "id": event.applied.id.hex(), "slot": slot, "time": when["time"],
            "leader": self.name(self.genesis.leader_for_slot(slot)), "txs": len(block.txs)}), True)]
        for raw in block.txs:
            tx = decode_tx(raw)
            body = tx.body
            if isinstance(body, Reading):
                unit = SENSOR_UNITS[Sensor(body.sensor)][0]
                out.append(Publication(self.reading_topic(tx.sender, body.sensor), _json({
                    "device": self.name(tx.sender), "sensor": Sensor(body.sensor).name.lower(),
                    "value": from_fixed(body.sensor, body.value), "unit": unit, **when, "tx": tx.id.hex()}), True))
            elif isinstance(body, Command):
                out.append(Publication(self.command_topic(body.target), _json({
                    "device": self.name(body.target), "issuer": self.name(tx.sender),
                    "kind": "report" if tx.sender == body.target else "command",
                    "action": action_name(body.action), "args": list(body.args), **when, "tx": tx.id.hex()}), False))
        return out

    def time(self, slot: int) -> str:
        """The start of `slot`, ISO 8601 UTC (as `blockiot chain` shows it)."""
        start = self.genesis.genesis_time + slot * self.genesis.params.slot_seconds
        return datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def submit_request(self, payload: bytes, *, retained: bool = False) -> tuple[dict, str | None]:
        """(the control request, the optional `id` to echo) a submit payload stands for;
        `SubmitError` for anything that is not a reading (commands and rules go through
        the control socket, which only the node's owner can reach), and for a retained
        one (the broker would hand it over again at each reconnect)."""
        if retained:
            raise SubmitError("a retained submit message is not taken (it would be submitted again at each "
                              "reconnect): publish it without retain")
        if len(payload) > MAX_SUBMIT_BYTES:
            raise SubmitError(f"a submit message is at most {MAX_SUBMIT_BYTES} B, not {len(payload)} B")
        try:
            body = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise SubmitError(f"a submit message is JSON: {exc}") from None
        if not isinstance(body, dict):
            raise SubmitError('a submit message is a JSON object: {"kind": "reading", "sensor": ..., "value": ...}')
        request_id = body.pop("id", None)
        if request_id is not None and not isinstance(request_id, str):
            raise SubmitError("a submit message's `id` is a string (echoed in its result)")
        if body.get("kind") != "reading":
            raise SubmitError(f"the MQTT bridge submits readings (\"kind\": \"reading\"), not {body.get('kind')!r}",
                              request_id)
        return {"op": "submit", "body": body}, request_id

    def result(self, answer: dict, request_id: str | None) -> Publication:
        """The answer to a submit, on the result topic (with the submit's `id`, if it had one)."""
        payload = answer if request_id is None else {**answer, "id": request_id}
        return Publication(self.result_topic, _json(payload), False)


def _json(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class _PublishedReply:
    """A `Request.reply` whose `put(answer)`, made by the node loop, publishes the answer
    on the result topic rather than holding it (paho's publish is thread-safe)."""

    def __init__(self, publish: Callable[[dict], None]) -> None:
        self.put = publish


class MqttBridge:
    """Connects to the broker at `url` and keeps connecting (paho's thread); `on_event`
    from the node loop publishes; submits land in `requests` as `control.Request`s."""

    def __init__(self, url: str, genesis: Genesis, requests: queue.Queue[Request], *, member: int,
                 log: NodeLog | None = None) -> None:
        CallbackAPIVersion, Client = load_paho()
        self.broker = parse_broker_url(url)
        self.format = MqttFormat(genesis, member)
        self.requests = requests
        self.log = log
        self._down_reported = False  # one log line per outage, not one per retry
        client = Client(CallbackAPIVersion.VERSION2, client_id=self.format.client_id)
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set()
        client.will_set(self.format.availability_topic, OFFLINE, qos=QOS, retain=True)
        client.reconnect_delay_set(*RECONNECT_DELAY_S)
        client.max_queued_messages_set(MAX_QUEUED)
        client.on_connect = self._connected
        client.on_connect_fail = self._connect_failed
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        self.client = client
        client.connect_async(self.broker.host, self.broker.port, KEEPALIVE_S)
        client.loop_start()

    def on_event(self, event, now: float) -> None:
        """A runtime event (`NodeRuntime.on_event`): publish what it says, if anything."""
        for publication in self.format.publications(event):
            self._publish(publication)

    def close(self) -> None:
        """Say "offline" (a clean disconnect sends no will), disconnect, stop paho's thread."""
        with contextlib.suppress(RuntimeError, ValueError):  # no broker now: its will said it already
            offline = self.client.publish(self.format.availability_topic, OFFLINE, qos=QOS, retain=True)
            offline.wait_for_publish(CLOSE_WAIT_S)
        self.client.disconnect()
        self.client.loop_stop()

    # --- paho's thread --------------------------------------------------------------------

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._down(f"MQTT broker {self.broker} refused the connection: {reason_code}; retrying",
                       event="MqttRefused", reason=str(reason_code))
            return
        client.subscribe(self.format.submit_topic, qos=QOS)
        client.publish(self.format.availability_topic, ONLINE, qos=QOS, retain=True)
        self._down_reported = False
        self._info(f"MQTT: connected to {self.broker}; readings to submit on {self.format.submit_topic}",
                   event="MqttConnected")

    def _connect_failed(self, client, userdata) -> None:
        self._down(f"MQTT broker {self.broker} unreachable; retrying every {RECONNECT_DELAY_S[1]} s at most",
                   event="MqttLost")

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._down(f"MQTT: lost the broker {self.broker} ({reason_code}); reconnecting", event="MqttLost")

    def _message(self, client, userdata, message) -> None:
        try:
            request, request_id = self.format.submit_request(message.payload, retained=message.retain)
        except SubmitError as exc:
            self._publish(self.format.result({"ok": False, "error": str(exc)}, exc.request_id))
            return
        self.requests.put(Request(request, reply=_PublishedReply(
            lambda answer: self._publish(self.format.result(answer, request_id)))))

    def _publish(self, publication: Publication) -> None:
        self.client.publish(publication.topic, publication.payload, qos=QOS, retain=publication.retain)

    def _down(self, text: str, **fields) -> None:
        if not self._down_reported:
            self._down_reported = True
            self._info(text, **fields)

    def _info(self, text: str, **fields) -> None:
        if self.log is not None:
            self.log.info(text, **fields)
