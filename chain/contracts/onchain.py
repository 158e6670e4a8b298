"""Contracts on the ledger: deploying them, the state tables they keep, and running them as blocks apply.

Tables (LedgerState tables, so they are covered by the state root and persisted by the store):

    contract          (deployer, nonce) -> (bytecode,)     a deployed rule; its id is its deploy tx's
                                                           (sender, nonce), unique and known to all
    contract_state    (deployer, nonce) -> (encoded,)      the rule's state (absent while empty)
    balance           (member,)         -> (units,)        the cluster-internal unit (absent = 0)
    contract_command  (target,)         -> (deployer, nonce, slot, action, *args)
                                                           the latest command rules gave a device,
                                                           pending until the device reports it done

Order in a block: first the schedules due since the previous block, then each transaction:
applied, then the rules it triggers. Rules run in id order. A failed execution changes
nothing and does not affect the transaction that triggered it.

A device reports a rule's command done with a signed COMMAND transaction to itself with the
same action and arguments; that clears its pending entry.

A rule is deployed by a validator's CONTRACT_DEPLOY (id: that tx's sender and nonce) or by a
passed DEPLOY_RULE proposal (id: the proposal's, from its switch slot on); a passed
RETIRE_RULE proposal removes it and its state (chain/governance.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from construct import PrefixedArray, Struct, VarInt, ZigZag

from blockiot.chain.contracts.engine import Effects, SlotTick, TxEvent, apply_writes, execute, initial_state
from blockiot.chain.contracts.errors import BytecodeError
from blockiot.chain.contracts.vm import Executable, StateKey, load
from blockiot.chain import governance
from blockiot.chain.errors import DecodeError, EncodeError, InvalidTx
from blockiot.chain.crypto import SIGNATURE_LEN
from blockiot.chain.wire import Command, ContractDeploy, Reading, Tx, TxKind, encode_unsigned
from blockiot.radio.codec import decoding, encoding

if TYPE_CHECKING:
    from blockiot.chain.state import LedgerState

CONTRACT_TABLES = ("contract", "contract_state", "balance", "contract_command")

ContractId = tuple[int, int]

# A rule's state, canonical: entries sorted by (slot, key), no zero values.
_STATE = PrefixedArray(VarInt, Struct("slot" / VarInt, "key" / ZigZag, "value" / ZigZag))


def encode_contract_state(state) -> bytes:
    with encoding("contract state", EncodeError):
        return _STATE.build([{"slot": s, "key": k, "value": v} for (s, k), v in sorted(state.items())])


def decode_contract_state(raw: bytes) -> dict[StateKey, int]:
    with decoding("contract state", DecodeError):
        state = {(e.slot, e.key): e.value for e in _STATE.parse(raw)}
    if 0 in state.values() or encode_contract_state(state) != bytes(raw):
        raise DecodeError("contract state is not in canonical encoding")
    return state


class LedgerHost:
    """The ContractHost view of a LedgerState at the slot being applied (`slot`, set by the
    runtime): latest readings, the registry's groups and members, balances."""

    def __init__(self, ledger: LedgerState):
        self.ledger = ledger
        self.slot = 0
        self._groups: dict[str, tuple[int, ...]] = {}  # of the genesis, which never changes

    def reading(self, device: int, sensor: int) -> tuple[int, int] | None:
        return self.ledger.get("reading", (device, sensor))

    def group(self, name: str) -> tuple[int, ...]:
        if self.ledger.tables["member"]:  # governance changed the registry
            return governance.group_at(self.ledger, name, self.slot)
        members = self._groups.get(name)
        if members is None:
            members = self._groups[name] = self.ledger.genesis.group(name)
        return members

    def balance(self, member: int) -> int:
        return self.ledger.get("balance", (member,), (0,))[0]

    def is_member(self, index: int) -> bool:
        return governance.member_at(self.ledger, index, self.slot) is not None


def apply_deploy(ledger: LedgerState, tx: Tx, slot: int) -> None:
    """TX handler of CONTRACT_DEPLOY: a validator deploys checked bytecode at once (a
    DEPLOY_RULE proposal deploys it by vote)."""
    if tx.sender not in governance.validators_at(ledger, slot):
        raise InvalidTx(f"sender {tx.sender} is not a validator and cannot deploy rules")
    try:
        ledger.contracts.install((tx.sender, tx.nonce), bytes(tx.body.code))
    except BytecodeError as exc:
        raise InvalidTx(f"rule bytecode refused: {exc}") from None


