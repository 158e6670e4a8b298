"""The slot clock of one node: its local clock plus an offset that a node without a time
source learns from valid blocks (docs/PROTOCOL.md §2.3). Pure: local times come in as
arguments."""
from __future__ import annotations

from collections import OrderedDict
from statistics import median

from .params import ConsensusParams


class SlotClock:
    """Local time -> slot-clock time. With `time_source` the offset stays 0; without, it is
    the median of the last `n` samples, one per leader, and the clock is `synced` once a
    first sample came in."""

    def __init__(self, params: ConsensusParams, *, time_source: bool = True) -> None:
        self.params = params
        self.time_source = time_source
        self.offset = 0.0
        self._samples: OrderedDict[int, float] = OrderedDict()  # leader -> latest sample

    @property
    def synced(self) -> bool:
        return self.time_source or bool(self._samples)

    def time(self, local: float) -> float:
        """Slot-clock time at local time `local`."""
        return local + self.offset

    def local(self, clock_time: float) -> float:
        """The local time at which the slot clock reads `clock_time`."""
        return clock_time - self.offset

    def slot(self, local: float) -> int:
        return self.params.slot_at(self.time(local))

    def is_future(self, slot: int, local: float) -> bool:
        """True when `slot` starts beyond the drift allowance after now (a synced clock only)."""
        if not self.synced:
            return False
        return self.params.slot_start(slot) > self.time(local) + self.params.drift

    def observe(self, slot: int, leader: int, arrival_local: float, hops: int) -> None:
        """A fresh block of `slot` by `leader` arrived at `arrival_local`, `hops` relays away.

        Its leader sent it at the start of the slot, so it should have arrived
        `(hops + 1) * hop_latency_s` later; the difference is a sample of our offset.
        """
        if self.time_source:
            return
        expected = self.params.slot_start(slot) + (hops + 1) * self.params.hop_latency_s
        self._samples.pop(leader, None)
        self._samples[leader] = expected - arrival_local
        while len(self._samples) > self.params.n:
            self._samples.popitem(last=False)
        self.offset = median(self._samples.values())
