"""fpga.sdf_timing: endpoint timing from a routed design's SDF (small hand-written files, hand-computed
arrival times; the real ULX3S build cross-checks it against nextpnr in tests/test_fpga_build.py)."""

from __future__ import annotations

import pytest

from fpga.sdf_timing import block_of, format_timing, main, path_kinds, read_sdf, summarise

# Two registers feed a third through two LUTs; a constant drives a LUT input through a long route
# (not a timed path); the clock tree has a delay that is common to launch and capture. A setup
# check's first value is the setup time, the second the hold time (SDF SETUPHOLD).
#   a/CLK -> a/Q 0.5, a/Q -> l1/A 1.0, l1 A->F 0.2 (rise) / 0.25 (fall), l1/F -> l2/A 0.8,
#   l2 A->F 0.2, l2/F -> b/DI 0.6, setup 0.3: b/DI at 0.5+1.0+0.25+0.8+0.2+0.6 = 3.35, + 0.3 = 3.65 ns
#   a/Q -> c/DI 2.0, setup 0.1: 0.5 + 2.0 + 0.1 = 2.6 ns
#   d (another block) -> l2/B 0.4, l2 B->F 0.3: d/Q 0.5 + 0.4 + 0.3 + 0.6 = 1.8 < the path from a
def _cell(celltype, instance, iopaths, checks=()):
    """A CELL entry as nextpnr writes it (one construct per line)."""
    lines = [f'  (CELL\n    (CELLTYPE "{celltype}")\n    (INSTANCE {instance})\n    (DELAY\n      (ABSOLUTE']
    lines += [f"        (IOPATH {p})" for p in iopaths]
    lines.append("      )\n    )")
    if checks:
        lines.append("    (TIMINGCHECK")
        lines += [f"      (SETUPHOLD {c})" for c in checks]
        lines.append("    )")
    return "\n".join(lines) + "\n    )\n"


SDF = r"""(DELAYFILE
  (SDFVERSION "3.0")
  (DESIGN "top")
  (VENDOR "nextpnr")
  (DIVIDER /)
  (TIMESCALE 1ps)
  (CELL
    (CELLTYPE "top")
    (INSTANCE )
    (DELAY
      (ABSOLUTE
        (INTERCONNECT pll/CLKOP \$gbuf\$clk/CLKI (0:0:0) (0:0:0))
        (INTERCONNECT \$gbuf\$clk/CLKO design.blk.a_TRELLIS_FF_Q/CLK (0:0:0) (0:0:0))
        (INTERCONNECT \$gbuf\$clk/CLKO design.blk.b_TRELLIS_FF_Q_3/CLK (0:0:0) (0:0:0))
        (INTERCONNECT \$gbuf\$clk/CLKO design.blk.c_TRELLIS_FF_Q/CLK (0:0:0) (0:0:0))
        (INTERCONNECT \$gbuf\$clk/CLKO design.other.d_TRELLIS_FF_Q/CLK (0:0:0) (0:0:0))
        (INTERCONNECT design.blk.a_TRELLIS_FF_Q/Q design.blk.b_LUT4_Z/A (900:950:1000) (900:950:1000))
        (INTERCONNECT design.blk.b_LUT4_Z/F design.blk.b_DI_LUT4_Z/A (800:800:800) (800:800:800))
        (INTERCONNECT design.blk.b_DI_LUT4_Z/F design.blk.b_TRELLIS_FF_Q_3/DI (600:600:600) (600:600:600))
        (INTERCONNECT design.blk.a_TRELLIS_FF_Q/Q design.blk.c_TRELLIS_FF_Q/DI (2000:2000:2000) (2000:2000:2000))
        (INTERCONNECT design.other.d_TRELLIS_FF_Q/Q design.blk.b_DI_LUT4_Z/B (400:400:400) (400:400:400))
        (INTERCONNECT \$PACKER_VCC/F design.blk.b_LUT4_Z/B (5000:5000:5000) (5000:5000:5000))
      )
    )
    )
""" + "".join([
    _cell("DCCA", r"\$gbuf\$clk", ["CLKI CLKO (150:150:150) (150:150:150)"]),
    _cell("TRELLIS_FF", "design.blk.a_TRELLIS_FF_Q", ["CLK Q (430:477:500) (430:477:500)"],
          ["(posedge DI) (posedge CLK) (0:0:0) (267:285:303)"]),
    _cell("TRELLIS_FF", "design.other.d_TRELLIS_FF_Q", ["CLK Q (500:500:500) (500:500:500)"]),
    _cell("TRELLIS_COMB", "design.blk.b_LUT4_Z", ["A F (100:150:200) (120:180:250)",
                                                 "B F (200:218:236) (200:218:236)"]),
    _cell("TRELLIS_COMB", "design.blk.b_DI_LUT4_Z", ["A F (200:200:200) (200:200:200)",
                                                    "B F (300:300:300) (300:300:300)"]),
    _cell("TRELLIS_FF", "design.blk.b_TRELLIS_FF_Q_3", ["CLK Q (500:500:500) (500:500:500)"],
          ["(posedge DI) (posedge CLK) (250:280:300) (0:0:0)", "(negedge DI) (posedge CLK) (250:280:300) (0:0:0)"]),
    _cell("TRELLIS_FF", "design.blk.c_TRELLIS_FF_Q", ["CLK Q (500:500:500) (500:500:500)"],
          ["(posedge DI) (posedge CLK) (100:100:100) (0:0:0)"]),
]) + ")\n"


