"""Regulatory airtime budget: duty cycle over a sliding window, and dwell time per frame.

Sans-IO: every method takes `now` (float seconds, monotonic) from the caller.

Regions (`REGIONS`):
- EU868: the duty cycle depends on the sub-band holding the carrier (ERC/REC 70-03,
  ETSI EN 300 220-2 V3.2.1, EC decision 2017/1483): 863-865 MHz 0.1 %, g 865-868 MHz
  1 %, g1 868.0-868.6 MHz 1 %, g2 868.7-869.2 MHz 0.1 %, g3 869.4-869.65 MHz 10 %
  (Meshtastic's EU_868 band), g4 869.7-870.0 MHz 1 %. Without a frequency the budget
  is 1 %, the limit of most sub-bands.
- US915: no duty cycle, but no single transmission may last more than 400 ms (the FCC
  15.247 dwell limit that LoRaWAN US915 applies to its channels).
- NONE: no rule at all; pass `fraction` for a self-imposed budget. Not a regulated
  region (`REGULATED_REGIONS`), so no cluster genesis may name it.

This table is the one list of regions in the project: a genesis may name only a
regulated region of it. Other regions (AU915/ANZ, AS923, IN865, KR920, CN470, ...) are
left out until their rules are transcribed here with their regulatory source; a node
refuses them rather than guess a budget.

`fraction` overrides the region's duty cycle downwards (a node may be stricter than
the law, never looser).

The window is sliding: a transmission counts in full from when it starts until
`window_s` after it ends, so every window of `window_s` seconds that overlaps it sees
all of it (conservative). Transmissions that end within `window_s / 1000` of the first
one of a run are merged into one entry that counts until the last of them ends + the
window, which bounds memory to about 1000 entries whatever the caller does.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType

from .errors import BudgetExceeded, ConfigError

_EPSILON_S = 1e-9
_MERGE_DIVISOR = 1000


@dataclass(frozen=True)
class SubBand:
    """A frequency range with one duty-cycle limit; holds frequencies low_hz <= f < high_hz."""

    name: str
    low_hz: float
    high_hz: float
    fraction: float

    def __str__(self) -> str:
        return f"{self.name} ({self.low_hz / 1e6:g}-{self.high_hz / 1e6:g} MHz, {self.fraction:.1%})"


@dataclass(frozen=True)
class Region:
    """Regulatory rules of a region. `default_fraction` applies when no frequency is known;
    None means no duty-cycle rule. `max_dwell_s` None means no dwell limit."""

    name: str
    sub_bands: tuple[SubBand, ...]
    default_fraction: float | None
    max_dwell_s: float | None

    @property
    def regulated(self) -> bool:
        """Whether the region has a legal rule (a duty cycle or a dwell limit)."""
        return self.default_fraction is not None or self.max_dwell_s is not None

    def sub_band(self, frequency_hz: float) -> SubBand:
        for band in self.sub_bands:
            if band.low_hz <= frequency_hz < band.high_hz:
                return band
        bands = "; ".join(str(band) for band in self.sub_bands)
        raise ConfigError(
            f"{frequency_hz / 1e6:g} MHz is outside every {self.name} sub-band: {bands}"
        )


REGIONS: MappingProxyType[str, Region] = MappingProxyType(
    {
        "EU868": Region(
            name="EU868",
            sub_bands=(
                SubBand("863-865", 863.0e6, 865.0e6, 0.001),
                SubBand("g", 865.0e6, 868.0e6, 0.01),
                SubBand("g1", 868.0e6, 868.6e6, 0.01),
                SubBand("g2", 868.7e6, 869.2e6, 0.001),
                SubBand("g3", 869.4e6, 869.65e6, 0.10),
                SubBand("g4", 869.7e6, 870.0e6, 0.01),
            ),
            default_fraction=0.01,
            max_dwell_s=None,
        ),
        "US915": Region(name="US915", sub_bands=(), default_fraction=None, max_dwell_s=0.4),
        "NONE": Region(name="NONE", sub_bands=(), default_fraction=None, max_dwell_s=None),
    }
)

# The regions a cluster's genesis may name: those with rules a node enforces.
REGULATED_REGIONS: tuple[str, ...] = tuple(name for name, region in REGIONS.items() if region.regulated)


def lookup_region(name: str) -> Region:
    """A region by name, ignoring case, '_' and '-' (EU868, eu_868, US-915)."""
    key = name.strip().upper().replace("_", "").replace("-", "")
    if key not in REGIONS:
        raise ConfigError(f"unknown region {name!r}; valid regions: {', '.join(REGIONS)}")
    return REGIONS[key]


@dataclass
class _Entry:
    """Transmissions that ended between `opened` and `end` (at most window/1000 apart)."""

    opened: float
    end: float
    airtime_s: float


_END = attrgetter("end")


class DutyCycleBudget:
    """How much a node may still transmit under its region's rules.

    `check(airtime_s, now)` returns 0.0 when a frame of that airtime may go now, else the
    seconds to wait; it raises `BudgetExceeded` (wait_s = inf) when the frame can never
    go. `record(airtime_s, now)` books a transmission that started at `now`;
    `spend` does both at once and raises `BudgetExceeded` with the wait instead of
    returning it.
    """

    def __init__(
        self,
        region: str,
        frequency_hz: float | None = None,
        fraction: float | None = None,
        window_s: float = 3600.0,
    ) -> None:
        self.region = lookup_region(region)
        if not window_s > 0:
            raise ConfigError(f"window must be positive, not {window_s} s")
        self.window_s = float(window_s)
        self.sub_band = (
            self.region.sub_band(frequency_hz)
            if frequency_hz is not None and self.region.sub_bands
            else None
        )
        legal = self.sub_band.fraction if self.sub_band else self.region.default_fraction
        if fraction is None:
            self.fraction = legal
        elif not 0 < fraction <= 1:
            raise ConfigError(f"duty-cycle fraction must be in (0, 1], not {fraction}")
        elif legal is not None and fraction > legal:
            raise ConfigError(
                f"duty cycle {fraction:.1%} exceeds the legal {legal:.1%} of {self._where()}"
            )
        else:
            self.fraction = fraction
        self.max_dwell_s = self.region.max_dwell_s
        self._merge_s = self.window_s / _MERGE_DIVISOR
        self._entries: list[_Entry] = []  # sorted by end

    @property
    def allowance_s(self) -> float | None:
        """Seconds of airtime per window; None when no duty cycle applies."""
        return None if self.fraction is None else self.fraction * self.window_s

    def share_rate(self, share: float, airtime_s: float) -> float | None:
        """Transmissions of `airtime_s` per second that `share` of this budget pays for;
        None without a duty cycle."""
        if self.fraction is None:
            return None
        return share * self.fraction / airtime_s

    def share_bytes(self, share: float, period_s: float, frame_bytes: int, frame_airtime_s: float) -> int | None:
        """Bytes, sent in full frames of `frame_bytes` taking `frame_airtime_s` each, that
        `share` of this budget pays for per `period_s` on average; None without a duty cycle."""
        if self.fraction is None:
            return None
        return max(1, int(share * self.fraction * period_s / frame_airtime_s * frame_bytes))

    def describe(self) -> str:
        """One line saying which rules apply, for logs and the CLI."""
        parts = [self._where()]
        if self.fraction is not None:
            parts.append(f"duty cycle {self.fraction:.1%} of {self.window_s:g} s")
        else:
            parts.append("no duty cycle")
        if self.max_dwell_s is not None:
            parts.append(f"max dwell {self.max_dwell_s * 1000:g} ms per transmission")
        return ", ".join(parts)

    def check(self, airtime_s: float, now: float) -> float:
        """0.0 if a frame with this airtime may be sent at `now`, else seconds to wait."""
        _require_airtime(airtime_s)
        if self.max_dwell_s is not None and airtime_s > self.max_dwell_s + _EPSILON_S:
            raise BudgetExceeded(
                f"{airtime_s * 1000:.0f} ms on air exceeds the {self.max_dwell_s * 1000:g} ms "
                f"dwell limit of {self.region.name}",
                math.inf,
            )
        allowance = self.allowance_s
        if allowance is None:
            return 0.0
        if airtime_s > allowance + _EPSILON_S:
            raise BudgetExceeded(
                f"{airtime_s:.2f} s on air exceeds the whole budget of {allowance:.2f} s "
                f"per {self.window_s:g} s ({self._where()})",
                math.inf,
            )
        self._prune(now)
        excess = self._sum() + airtime_s - allowance
        if excess <= _EPSILON_S:
            return 0.0
        # Wait until the oldest entries, which free at least `excess`, leave the window.
        freed = 0.0
        for entry in self._entries:
            freed += entry.airtime_s
            if freed >= excess - _EPSILON_S:
                break
        return max(entry.end + self.window_s - now, 0.0)

    def record(self, airtime_s: float, now: float) -> None:
        """Book a transmission of `airtime_s` seconds that started at `now`."""
        _require_airtime(airtime_s)
        if airtime_s == 0:
            return
        self._prune(now)
        end = now + airtime_s
        last = self._entries[-1] if self._entries else None
        if last is not None and last.end <= end <= last.opened + self._merge_s:
            last.end = end
            last.airtime_s += airtime_s
        else:
            bisect.insort(self._entries, _Entry(end, end, airtime_s), key=_END)

    def spend(self, airtime_s: float, now: float) -> None:
        """Record the transmission if it may go now; else raise `BudgetExceeded` with the wait."""
        wait = self.check(airtime_s, now)
        if wait > 0:
            raise BudgetExceeded(
                f"{self.used(now):.2f} s of the {self.allowance_s:.2f} s budget used "
                f"({self._where()})",
                wait,
            )
        self.record(airtime_s, now)

    def used(self, now: float) -> float:
        """Airtime counted in the window ending at `now`."""
        self._prune(now)
        return self._sum()

    def remaining(self, now: float) -> float:
        """Airtime still allowed in the window ending at `now` (inf with no duty cycle)."""
        allowance = self.allowance_s
        if allowance is None:
            return math.inf
        return max(allowance - self.used(now), 0.0)

    def _where(self) -> str:
        if self.sub_band is not None:
            return f"{self.region.name} sub-band {self.sub_band}"
        if self.region.sub_bands:
            limit = f"{self.region.default_fraction:.1%}"
            return f"{self.region.name} (no frequency given: {limit}, the limit of most sub-bands)"
        return self.region.name

    def _prune(self, now: float) -> None:
        # The tolerance absorbs float rounding, so `check` at now + its wait returns 0.
        cut = bisect.bisect_right(self._entries, now - self.window_s + _EPSILON_S, key=_END)
        del self._entries[:cut]

    def _sum(self) -> float:
        return sum(entry.airtime_s for entry in self._entries)


def _require_airtime(airtime_s: float) -> None:
    if not airtime_s >= 0 or math.isinf(airtime_s):
        raise ValueError(f"airtime must be a finite number of seconds >= 0, not {airtime_s}")
