# amaranth: UnusedElaboratable=no
"""The Softmax-CE error unit (``rtl/spikegrad/softmax_error.py``) against
:func:`golden.spikegrad.fixedpoint.top_error`: Amaranth simulator (fixed,
constrained-random and hypothesis cases with random stalls, latency), the
Yosys arithmetic-cell check (``rtl/synthcheck.py``) and a Verilator/cocotb
bench with thousands of back-to-back samples."""

from __future__ import annotations

import random
import zlib

import pytest
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golden.spikegrad.fixedpoint import signed_range, top_error
from rtl.spikegrad.softmax_error import (SoftmaxError, error_layout, error_shift_bits,
                                         softmax_error_latency)
from rtl.synthcheck import FORBIDDEN_CELLS, arithmetic_cells
from sim.lint import lint_verilog
from sim.runner import run_cocotb
from sim.verilog import generate_verilog
from spikecore.config import SpikeGradConfig

BENCH = "cocotb_tests.spikegrad_softmax.bench_softmax"

CONFIGS = {
    "default": SpikeGradConfig(),
    # C = 3, narrow everything.
    "c3_small": SpikeGradConfig(
        layer_sizes=(4, 3), activations=("linear",), weight_bits=4, membrane_bits=8, error_bits=8,
        theta_ff=16, theta_bp=16, error_shift=3, softmax_shift=1, exp_lut_size=16, exp_bits=6,
        prob_bits=5, trace_bits=8, count_bits=6),
    # prob_bits at its minimum: heavy rounding in the division and in the scaling.
    "prob2": SpikeGradConfig(
        layer_sizes=(8, 5), activations=("linear",), weight_bits=6, membrane_bits=12, error_bits=12,
        theta_ff=64, theta_bp=64, error_shift=5, softmax_shift=2, exp_lut_size=64, exp_bits=8,
        prob_bits=2),
    # One class (p is always 1) and a two-entry LUT.
    "c1": SpikeGradConfig(
        layer_sizes=(2, 1), activations=("linear",), weight_bits=4, membrane_bits=8, error_bits=10,
        theta_ff=16, theta_bp=16, error_shift=3, softmax_shift=0, exp_lut_size=2, exp_bits=4,
        prob_bits=4),
}


def target_latency(cfg: SpikeGradConfig) -> int:
    """The brief's budget from the last ``v`` beat to the last ``u`` beat."""
    return cfg.num_classes + cfg.prob_bits + 16


def expected(cfg, case):
    v, label, shift = case
    return top_error(cfg.replace(error_shift=shift), v, label)


# -- stimulus ----------------------------------------------------------------

def _shifts(cfg):
    top = cfg.error_bits - 2
    return sorted({s for s in (0, cfg.prob_bits - 1, cfg.prob_bits, cfg.prob_bits + 1, top,
                               cfg.error_shift) if 0 <= s <= top})


