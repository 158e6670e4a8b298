"""The airtime budget at its edges (issue 13): a wait shorter than a second still refuses a
send, airtime that is no number of seconds is refused, the dwell limit itself is allowed,
budgets and windows outside their ranges are refused, and the sliding window never lets a
transmission leave early (merged, recorded late, or freed several at a time)."""
from __future__ import annotations

import math

import pytest

from blockiot.radio.dutycycle import DutyCycleBudget, lookup_region
from blockiot.radio.errors import BudgetExceeded, ConfigError


def ten_seconds_per_100() -> DutyCycleBudget:
    """A self-imposed budget of 10 s of airtime in any 100 s."""
    return DutyCycleBudget("NONE", fraction=0.1, window_s=100.0)


def test_a_send_half_a_second_early_is_refused_and_not_booked():
    budget = ten_seconds_per_100()
    budget.spend(10.0, now=0.0)  # on air 0..10 s: counts until 110 s
    assert budget.check(1.0, now=109.5) == pytest.approx(0.5)
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend(1.0, now=109.5)
    assert refused.value.wait_s == pytest.approx(0.5)
    assert "10.00 s of the 10.00 s budget used" in refused.value.reason
    assert budget.used(109.5) == pytest.approx(10.0)
    budget.spend(1.0, now=110.0)
    assert budget.used(110.0) == pytest.approx(1.0)


@pytest.mark.parametrize("airtime", [-0.1, math.nan, math.inf, -math.inf])
def test_airtime_that_is_no_number_of_seconds_is_refused(airtime):
    budget = ten_seconds_per_100()
    for use in (budget.check, budget.record, budget.spend):
        with pytest.raises(ValueError, match="airtime must be a finite number of seconds >= 0"):
            use(airtime, 0.0)
    assert budget.used(0.0) == 0.0


def test_a_frame_of_exactly_the_us915_dwell_limit_may_go():
    budget = DutyCycleBudget("US915")
    budget.spend(0.4, now=0.0)
    budget.spend(0.4, now=0.0)  # no duty cycle: as often as the radio likes
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend(0.401, now=1.0)
    assert math.isinf(refused.value.wait_s)
    assert budget.describe() == "US915, no duty cycle, max dwell 400 ms per transmission"


def test_a_frame_of_exactly_the_whole_budget_may_go_once():
    budget = ten_seconds_per_100()
    assert budget.check(10.0, now=0.0) == 0.0
    with pytest.raises(BudgetExceeded, match="whole budget"):
        budget.check(10.001, now=0.0)
    budget.spend(10.0, now=0.0)
    assert budget.remaining(5.0) == 0.0
    assert budget.check(10.0, now=5.0) == pytest.approx(105.0)


@pytest.mark.parametrize("fraction", [0.0, -0.01, 1.0001, 2.0, math.nan])
def test_a_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ConfigError, match=r"duty-cycle fraction must be in \(0, 1\]"):
        DutyCycleBudget("NONE", fraction=fraction)


def test_fractions_up_to_the_legal_limit_are_taken():
    assert DutyCycleBudget("NONE", fraction=1.0).allowance_s == 3600.0
    assert DutyCycleBudget("EU868", frequency_hz=869.525e6, fraction=0.1).fraction == 0.1
    assert DutyCycleBudget("US915", fraction=0.5).allowance_s == 1800.0  # stricter than no rule at all
    with pytest.raises(ConfigError, match="exceeds the legal 1.0%"):
        DutyCycleBudget("EU868", fraction=0.011)  # no frequency: the 1 % of most sub-bands


@pytest.mark.parametrize("window", [0.0, -1.0, math.nan])
def test_a_window_that_is_not_positive_is_refused(window):
    with pytest.raises(ConfigError, match="window must be positive"):
        DutyCycleBudget("NONE", fraction=0.5, window_s=window)


