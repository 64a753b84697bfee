"""Saturating arithmetic and multiplier operand splitting shared by both engines."""

from __future__ import annotations

from amaranth import Const, Mux, Signal, Value

__all__ = ["out_of_range", "saturate", "split_operand", "registered_product", "MULT_LOW_BITS"]

#: The unsigned low part of a split operand: 17 bits and a 0 sign bit fill one 18-bit
#: multiplier input (an ECP5 MULT18X18D, an iCE40 SB_MAC16 half).
MULT_LOW_BITS = 17


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


def split_operand(value, low_bits: int = MULT_LOW_BITS):
    """``(lo, hi)`` with ``value == lo + (hi << low_bits)``: ``lo`` its low ``low_bits`` bits as an
    unsigned Value, ``hi`` the rest as a signed one; ``(None, value)`` when it already fits one
    ``low_bits + 1``-bit multiplier input.

    A product with a wider operand needs two multipliers and an adder behind them; as two partial
    products ``x*lo`` and ``x*hi``, each registered, the adder moves to the next stage (on an ECP5 a
    24-bit operand's product with its adder did not fit 10 ns).
    """
    value = Value.cast(value)
    if len(value) <= low_bits + 1:
        return None, value
    return value.as_unsigned()[:low_bits], value[low_bits:].as_signed()


def registered_product(m, a, b, *, en, name: str):
    """``a * b`` as registered partial products (``b`` split by :func:`split_operand`), loaded
    while ``en`` is high; returns the Value that joins them (the adder, for the next stage).
    Each register is as wide as its product, so nothing is truncated."""
    lo, hi = split_operand(b)
    p_hi = Signal((a * hi).shape(), name=f"{name}_hi", reset_less=True)
    with m.If(en):
        m.d.sync += p_hi.eq(a * hi)
    if lo is None:
        return p_hi
    p_lo = Signal((a * lo).shape(), name=f"{name}_lo", reset_less=True)
    with m.If(en):
        m.d.sync += p_lo.eq(a * lo)
    return (p_hi << len(lo)) + p_lo
