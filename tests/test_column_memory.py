"""ColumnMemory: a memory split into block-RAM-deep bit columns behaves as one Amaranth memory."""

from __future__ import annotations

import random

import pytest
from amaranth import Module, Shape, signed
from amaranth.lib import data
from amaranth.sim import Simulator

from ecp5_synth import port_bit_names, synth_ecp5
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


def test_output_register_adds_a_cycle_and_holds_while_oen_is_low():
    """With ``output_register`` the word read at one edge is on ``data`` after the next edge at
    which ``oen`` is high; ``en`` low keeps the block RAM's output, ``oen`` low keeps the register."""
    depth, width = 3000, 25
    m = Module()
    m.submodules.mem = mem = ColumnMemory(shape=width, depth=depth, output_register=True)
    assert mem.output_register and len(mem.columns) > 1
    wp, rp = mem.write_port(), mem.read_port()
    rng = random.Random(7)
    model = {}
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ram_out = reg_out = 0   # the model's block RAM output and output register
        for step in range(400):
            addr, raddr = rng.randrange(depth), rng.choice(list(model) or [0])
            value, write = rng.getrandbits(width), rng.random() < 0.5
            en, oen = rng.random() < 0.7, rng.random() < 0.7
            for sig, v in ((wp.addr, addr), (wp.data, value), (wp.en, write), (rp.addr, raddr),
                           (rp.en, en), (rp.oen, oen)):
                ctx.set(sig, v)
            await ctx.tick()
            if oen:
                reg_out = ram_out
            if en:
                ram_out = model.get(raddr, 0)
            if write:
                model[addr] = value
            assert ctx.get(rp.data) == reg_out, f"step {step}"

    sim.add_testbench(bench)
    sim.run()


def test_output_register_must_be_a_bool():
    with pytest.raises(TypeError, match="output_register must be a bool"):
        ColumnMemory(shape=8, depth=16, output_register=1)


def _dp16kd_read_sides(design, ports, tmp_path, name):
    """Synthesise ``design`` with Yosys for the ECP5; per DP16KD its data width and what its read
    port's address pins (ADB*) and data pins (DOB*) connect to, by top-level port bit."""
    top = synth_ecp5(design, ports, tmp_path, name)
    names = port_bit_names(top, {p.name for p in ports})
    sides = []
    for cell in top["cells"].values():
        if cell["type"] != "DP16KD":
            continue
        conn = {pin: names.get(bits[0], bits[0]) for pin, bits in cell["connections"].items()}
        p = cell["parameters"]
        sides.append({"width": int(p["DATA_WIDTH_B"], 2), "regmode": p["REGMODE_B"],
                      "addr": [conn[f"ADB{k}"] for k in range(14)],
                      "data": [conn[f"DOB{k}"] for k in range(18) if str(conn[f"DOB{k}"]).startswith("r_data")]})
    return sorted(sides, key=lambda s: s["data"])


@pytest.mark.parametrize("shape, depth", [(signed(40), 6250), (25, 3000), (signed(24), 700), (20, 1500),
                                          (3, 12000)])
def test_ecp5_output_register_is_the_block_ram_wired_as_yosys_wires_it(shape, depth, tmp_path):
    """On an ECP5 the output register is the DP16KD's own (REGMODE_B OUTREG). The instance has no
    simulation model, so its wiring is checked against Yosys's own mapping of the same columns as
    plain memories: per block RAM the same mode, the same read address pins and the same data pins,
    in the same order. (The reference memories write from another clock domain: with one clock Yosys
    adds collision logic behind the block RAM, which the engine does not need, never reading a word
    in the cycle it is written.)"""
    from amaranth import Signal
    from amaranth.hdl import ClockDomain
    from amaranth.lib.memory import Memory

    width = Shape.cast(shape).width
    abits = (depth - 1).bit_length()

    def ports():
        return {"r_addr": Signal(abits, name="r_addr"), "r_en": Signal(name="r_en"),
                "w_addr": Signal(abits, name="w_addr"), "w_data": Signal(width, name="w_data"),
                "w_en": Signal(name="w_en"), "r_data": Signal(width, name="r_data")}

    m = Module()
    m.submodules.mem = mem = ColumnMemory(shape=shape, depth=depth, output_register=True)
    wp, rp = mem.write_port(), mem.read_port()
    sig = ports()
    m.d.comb += [rp.addr.eq(sig["r_addr"]), rp.en.eq(sig["r_en"]), wp.addr.eq(sig["w_addr"]),
                 wp.data.eq(sig["w_data"]), wp.en.eq(sig["w_en"]), sig["r_data"].eq(rp.data)]
    assert all(hi - lo <= 18 for lo, hi in mem.columns)
    got = _dp16kd_read_sides(m, list(sig.values()), tmp_path, "outreg")
    assert len(got) == len(mem.columns) and {s["regmode"] for s in got} == {"OUTREG"}

    ref = Module()
    ref.domains.wr = ClockDomain("wr")
    rsig = ports()
    for k, (lo, hi) in enumerate(mem.columns):
        col = Memory(shape=hi - lo, depth=depth, init=[])
        ref.submodules[f"col{k}"] = col
        cw, cr = col.write_port(domain="wr"), col.read_port()
        ref.d.comb += [cr.addr.eq(rsig["r_addr"]), cr.en.eq(rsig["r_en"]), cw.addr.eq(rsig["w_addr"]),
                       cw.data.eq(rsig["w_data"][lo:hi]), cw.en.eq(rsig["w_en"]), rsig["r_data"][lo:hi].eq(cr.data)]
    want = _dp16kd_read_sides(ref, list(rsig.values()), tmp_path, "plain")
    assert {s["regmode"] for s in want} == {"NOREG"}
    for g, w in zip(got, want, strict=True):
        assert (g["width"], g["addr"], g["data"]) == (w["width"], w["addr"], w["data"])