@pytest.fixture
def sdf(tmp_path):
    path = tmp_path / "design.sdf"
    path.write_text(SDF)
    return path


def test_each_endpoint_gets_its_slowest_path_plus_setup(sdf):
    eps = read_sdf(sdf).endpoints()
    by_pin = {e.pin: e for e in eps}
    # the registers with a setup check and a routed input; a's DI is not driven (no path)
    assert set(by_pin) == {"design.blk.b_TRELLIS_FF_Q_3/DI", "design.blk.c_TRELLIS_FF_Q/DI"}
    b, c = by_pin["design.blk.b_TRELLIS_FF_Q_3/DI"], by_pin["design.blk.c_TRELLIS_FF_Q/DI"]
    # worst corner and the slower of rise/fall; the clock tree (0.15 ns) and the constant are not counted
    assert b.delay_ns == pytest.approx(0.5 + 1.0 + 0.25 + 0.8 + 0.2 + 0.6 + 0.3)
    assert c.delay_ns == pytest.approx(0.5 + 2.0 + 0.1)
    assert eps[0] is b                      # slowest first
    assert b.path == ("design.blk.a_TRELLIS_FF_Q/CLK", "design.blk.a_TRELLIS_FF_Q/Q", "design.blk.b_LUT4_Z/A",
                      "design.blk.b_LUT4_Z/F", "design.blk.b_DI_LUT4_Z/A", "design.blk.b_DI_LUT4_Z/F",
                      "design.blk.b_TRELLIS_FF_Q_3/DI")
    assert b.start == "design.blk.a_TRELLIS_FF_Q/CLK"


def test_a_slower_side_input_takes_over_the_path(sdf, tmp_path):
    # d's route into the second LUT grows to 3 ns: 0.5 + 3.0 + 0.3 + 0.6 + 0.3 = 4.7 ns
    slow = tmp_path / "slow.sdf"
    slow.write_text(SDF.replace("design.blk.b_DI_LUT4_Z/B (400:400:400) (400:400:400)",
                                "design.blk.b_DI_LUT4_Z/B (3000:3000:3000) (3000:3000:3000)"))
    (b, c) = read_sdf(slow).endpoints()
    assert b.delay_ns == pytest.approx(4.7) and b.start == "design.other.d_TRELLIS_FF_Q/CLK"


def test_timescale_in_nanoseconds(tmp_path):
    path = tmp_path / "ns.sdf"
    path.write_text(SDF.replace("(TIMESCALE 1ps)", "(TIMESCALE 1ns)").replace("(2000:2000:2000)", "(2:2:2)")
                    .replace("(500:500:500)", "(0.5:0.5:0.5)")
                    .replace("(430:477:500)", "(0.43:0.477:0.5)").replace("(100:100:100)", "(0.1:0.1:0.1)"))
    c = {e.pin: e for e in read_sdf(path).endpoints()}["design.blk.c_TRELLIS_FF_Q/DI"]
    assert c.delay_ns == pytest.approx(2.6)


def test_summary_groups_failing_endpoints_by_block(sdf):
    eps = read_sdf(sdf).endpoints()
    s = summarise(eps, 3.0)
    assert (s["endpoints"], s["failing"], s["worst_ns"]) == (2, 1, pytest.approx(3.65))
    assert s["by_block"] == [{"from": "design.blk", "to": "design.blk", "failing": 1, "worst_ns": 3.65}]
    assert summarise(eps, 2.5)["failing"] == 2 and summarise(eps, 4.0)["by_block"] == []
    text = format_timing(s, eps, paths=1)
    assert "failing at 3.000 ns: 1, worst 3.650 ns (273.97 MHz)" in text
    assert "design.blk.b_DI_LUT4_Z/F" in text


