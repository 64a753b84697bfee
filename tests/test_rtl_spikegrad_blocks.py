"""Unit tests of the SpikeGrad core's blocks: skewed weight banks, layer engine, weight update unit."""

from __future__ import annotations

import random
from collections import deque

import pytest
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from golden.spikegrad.fixedpoint import clamp
from spikecore.config import SpikeGradConfig
from rtl.spikegrad.banks import LaneBanks, WeightGeometry, rotate_to_lanes
from rtl.spikegrad.engine import LayerEngine
from rtl.spikegrad.update import WeightUpdateUnit


def cfg_for(sizes, lanes, **kw):
    acts = ("relu",) * (len(sizes) - 2) + ("linear",)
    base = dict(layer_sizes=sizes, activations=acts, theta_ff=40, theta_bp=40, weight_bits=8, membrane_bits=16,
                error_bits=16, error_shift=8, prob_bits=8, softmax_shift=2, exp_lut_size=16, exp_bits=8,
                lanes=lanes, queue_depth=8)
    base.update(kw)
    return SpikeGradConfig(**base)


def rand_matrix(rng, fo, fi, lim):
    return [[rng.randint(-lim, lim) for _ in range(fi)] for _ in range(fo)]


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
@pytest.mark.parametrize("shape", [(3, 5), (8, 8), (10, 7), (1, 13)])
def test_skewed_layout_is_conflict_free_python_model(lanes, shape):
    fo, fi = shape
    cfg = cfg_for((fi, fo), lanes)
    geo = WeightGeometry(cfg, 0)
    w = rand_matrix(random.Random(1), fo, fi, 30)
    banks = geo.store(w)
    seen = set()
    for i in range(fo):
        for j in range(fi):
            key = (geo.bank(i, j), geo.addr(i, j))
            assert key not in seen and key[1] < geo.depth
            seen.add(key)
    for j in range(fi):
        for g in range(geo.groups):
            addrs = geo.forward_addrs(j, g)
            for p in range(lanes):        # lane p reads bank (p + j) mod P
                i = g * lanes + p
                val = banks[(p + j) % lanes][addrs[(p + j) % lanes]]
                assert val == (w[i][j] if i < fo else 0)
    for i in range(fo):
        for h in range(geo.col_groups):
            for q in range(lanes):        # all banks at one address; lane q in bank (i + q) mod P
                j = h * lanes + q
                assert banks[(i + q) % lanes][geo.row_addr(i, h)] == (w[i][j] if j < fi else 0)


@pytest.mark.parametrize("lanes", [2, 4])
def test_lane_banks_forward_rotation_in_hardware(lanes):
    fo, fi = 6, 5
    cfg = cfg_for((fi, fo), lanes)
    geo = WeightGeometry(cfg, 0)
    w = rand_matrix(random.Random(lanes), fo, fi, 100)
    banks = LaneBanks(signed(8), geo.depth, lanes, init=geo.store(w))
    rot = Signal(max(1, lanes.bit_length() - 1))
    m = Module()
    m.submodules.banks = banks
    lanes_out = [Signal(signed(8), name=f"lane{p}") for p in range(lanes)]
    for p, v in enumerate(rotate_to_lanes([banks.rdata[b] for b in range(lanes)], rot, lanes)):
        m.d.comb += lanes_out[p].eq(v)

    async def tb(ctx):
        for j in range(fi):
            for g in range(geo.groups):
                for b, a in enumerate(geo.forward_addrs(j, g)):
                    ctx.set(banks.raddr[b], a)
                ctx.set(rot, j % lanes)
                await ctx.tick()
                for p in range(lanes):
                    i = g * lanes + p
                    assert ctx.get(lanes_out[p]) == (w[i][j] if i < fo else 0)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("transparent", [True, False])