def deploy_tx_bytes(code: bytes, sender: int = 0, nonce: int = 1) -> int:
    """Size on air of the signed transaction deploying `code`; EncodeError if over MAX_TX_BYTES."""
    return len(encode_unsigned(TxKind.CONTRACT_DEPLOY, sender, nonce, ContractDeploy(code))) + SIGNATURE_LEN


def pending_commands(ledger: LedgerState) -> dict[int, tuple[ContractId, int, int, tuple[int, ...]]]:
    """target -> (contract id, slot issued, action, args) of every command awaiting its device."""
    return {target: ((v[0], v[1]), v[2], v[3], tuple(v[4:]))
            for (target,), v in sorted(ledger.tables["contract_command"].items())}


class ContractRuntime:
    """Runs a LedgerState's deployed rules; caches decoded bytecode and state, keyed by their bytes."""

    def __init__(self, ledger: LedgerState):
        self.ledger = ledger
        self.host = LedgerHost(ledger)
        self._executables: dict[bytes, Executable] = {}
        self._states: dict[ContractId, tuple[bytes, dict[StateKey, int]]] = {}

    def _executable(self, code: bytes) -> Executable:
        exe = self._executables.get(code)
        if exe is None:
            exe = self._executables[code] = load(code)
        return exe

    def contract_state(self, cid: ContractId) -> dict[StateKey, int]:
        row = self.ledger.get("contract_state", cid)
        raw = row[0] if row else b""
        cached = self._states.get(cid)
        if cached is None or cached[0] != raw:
            cached = self._states[cid] = (raw, decode_contract_state(raw) if raw else {})
        return cached[1]

    def install(self, cid: ContractId, code: bytes) -> None:
        """Deploy rule `code` under id `cid`, with its initial state; BytecodeError (and
        nothing written) if the bytecode does not check."""
        state = initial_state(self._executable(code).program)
        self.ledger.set("contract", cid, (code,))
        if state:
            self.ledger.set("contract_state", cid, (encode_contract_state(state),))

    def retire(self, cid: ContractId) -> None:
        """Remove rule `cid` and its state (nothing if it is not deployed)."""
        self.ledger.set("contract", cid, None)
        self.ledger.set("contract_state", cid, None)

    def on_block(self, slot: int, previous_slot: int) -> None:
        """Run the schedules due in (previous_slot, slot]; call first when applying a block."""
        self._run_all(SlotTick(previous_slot), slot)

    def on_tx(self, tx: Tx, slot: int) -> None:
        """Run the rules an applied transaction triggers; a device's report clears its pending command."""
        body = tx.body
        if isinstance(body, Command) and body.target == tx.sender:
            pending = self.ledger.get("contract_command", (tx.sender,))
            if pending is not None and (pending[3], tuple(pending[4:])) == (body.action, tuple(body.args)):
                self.ledger.set("contract_command", (tx.sender,), None)
        if isinstance(body, Reading):
            event = TxEvent(tx.kind, tx.sender, body.sensor, body.value)
        else:
            event = TxEvent(tx.kind, tx.sender)
        self._run_all(event, slot)

    def _run_all(self, event: TxEvent | SlotTick, slot: int) -> None:
        self.host.slot = slot
        for cid, (code,) in sorted(self.ledger.tables["contract"].items()):
            state = self.contract_state(cid)
            effects = execute(self._executable(code), state, event, slot, self.host)
            if effects.ok and effects.handlers:
                self._apply(cid, state, effects, slot)

    def _apply(self, cid: ContractId, state: dict[StateKey, int], effects: Effects, slot: int) -> None:
        if effects.state_writes:
            new = apply_writes(state, effects.state_writes)
            self.ledger.set("contract_state", cid, (encode_contract_state(new),) if new else None)
        for t in effects.transfers:
            for member, change in ((t.payer, -t.amount), (t.payee, t.amount)):
                balance = self.host.balance(member) + change
                self.ledger.set("balance", (member,), (balance,) if balance else None)
        for c in effects.commands:
            self.ledger.set("contract_command", (c.target,), (*cid, slot, c.action, *c.args))
