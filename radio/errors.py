"""Typed errors: the project's root `BlockIoTError`, and the radio layer's own tree below it.

`BlockIoTError` is the one root every error BlockIoT raises on purpose derives from
(chain's `ChainError`, radio's `RadioError`, the errors of `hil`); it lives here because
radio is the lowest package: chain and hil import radio, radio imports neither.
It carries `user_facing = True`, so the CLI prints the message without a traceback.

Untrusted input never escapes as an exception from the link layer (`Link.receive`
turns it into a `Dropped` event); the radio errors are for codecs, local misuse and
drivers.
"""
from __future__ import annotations

import math


class BlockIoTError(Exception):
    """Root of every error the project raises; the message is meant for the person reading it."""

    user_facing = True


class RadioError(BlockIoTError):
    """Base of every error raised by `blockiot.radio`."""


class ConfigError(RadioError, ValueError):
    """A radio setting that cannot be used: unknown preset or region, a frequency
    outside every sub-band, LoRa parameters out of range."""


class FrameError(RadioError):
    """Bytes from a radio that do not decode: a link frame, a modem's register reply."""


class FrameEncodeError(RadioError):
    """A frame of our own with a field out of range: our misuse, never a peer's bytes."""


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
