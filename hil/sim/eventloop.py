"""A minimal discrete-event loop in virtual time: a heap of (time, order, callback).

The field simulator's parts (medium, flood routers, link layers, node cores) are sans-IO
objects that say when they next need attention (`next_deadline`); a heap of callbacks
is the natural driver for them, and cheaper than wrapping each in a simpy process that
has to be interrupted whenever its deadline moves. Deterministic: equal times run in
the order they were scheduled.
"""
from __future__ import annotations

import heapq
import itertools
import math
from typing import Callable


class EventLoop:
    """Virtual time starts at `start`; `schedule` callbacks, `run` them in time order."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def schedule(self, at: float, callback: Callable[[], None]) -> None:
        """Run `callback()` at virtual time `at` (now, if `at` is in the past)."""
        if math.isnan(at):
            raise ValueError("cannot schedule at NaN")
        heapq.heappush(self._heap, (max(at, self.now), next(self._order), callback))

    def run(self, until: float) -> None:
        """Run every callback due up to `until`, then leave the clock at `until`."""
        heap = self._heap
        while heap and heap[0][0] <= until:
            at, _, callback = heapq.heappop(heap)
            self.now = at
            callback()
        self.now = max(self.now, until)

    def __len__(self) -> int:
        return len(self._heap)
