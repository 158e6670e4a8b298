"""Integer and fixed-point arithmetic of the contract VM: 64-bit, floor division, no floats.

`fixed` values are integers counting thousandths (FIXED_SCALE), so 30.5 is 30500. Every
operation either returns a value within 64 bits or raises ArithmeticFault, which fails the
execution; the compiler folds constants with these same functions.
"""
from __future__ import annotations

FIXED_SCALE = 1000
FIXED_DECIMALS = 3
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1


class ArithmeticFault(Exception):
    """Overflow or division by zero inside a contract (fails that execution only)."""


def checked(value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise ArithmeticFault("integer overflow (beyond 64 bits)")
    return value


def div(a: int, b: int) -> int:
    """Integer division rounding down, as Python's //."""
    if b == 0:
        raise ArithmeticFault("division by zero")
    return checked(a // b)


def mod(a: int, b: int) -> int:
    """Remainder with the sign of the divisor, as Python's %."""
    if b == 0:
        raise ArithmeticFault("division by zero")
    return a % b


def fmul(a: int, b: int) -> int:
    """Fixed-point product, rounded down to a thousandth."""
    return checked(a * b // FIXED_SCALE)


def fdiv(a: int, b: int) -> int:
    """Fixed-point quotient, rounded down to a thousandth."""
    if b == 0:
        raise ArithmeticFault("division by zero")
    return checked(a * FIXED_SCALE // b)


def to_fixed(a: int) -> int:
    return checked(a * FIXED_SCALE)
