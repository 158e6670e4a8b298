"""`blockiot node`: run one cluster node on a radio: the node runtime (chain/runtime) on a
Meshtastic board or an E22 modem, the chain store of its data dir, the wall clock, the
control socket that `blockiot send` and `blockiot status` talk to, and the actuator hook.

Settings come from flags, or a TOML file (`--config`, chain/runtime/config.py) that flags
override. Nothing is left behind by a start that fails, no traceback for a mistake, and
SIGINT or SIGTERM stop it cleanly.
"""
from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from pathlib import Path

from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.params import ANSWER_SHARE, ConsensusParams
from blockiot.chain.consensus.recovery import restore
from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import Genesis, load_genesis_toml
from blockiot.chain.runtime.actuator import HookActuator, LogActuator
from blockiot.chain.runtime.config import NodeConfig, load_node_config, merge
from blockiot.chain.runtime.control import ControlServer
from blockiot.chain.runtime.datadir import DataDir
from blockiot.chain.runtime.log import NodeLog
from blockiot.chain.runtime.mqtt import MqttBridge
from blockiot.chain.runtime.realtime import RealtimeNode
from blockiot.chain.runtime.runtime import NodeRuntime
from blockiot.chain.runtime.transmit import TransmitQueue
from blockiot.chain.store import ChainStore
from blockiot.radio.airtime import LoRaParams, canonical_preset_name, preset, preset_display_name, preset_display_names
from blockiot.radio.discovery import discover, resolve_port
from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.errors import RadioUnavailable
from blockiot.radio.port import port_link
from blockiot.tools.cli import UserError
from blockiot.tools.options import fraction, positive_float


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "node",
        help="run a cluster node on a LoRa radio (Meshtastic board or E22 modem)",
        description="Run one node: consensus (slots, blocks, finality, catch-up) over a Meshtastic "
        "board or an E22 modem, finalized blocks kept in the chain store of --data-dir. A validator "
        "signs blocks in its slots. `blockiot send` hands it readings and commands, `blockiot status` "
        "shows it, and --hook runs the commands addressed to this device once they are final.",
    )
    parser.add_argument("--config", type=Path, help="a node TOML file (flags override its keys)")
    parser.add_argument("--genesis", type=Path, help="the cluster's genesis TOML")
    parser.add_argument("--key", type=Path, help="this device's key file")
    parser.add_argument("--data-dir", type=Path, help="chain store directory (one node per directory)")
    radio = parser.add_mutually_exclusive_group()
    radio.add_argument("--port", help="the radio's serial port, or `auto` for the one attached radio")
    radio.add_argument("--host", help="a meshtasticd host[:port] instead of a serial port")
    parser.add_argument("--radio", choices=("meshtastic", "e22"), help="what is on --port (default: from its USB id)")
    parser.add_argument("--frequency", type=positive_float, help="carrier in Hz, for the duty-cycle sub-band (e.g. 869.525e6)")
    parser.add_argument("--budget", type=fraction, help="self-imposed duty cycle, a fraction up to the legal one")
    parser.add_argument("--hook", type=Path, help="executable run as `HOOK ACTION ARG...` for each final command to this device")
    parser.add_argument("--mqtt", metavar="URL", help="publish final blocks, readings and commands to this MQTT broker "
                        "and take readings from it: mqtt://[user:pass@]host[:port] (docs/MQTT.md)")
    parser.add_argument("--seconds", type=positive_float, help="stop after this long (default: run until stopped)")
    parser.add_argument("--log-json", "--events", dest="log_json", action="store_true", default=None,
                        help="log one JSON object per line instead of plain lines")
    parser.set_defaults(func=run)


