"""Device commands waiting for their target device, read from a (finalized) ledger state.

A command reaches a device two ways: a COMMAND transaction addressed to it (table
`command`, the latest one per device) or a rule's output (table `contract_command`). The
device's node executes a command once the block holding it is final, then reports back
with a signed COMMAND addressed to itself with the same action and arguments: that
report replaces the `command` entry (issuer = the device) and clears the rule's pending
entry, so a command is executed once, also across restarts.

A running node takes the commands for its device from each block as it becomes final
(`commands_in_block`): the `command` table keeps only a device's latest entry, and a
report can overwrite a command that became final in the same batch of blocks. At start,
`due_commands` finds those final before a restart and not yet reported.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ledger import AppliedBlock
from .state import LedgerState
from .wire import Command, decode_tx


@dataclass(frozen=True)
class DueCommand:
    origin: str  # "tx" (a member's COMMAND) or "rule" (a deployed contract's output)
    issuer: int  # the issuing member; for a rule, its deployer
    slot: int  # slot of the block that issued it
    action: int
    args: tuple[int, ...]

    def report(self, member: int) -> Command:
        """The body of the signed report a device sends once it has executed this command."""
        return Command(member, self.action, self.args)


def due_commands(state: LedgerState, member: int) -> list[DueCommand]:
    """Commands addressed to `member` that it has not reported as executed."""
    due = []
    latest = state.get("command", (member,))
    if latest is not None and latest[0] != member:
        issuer, action, slot, *args = latest
        due.append(DueCommand("tx", issuer, slot, action, tuple(args)))
    pending = state.get("contract_command", (member,))
    if pending is not None:
        deployer, _nonce, slot, action, *args = pending
        due.append(DueCommand("rule", deployer, slot, action, tuple(args)))
    return due


def commands_in_block(applied: AppliedBlock, member: int) -> list[DueCommand]:
    """The commands a finalized block gives `member`: COMMAND txs addressed to it by
    others, and the command a rule set for it in this block."""
    slot = applied.block.header.slot
    due = []
    for raw in applied.block.txs:
        tx = decode_tx(raw)
        if isinstance(tx.body, Command) and tx.body.target == member and tx.sender != member:
            due.append(DueCommand("tx", tx.sender, slot, tx.body.action, tuple(tx.body.args)))
    old, new = applied.diff.changes.get(("contract_command", (member,)), (None, None))
    if new is not None and new != old:
        deployer, _nonce, rule_slot, action, *args = new
        due.append(DueCommand("rule", deployer, rule_slot, action, tuple(args)))
    return due
