"""ColumnMemory: a memory split into block-RAM-deep bit columns behaves as one Amaranth memory."""

from __future__ import annotations

import random

import pytest
from amaranth import Module, signed
from amaranth.lib import data
from amaranth.sim import Simulator

from rtl.column_memory import ColumnMemory, column_bits


@pytest.mark.parametrize("depth, bits", [(512, 36), (513, 18), (1024, 18), (2000, 9), (4096, 4), (6250, 2),
                                         (8192, 2), (16384, 1), (16385, None), (1, 36)])
def test_column_width_is_the_widest_block_ram_mode_that_holds_the_depth(depth, bits):
    assert column_bits(depth) == bits


def test_columns_cover_the_word_once():
    mem = ColumnMemory(shape=signed(40), depth=6250)
    assert mem.columns == [(lo, lo + 2) for lo in range(0, 40, 2)]
    assert ColumnMemory(shape=signed(25), depth=5000).columns[-1] == (24, 25)     # 4-bit columns, a 1-bit last
    assert ColumnMemory(shape=signed(16), depth=300).columns == [(0, 16)]          # fits one column: one memory
    assert ColumnMemory(shape=signed(16), depth=20000).columns == [(0, 16)]        # no single block RAM holds it


def test_one_port_of_each_kind():
    mem = ColumnMemory(shape=8, depth=16)
    mem.read_port()
    with pytest.raises(ValueError, match="one read port"):
        mem.read_port()


@pytest.mark.parametrize("shape, depth", [(signed(40), 6250), (data.StructLayout({"u": signed(25), "m": 1}), 3000),
                                          (signed(24), 700)])
def test_reads_and_writes_match_a_plain_memory_model(shape, depth):
    """Random writes and synchronous non-transparent reads on the same and other addresses: the data
    read is the word stored before the write of the same cycle."""
    width = data.Layout.cast(shape).size if isinstance(shape, data.Layout) else shape.width
    m = Module()
    m.submodules.mem = mem = ColumnMemory(shape=shape, depth=depth)
    wp, rp = mem.write_port(), mem.read_port()
    assert len(mem.columns) > 1
    rng = random.Random(depth)
    model = {}
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        for step in range(300):
            addr = rng.randrange(depth)
            raddr = rng.choice(list(model)) if model and rng.random() < 0.7 else rng.randrange(depth)
            value = rng.getrandbits(width)
            write = rng.random() < 0.6
            ctx.set(wp.addr, addr)
            ctx.set(wp.data.as_value() if hasattr(wp.data, "as_value") else wp.data,
                    value if hasattr(wp.data, "as_value") else value - ((value >> (width - 1)) << width))
            ctx.set(wp.en, write)
            ctx.set(rp.addr, raddr)
            expect = model.get(raddr, 0)
            await ctx.tick()
            got = ctx.get(rp.data.as_value() if hasattr(rp.data, "as_value") else rp.data) & ((1 << width) - 1)
            assert got == expect, f"step {step}: read {raddr}: {got:#x} != {expect:#x}"
            if write:
                model[addr] = value

    sim.add_testbench(bench)
    sim.run()
