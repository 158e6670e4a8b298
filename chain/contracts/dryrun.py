"""Dry runs: one rule against a stream of readings, off chain, with the ledger's order of events.

At each block (one slot): first the schedules due since the previous block run, then each
reading in order is recorded and the rules it triggers run. Effects are applied as the
ledger applies them (state writes, balance transfers); commands are collected.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from blockiot.chain.contracts.errors import ContractError
from blockiot.chain.contracts.engine import Effects, SlotTick, TxEvent, apply_writes, execute, initial_state
from blockiot.chain.contracts.vm import Executable, Limits, StateKey
from blockiot.chain.wire import TxKind


@dataclass
class MemoryHost:
    """A ContractHost over plain dicts; `members` None means every index is a member."""

    readings: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    balances: dict[int, int] = field(default_factory=dict)
    members: frozenset[int] | None = None

    def reading(self, device: int, sensor: int) -> tuple[int, int] | None:
        return self.readings.get((device, sensor))

    def group(self, name: str) -> tuple[int, ...]:
        return self.groups.get(name, ())

    def balance(self, member: int) -> int:
        return self.balances.get(member, 0)

    def is_member(self, index: int) -> bool:
        return index >= 0 and (self.members is None or index in self.members)


@dataclass(frozen=True)
class Outcome:
    """One execution in a dry run: what triggered it and what it did."""

    slot: int
    event: TxEvent | SlotTick
    effects: Effects


class DryRun:
    """Feeds blocks of readings to one rule and keeps its state and the members' balances."""

    def __init__(self, exe: Executable, host: MemoryHost | None = None, limits: Limits = Limits()):
        self.exe = exe
        self.host = host or MemoryHost()
        self.limits = limits
        self.state: dict[StateKey, int] = initial_state(exe.program)
        self.previous_slot: int | None = None

    def _run(self, slot: int, event: TxEvent | SlotTick) -> Outcome | None:
        effects = execute(self.exe, self.state, event, slot, self.host, self.limits)
        if not effects.handlers:
            return None
        self.state = apply_writes(self.state, effects.state_writes)
        for t in effects.transfers:
            self.host.balances[t.payer] = self.host.balance(t.payer) - t.amount
            self.host.balances[t.payee] = self.host.balance(t.payee) + t.amount
        return Outcome(slot, event, effects)

    def block(self, slot: int, readings: list[tuple[int, int, int]]) -> list[Outcome]:
        """Apply a block at `slot` holding readings (device, sensor, value in wire units)."""
        if self.previous_slot is not None and slot <= self.previous_slot:
            raise ContractError(f"slot {slot} does not come after slot {self.previous_slot}")
        previous = slot - 1 if self.previous_slot is None else self.previous_slot
        self.previous_slot = slot
        outcomes = [self._run(slot, SlotTick(previous))]
        for device, sensor, value in readings:
            self.host.readings[(device, sensor)] = (value, slot)
            outcomes.append(self._run(slot, TxEvent(TxKind.READING, device, sensor, value)))
        return [o for o in outcomes if o is not None]
