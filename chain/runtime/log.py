"""The node's log: one line per thing that happened, in plain words by default, or one
JSON object per line (`--log-json`) for machines. Times are local wall time; ids are
the first 8 hex digits; members go by their names.
"""
from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from blockiot.chain.consensus.events import BlockAccepted, BlockProposed, Equivocation, EvidenceToRecord, Finalized, Rejected
from blockiot.chain.genesis import Genesis
from blockiot.radio.link import Dropped

from .actuator import action_name
from .runtime import Execute, Reported


class NodeLog:
    """Writes events to `stream` (stdout by default), plain or as JSON lines."""

    def __init__(self, genesis: Genesis, *, json_lines: bool = False, stream: TextIO | None = None) -> None:
        self.genesis = genesis
        self.json_lines = json_lines
        self.stream = stream if stream is not None else sys.stdout

    def info(self, text: str, **fields) -> None:
        """A line of the runtime's own (start, budget, radio): `text` plain, `fields` in JSON."""
        self._write("Info" if not fields else fields.pop("event", "Info"), text, {"message": text, **fields})

    def event(self, event, now: float) -> None:
        text = self.describe(event, now)
        if text is None:
            return
        fields = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in vars(event).items() if k != "tx_ids"}
        if isinstance(event, Execute):
            fields = {"origin": event.command.origin, "action": action_name(event.command.action),
                      "args": list(event.command.args), "slot": event.command.slot}
        self._write(type(event).__name__, text, fields)

    def describe(self, event, now: float) -> str | None:
        """The plain-words line for an event, or None for events not worth a line."""
        if isinstance(event, BlockProposed):
            return f"slot {event.slot}: proposed block {event.height} ({len(event.tx_ids)} txs) {event.id.hex()[:8]}"
        if isinstance(event, BlockAccepted):
            return f"slot {event.slot}: block {event.height} from {self._leader(event.slot)} {event.id.hex()[:8]}"
        if isinstance(event, Finalized):
            age = now - (self.genesis.genesis_time + event.slot * self.genesis.params.slot_seconds)
            return f"block {event.height} is final (slot {event.slot}, {age:.0f} s after its slot began) {event.id.hex()[:8]}"
        if isinstance(event, Rejected):
            detail = f": {event.detail}" if event.detail else ""
            return f"rejected {event.what}: {event.reason}{detail}"
        if isinstance(event, Equivocation):
            return f"slot {event.slot}: {self._name(event.leader)} signed two blocks (equivocation proved)"
        if isinstance(event, EvidenceToRecord):
            return "recording the equivocation evidence on chain"
        if isinstance(event, Execute):
            command = event.command
            by = "a rule" if command.origin == "rule" else self._name(command.issuer)
            args = " ".join(map(str, command.args))
            return f"executing {action_name(command.action)} {args} (final command from {by}, slot {command.slot})".replace("  ", " ")
        if isinstance(event, Reported):
            verdict = "done" if event.ok else f"FAILED with status {event.status}"
            return f"reported {action_name(event.action)} {verdict}"
        if isinstance(event, Dropped):
            return None  # counted in the status; a lost fragment is the channel's normal
        return None

    def _leader(self, slot: int) -> str:
        return self._name(self.genesis.leader_for_slot(slot))

    def _name(self, index: int) -> str:
        return self.genesis.name_of(index)

    def _write(self, kind: str, text: str, fields: dict) -> None:
        now = time.time()
        if self.json_lines:
            line = json.dumps({"time": round(now, 3), "event": kind, **fields}, default=str)
        else:
            line = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}  {text}"
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            self.stream = open("/dev/null", "w")  # noqa: SIM115 - the reader went away; the node goes on
