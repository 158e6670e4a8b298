"""Bursty loss at one receiver: a Gilbert-Elliott channel in continuous time.

The receiver alternates between a good state (no extra loss) and a bad one (a fade,
interference: each reception lost with probability `bad_loss`); each state lasts an
exponentially distributed time with mean `good_s` resp. `bad_s`. Seeded, and driven by
the (non-decreasing) times at which receptions are asked about, so a run is repeatable.

    channel = GilbertElliott(good_s=120, bad_s=30, bad_loss=0.9, rng=random.Random(1))
    if channel.drops(t): ...

Average loss: `bad_loss * bad_s / (good_s + bad_s)` (18 % with the figures above), in
bursts of about `bad_s` seconds: what a lossy LoRa link looks like, unlike independent
per-packet loss.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class GilbertElliott:
    good_s: float
    bad_s: float
    bad_loss: float
    rng: random.Random
    bad: bool = False
    _until: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not (self.good_s > 0 and self.bad_s > 0 and 0.0 <= self.bad_loss <= 1.0):
            raise ValueError("good_s and bad_s must be positive and bad_loss within [0, 1]")

    @property
    def mean_loss(self) -> float:
        return self.bad_loss * self.bad_s / (self.good_s + self.bad_s)

    def drops(self, t: float) -> bool:
        """Whether a reception at time `t` is lost to the channel's state."""
        if self._until is None:
            self._until = t + self.rng.expovariate(1.0 / self.good_s)
        while self._until <= t:
            self.bad = not self.bad
            self._until += self.rng.expovariate(1.0 / (self.bad_s if self.bad else self.good_s))
        return self.bad and self.rng.random() < self.bad_loss
