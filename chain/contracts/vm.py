"""The contract VM: a deterministic, metered stack machine over 64-bit integers.

Every instruction is charged steps (STEP_COSTS); frames, new state entries and outputs are
charged memory bytes; the operand stack and call depth have their own bounds. Exceeding
any limit, dividing by zero, overflowing 64 bits or executing malformed code raises Fault,
which the engine turns into a failed execution with no effects. The machine never raises
anything else for anything a contract does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

from blockiot.chain.contracts import arith
from blockiot.chain.contracts.arith import INT_MAX, INT_MIN, ArithmeticFault
from blockiot.chain.contracts.bytecode import JUMPS, EventField, Op, Program, decode_instructions, decode_program
from blockiot.chain.contracts.vocabulary import ACTIONS, to_vm_fixed
from blockiot.chain.wire import MAX_COMMAND_ARGS

StateKey = tuple[int, int]  # (state slot, key); a scalar slot uses key 0

_ARG_MIN, _ARG_MAX = -(2**31), 2**31 - 1  # a command argument's range on the wire
_FRAME_BYTES = 16
_CELL_BYTES = 8
_ENTRY_BYTES = 24

# Steps charged per opcode: 1 unless listed. Host look-ups and effects cost more.
STEP_COSTS: dict[Op, int] = {
    Op.SLOAD: 2, Op.SSTORE: 5, Op.TLOAD: 3, Op.TSTORE: 6, Op.CALL: 5,
    Op.LATEST: 10, Op.SEEN: 10, Op.INGROUP: 3, Op.GROUPLEN: 2, Op.GROUPAT: 2, Op.BALANCE: 5,
    Op.COMMAND: 20, Op.TRANSFER: 20, Op.FORGROUP: 2, Op.FMUL: 2, Op.FDIV: 2, Op.DIV: 2, Op.MOD: 2,
}
_COST = tuple(STEP_COSTS.get(Op(i), 1) if i in Op._value2member_map_ else 1 for i in range(256))


@dataclass(frozen=True)
class Limits:
    """What one execution (one trigger of one contract) may use."""

    steps: int = 10_000
    stack: int = 64            # operand stack cells
    call_depth: int = 8        # nested helper calls
    memory_bytes: int = 4096   # frames + new state entries + outputs
    state_entries: int = 256   # entries the contract's state may hold afterwards
    commands: int = 8
    transfers: int = 8


class Fault(Exception):
    """A contract execution failed; `offset` is the code offset of the failing instruction."""

    def __init__(self, reason: str, offset: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class ContractHost(Protocol):
    """The read-only view of the ledger a contract may consult."""

    def reading(self, device: int, sensor: int) -> tuple[int, int] | None:
        """Latest (value in the sensor's wire unit, slot) of a device's sensor, or None."""

    def group(self, name: str) -> tuple[int, ...]:
        """Member indices of a named group, in registry order (empty if none)."""

    def balance(self, member: int) -> int:
        """A member's balance in the cluster-internal unit."""

    def is_member(self, index: int) -> bool:
        """Whether an index names a member of the cluster."""


@dataclass(frozen=True)
class DeviceCommand:
    target: int
    action: int
    args: tuple[int, ...] = ()


@dataclass(frozen=True)
class Transfer:
    payer: int
    payee: int
    amount: int


@dataclass(frozen=True)
class Executable:
    """A decoded program ready to run: instructions as parallel tuples, jumps as indices."""

    program: Program
    ops: tuple[int, ...]
    arg0: tuple[int, ...]
    arg1: tuple[int, ...]
    arg2: tuple[int, ...]
    offsets: tuple[int, ...]  # byte offset of each instruction
    entries: tuple[int, ...]  # first instruction of each function


def load(raw: bytes) -> Executable:
    """Decode and validate bytecode (BytecodeError if malformed) and prepare it to run."""
    return prepare(decode_program(raw))


def prepare(program: Program) -> Executable:
    instrs = decode_instructions(program.code)
    index = {i.offset: n for n, i in enumerate(instrs)}
    arg0 = tuple(index[i.args[0]] if i.op in JUMPS else (i.args[0] if i.args else 0) for i in instrs)
    arg1 = tuple(i.args[1] if len(i.args) > 1 else 0 for i in instrs)
    arg2 = tuple(i.args[2] if len(i.args) > 2 else 0 for i in instrs)
    return Executable(
        program=program,
        ops=tuple(int(i.op) for i in instrs),
        arg0=arg0,
        arg1=arg1,
        arg2=arg2,
        offsets=tuple(i.offset for i in instrs),
        entries=tuple(index[f.entry] for f in program.functions),
    )


_ACTION_CODES = frozenset(ACTIONS.values())
# Opcodes as plain ints: the interpreter loop compares against these.
(RET, RETV, PUSH, POP, LOAD, STORE, SLOAD, SSTORE, TLOAD, TSTORE, ADD, SUB, MUL, DIV, MOD, NEG, FMUL, FDIV,
 MIN, MAX, ABS, EQ, GE, NOT, JMP, JZ, CALL, EVENT, SLOT, LATEST, SEEN, INGROUP, GROUPLEN, GROUPAT, BALANCE,
 COMMAND, TRANSFER, FORGROUP) = (int(o) for o in (
    Op.RET, Op.RETV, Op.PUSH, Op.POP, Op.LOAD, Op.STORE, Op.SLOAD, Op.SSTORE, Op.TLOAD, Op.TSTORE, Op.ADD,
    Op.SUB, Op.MUL, Op.DIV, Op.MOD, Op.NEG, Op.FMUL, Op.FDIV, Op.MIN, Op.MAX, Op.ABS, Op.EQ, Op.GE, Op.NOT,
    Op.JMP, Op.JZ, Op.CALL, Op.EVENT, Op.SLOT, Op.LATEST, Op.SEEN, Op.INGROUP, Op.GROUPLEN, Op.GROUPAT,
    Op.BALANCE, Op.COMMAND, Op.TRANSFER, Op.FORGROUP))
_COMPARISONS = {
    int(Op.EQ): lambda x, y: x == y, int(Op.NE): lambda x, y: x != y, int(Op.LT): lambda x, y: x < y,
    int(Op.LE): lambda x, y: x <= y, int(Op.GT): lambda x, y: x > y, int(Op.GE): lambda x, y: x >= y,
}


class Machine:
    """One execution: runs a contract's handlers against its state, collecting effects.

    `event` is (value in VM fixed point, sender) of the triggering transaction, or None for a
    slot schedule. Reads see this execution's own earlier writes and transfers.
    """

    def __init__(self, exe: Executable, state: Mapping[StateKey, int], event: tuple[int, int] | None,
                 slot: int, host: ContractHost, limits: Limits):
        self.exe = exe
        self.state = state
        self.event = event
        self.slot = slot
        self.host = host
        self.limits = limits
        self.writes: dict[StateKey, int] = {}
        self.commands: list[DeviceCommand] = []
        self.transfers: list[Transfer] = []
        self.deltas: dict[int, int] = {}
        self.groups: dict[int, tuple[int, ...]] = {}
        self.steps = 0
        self.memory = 0

    # --- helpers the main loop calls for the rarer instructions ---------------------------

    def _charge_memory(self, nbytes: int) -> None:
        self.memory += nbytes
        if self.memory > self.limits.memory_bytes:
            raise Fault(f"memory limit of {self.limits.memory_bytes} bytes exceeded")

    def _read(self, key: StateKey) -> int:
        writes = self.writes
        return writes[key] if key in writes else self.state.get(key, 0)

    def _write(self, key: StateKey, value: int) -> None:
        if key not in self.writes:
            self._charge_memory(_ENTRY_BYTES)
        self.writes[key] = value

    def _group(self, index: int) -> tuple[int, ...]:
        members = self.groups.get(index)
        if members is None:
            members = tuple(self.host.group(self.exe.program.groups[index]))
            self.steps += len(members)
            self.groups[index] = members
        return members

    def _member(self, index: int, what: str) -> None:
        if not (0 <= index and self.host.is_member(index)):
            raise Fault(f"{what} {index} is not a member of the cluster")

    def _latest(self, device: int, sensor: int, default: int | None) -> int:
        found = self.host.reading(device, sensor) if device >= 0 else None
        if default is None:
            return -1 if found is None else found[1]
        if found is None:
            return default
        value = to_vm_fixed(sensor, found[0])
        if value is None:
            raise Fault(f"unknown sensor {sensor}")
        return value

    def _command(self, target: int, action: int, args: list[int]) -> None:
        if action not in _ACTION_CODES:
            raise Fault(f"unknown command action {action}")
        if len(args) > MAX_COMMAND_ARGS or any(not _ARG_MIN <= a <= _ARG_MAX for a in args):
            raise Fault(f"a command takes at most {MAX_COMMAND_ARGS} arguments of 32 bits")
        self._member(target, "command target")
        if len(self.commands) >= self.limits.commands:
            raise Fault(f"more than {self.limits.commands} commands in one execution")
        self._charge_memory(_ENTRY_BYTES + _CELL_BYTES * len(args))
        self.commands.append(DeviceCommand(target, action, tuple(args)))

    def _transfer(self, payer: int, payee: int, amount: int) -> None:
        if amount < 0:
            raise Fault(f"transfer of a negative amount ({amount})")
        self._member(payer, "payer")
        self._member(payee, "payee")
        if amount == 0 or payer == payee:
            return
        if len(self.transfers) >= self.limits.transfers:
            raise Fault(f"more than {self.limits.transfers} transfers in one execution")
        self._charge_memory(_ENTRY_BYTES)
        for member, change in ((payer, -amount), (payee, amount)):
            delta = arith.checked(self.deltas.get(member, 0) + change)
            arith.checked(self.host.balance(member) + delta)
            self.deltas[member] = delta
        self.transfers.append(Transfer(payer, payee, amount))

    # --- the interpreter ------------------------------------------------------------------

    def run(self, function: int) -> None:
        """Run one function (a rule's handler) to its end; raises Fault on any failure."""
        exe, limits = self.exe, self.limits
        ops, arg0, arg1, n_code = exe.ops, exe.arg0, exe.arg1, len(exe.ops)
        max_steps, max_stack, cost, compare = limits.steps, limits.stack, _COST, _COMPARISONS
        fn = exe.program.functions[function]
        frame_bytes = _FRAME_BYTES + _CELL_BYTES * fn.locals
        self._charge_memory(frame_bytes)
        local = [0] * fn.locals
        frames: list[tuple[int, list[int], int]] = []
        stack: list[int] = []
        push, pop = stack.append, stack.pop
        pc = exe.entries[function]
        steps = self.steps
        try:
            while True:
                if pc >= n_code:
                    raise Fault("execution ran past the end of the code")
                op = ops[pc]
                a = arg0[pc]
                pc += 1
                steps += cost[op]
                if steps > max_steps:
                    raise Fault(f"step limit of {max_steps} exceeded")
                if op == LOAD:
                    push(local[a])
                elif op == PUSH:
                    push(a)
                elif op == STORE:
                    local[a] = pop()
                elif op == JZ:
                    if pop() == 0:
                        pc = a
                elif op == JMP:
                    pc = a
                elif op == SLOAD:
                    push(self._read((a, 0)))
                elif op == SSTORE:
                    self._write((a, 0), pop())
                elif op == TLOAD:
                    push(self._read((a, pop())))
                elif op == TSTORE:
                    value = pop()
                    self._write((a, pop()), value)
                elif EQ <= op <= GE:
                    y = pop()
                    push(int(compare[op](pop(), y)))
                elif op == ADD or op == SUB:
                    y = pop()
                    x = pop()
                    r = x + y if op == ADD else x - y
                    if r > INT_MAX or r < INT_MIN:
                        raise ArithmeticFault("integer overflow (beyond 64 bits)")
                    push(r)
                elif op == NOT:
                    push(int(pop() == 0))
                elif op == EVENT:
                    if self.event is None:
                        raise Fault("this rule has no triggering transaction")
                    push(self.event[0] if a == EventField.VALUE else self.event[1])
                elif op == SLOT:
                    push(self.slot)
                elif op == RET or op == RETV:
                    value = pop() if op == RETV else None
                    self.memory -= frame_bytes
                    if not frames:
                        break
                    pc, local, frame_bytes = frames.pop()
                    if value is not None:
                        push(value)
                elif op == CALL:
                    if len(frames) >= limits.call_depth:
                        raise Fault(f"calls nested deeper than {limits.call_depth}")
                    callee = exe.program.functions[a]
                    frames.append((pc, local, frame_bytes))
                    frame_bytes = _FRAME_BYTES + _CELL_BYTES * callee.locals
                    self._charge_memory(frame_bytes)
                    n = callee.params
                    if len(stack) < n:
                        raise IndexError
                    local = stack[len(stack) - n:] + [0] * (callee.locals - n)
                    del stack[len(stack) - n:]
                    pc = exe.entries[a]
                elif op == FORGROUP:
                    self.steps = steps
                    members = self._group(exe.arg1[pc - 1])
                    steps = self.steps
                    counter = exe.arg2[pc - 1]
                    i = local[counter]
                    if 0 <= i < len(members):
                        push(members[i])
                        local[counter] = i + 1
                    else:
                        pc = a
                elif op == POP:
                    pop()
                else:
                    self.steps = steps
                    self._rare(op, a, arg1[pc - 1], stack)
                    steps = self.steps
                if len(stack) > max_stack:
                    raise Fault(f"operand stack deeper than {max_stack}")
        except Fault as fault:
            fault.offset = exe.offsets[pc - 1]
            raise
        except ArithmeticFault as exc:
            raise Fault(str(exc), exe.offsets[pc - 1]) from None
        except IndexError:
            raise Fault("stack underflow or local out of range", exe.offsets[pc - 1]) from None
        finally:
            self.steps = steps

    def _rare(self, op: int, a: int, b: int, stack: list[int]) -> None:
        push, pop = stack.append, stack.pop
        if op in (MUL, DIV, MOD, FMUL, FDIV, MIN, MAX):
            y = pop()
            x = pop()
            if op == MUL:
                push(arith.checked(x * y))
            elif op == DIV:
                push(arith.div(x, y))
            elif op == MOD:
                push(arith.mod(x, y))
            elif op == FMUL:
                push(arith.fmul(x, y))
            elif op == FDIV:
                push(arith.fdiv(x, y))
            else:
                push(min(x, y) if op == MIN else max(x, y))
        elif op == NEG:
            push(arith.checked(-pop()))
        elif op == ABS:
            push(arith.checked(abs(pop())))
        elif op == LATEST:
            default = pop()
            sensor = pop()
            push(self._latest(pop(), sensor, default))
        elif op == SEEN:
            sensor = pop()
            push(self._latest(pop(), sensor, None))
        elif op == INGROUP:
            push(int(pop() in self._group(a)))
        elif op == GROUPLEN:
            push(len(self._group(a)))
        elif op == GROUPAT:
            members, i = self._group(a), pop()
            if not 0 <= i < len(members):
                raise Fault(f"group member {i} does not exist")
            push(members[i])
        elif op == BALANCE:
            member = pop()
            self._member(member, "balance of")
            push(arith.checked(self.host.balance(member) + self.deltas.get(member, 0)))
        elif op == COMMAND:
            if len(stack) < b + 1:
                raise IndexError
            args = stack[len(stack) - b:]
            del stack[len(stack) - b:]
            self._command(pop(), a, args)
        elif op == TRANSFER:
            amount = pop()
            payee = pop()
            self._transfer(pop(), payee, amount)
        else:  # pragma: no cover - decode_instructions admits only known opcodes
            raise Fault(f"opcode {op} cannot run here")

    def finish(self) -> tuple[tuple[StateKey, int], ...]:
        """The state writes that change something, after checking the state-size limit."""
        changed = tuple(sorted((k, v) for k, v in self.writes.items() if self.state.get(k, 0) != v))
        entries = len(self.state) + sum((k not in self.state) - (v == 0) for k, v in changed)
        if entries > self.limits.state_entries:
            raise Fault(f"contract state would hold {entries} entries, the limit is {self.limits.state_entries}")
        return changed
