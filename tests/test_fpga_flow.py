"""FPGA flow pieces that need no full build: PLL settings and report parsing."""

from __future__ import annotations

import json

import pytest

from fpga.build import count_flipflops, format_summary, parse_report
from fpga.pll import ecp5_pll, ice40_pll


@pytest.mark.parametrize("f_out", [24.0, 30.0, 36.0, 48.0])
def test_ice40_pll_hits_the_frequency_within_the_vco_range(f_out):
    p = ice40_pll(12.0, f_out)
    f_pfd = 12.0 / (p.divr + 1)
    f_vco = f_pfd * (p.divf + 1)
    assert 10 <= f_pfd <= 133 and 533 <= f_vco <= 1066
    assert abs(f_vco / 2 ** p.divq - f_out) < 0.5
    assert p.f_out == pytest.approx(f_vco / 2 ** p.divq)


def test_ice40_pll_matches_icepll_for_30mhz():
    # icepll -i 12 -o 30: DIVR 0, DIVF 79, DIVQ 5, FILTER_RANGE 1
    p = ice40_pll(12.0, 30.0)
    assert (p.divr, p.divf, p.divq, p.filter_range) == (0, 79, 5, 1)


@pytest.mark.parametrize("f_out", [50.0, 75.0, 100.0, 125.0])
def test_ecp5_pll_hits_the_frequency_within_the_vco_range(f_out):
    p = ecp5_pll(25.0, f_out)
    f = 25.0 / p.clki_div * p.clkfb_div
    assert abs(f - f_out) < 1e-9 and 400 <= f * p.clkop_div <= 800


def test_ecp5_pll_matches_ecppll_for_100mhz():
    # ecppll -i 25 -o 100: CLKI_DIV 1, CLKFB_DIV 4, CLKOP_DIV 6, CLKOP_CPHASE 2
    p = ecp5_pll(25.0, 100.0)
    assert (p.clki_div, p.clkfb_div, p.clkop_div, p.clkop_cphase) == (1, 4, 6, 2)


def test_report_parsing_groups_resources_and_reads_fmax(tmp_path):
    report = {"utilization": {"ICESTORM_LC": {"used": 1200, "available": 5280},
                              "ICESTORM_RAM": {"used": 12, "available": 30},
                              "ICESTORM_DSP": {"used": 0, "available": 8}},
              "fmax": {"clk": {"achieved": 41.5, "constraint": 30.0}}}
    netlist = tmp_path / "n.json"
    netlist.write_text(json.dumps({"modules": {"top": {"cells": {
        "a": {"type": "SB_DFFE"}, "b": {"type": "SB_DFF"}, "c": {"type": "SB_LUT4"}}}}}))
    assert count_flipflops(netlist) == 2
    s = parse_report(report, "ice40", netlist=netlist)
    assert s["resources"]["LUT"] == {"used": 1200, "available": 5280}
    assert s["resources"]["BRAM"]["used"] == 12 and s["resources"]["FF"]["used"] == 2
    assert s["fmax"]["clk"] == {"achieved_mhz": 41.5, "constraint_mhz": 30.0}
    s.update(board="b", device="d", package="p", target_mhz=30.0, bitstream="x.bin", bitstream_bytes=1,
             build_seconds=1.0, timing_met=True)
    assert "41.50 MHz" in format_summary(s)
