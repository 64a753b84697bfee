"""Saturating arithmetic shared by both engines."""

from __future__ import annotations

from amaranth import Const, Mux, Value

__all__ = ["out_of_range", "saturate"]


def out_of_range(value, bits: int):
    """``(over, under)``: a Value above / below the ``bits``-wide signed range.

    A signed value is in range iff its bits ``bits-1 .. top`` are all equal, so
    the test is a few LUTs rather than two carry-chain comparisons (the same
    result as ``value > hi`` / ``value < lo``; small FPGAs care).
    """
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    value = Value.cast(value)
    n = len(value)
    if value.shape().signed and n > bits:
        top = value[bits - 1:]
        out = ~((top == 0) | (top == (1 << len(top)) - 1))
        return out & ~value[n - 1], out & value[n - 1]
    if value.shape().signed:
        return Const(0), Const(0)
    return value > hi, value < lo


def saturate(value, bits: int):
    """``(clamped, saturated)`` of a Value to a ``bits``-wide signed range."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    over, under = out_of_range(value, bits)
    return Mux(over, hi, Mux(under, lo, value)), over | under
