"""Regulatory airtime budget: EU868 sub-bands over a sliding hour, US915 dwell, custom fractions."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockiot.radio.dutycycle import REGIONS, REGULATED_REGIONS, DutyCycleBudget
from blockiot.radio.errors import BudgetExceeded, ConfigError


@pytest.mark.parametrize(
    "frequency, sub_band, fraction",
    [
        (869.525e6, "g3", 0.10),  # Meshtastic EU_868 LongFast
        (868.1e6, "g1", 0.01),  # LoRaWAN EU868 default channels
        (866.0e6, "g", 0.01),
        (868.9e6, "g2", 0.001),
        (869.8e6, "g4", 0.01),
        (864.0e6, "863-865", 0.001),
    ],
)
def test_eu868_sub_band_follows_the_frequency(frequency, sub_band, fraction):
    budget = DutyCycleBudget("EU868", frequency_hz=frequency)
    assert budget.sub_band.name == sub_band
    assert budget.fraction == fraction
    assert budget.allowance_s == pytest.approx(fraction * 3600)


def test_eu868_without_frequency_assumes_one_percent():
    budget = DutyCycleBudget("eu_868")
    assert budget.fraction == 0.01 and budget.sub_band is None
    assert "no frequency given" in budget.describe()


def test_frequency_between_sub_bands_is_refused():
    with pytest.raises(ConfigError, match="869.3 MHz is outside every EU868 sub-band"):
        DutyCycleBudget("EU868", frequency_hz=869.3e6)


def test_custom_fraction_may_be_stricter_never_looser():
    assert DutyCycleBudget("EU868", 869.525e6, fraction=0.05).fraction == 0.05
    with pytest.raises(ConfigError, match="exceeds the legal 10.0%"):
        DutyCycleBudget("EU868", 869.525e6, fraction=0.2)
    assert DutyCycleBudget("NONE", fraction=0.25).allowance_s == pytest.approx(900)


def test_unknown_region_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="EU868, US915, NONE"):
        DutyCycleBudget("AU915")


def test_regulated_regions_are_those_with_a_legal_rule():
    """What a genesis may name: every region with a duty cycle or a dwell limit, not NONE."""
    assert REGULATED_REGIONS == ("EU868", "US915")
    assert all(REGIONS[name].regulated for name in REGULATED_REGIONS)
    assert not REGIONS["NONE"].regulated


def test_wait_until_the_oldest_transmission_leaves_the_hour():
    budget = DutyCycleBudget("EU868", frequency_hz=868.1e6)  # 36 s per hour
    budget.record(30.0, now=0.0)
    budget.record(4.0, now=100.0)
    assert budget.used(200.0) == pytest.approx(34.0)
    assert budget.remaining(200.0) == pytest.approx(2.0)
    assert budget.check(2.0, now=200.0) == 0.0
    # 3 s more needs the first 30 s to leave: it ended at 30 s, so it counts until 3630 s.
    assert budget.check(3.0, now=200.0) == pytest.approx(3430.0)
    assert budget.check(3.0, now=3630.0) == 0.0
    assert budget.used(3630.0) == pytest.approx(4.0)


def test_spend_records_only_what_is_allowed():
    budget = DutyCycleBudget("EU868", frequency_hz=868.1e6)
    budget.spend(35.0, now=0.0)
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend(2.0, now=10.0)
    assert refused.value.wait_s == pytest.approx(3625.0)
    assert budget.used(10.0) == pytest.approx(35.0)


def test_frame_longer_than_the_whole_budget_can_never_go():
    budget = DutyCycleBudget("EU868", frequency_hz=868.9e6)  # 0.1 %: 3.6 s per hour
    with pytest.raises(BudgetExceeded) as refused:
        budget.check(4.0, now=0.0)
    assert math.isinf(refused.value.wait_s)
    assert "whole budget" in refused.value.reason


def test_us915_refuses_frames_beyond_the_400_ms_dwell():
    budget = DutyCycleBudget("US915")
    assert budget.check(0.39, now=0.0) == 0.0
    budget.record(0.39, now=0.0)
    assert budget.remaining(1.0) == math.inf
    with pytest.raises(BudgetExceeded, match="dwell") as refused:
        budget.check(0.85, now=0.0)
    assert math.isinf(refused.value.wait_s)
    assert "400 ms dwell limit of US915" in str(refused.value)


def test_memory_stays_bounded_however_many_transmissions():
    budget = DutyCycleBudget("NONE", fraction=1.0)
    for step in range(100_000):  # 5000 s of 10 ms frames every 50 ms
        budget.record(0.01, now=step * 0.05)
        assert len(budget._entries) <= 1001  # merged into window/1000 buckets, old ones pruned
    assert budget.used(100_000 * 0.05) == pytest.approx(3600 / 0.05 * 0.01, rel=0.01)


@settings(max_examples=60, deadline=None)
@given(
    fraction=st.sampled_from([0.001, 0.01, 0.1]),
    requests=st.lists(st.tuples(st.floats(0, 900), st.floats(0.01, 3.0)), max_size=120),
)
def test_sending_only_when_check_allows_never_exceeds_any_window(fraction, requests):
    """Invariant 3: no node exceeds its airtime budget, in any window of an hour."""
    budget = DutyCycleBudget("NONE", fraction=fraction)
    allowance = fraction * 3600
    now, sent = 0.0, []
    for gap, airtime in requests:
        now += gap
        try:
            wait = budget.check(airtime, now)
        except BudgetExceeded:
            assert airtime > allowance
            continue
        if wait:
            assert budget.check(airtime, now + wait) == 0.0
            now += wait
        budget.record(airtime, now)
        sent.append((now, now + airtime))
        now += airtime
    for edge in [start for start, _ in sent] + [end for _, end in sent]:
        for low, high in ((edge, edge + 3600), (edge - 3600, edge)):
            on_air = sum(max(0.0, min(end, high) - max(start, low)) for start, end in sent)
            assert on_air <= allowance + 1e-6


def test_a_share_of_the_budget_in_bytes_per_period():
    budget = DutyCycleBudget("EU868", frequency_hz=869.525e6)  # 10 %
    # 10 % of 10 % of a 30 s slot is 0.3 s: 0.3 / 2.16 s of a full 231 B frame.
    assert budget.share_bytes(0.1, 30.0, 231, 2.16) == int(0.3 / 2.16 * 231)
    assert DutyCycleBudget("EU868", frequency_hz=868.1e6).share_bytes(0.1, 30.0, 231, 2.16) == 3  # 1 %
    assert DutyCycleBudget("US915").share_bytes(0.1, 30.0, 231, 0.4) is None  # no duty cycle there
