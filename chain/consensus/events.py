"""What a `NodeCore` call returns: messages to send, blocks to persist, and events
(frozen dataclasses, so tests compare them)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ledger import AppliedBlock
from .messages import MsgType

# Send priorities, most urgent first (docs/PROTOCOL.md §12).
PRIORITY_BLOCK = 0
PRIORITY_EVIDENCE = 1
PRIORITY_SYNC = 2
PRIORITY_TX = 3


@dataclass(frozen=True)
class Send:
    """A message to put on air. `hop_limit` None: flood with the mesh's hop limit; 0: direct
    neighbours only."""

    payload: bytes
    kind: MsgType
    hop_limit: int | None
    priority: int


@dataclass(frozen=True)
class BlockProposed:
    id: bytes
    parent: bytes
    height: int
    slot: int
    tx_ids: tuple[bytes, ...]
    at: float


@dataclass(frozen=True)
class BlockAccepted:
    id: bytes
    height: int
    slot: int
    at: float


@dataclass(frozen=True)
class Finalized:
    """One newly finalized block (they come in chain order)."""

    id: bytes
    height: int
    slot: int
    at: float


@dataclass(frozen=True)
class Rejected:
    """Input dropped, with a stable `reason` code and a human `detail`."""

    what: str
    reason: str
    detail: str = field(default="", compare=False)


@dataclass(frozen=True)
class Equivocation:
    """The leader of `slot` signed two blocks for it (proved by evidence)."""

    leader: int
    slot: int


@dataclass(frozen=True)
class EvidenceToRecord:
    """This validator floods the evidence of an equivocation: the adapter that signs the
    device's transactions should also submit an EVIDENCE tx carrying it, so that the
    equivocation is recorded on chain (`chain/evidence.py` encoding)."""

    evidence: bytes


Event = BlockProposed | BlockAccepted | Finalized | Rejected | Equivocation | EvidenceToRecord


@dataclass
class Output:
    """The result of one call: keep `lock` (when set) and `persist` (in order) on disk
    first, then send these; and what happened."""

    sends: list[Send] = field(default_factory=list)
    persist: list[AppliedBlock] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    lock: int | None = None
