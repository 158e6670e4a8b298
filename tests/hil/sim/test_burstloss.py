"""The Gilbert-Elliott channel: bursts, the average it promises, repeatability."""
from __future__ import annotations

import random

import pytest

from blockiot.hil.sim.burstloss import GilbertElliott


def test_loss_comes_in_bursts_at_the_promised_average():
    channel = GilbertElliott(good_s=120, bad_s=30, bad_loss=0.9, rng=random.Random(5))
    lost = [channel.drops(t * 0.5) for t in range(400_000)]  # 55 h, one reception every 0.5 s
    assert abs(sum(lost) / len(lost) - channel.mean_loss) < 0.02
    runs = [len(run) for run in "".join("x" if x else "." for x in lost).split(".") if run]
    assert max(runs) > 20 and sum(runs) / len(runs) > 5  # independent 18 % loss gives runs of ~1.2


def test_same_seed_same_losses_and_bad_figures_refused():
    a = GilbertElliott(60, 10, 0.8, random.Random(1))
    b = GilbertElliott(60, 10, 0.8, random.Random(1))
    assert [a.drops(t) for t in range(1000)] == [b.drops(t) for t in range(1000)]
    with pytest.raises(ValueError):
        GilbertElliott(0, 10, 0.5, random.Random(1))
    with pytest.raises(ValueError):
        GilbertElliott(10, 10, 1.5, random.Random(1))
