"""The transmit queue: a node's outgoing frames in priority order, let out within its airtime budget.

Sans-IO and never blocking: `push` queues a frame, `pop(now)` hands out the most urgent
frame the `DutyCycleBudget` allows now (recording its airtime) or None, and `ready_at`
says when to ask again. The caller puts the frame on air at once.

Order: priority first (docs/PROTOCOL.md §12: own block, evidence, answers to neighbours,
own transactions), then first in first out. Strict: a frame never overtakes a more
urgent one that waits for budget, so a device's readings cannot spend the airtime its
next block needs.

What does not go out: an answer to a neighbour (priority `PRIORITY_SYNC`) that the budget
cannot pay now is dropped, since a late answer is useless and the neighbour asks again;
a frame that can never fit the budget (longer than a region's dwell limit) is dropped;
when `max_frames` are queued, the newest frame of the least urgent kind makes room. Each
drop is counted by kind in `dropped` (and told to `on_drop`).
"""
from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from blockiot.chain.consensus.events import PRIORITY_SYNC
from blockiot.radio.dutycycle import DutyCycleBudget
from blockiot.radio.errors import BudgetExceeded

MAX_FRAMES = 64


@dataclass(frozen=True)
class Frame:
    """One link frame to put on air. `hop_limit` None: flood with the mesh's hop limit;
    0: direct neighbours only."""

    data: bytes
    hop_limit: int | None
    priority: int
    kind: str


@dataclass(order=True)
class _Entry:
    priority: int
    seq: int
    frame: Frame = field(compare=False)


class TransmitQueue:
    """Outgoing frames by priority, paid from `budget` (None: no airtime rule)."""

    def __init__(self, airtime: Callable[[int], float], budget: DutyCycleBudget | None, *,
                 max_frames: int = MAX_FRAMES, on_drop: Callable[[str], None] | None = None) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.airtime = airtime
        self.budget = budget
        self.max_frames = max_frames
        self.dropped: Counter[str] = Counter()
        self.on_drop = on_drop
        self._heap: list[_Entry] = []
        self._seq = 0
        self._ready_at: float | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, frame: Frame) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Entry(frame.priority, self._seq, frame))
        self._ready_at = None
        if len(self._heap) > self.max_frames:
            victim = max(self._heap)  # least urgent, newest
            self._heap.remove(victim)
            heapq.heapify(self._heap)
            self._count_drop(victim.frame.kind)

    def pop(self, now: float) -> Frame | None:
        """The next frame to send now (its airtime recorded in the budget), or None."""
        while self._heap:
            head = self._heap[0].frame
            if self.budget is None:
                return heapq.heappop(self._heap).frame
            airtime = self.airtime(len(head.data))
            try:
                wait = self.budget.check(airtime, now)
            except BudgetExceeded:  # this region's rules never allow it
                self._drop()
                continue
            if wait <= 0:
                heapq.heappop(self._heap)
                self.budget.record(airtime, now)
                self._ready_at = None
                return head
            if head.priority == PRIORITY_SYNC:  # a late answer is useless
                self._drop()
                continue
            self._ready_at = now + wait
            return None
        return None

    def ready_at(self) -> float | None:
        """When `pop` may hand out a frame: None when empty, 0.0 when it should be asked now."""
        if not self._heap:
            return None
        return 0.0 if self._ready_at is None else self._ready_at

    def _drop(self) -> None:
        self._count_drop(heapq.heappop(self._heap).frame.kind)
        self._ready_at = None

    def _count_drop(self, kind: str) -> None:
        self.dropped[kind] += 1
        if self.on_drop is not None:
            self.on_drop(kind)

    def queued_by_kind(self) -> Counter[str]:
        return Counter(entry.frame.kind for entry in self._heap)