def test_lane_banks_read_in_the_write_cycle(transparent):
    """A read addressed in the cycle its word is written returns the new word with a transparent
    port and the old one without (the core's ECP5 forms, which never do that); other words and
    later reads are the same either way."""
    banks = LaneBanks(signed(8), 8, 2, init=[[10 + a for a in range(8)], [20 + a for a in range(8)]],
                      transparent=transparent)

    async def tb(ctx):
        for b in range(2):
            ctx.set(banks.raddr[b], 3)
            ctx.set(banks.waddr[b], 3 if b == 0 else 5)   # bank 0: the word read; bank 1: another
            ctx.set(banks.wdata[b], -7 - b)
        ctx.set(banks.we, 0b11)
        await ctx.tick()
        ctx.set(banks.we, 0)
        assert ctx.get(banks.rdata[0]) == (-7 if transparent else 13)
        assert ctx.get(banks.rdata[1]) == 23
        await ctx.tick()
        assert ctx.get(banks.rdata[0]) == -7
        ctx.set(banks.raddr[1], 5)
        await ctx.tick()
        assert ctx.get(banks.rdata[1]) == -8

    sim = Simulator(banks)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    with pytest.raises(TypeError, match="transparent must be a bool"):
        LaneBanks(signed(8), 8, 2, transparent=1)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_layer_engine_forward_against_golden(lanes):
    """Layer 0 of a 2-layer net: events in, spike entries out and V, x against the golden simulator."""
    from golden.spikegrad.event_sim import EventDrivenSimulator
    from golden.spikegrad.params import SpikeGradParams
    import torch
    fi, fo = 5, 7
    cfg = cfg_for((fi, fo, 3), lanes, theta_ff=20)
    rng = random.Random(3 + lanes)
    w0 = rand_matrix(rng, fo, fi, cfg.weight_limit)
    params = SpikeGradParams(cfg, [torch.tensor(w0), torch.zeros(3, fo, dtype=torch.int64)],
                             [torch.zeros(fo, dtype=torch.int64), torch.zeros(3, dtype=torch.int64)])
    events = [(rng.randrange(fi), rng.choice((1, -1))) for _ in range(25)]
    gold = EventDrivenSimulator(params)
    gold._reset_state()
    expected = []
    for j, s in events:
        q = deque()
        gold._deliver_forward(0, j, s, q)
        expected += list(q)

    geo = WeightGeometry(cfg, 0)
    eng = LayerEngine(cfg, 0)
    banks = LaneBanks(signed(cfg.weight_bits), geo.depth, lanes, init=geo.store(w0))
    m = Module()
    m.submodules.eng, m.submodules.banks = eng, banks
    for b in range(lanes):
        m.d.comb += banks.raddr[b].eq(eng.wt_addr[b])
    m.d.comb += eng.wt_data.eq(banks.rdata)
    got = []

    async def collect(ctx):
        async for _, _, push, pd in ctx.tick().sample(eng.push, eng.push_data):
            if push:
                for p in range(lanes):
                    if pd.mask >> p & 1:
                        got.append((pd.group * lanes + p, -1 if pd.signs >> p & 1 else 1))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    async def driver(ctx):
        for j, s in events:
            ctx.set(eng.ev.payload, {"group": j // lanes, "mask": 1 << (j % lanes), "signs": (s < 0) << (j % lanes)})
            ctx.set(eng.ev.valid, 1)
            await ctx.tick().until(eng.ev.ready)
        ctx.set(eng.ev.valid, 0)
        await ctx.tick().until(eng.idle)
        for g in range(eng.groups):
            ctx.set(eng.aux_addr, g)
            await ctx.tick()
            await ctx.delay(1e-8)
            st = ctx.get(eng.state)
            for p in range(lanes):
                i = g * lanes + p
                if i < fo:
                    assert st[p].v == gold.V[0][i], f"V[{i}]"
                    assert st[p].x == gold.x[0][i], f"x[{i}]"
        assert got == expected
    sim.add_testbench(driver)
    sim.add_process(collect)
    sim.run()


@pytest.mark.parametrize("clamp_thresholds,registered_reads", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("lanes", [1, 4])
def test_weight_update_unit_against_golden_rule(lanes, clamp_thresholds, registered_reads):
    fi, fo = 6, 5
    cfg = cfg_for((fi, fo), lanes, weight_bits=6, theta_ff=30, theta_bp=30, count_bits=4, trace_bits=6, eta=2)
    rng = random.Random(lanes)
    lim = cfg.weight_limit
    w = rand_matrix(rng, fo, fi, lim)
    bias = [rng.randint(-cfg.bias_limit, cfg.bias_limit) for _ in range(fo)]
    E = [rng.choice((0, 0, 1, -1, 3, -4)) for _ in range(fo)]
    x = [rng.randint(-12, 12) for _ in range(fi)]
    geo = WeightGeometry(cfg, 0)
    unit = WeightUpdateUnit(cfg, 0, clamp_thresholds=clamp_thresholds, registered_reads=registered_reads)
    wb = LaneBanks(signed(cfg.weight_bits), geo.depth, lanes, init=geo.store(w))
    G, H = geo.groups, geo.col_groups
    bb = LaneBanks(signed(cfg.weight_bits), G, lanes,
                   init=[[bias[g * lanes + b] if g * lanes + b < fo else 0 for g in range(G)] for b in range(lanes)])
    emem = Memory(shape=data.ArrayLayout(signed(cfg.count_bits), lanes), depth=G,
                  init=[[E[g * lanes + p] if g * lanes + p < fo else 0 for p in range(lanes)] for g in range(G)])
    xmem = Memory(shape=data.ArrayLayout(signed(cfg.trace_bits), lanes), depth=H,
                  init=[[x[h * lanes + p] if h * lanes + p < fi else 0 for p in range(lanes)] for h in range(H)])
    m = Module()
    m.submodules.unit, m.submodules.wb, m.submodules.bb = unit, wb, bb
    m.submodules.emem, m.submodules.xmem = emem, xmem
    er, xr = emem.read_port(), xmem.read_port()
    m.d.comb += [er.addr.eq(unit.e_addr), unit.e_data.eq(er.data), xr.addr.eq(unit.x_addr), unit.x_data.eq(xr.data),
                 unit.w_rdata.eq(wb.rdata), unit.b_rdata.eq(bb.rdata), wb.we.eq(unit.w_we), bb.we.eq(unit.b_we)]
    rb_sel = Signal()
    rb_addr = Signal(16)
    for b in range(lanes):
        m.d.comb += [wb.raddr[b].eq(Mux(rb_sel, rb_addr, unit.w_raddr)), wb.waddr[b].eq(unit.w_waddr),
                     wb.wdata[b].eq(unit.w_wdata[b]), bb.raddr[b].eq(Mux(rb_sel, rb_addr, unit.b_raddr)),
                     bb.waddr[b].eq(unit.b_waddr), bb.wdata[b].eq(unit.b_wdata[b])]
    exp_w = [row[:] for row in w]
    exp_b = bias[:]
    exp_ops, exp_clamp = 0, False
    for i, e in enumerate(E):
        if e:
            exp_ops += abs(e) * (fi + 1)
            for j in range(fi):
                exp_w[i][j], c = clamp(exp_w[i][j] - e * x[j], lim)
                exp_clamp |= c
            exp_b[i], c = clamp(exp_b[i] - e * cfg.eta, cfg.bias_limit)
            exp_clamp |= c
    res = {}

    async def tb(ctx):
        ctx.set(unit.start, 1)
        await ctx.tick()
        ctx.set(unit.start, 0)
        ops, clamped, cycles = 0, False, 0
        while True:
            busy, o, c = ctx.get(unit.busy), ctx.get(unit.ops), ctx.get(unit.clamped)
            ops += o
            clamped |= bool(c)
            if not busy:
                break
            await ctx.tick()
            cycles += 1
        res.update(ops=ops, clamped=clamped, cycles=cycles)
        ctx.set(rb_sel, 1)
        got_w = [[None] * fi for _ in range(fo)]
        got_b = [None] * fo
        for i in range(fo):
            for j in range(fi):
                ctx.set(rb_addr, geo.addr(i, j))
                await ctx.tick()
                got_w[i][j] = ctx.get(wb.rdata[geo.bank(i, j)])
            ctx.set(rb_addr, i // lanes)
            await ctx.tick()
            got_b[i] = ctx.get(bb.rdata[i % lanes])
        res.update(w=got_w, b=got_b)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert res["w"] == exp_w
    assert res["b"] == exp_b
    assert res["ops"] == exp_ops
    assert res["clamped"] == exp_clamp
    # cycle cost: |E| additions per (neuron, column group), one load per (neuron, column
    # group) and with registered reads one rotation more, a pick and a final write per
    # neuron, three cycles per neuron group
    nz = sum(1 for e in E if e)
    loads = 2 if registered_reads else 1
    assert res["cycles"] <= sum(abs(e) for e in E) * H + nz * (loads * H + 2) + 3 * G + 2