def fixed_cases(cfg):
    """Hand-picked samples: ties, all equal, beyond the LUT, range ends; labels at both ends."""
    c = cfg.num_classes
    lo, hi = signed_range(cfg.membrane_bits)
    step = 1 << cfg.softmax_shift
    beyond = step * cfg.exp_lut_size

    def clip(vs):
        return [min(hi, max(lo, x)) for x in vs]

    vectors = [
        [0] * c,                                              # all equal
        [hi] * c, [lo] * c,                                   # all equal at the range ends
        [hi if i % 2 == 0 else lo for i in range(c)],         # extremes, huge differences
        [lo] * (c - 1) + [hi], [hi] + [lo] * (c - 1),         # one winner at either end
        [3 * step if i in (0, c - 1) else -step * i for i in range(c)],   # tie for the max
        [step * i for i in range(c)],                         # ramp inside the LUT
        [-3 * step * i - (i % 3) for i in range(c)],
        [0] + [-beyond] * (c - 1),                            # just beyond the LUT
        [0] + [-(beyond - step)] * (c - 1),                   # last LUT entry
        [0] + [-(beyond - 1)] * (c - 1),
        [i % 2 * (step - 1) for i in range(c)],               # differences below one LUT step
    ]
    labels = sorted({0, c - 1, c // 2})
    return [(clip(v), label, shift) for v in vectors for label in labels for shift in _shifts(cfg)]


def random_cases(cfg, count, seed):
    """Constrained-random samples: mostly within a few LUT spans of each other, some anywhere."""
    rng = random.Random(seed)
    c = cfg.num_classes
    lo, hi = signed_range(cfg.membrane_bits)
    span = (1 << cfg.softmax_shift) * cfg.exp_lut_size
    cases = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.15:
            v = [rng.randint(lo, hi) for _ in range(c)]
        else:
            width = rng.choice([span // 8 or 1, span // 2 or 1, span, 2 * span])
            base = rng.randint(lo, hi)
            v = [min(hi, max(lo, base + rng.randint(-width, width))) for _ in range(c)]
            if kind > 0.85 and c > 1:            # duplicate the max somewhere
                v[rng.randrange(c)] = max(v)
        cases.append((v, rng.randrange(c), rng.randint(0, cfg.error_bits - 2)))
    return cases


# -- Amaranth simulation ------------------------------------------------------

def simulate(cfg, cases, *, seed=0, stalls=False, divider="pipelined"):
    """Run ``cases`` through the unit; return (``U`` per case, latency per case).

    With ``stalls`` the source leaves random gaps and ``u.ready`` drops at random.
    The sink checks class order, ``last`` and that a stalled beat holds.
    """
    dut = SoftmaxError(cfg, divider=divider)
    c = cfg.num_classes
    rng = random.Random(seed)
    last_in, last_out, outputs = [], [], []

    async def source(ctx):
        edge = 0
        for v, label, shift in cases:
            while ctx.get(dut.busy):
                await ctx.tick()
                edge += 1
            ctx.set(dut.label, label)
            ctx.set(dut.error_shift, shift)
            for x in v:
                while stalls and rng.random() < 0.3:
                    ctx.set(dut.v.valid, 0)
                    await ctx.tick()
                    edge += 1
                ctx.set(dut.v.valid, 1)
                ctx.set(dut.v.payload, x)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.v.ready)
                    edge += 1
                    if ready:
                        break
            ctx.set(dut.v.valid, 0)
            last_in.append(edge)

    async def sink(ctx):
        edge, held, beats = 0, None, []
        while len(beats) < len(cases) * c:
            ready = not (stalls and rng.random() < 0.35)
            ctx.set(dut.u.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.u.valid, dut.u.payload)
            edge += 1
            beat = (payload.index, payload.value, payload.last)
            if held is not None:
                assert valid and beat == held, f"stalled beat {held} changed to {beat} (valid={valid})"
            held = beat if valid and not ready else None
            if valid and ready:
                assert beat[0] == len(beats) % c and beat[2] == (beat[0] == c - 1), f"beat {beat}"
                beats.append(beat[1])
                if beat[2]:
                    last_out.append(edge)
        outputs.extend(beats[i * c:(i + 1) * c] for i in range(len(cases)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return outputs, [b - a for a, b in zip(last_in, last_out)]


def check(cfg, cases, **kw):
    outputs, latencies = simulate(cfg, cases, **kw)
    for case, got in zip(cases, outputs):
        assert got == expected(cfg, case), f"case {case}: U = {got}, golden {expected(cfg, case)}"
    return latencies


@pytest.mark.parametrize("name", CONFIGS)
def test_fixed_cases_and_latency(name):
    cfg = CONFIGS[name]
    cases = fixed_cases(cfg)
    latencies = check(cfg, cases)
    assert set(latencies) == {softmax_error_latency(cfg)}
    assert latencies[0] == 2 * cfg.num_classes + cfg.prob_bits + 6
    assert latencies[0] <= target_latency(cfg)


@pytest.mark.parametrize("name", CONFIGS)
def test_random_with_stalls(name):
    cfg = CONFIGS[name]
    cases = fixed_cases(cfg)[::5] + random_cases(cfg, 60, seed=zlib.crc32(name.encode()))
    latencies = check(cfg, cases, seed=1, stalls=True)
    assert min(latencies) >= softmax_error_latency(cfg)


@pytest.mark.parametrize("name", CONFIGS)
def test_iterative_divider(name):
    """The one-stage divider (small FPGAs): same U, ``C * (prob_bits + 8) + 1`` cycles without stalls."""
    cfg = CONFIGS[name]
    latencies = check(cfg, fixed_cases(cfg)[::3], divider="iterative")
    assert set(latencies) == {softmax_error_latency(cfg, "iterative")}
    assert latencies[0] == cfg.num_classes * (cfg.prob_bits + 8) + 1
    cases = random_cases(cfg, 30, seed=zlib.crc32(name.encode()) + 1)
    assert min(check(cfg, cases, seed=2, stalls=True, divider="iterative")) >= latencies[0]
    with pytest.raises(ValueError, match="divider"):
        SoftmaxError(cfg, divider="radix4")


@st.composite
def case_batches(draw, cfg):
    c = cfg.num_classes
    lo, hi = signed_range(cfg.membrane_bits)
    span = (1 << cfg.softmax_shift) * cfg.exp_lut_size
    base = draw(st.integers(lo, hi))
    near = st.integers(max(lo, base - 2 * span), min(hi, base + 2 * span))
    value = st.one_of(near, st.integers(lo, hi), st.sampled_from([lo, hi, base]))
    case = st.tuples(st.lists(value, min_size=c, max_size=c), st.integers(0, c - 1),
                     st.integers(0, cfg.error_bits - 2))
    return draw(st.lists(case, min_size=1, max_size=12))


@pytest.mark.parametrize("name", ["default", "c3_small", "prob2"])
def test_hypothesis(name):
    cfg = CONFIGS[name]

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=case_batches(cfg), seed=st.integers(0, 2**16), stalls=st.booleans())
    def run(batch, seed, stalls):
        check(cfg, batch, seed=seed, stalls=stalls)

    run()


# -- construction, netlist ----------------------------------------------------

def test_interface():
    cfg = CONFIGS["default"]
    dut = SoftmaxError(cfg)
    assert dut.cfg is cfg
    assert dut.latency == softmax_error_latency(cfg) == 38
    assert dut.v.payload.shape() == signed(cfg.membrane_bits)
    assert dut.u.payload.shape() == error_layout(cfg)
    assert len(dut.label) == 4 and len(dut.error_shift) == error_shift_bits(cfg) == 5
    assert (1 << len(dut.error_shift)) - 1 >= cfg.error_bits - 2
    with pytest.raises(TypeError, match="SpikeGradConfig"):
        SoftmaxError({"num_classes": 10})


class _Toy(wiring.Component):
    """A deliberately multiplying (or dividing) block for the Yosys check."""

    def __init__(self, op):
        self._op = op
        super().__init__({"a": In(8), "b": In(8), "o": Out(16)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self._op(self.a, self.b))
        return m


def test_synthcheck_detects_multipliers_and_dividers():
    mul = arithmetic_cells(_Toy(lambda a, b: a * b))
    assert mul["$mul"] + mul["$macc"] + mul["$macc_v2"] > 0, mul
    div = arithmetic_cells(_Toy(lambda a, b: a // b + a % b))
    assert div["$divfloor"] + div["$div"] > 0 and div["$modfloor"] + div["$mod"] > 0
    clean = arithmetic_cells(_Toy(lambda a, b: (a << b[:3]) + (b >> a[:3])))
    assert set(clean) == set(FORBIDDEN_CELLS) and not any(clean.values())


@pytest.mark.parametrize("name", ["default", "c3_small"])
def test_no_multiplier_or_divider_cells(name):
    counts = arithmetic_cells(SoftmaxError(CONFIGS[name]))
    assert not any(counts.values()), counts


def test_verilog_lint_clean():
    assert lint_verilog(generate_verilog(SoftmaxError(CONFIGS["default"]), name="softmax_error")) == []


# -- Verilator / cocotb -------------------------------------------------------

@pytest.mark.parametrize("name", ["default", "c3_small"])
def test_cocotb_bench(name):
    cfg = CONFIGS[name]
    cases = fixed_cases(cfg) + random_cases(cfg, 2000, seed=7)
    args = {
        "config": cfg.to_dict(),
        "u_fields": [[n, f.shape.width, f.shape.signed] for n, f in error_layout(cfg)],
        "cases": [{"v": v, "label": label, "error_shift": shift} for v, label, shift in cases],
        "expected": [expected(cfg, case) for case in cases],
        "seed": 11,
    }
    text = generate_verilog(SoftmaxError(cfg), name="softmax_error")
    run = run_cocotb(text, "softmax_error", BENCH, args=args)
    assert {t.name for t in run.tests} >= {"back_to_back", "random_stalls"}
