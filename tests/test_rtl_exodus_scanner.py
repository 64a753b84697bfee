"""SetBitScanner: every set bit of a loaded word, lowest first, at one index per cycle."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from rtl.exodus.scanner import SetBitScanner


def _scan(width, words, *, ready_p=1.0, seed=0, chunk=16):
    """Load each word, take indices (``ready`` high with probability ``ready_p``) until ``empty``.
    Returns, per word, the indices taken and the cycles from the load to the last one."""
    dut = SetBitScanner(width, chunk=chunk)
    rng = random.Random(seed)
    results = []

    async def bench(ctx):
        for word in words:
            ctx.set(dut.word, word)
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.word, rng.getrandbits(width))       # the scanner keeps its own copy
            taken, last = [], 0
            for cycle in range(1, 8 * width + 16):
                ready = rng.random() < ready_p
                ctx.set(dut.o.ready, ready)
                if ctx.get(dut.empty):
                    break
                if ctx.get(dut.o.valid) and ready:
                    taken.append(ctx.get(dut.o.payload))
                    last = cycle
                await ctx.tick()
            else:
                raise AssertionError(f"scanner never empty for word {word:#x}")
            results.append((taken, last))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def _bits(word, width):
    return [k for k in range(width) if word >> k & 1]


@pytest.mark.parametrize("width", [1, 2, 16, 17, 25, 250])
def test_random_words_random_ready(width):
    rng = random.Random(width)
    words = [0, (1 << width) - 1, 1, 1 << (width - 1)]
    words += [sum(1 << k for k in range(width) if rng.random() < p)
              for p in (0.01, 0.05, 0.2, 0.5, 0.9) for _ in range(6)]
    for word, (taken, _) in zip(words, _scan(width, words, ready_p=0.6, seed=width)):
        assert taken == _bits(word, width), hex(word)


def test_full_rate_across_chunk_boundaries():
    """With ready always high, n set bits take n consecutive cycles after a fixed start latency,
    whatever chunks they fall in (empty chunks cost nothing)."""
    width = 250
    words = [0b1, (1 << 16) | 1, (1 << 249) | 1, sum(1 << k for k in range(0, 250, 17)),
             (1 << 250) - 1, sum(1 << k for k in (15, 16, 31, 32, 47, 48, 240))]
    for word, (taken, last) in zip(words, _scan(width, words)):
        assert taken == _bits(word, width)
        assert last == 2 + len(taken), (hex(word), last)


def test_load_restarts_the_scan():
    dut = SetBitScanner(40)
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.word, (1 << 40) - 1)
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        for _ in range(5):               # part of the first word only
            await ctx.tick()
        ctx.set(dut.word, 0b1010 << 30)
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        for _ in range(10):
            if ctx.get(dut.o.valid):
                seen.append(ctx.get(dut.o.payload))
            await ctx.tick()
        assert ctx.get(dut.empty)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [31, 33]


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"width": 8, "chunk": 3}, {"width": 8, "chunk": 1}])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError, match="width|chunk"):
        SetBitScanner(**kwargs)


@pytest.mark.parametrize("width", [16, 4, 7])
def test_at_most_one_bit_tree(width):
    """The carry-free test the scanner uses for "the current chunk ends this cycle": every word of
    no, one and two set bits, and random ones, against a popcount."""
    from amaranth import Module, Signal
    from rtl.exodus.scanner import _at_most_one

    x, y = Signal(width), Signal()
    m = Module()
    m.d.comb += y.eq(_at_most_one(x))
    rng = random.Random(width)
    words = ({0} | {1 << a for a in range(width)} | {(1 << a) | (1 << b) for a in range(width) for b in range(a)}
             | {rng.getrandbits(width) for _ in range(300)})

    async def bench(ctx):
        for w in sorted(words):
            ctx.set(x, w)
            assert ctx.get(y) == (bin(w).count("1") <= 1), f"{w:#x}"

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
