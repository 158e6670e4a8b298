"""Argparse `type=` functions that check a command-line value when it is parsed.

Each takes the option's text and returns the value, or raises
`argparse.ArgumentTypeError` with a message argparse prints after the option's name
(`blockiot sim: error: argument --hours: must be a finite number > 0, not '-1'`), exit status 2.
Numbers must be finite: `nan` and `inf` are refused by every numeric type here.

    parser.add_argument("--hours", type=positive_float)
    parser.add_argument("--hop-limit", type=int_range(0, 7))
    parser.add_argument("--preset", type=preset_name)
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from blockiot.radio.airtime import preset_display_name
from blockiot.radio.dutycycle import lookup_region
from blockiot.radio.errors import ConfigError


def _checked(kind: type, ok: Callable, allowed: str) -> Callable[[str], int | float]:
    """A type function: parse the text as `kind` (int or float), then require `ok(value)`."""
    noun = "a whole number" if kind is int else "a finite number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"must be {noun} {allowed}, not {text!r}")
        return value

    return parse


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """A whole number from `lo` to `hi`, both included (no upper bound when `hi` is None)."""
    if hi is None:
        return _checked(int, lambda value: value >= lo, f">= {lo}")
    return _checked(int, lambda value: lo <= value <= hi, f"from {lo} to {hi}")


def float_range(lo: float, hi: float) -> Callable[[str], float]:
    """A number from `lo` to `hi`, both included."""
    return _checked(float, lambda value: lo <= value <= hi, f"from {lo:g} to {hi:g}")


positive_int = int_range(1)
non_negative_int = int_range(0)
positive_float = _checked(float, lambda value: value > 0, "> 0")  # a duration, a frequency, a distance
non_negative_float = _checked(float, lambda value: value >= 0, ">= 0")
fraction = _checked(float, lambda value: 0 < value <= 1, "> 0 and <= 1")  # a share: a duty cycle, a budget


def preset_name(text: str) -> str:
    """A Meshtastic modem preset in any spelling, returned as Meshtastic shows it (LongFast)."""
    try:
        return preset_display_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def region_name(text: str) -> str:
    """A duty-cycle region in any spelling (eu_868), returned as the table names it (EU868)."""
    try:
        return lookup_region(text).name
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
