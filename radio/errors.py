"""Typed errors of the radio layer: one base class, one subclass per kind of failure.

Every class carries `user_facing = True`, so the CLI prints the message without a
traceback. Untrusted input never escapes as an exception from the link layer
(`Link.receive` turns it into a `Dropped` event); these errors are for codecs,
local misuse and drivers.
"""
from __future__ import annotations

import math


class RadioError(Exception):
    """Base of every error raised by `blockiot.radio`."""

    user_facing = True


class ConfigError(RadioError, ValueError):
    """A radio setting that cannot be used: unknown preset or region, a frequency
    outside every sub-band, LoRa parameters out of range."""


class FrameError(RadioError):
    """A frame (link frame or stream frame) that does not decode."""


class MessageTooLarge(RadioError, ValueError):
    """A payload larger than the layer below can carry."""


class RadioUnavailable(RadioError):
    """The radio cannot be reached: unplugged, port closed, device gone."""


class BudgetExceeded(RadioError):
    """A transmission the duty-cycle or dwell-time rules do not allow now.

    `wait_s` is how long until it would be allowed; `math.inf` when it never will
    be (a single frame longer than the dwell limit or the whole hourly budget).
    `reason` says which rule refused it.
    """

    def __init__(self, reason: str, wait_s: float) -> None:
        self.reason = reason
        self.wait_s = wait_s
        if math.isinf(wait_s):
            super().__init__(f"{reason} (can never be sent)")
        else:
            super().__init__(f"{reason}; allowed again in {wait_s:.1f} s")