def test_the_window_sets_the_allowance_and_when_airtime_frees():
    budget = DutyCycleBudget("EU868", frequency_hz=868.1e6, window_s=600.0)  # 1 % of 10 min: 6 s
    assert budget.allowance_s == pytest.approx(6.0)
    budget.record(6.0, now=0.0)
    assert budget.check(1.0, now=10.0) == pytest.approx(596.0)
    assert budget.describe() == "EU868 sub-band g1 (868-868.6 MHz, 1.0%), duty cycle 1.0% of 600 s"


def test_sub_bands_hold_their_lower_edge_but_not_their_upper_one():
    assert DutyCycleBudget("EU868", frequency_hz=869.4e6).sub_band.name == "g3"
    assert DutyCycleBudget("EU868", frequency_hz=868.0e6).sub_band.name == "g1"
    for outside in (869.65e6, 868.6e6, 870.0e6, 862.9e6):
        with pytest.raises(ConfigError, match="outside every EU868 sub-band"):
            DutyCycleBudget("EU868", frequency_hz=outside)


def test_a_frequency_in_a_region_without_sub_bands_changes_nothing():
    budget = DutyCycleBudget("US915", frequency_hz=915e6)
    assert budget.sub_band is None and budget.allowance_s is None
    assert budget.remaining(0.0) == math.inf


def test_region_names_ignore_case_spaces_dashes_and_underscores():
    assert lookup_region(" us-915 ").name == "US915"
    assert lookup_region("Eu_868").name == "EU868"
    with pytest.raises(ConfigError, match="unknown region 'EU 868'"):
        lookup_region("EU 868")


def test_freeing_a_large_frame_waits_for_as_many_old_ones_as_it_needs():
    budget = DutyCycleBudget("EU868", frequency_hz=868.1e6)  # 36 s per hour
    budget.record(20.0, now=0.0)  # counts until 3620 s
    budget.record(10.0, now=100.0)  # counts until 3710 s
    assert budget.check(6.0, now=200.0) == 0.0  # exactly the 6 s left
    assert budget.check(15.0, now=200.0) == pytest.approx(3420.0)  # the first one frees enough
    assert budget.check(30.0, now=200.0) == pytest.approx(3510.0)  # both must leave
    assert budget.check(30.0, now=3710.0) == 0.0


def test_transmissions_merged_together_count_until_the_last_of_them_leaves():
    budget = DutyCycleBudget("NONE", fraction=0.5)  # merges what ends within 3.6 s
    budget.record(1.0, now=0.0)  # ends at 1 s
    budget.record(1.0, now=2.0)  # ends at 3 s: merged with the first
    assert budget.used(3601.5) == pytest.approx(2.0)  # the first still counts (conservative)
    assert budget.used(3603.5) == 0.0
    budget.record(1.0, now=4000.0)
    budget.record(1.0, now=4010.0)  # ends 10 s after the run began: a new entry
    assert budget.used(7601.5) == pytest.approx(1.0)  # the first one left on its own time


def test_a_short_frame_booked_after_a_longer_one_never_shortens_the_longer_ones_count():
    budget = DutyCycleBudget("NONE", fraction=0.5)
    budget.record(5.0, now=0.0)  # ends at 5 s: counts until 3605 s
    budget.record(1.0, now=2.0)  # ends at 3 s, booked later
    assert budget.used(3604.0) == pytest.approx(5.0)
    assert budget.used(3605.5) == 0.0


def test_booking_past_the_budget_leaves_nothing_remaining_never_less():
    budget = DutyCycleBudget("EU868", frequency_hz=868.1e6)
    budget.record(40.0, now=0.0)  # a caller that ignored check()
    assert budget.used(50.0) == pytest.approx(40.0)
    assert budget.remaining(50.0) == 0.0


def test_shares_of_the_budget_in_frames_per_second_and_at_least_one_byte():
    budget = DutyCycleBudget("EU868", frequency_hz=869.525e6)  # 10 %
    assert budget.share_rate(0.1, 2.0) == pytest.approx(0.005)  # 1 % of the time, 2 s frames
    assert DutyCycleBudget("US915").share_rate(0.1, 0.4) is None
    assert budget.share_bytes(0.001, 1.0, 10, 2.0) == 1  # a sliver still pays for one byte
