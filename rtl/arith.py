"""Saturating arithmetic and multiplier operand splitting shared by both engines."""

from __future__ import annotations

from amaranth import C, ClockSignal, Const, Instance, Mux, Signal, Value

from .platform import is_ecp5

__all__ = ["out_of_range", "saturate", "split_operand", "registered_product", "MULT_LOW_BITS", "MULT_INPUT_BITS",
           "ecp5_registered_mult"]

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
    unsigned Value, ``hi`` the rest with the value's signedness; ``(None, value)`` when it already fits one
    ``low_bits + 1``-bit multiplier input.

    A product with a wider operand needs two multipliers and an adder behind them; as two partial
    products ``x*lo`` and ``x*hi``, each registered, the adder moves to the next stage (on an ECP5 a
    24-bit operand's product with its adder did not fit 10 ns).
    """
    value = Value.cast(value)
    if len(value) <= low_bits + 1:
        return None, value
    hi = value[low_bits:]
    return value.as_unsigned()[:low_bits], hi.as_signed() if value.shape().signed else hi


#: The width of each ECP5 MULT18X18D input.
MULT_INPUT_BITS = MULT_LOW_BITS + 1


def ecp5_registered_mult(m, a, b, *, en, product, name: str):
    """``product <= a * b`` while ``en``, in an ECP5 MULT18X18D using its own output register.

    Wired as Yosys wires the multipliers it infers (operands extended to 18 bits, ``SIGNEDA`` /
    ``SIGNEDB`` from their shapes, ``C`` and the cascade inputs unused), with the output
    register (``REG_OUTPUT_CLK``) clocked by the domain's clock and enabled by ``en``: the
    product then leaves the DSP block from a register instead of crossing the fabric to one."""
    a, b = Value.cast(a), Value.cast(b)
    ea, eb = Signal(MULT_INPUT_BITS, name=f"{name}_a"), Signal(MULT_INPUT_BITS, name=f"{name}_b")
    m.d.comb += [ea.eq(a), eb.eq(b)]   # sign- or zero-extended to the input width by their shapes
    p = Signal(2 * MULT_INPUT_BITS, name=f"{name}_p")
    pins = {}
    for k in range(MULT_INPUT_BITS):
        pins[f"i_A{k}"], pins[f"i_B{k}"], pins[f"i_C{k}"] = ea[k], eb[k], C(0, 1)
    for k in range(2 * MULT_INPUT_BITS):
        pins[f"o_P{k}"] = p[k]
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0", p_GSR="DISABLED",
        i_SIGNEDA=C(int(a.shape().signed), 1), i_SIGNEDB=C(int(b.shape().signed), 1),
        i_SOURCEA=C(0, 1), i_SOURCEB=C(0, 1),
        i_CLK0=ClockSignal(), i_CE0=en, i_RST0=C(0, 1), **pins)
    m.d.comb += product.eq(p[:len(product)])


def registered_product(m, a, b, *, en, name: str, platform=None):
    """``a * b`` as registered partial products (``b`` split by :func:`split_operand`), loaded
    while ``en`` is high; returns the Value that joins them (the adder, for the next stage).
    Each register is as wide as its product, so nothing is truncated.

    On an ECP5 (:func:`rtl.platform.is_ecp5`) each partial product that fits one multiplier
    (both operands 18 bits at most, the product 36) is a MULT18X18D instance whose own output
    register holds it (same timing and results); elsewhere, simulation included, the registers
    are flip-flops."""
    a = Value.cast(a)
    lo, hi = split_operand(b)
    ecp5 = is_ecp5(platform)

    def partial(operand, suffix):
        prod = a * operand
        reg = Signal(prod.shape(), name=f"{name}_{suffix}", reset_less=True)
        if ecp5 and max(len(a), len(operand)) <= MULT_INPUT_BITS and len(reg) <= 2 * MULT_INPUT_BITS:
            ecp5_registered_mult(m, a, operand, en=en, product=reg, name=f"{name}_{suffix}_mult")
        else:
            with m.If(en):
                m.d.sync += reg.eq(prod)
        return reg

    p_hi = partial(hi, "hi")
    if lo is None:
        return p_hi
    p_lo = partial(lo, "lo")
    return (p_hi << len(lo)) + p_lo
