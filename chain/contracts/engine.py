"""The contract engine: which rules a transaction or a new slot triggers, and what running them yields.

One execution = one contract reacting to one event: every handler of the contract that the
event triggers runs, in declaration order, under one shared set of Limits. The result is an
Effects value: the commands, state writes and transfers to apply, or an error and nothing
else (all or nothing). The engine never mutates the state it is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from blockiot.chain.contracts.bytecode import EveryTrigger, Program, ReadingTrigger, TransactionTrigger
from blockiot.chain.contracts.vm import (
    ContractHost,
    DeviceCommand,
    Executable,
    Fault,
    Limits,
    Machine,
    StateKey,
    Transfer,
)
from blockiot.chain.contracts.vocabulary import to_vm_fixed
from blockiot.chain.wire import TxKind


@dataclass(frozen=True)
class TxEvent:
    """A transaction that may trigger rules; `value` is in the sensor's wire unit."""

    kind: int
    sender: int
    sensor: int | None = None
    value: int | None = None


@dataclass(frozen=True)
class SlotTick:
    """A block at some slot, following a block at `previous_slot`: schedules due in between run."""

    previous_slot: int


Event = TxEvent | SlotTick


@dataclass(frozen=True)
class Effects:
    """What one execution asks the ledger to do. On failure `error` is set and the rest is empty."""

    commands: tuple[DeviceCommand, ...] = ()
    state_writes: tuple[tuple[StateKey, int], ...] = ()
    transfers: tuple[Transfer, ...] = ()
    error: str | None = None
    error_offset: int | None = None  # code offset of the failing instruction, if one failed
    steps: int = 0
    handlers: tuple[int, ...] = ()   # indices of the handlers that ran

    @property
    def ok(self) -> bool:
        return self.error is None


def initial_state(program: Program) -> dict[StateKey, int]:
    """A freshly deployed contract's state: each scalar at its declared value (zeros are not stored)."""
    return {(slot, 0): value for slot, value in enumerate(program.state_init) if value != 0}


def apply_writes(state: Mapping[StateKey, int], writes) -> dict[StateKey, int]:
    """A new state with the writes applied; writing 0 removes the entry (absent reads as 0)."""
    new = dict(state)
    for key, value in writes:
        if value == 0:
            new.pop(key, None)
        else:
            new[key] = value
    return new


def _due(trigger: EveryTrigger, previous_slot: int, slot: int) -> bool:
    """Whether some slot s in (previous_slot, slot] has s % period == offset."""
    p, o = trigger.period, trigger.offset
    return (slot - o) // p > (previous_slot - o) // p


def matching_handlers(exe: Executable, event: Event, slot: int, host: ContractHost) -> tuple[int, ...]:
    program = exe.program
    matched = []
    for n, handler in enumerate(program.handlers):
        t = handler.trigger
        if isinstance(t, EveryTrigger):
            hit = isinstance(event, SlotTick) and _due(t, event.previous_slot, slot)
        elif not isinstance(event, TxEvent):
            hit = False
        elif isinstance(t, ReadingTrigger):
            hit = event.kind == TxKind.READING and event.sensor == t.sensor
        else:
            hit = isinstance(t, TransactionTrigger) and event.kind == t.kind
        if hit and not isinstance(t, EveryTrigger):
            if t.device is not None:
                hit = event.sender == t.device
            elif t.group is not None:
                hit = event.sender in host.group(program.groups[t.group])
        if hit:
            matched.append(n)
    return tuple(matched)


def execute(exe: Executable, state: Mapping[StateKey, int], event: Event, slot: int, host: ContractHost,
            limits: Limits = Limits()) -> Effects:
    """Run every handler `event` triggers; all their effects, or an error and none."""
    handlers = matching_handlers(exe, event, slot, host)
    if not handlers:
        return Effects()
    tx = None
    if isinstance(event, TxEvent):
        value = 0
        if event.sensor is not None and event.value is not None:
            value = to_vm_fixed(event.sensor, event.value) or 0
        tx = (value, event.sender)
    machine = Machine(exe, state, tx, slot, host, limits)
    try:
        for n in handlers:
            machine.run(exe.program.handlers[n].function)
        writes = machine.finish()
    except Fault as fault:
        return Effects(error=fault.reason, error_offset=fault.offset, steps=machine.steps, handlers=handlers)
    return Effects(tuple(machine.commands), writes, tuple(machine.transfers), None, None, machine.steps, handlers)
