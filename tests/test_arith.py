"""registered_product: the partial products join to the exact product; on an ECP5 each one is a
MULT18X18D with its own output register, wired as Yosys wires the multipliers it infers."""

from __future__ import annotations

import random

import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from ecp5_synth import port_bit_names, synth_ecp5
from rtl.arith import MULT_INPUT_BITS, ecp5_registered_mult, registered_product


def _rand(rng, shape):
    if shape.signed:
        return rng.randrange(-(1 << (shape.width - 1)), 1 << (shape.width - 1))
    return rng.randrange(1 << shape.width)


@pytest.mark.parametrize("sa, sb", [(signed(18), signed(24)), (signed(12), signed(18)), (unsigned(10), signed(30)),
                                    (signed(18), unsigned(20))])
def test_partial_products_join_to_the_product_and_hold_without_enable(sa, sb):
    m = Module()
    a, b, en = Signal(sa), Signal(sb), Signal()
    joined = registered_product(m, a, b, en=en, name="p")
    rng = random.Random(sa.width * 100 + sb.width)
    extremes = [(lo, hi) for lo in ((-(1 << (sa.width - 1)), (1 << (sa.width - 1)) - 1) if sa.signed
                                     else (0, (1 << sa.width) - 1))
                for hi in ((-(1 << (sb.width - 1)), (1 << (sb.width - 1)) - 1) if sb.signed
                           else (0, (1 << sb.width) - 1))]
    cases = extremes + [(_rand(rng, sa), _rand(rng, sb)) for _ in range(200)]
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        held = None
        for k, (x, y) in enumerate(cases):
            load = k % 5 != 4
            ctx.set(a, x)
            ctx.set(b, y)
            ctx.set(en, load)
            await ctx.tick()
            if load:
                held = x * y
            assert ctx.get(joined) == held, (x, y, load)

    sim.add_testbench(bench)
    sim.run()


def _multipliers(top, port_names):
    """Per MULT18X18D: its operands (pin sources by top-level port bit, with their signedness, or
    None where the top pin is a constant 0 and signedness cannot matter), the port bits its
    product reaches (directly or through one flip-flop) and its register settings."""
    names = port_bit_names(top, port_names)
    ff_q = {c["connections"]["DI"][0]: c["connections"]["Q"][0] for c in top["cells"].values()
            if c["type"] == "TRELLIS_FF"}
    ff_ce = {c["connections"]["Q"][0]: names.get(c["connections"]["CE"][0]) for c in top["cells"].values()
             if c["type"] == "TRELLIS_FF"}
    found = []
    for cell in top["cells"].values():
        if cell["type"] != "MULT18X18D":
            continue
        conn = {pin: bits[0] for pin, bits in cell["connections"].items()}
        operands = []
        for side in "AB":
            pins = [names.get(conn[f"{side}{k}"], conn[f"{side}{k}"]) for k in range(MULT_INPUT_BITS)]
            signed_flag = conn[f"SIGNED{side}"] == "1"
            operands.append((tuple(pins), None if pins[-1] == "0" else signed_flag))
        product, enables = [], set()
        for k in range(2 * MULT_INPUT_BITS):
            net = conn.get(f"P{k}")
            if net in names:
                product.append(names[net])
            elif net in ff_q and ff_q[net] in names:
                product.append(names[ff_q[net]])
                enables.add(ff_ce[ff_q[net]])
            else:
                product.append(None)
        p = cell["parameters"]
        found.append({"operands": frozenset(operands), "product": product,
                      "reg_output": p.get("REG_OUTPUT_CLK", "NONE"), "ce0": names.get(conn.get("CE0")),
                      "fabric_enables": enables})
    return found


@pytest.mark.parametrize("sa, sb", [(signed(18), unsigned(17)), (signed(18), signed(7)), (unsigned(12), signed(18)),
                                    (signed(16), signed(16)), (unsigned(17), unsigned(17))])
def test_ecp5_multiplier_is_wired_as_yosys_wires_it(sa, sb, tmp_path):
    """The instance's operand pins, signedness and product pins are those of Yosys's own
    MULT18X18D for ``p <= a * b`` (whose product goes through fabric flip-flops enabled by
    ``en``); the instance registers it in the DSP block instead, clocked and enabled by ``en``."""
    def design(use_instance):
        m = Module()
        a, b, en = Signal(sa, name="a"), Signal(sb, name="b"), Signal(name="en")
        p = Signal((a * b).shape(), name="p")
        if use_instance:
            ecp5_registered_mult(m, a, b, en=en, product=p, name="mult")
        else:
            with m.If(en):
                m.d.sync += p.eq(a * b)
        return m, [a, b, en, p]

    ports = {"a", "b", "en", "p"}
    got = _multipliers(synth_ecp5(*design(True), tmp_path, "instance"), ports)
    want = _multipliers(synth_ecp5(*design(False), tmp_path, "inferred"), ports)
    assert len(got) == len(want) == 1
    (g,), (w,) = got, want
    assert w["reg_output"] == "NONE" and w["fabric_enables"] == {"en[0]"}
    assert g["reg_output"] == "CLK0" and g["ce0"] == "en[0]" and not g["fabric_enables"]
    assert g["operands"] == w["operands"]
    assert g["product"] == w["product"]
    assert [x for x in g["product"] if x is not None] == [f"p[{k}]" for k in range(len((Signal(sa) * Signal(sb))))]
