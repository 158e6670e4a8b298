"""`blockiot node`: run one cluster node on a Meshtastic radio: the consensus core
(chain/consensus) behind a `RadioPort` (link layer and airtime budget), the chain store
for finalized blocks, and the wall clock. The thin IO adapter around the sans-IO core.
"""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from blockiot.chain.commands import due_commands
from blockiot.chain.consensus.events import EvidenceToRecord, Output
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.params import ANSWER_SHARE, ConsensusParams
from blockiot.chain.consensus.recovery import restore
from blockiot.chain.crypto import Identity
from blockiot.chain.genesis import load_genesis_toml
from blockiot.chain.state import LedgerState
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import Action, EquivocationProof, Reading, Sensor, sign_tx
from blockiot.radio.discovery import resolve_port
from blockiot.radio.dutycycle import REGIONS, DutyCycleBudget
from blockiot.radio.port import RadioPort
from blockiot.tools.cli import UserError

POLL_S = 0.2  # longest wait for the radio when the core has nothing due


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "node",
        help="run a cluster node on a Meshtastic radio",
        description="Run one node: consensus (slots, blocks, finality, catch-up) over a Meshtastic "
        "radio, finalized blocks kept in the chain store of --data-dir. A member that is a "
        "validator signs blocks in its slots.",
    )
    parser.add_argument("--genesis", type=Path, required=True, help="the cluster's genesis TOML")
    parser.add_argument("--key", type=Path, required=True, help="this device's key file")
    parser.add_argument("--data-dir", type=Path, required=True, help="chain store directory")
    radio = parser.add_mutually_exclusive_group(required=True)
    radio.add_argument("--port", help="the radio's serial port, or `auto` for the one attached Meshtastic board")
    radio.add_argument("--host", help="a meshtasticd host[:port] instead of a serial port")
    parser.add_argument("--seconds", type=float, default=math.inf, help="stop after this long (default: run until ^C)")
    parser.add_argument("--reading-every", type=float, help="send a sensor reading every this many seconds")
    parser.add_argument("--events", action="store_true", help="print every event as a JSON line")
    parser.add_argument("--frequency", type=float, help="carrier in Hz, for the duty-cycle sub-band")
    parser.set_defaults(func=run)


def run(args) -> int:
    from blockiot.radio.drivers.meshtastic import MeshtasticDriver

    genesis = load_genesis_toml(args.genesis)
    identity = Identity.load(args.key)
    member = genesis.index_of(identity.public_key)
    if member is None:
        raise UserError(f"{args.key} is not a member of cluster {genesis.name}")
    if genesis.params.region not in REGIONS:
        raise UserError(f"no airtime rules known for region {genesis.params.region}; known: {', '.join(REGIONS)}")
    serial_port = resolve_port(args.port, personality="meshtastic") if args.port else None
    store = ChainStore(args.data_dir)
    driver = MeshtasticDriver(serial_port, host=args.host)
    try:
        driver.open()
        budget = DutyCycleBudget(genesis.params.region, frequency_hz=args.frequency)
        port = RadioPort(driver, budget=budget)
        answer_bytes = budget.share_bytes(ANSWER_SHARE, genesis.params.slot_seconds, driver.mtu, driver.airtime(driver.mtu))
        ledger, finalized = restore(genesis, store)
        now = time.time()
        core = NodeCore(
            genesis,
            radio_id=driver.node_num,
            rng=random.Random(),
            now=now,
            identity=identity,
            params=ConsensusParams.from_genesis(genesis, hop_latency_s=driver.airtime(130) + 0.5, answer_bytes_per_slot=answer_bytes),
            ledger=ledger,
            finalized=finalized,
            lock=store.lock(),
        )
        runner = NodeRunner(core, port, store, member=member, reading_every=args.reading_every, events=args.events)
        runner.run(now + args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        driver.close()
        store.close()
    return 0


class NodeRunner:
    """Moves messages between the core and the radio, persists what the core finalized, and
    executes the commands addressed to this device once they are final (reporting each back
    with a signed tx)."""

    def __init__(self, core: NodeCore, port: RadioPort, store: ChainStore, *, member: int,
                 reading_every: float | None, events: bool, clock=time.time) -> None:
        self.core = core
        self.port = port
        self.store = store
        self.member = member
        self.reading_every = reading_every
        self.events = events
        self.clock = clock
        self._next_reading = clock() + (reading_every or math.inf)
        self.final = LedgerState(core.genesis)  # the finalized state: what the store holds
        store.load_into(self.final)
        self._executed: set = set()
        self._last_nonce = 0

    def run(self, until: float) -> None:
        while (now := self.clock()) < until:
            due = self.core.next_deadline()
            if due is not None and due <= now:
                self._apply(self.core.tick(now))
            if now >= self._next_reading:
                self._next_reading = now + self.reading_every
                self._apply(self.core.submit(self._reading(now), now))
            due = self.core.next_deadline()
            wait = POLL_S if due is None else min(POLL_S, max(due - self.clock(), 0.0))
            message = self.port.receive_message(max(wait, 0.005))
            if message is not None:
                sender, payload = message
                # The Meshtastic driver does not report hops yet: every sender counts as a neighbour.
                self._apply(self.core.receive(payload, self.clock(), origin=sender, hops=0))

    def _reading(self, now: float) -> bytes:
        return self._sign(now, Reading(Sensor.MOISTURE, int(now) % 1000))

    def _sign(self, now: float, body) -> bytes:
        genesis = self.core.genesis
        nonce = max(1, int((now - genesis.genesis_time) * 1000))  # increasing across restarts
        self._last_nonce = nonce = max(nonce, self._last_nonce + 1)
        return sign_tx(self.core.identity, genesis.chain_id, self.member, nonce, body).raw

    def _execute_due_commands(self) -> None:
        """Execute (here: announce) each final command addressed to this device, once, and
        submit the signed report that marks it done on chain."""
        for command in due_commands(self.final, self.member):
            if command in self._executed:
                continue
            self._executed.add(command)
            action = Action(command.action).name.lower()  # decode_tx admits known actions only
            print(json.dumps({"event": "Execute", "origin": command.origin, "issuer": command.issuer,
                              "slot": command.slot, "action": action, "args": list(command.args)}), flush=True)
            now = self.clock()
            self._apply(self.core.submit(self._sign(now, command.report(self.member)), now))

    def _apply(self, out: Output) -> None:
        if out.lock is not None:
            self.store.set_lock(out.lock)
        for applied in out.persist:
            self.store.append(applied)
            self.final.redo(applied.diff)
        if out.persist:
            self._execute_due_commands()
        for event in out.events:
            if isinstance(event, EvidenceToRecord):  # record the equivocation on chain
                now = self.clock()
                self._apply(self.core.submit(self._sign(now, EquivocationProof(event.evidence)), now))
        for send in out.sends:
            self.port.send_message(send.payload)
        if self.events:
            for event in out.events:
                fields = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in event.__dict__.items()}
                fields.pop("tx_ids", None)
                print(json.dumps({"event": type(event).__name__, **fields}), flush=True)