def run(args) -> int:
    base = load_node_config(args.config) if args.config else NodeConfig()
    config = merge(base, {name: getattr(args, name) for name in
                          ("genesis", "key", "data_dir", "port", "host", "radio", "frequency", "budget",
                           "hook", "seconds", "log_json", "mqtt")}).check()
    genesis = load_genesis_toml(config.genesis)
    identity = Identity.load(config.key)
    member = genesis.index_of(identity.public_key)
    if member is None:
        raise UserError(f"{config.key} is not a member of cluster {genesis.name}")
    if config.hook is not None and not (config.hook.is_file() and config.hook.stat().st_mode & 0o111):
        raise UserError(f"hook {config.hook} is not an executable file")
    budget = DutyCycleBudget(genesis.params.region, frequency_hz=config.frequency, fraction=config.budget)
    log = NodeLog(genesis, json_lines=config.log_json)
    stop = threading.Event()
    with DataDir(config.data_dir) as data_dir, contextlib.ExitStack() as opened:
        try:
            driver = _open_radio(config, genesis, member)
            opened.callback(driver.close)
            store = ChainStore(data_dir.path)
            opened.callback(store.close)
            control = ControlServer(data_dir.path)
            opened.callback(control.close)
        except BaseException:
            opened.close()
            data_dir.abandon()
            raise
        actuator = HookActuator(config.hook) if config.hook else LogActuator()
        if isinstance(actuator, HookActuator):
            opened.callback(actuator.close)
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            radio_id = driver.node_num if hasattr(driver, "node_num") else driver.node_id
            node = _node(genesis, identity, driver, radio_id, store, budget, log, actuator, control, stop, data_dir)
            if config.mqtt is not None:
                bridge = MqttBridge(config.mqtt, genesis, control.requests, member=member, log=log)
                opened.callback(bridge.close)
                node.on_event = bridge.on_event
            name = genesis.member(member).name or f"member {member}"
            role = "validator" if node.runtime.core.is_validator else "member"
            log.info(f"node {name} ({role}) of cluster {genesis.name} on {driver.name}; "
                     f"finalized height {node.runtime.core.finalized.height}; airtime {budget.describe()}",
                     event="Start", member=member, role=role, radio=driver.name, budget=budget.describe(),
                     finalized_height=node.runtime.core.finalized.height)
            node.run(node.started + config.seconds)
            log.info("stopped", event="Stop")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


def _open_radio(config: NodeConfig, genesis: Genesis, member: int):
    """The driver for the configured radio, opened and checked against the genesis."""
    if config.host is not None:
        from blockiot.radio.drivers.meshtastic import MeshtasticDriver

        driver = MeshtasticDriver(host=config.host)
        kind = "meshtastic"
    else:
        kind = config.radio or _personality(config.port)
        port = resolve_port(config.port, personality=kind)
        if kind == "e22":
            from blockiot.radio.drivers.e22 import E22Driver

            driver = E22Driver(port, node_id=member + 1)
        else:
            from blockiot.radio.drivers.meshtastic import MeshtasticDriver

            driver = MeshtasticDriver(port)
    try:
        driver.open()
    except RadioUnavailable:
        driver.close()
        raise
    if kind == "meshtastic":
        from blockiot.radio.drivers.meshtastic import MESHTASTIC_REGION

        region = MESHTASTIC_REGION.get(genesis.params.region)
        if driver.region != region:
            driver.close()
            raise UserError(
                f"{driver.name} is set to region {driver.region}, but cluster {genesis.name} runs in "
                f"{genesis.params.region}: set the board's region (meshtastic --port PORT --set lora.region {region})"
            )
        wanted = preset(genesis.params.preset)
        if driver.lora != wanted:
            driver.close()
            raise UserError(
                f"{driver.name} is set to {_describe(driver.lora)}, but cluster {genesis.name} runs "
                f"{preset_display_name(genesis.params.preset)}: every node must use the genesis preset "
                f"(meshtastic --port PORT --set lora.modem_preset {canonical_preset_name(genesis.params.preset)})"
            )
    return driver


def _describe(params: LoRaParams | None) -> str:
    for name in preset_display_names():
        if preset(name) == params:
            return name
    return "no known preset" if params is None else f"SF{params.sf} {params.bw_hz / 1000:g} kHz CR 4/{params.cr}"


def _personality(port: str | None) -> str:
    """What the USB id of `port` says is attached ("meshtastic" when it says nothing)."""
    if port in (None, "auto"):
        return "meshtastic"
    for candidate in discover().openable:
        if candidate.port == port and candidate.personality in ("meshtastic", "e22"):
            return candidate.personality
    return "meshtastic"


def _node(genesis, identity, driver, radio_id, store, budget, log, actuator, control, stop, data_dir) -> RealtimeNode:
    now = time.time()
    answer_bytes = budget.share_bytes(ANSWER_SHARE, genesis.params.slot_seconds, driver.mtu, driver.airtime(driver.mtu))
    ledger, finalized = restore(genesis, store)
    core = NodeCore(
        genesis,
        radio_id=radio_id,
        rng=random.Random(),
        now=now,
        identity=identity,
        params=ConsensusParams.from_genesis(genesis, hop_latency_s=driver.airtime(130) + 0.5,
                                            answer_bytes_per_slot=answer_bytes),
        ledger=ledger,
        finalized=finalized,
        lock=store.lock(),
    )
    link = port_link(driver, budget, node_id=radio_id, rng=random.Random())
    runtime = NodeRuntime(core, link, TransmitQueue(driver.airtime, budget), store=store, actuate=True,
                          last_nonce=data_dir.reserved_nonce(), reserve_nonces=data_dir.reserve_nonce)
    return RealtimeNode(runtime, driver, log=log, actuator=actuator, requests=control.requests, stop=stop)