def test_arrival_times_and_routing_delay_along_a_path(sdf):
    b = read_sdf(sdf).endpoints()[0]
    assert b.arrivals == pytest.approx((0.0, 0.5, 1.5, 1.75, 2.55, 2.75, 3.35))
    # the three routed hops a/Q -> l1, l1 -> l2, l2 -> b (the clock-to-Q and the LUTs are cell delays)
    assert b.routing_ns == pytest.approx(1.0 + 0.8 + 0.6)


def test_failing_paths_are_classed_by_the_hard_blocks_they_cross(sdf, tmp_path):
    graph = read_sdf(sdf)
    assert graph.celltypes["design.blk.b_LUT4_Z"] == "TRELLIS_COMB"
    assert graph.celltypes["design.blk.a_TRELLIS_FF_Q"] == "TRELLIS_FF"
    s = summarise(graph.endpoints(), 3.0)
    assert s["by_kind"] == {"logic": 1}
    assert s["routing_share"] == pytest.approx(2.4 / 3.35, abs=1e-3)
    # the first LUT of b's path becomes a block RAM read (a cell type nextpnr names)
    ram = tmp_path / "ram.sdf"
    ram.write_text(SDF.replace('(CELLTYPE "TRELLIS_COMB")\n    (INSTANCE design.blk.b_LUT4_Z)',
                               '(CELLTYPE "DP16KD")\n    (INSTANCE design.blk.b_LUT4_Z)'))
    graph = read_sdf(ram)
    eps = graph.endpoints()
    s = summarise(eps, 2.0)
    assert s["by_kind"] == {"block RAM": 1, "logic": 1}     # b's path and c's (a register to a register)
    text = format_timing(s, eps, paths=1)
    assert "block RAM 1, logic 1;" in text and "(3.650 ns with setup, 2.400 ns of it routing)" in text
    assert "  1.750  design.blk.b_LUT4_Z/F" in text


def test_hard_block_kinds_of_a_path():
    types = {"r": "DP16KD", "m": "MULT18X18D", "f": "TRELLIS_FF", "e": "ICESTORM_RAM", "d": "ICESTORM_DSP",
             "l$DPRAM_COMB1": "TRELLIS_COMB", "c": "TRELLIS_COMB"}
    assert path_kinds(["f/CLK", "f/Q", "c/A", "c/F", "f/DI"], types) == ("logic",)
    assert path_kinds(["r/CLKA", "r/DOA0", "m/A0", "m/P3", "f/DI"], types) == ("block RAM", "multiplier")
    assert path_kinds(["f/Q", "l$DPRAM_COMB1/A", "l$DPRAM_COMB1/F", "m/A1"], types) == ("multiplier", "LUT RAM")
    assert path_kinds(["e/RCLK", "e/RDATA_0", "d/A0"], types) == ("block RAM", "multiplier")
    assert path_kinds(["unknown/Q", "f/DI"], types) == ("logic",)


def test_block_names_drop_cell_suffixes_and_bit_numbers():
    assert block_of("design.exodus.layer0.acc_mem.0.14/DOA3") == ("design.exodus.layer0", "acc_mem")
    assert block_of("design.exodus.layer0.chi.lam0$61.0.9_RAD_3_TRELLIS_FF_Q/CLK") == \
        ("design.exodus.layer0.chi", "lam0")
    assert block_of("design.bridge.cmd_r_TRELLIS_FF_Q_4/Q") == ("design.bridge", "cmd_r")
    assert block_of("design.core.engine1.state$91.0.20$DPRAM_COMB1/WD") == ("design.core.engine1", "state")


def test_a_file_without_routed_delays_is_refused(tmp_path):
    path = tmp_path / "empty.sdf"
    path.write_text('(DELAYFILE\n  (SDFVERSION "3.0")\n  (TIMESCALE 1ps)\n)\n')
    with pytest.raises(ValueError, match="empty.sdf: no INTERCONNECT delays"):
        read_sdf(path)


def test_a_combinational_loop_is_named(sdf, tmp_path):
    path = tmp_path / "loop.sdf"
    path.write_text(SDF.replace(
        "(INTERCONNECT design.other.d_TRELLIS_FF_Q/Q design.blk.b_DI_LUT4_Z/B (400:400:400) (400:400:400))",
        "(INTERCONNECT design.blk.b_DI_LUT4_Z/F design.blk.b_LUT4_Z/B (400:400:400) (400:400:400))"))
    with pytest.raises(ValueError, match="combinational loop"):
        read_sdf(path).endpoints()


def test_command_line(sdf, capsys):
    assert main([str(sdf), "--period", "3", "--paths", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("endpoints 2, failing at 3.000 ns: 1")
    assert "3.650 ns      1  design.blk -> design.blk" in out
    assert "failing endpoints by the hard blocks on their paths (a path counts under each): logic 1;" in out
