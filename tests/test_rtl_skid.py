"""The stream register slices: SkidBuffer (between the host bridge and the core's spike input, and
between each queue and its engine) and RegisterSlice (the host's weight accesses)."""

from __future__ import annotations

import random

import pytest
from amaranth import unsigned
from amaranth.sim import Simulator

from rtl.skid import RegisterSlice, SkidBuffer


@pytest.mark.parametrize("kind", [SkidBuffer, RegisterSlice])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_beat_passes_once_in_order_under_random_stalls(seed, kind):
    rng = random.Random(seed)
    dut = kind(unsigned(8))
    sent = [rng.randrange(256) for _ in range(200)]
    got, comb_paths = [], []

    async def tb(ctx):
        k = 0
        for _ in range(2000):
            offer = k < len(sent) and rng.random() < 0.7
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, sent[k] if offer else 0)
            ctx.set(dut.o.ready, rng.random() < 0.6)
            # i.ready and o.valid must not follow this cycle's inputs (registered outputs)
            before = (ctx.get(dut.i.ready), ctx.get(dut.o.valid))
            ctx.set(dut.o.ready, not ctx.get(dut.o.ready))
            comb_paths.append(before != (ctx.get(dut.i.ready), ctx.get(dut.o.valid)))
            ctx.set(dut.o.ready, not ctx.get(dut.o.ready))
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            if offer and ctx.get(dut.i.ready):
                k += 1
            await ctx.tick()
        assert k == len(sent)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == sent
    assert not any(comb_paths)


def test_full_throughput_without_back_pressure():
    dut = SkidBuffer(unsigned(8))
    got = []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        for n in range(20):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, n)
            assert ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == list(range(19))          # one cycle of latency, one beat per cycle


def test_register_slice_takes_a_beat_every_other_cycle():
    dut = RegisterSlice(unsigned(8))
    got, taken = [], []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        k = 0
        for cycle in range(20):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, k)
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            if ctx.get(dut.i.ready):
                taken.append(cycle)
                k += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert taken == list(range(0, 20, 2))
    assert got == list(range(10))
