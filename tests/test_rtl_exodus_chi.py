"""ChiRecurrence in the Amaranth simulator against the scalar golden model (fast, small tables)."""

from __future__ import annotations

import random
import warnings

import pytest
from amaranth.sim import Simulator

from cocotb_tests.exodus_chi.vectors import segment, standard_segments
from golden.exodus.fixedpoint import build_tables
from rtl.exodus.chi import LATENCY, SPACING, ChiRecurrence, input_layout
from spikecore.config import ExodusConfig

# Same widths as the default, a coarser table (64 entries over the same span) to keep the simulator quick.
SMALL = ExodusConfig(lut_size=64, lut_shift=9)


def run_segments(dut: ChiRecurrence, segments, *, stalls: bool, seed: int = 0):
    """Stream every segment through ``dut``; returns the received beats per segment and the final counters."""
    results = []
    rng = random.Random(seed)

    async def bench(ctx):
        for seg in segments:
            if dut.writable_tables:
                for a, (f, c) in enumerate(zip(seg["tables"]["fprime"], seg["tables"]["coef"])):
                    ctx.set(dut.table.payload, {"addr": a, "fprime": f, "coef": c, "slayer": 0})
                    ctx.set(dut.table.valid, 1)
                    await ctx.tick()
                ctx.set(dut.table.payload, {"addr": 0, "fprime": 0, "coef": seg["tables"]["slayer_coef"], "slayer": 1})
                await ctx.tick()
                ctx.set(dut.table.valid, 0)
            ctx.set(dut.slayer, seg["slayer"])
            got = []
            beats = list(seg["beats"])
            k = 0
            while len(got) < len(beats):
                if k < len(beats) and not (stalls and rng.random() < 0.2):
                    ctx.set(dut.i.payload, beats[k])
                    ctx.set(dut.i.valid, 1)
                else:
                    ctx.set(dut.i.valid, 0)
                ready_out = not (stalls and rng.random() < 0.3)
                ctx.set(dut.o.ready, int(ready_out))
                _, _, i_rdy, i_vld, o_vld, o_pay = await ctx.tick().sample(
                    dut.i.ready, dut.i.valid, dut.o.valid, dut.o.payload)
                if i_rdy and i_vld:
                    k += 1
                if o_vld and ready_out:
                    got.append({"index": o_pay.index, "lam": [int(x) for x in o_pay.lam]})
            ctx.set(dut.i.valid, 0)
            results.append(got)
        results.append({"sat": ctx.get(dut.sat), "sat_count": ctx.get(dut.sat_count), "steps": ctx.get(dut.steps)})

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        sim.run()
    return results


@pytest.mark.parametrize("lanes,stalls", [(1, False), (2, True)])
def test_random_segments_match_golden(lanes, stalls):
    segs = standard_segments(SMALL, lanes=lanes, groups=3, seed=lanes, short=True)
    dut = ChiRecurrence(SMALL, neurons=3 * lanes, lanes=lanes, writable_tables=True)
    res = run_segments(dut, segs, stalls=stalls, seed=lanes)
    for seg, got in zip(segs, res):
        assert got == seg["expected"]
    total = sum(len(s["beats"]) for s in segs) * lanes
    assert res[-1]["steps"] == total
    assert res[-1]["sat_count"] == sum(s["saturations"] for s in segs) > 0
    assert res[-1]["sat"] == 1


def test_one_neuron_back_to_back_and_rom_tables():
    """A single neuron every cycle (the lambda forward path) with the tables built in at elaboration."""
    cfg = SMALL.replace(alpha=0.9, reset_order="before_decay")
    seg = segment(cfg, steps=40, groups=1, lanes=1, seed=7)
    dut = ChiRecurrence(cfg, neurons=1)
    (got, counters) = run_segments(dut, [seg], stalls=False)
    assert got == seg["expected"]
    assert counters["steps"] == 40 and counters["sat"] == 0


def test_direct_mode():
    """``direct``: lanes carry f' and c; equals chi_step with the table values substituted."""
    cfg = SMALL.replace(alpha=0.95)
    seg = segment(cfg, steps=10, groups=2, lanes=1, seed=3)
    t = build_tables(cfg)
    from golden.exodus.fixedpoint import lut_lookup
    for b in seg["beats"]:
        for lane in b["lanes"]:
            lane["fprime"], lane["coef"] = lut_lookup(lane.pop("u"), t, cfg)
    dut = ChiRecurrence(cfg, neurons=2, direct=True)
    got, _ = run_segments(dut, [seg], stalls=True)
    assert got == seg["expected"]


def _issue_cycles(groups: list[int]) -> list[int]:
    """Cycle each beat leaves stage 1 under the documented rule: one beat per cycle, and a beat at
    least SPACING cycles after the previous beat of its own group."""
    out, last = [], {}
    for k, g in enumerate(groups):
        c = max(out[-1] + 1 if out else 0, last.get(g, -SPACING) + SPACING)
        out.append(c)
        last[g] = c
    return out


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 6])
def test_throughput(groups):
    """Steady state: N back-to-back beats of SPACING groups or more in turn leave the unit in
    N + LATENCY cycles; with fewer groups a beat waits until the previous beat of its own group
    is SPACING cycles ahead (one group: (N - 1) * SPACING + 1 + LATENCY)."""
    seg = segment(SMALL, steps=50, groups=groups, lanes=2, seed=1)
    dut = ChiRecurrence(SMALL, neurons=2 * groups, lanes=2)
    N = len(seg["beats"])
    cycles = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        n_out = cycle = 0
        pending = list(seg["beats"])
        while not cycles and cycle < 4 * N + 20:
            ctx.set(dut.i.valid, bool(pending))
            if pending:
                ctx.set(dut.i.payload, pending[0])
            _, _, o_vld, i_rdy = await ctx.tick().sample(dut.o.valid, dut.i.ready)
            if pending and i_rdy:
                pending.pop(0)
            cycle += 1
            n_out += o_vld
            if n_out == N:
                cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    expect = _issue_cycles([b["index"] for b in seg["beats"]])[-1] + 1 + LATENCY
    assert cycles == [expect]
    if groups >= SPACING:
        assert expect == N + LATENCY
    if groups == 1:
        assert expect == (N - 1) * SPACING + 1 + LATENCY


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_parameters_are_validated():
    with pytest.raises(TypeError):
        ChiRecurrence("cfg", neurons=4)
    with pytest.raises(ValueError):
        ChiRecurrence(SMALL, neurons=0)
    with pytest.raises(ValueError):
        ChiRecurrence(SMALL, neurons=4, lanes=3)
    with pytest.raises(TypeError):
        ChiRecurrence(SMALL, neurons=4, direct=1)
    dut = ChiRecurrence(SMALL, neurons=5, lanes=2)
    assert dut.groups == 3 and dut.lanes == 2
    assert input_layout(SMALL, neurons=5, lanes=2).size == dut.i.payload.shape().size
