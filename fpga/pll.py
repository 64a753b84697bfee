"""PLL parameter search for the supported FPGA families (no vendor tools)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ice40PllParams:
    divr: int
    divf: int
    divq: int
    filter_range: int
    f_out: float


def ice40_pll(f_in_mhz: float, f_out_mhz: float) -> Ice40PllParams:
    """SB_PLL40 parameters in SIMPLE feedback mode, as icepll computes them."""
    best = None
    for divr in range(16):
        f_pfd = f_in_mhz / (divr + 1)
        if not 10 <= f_pfd <= 133:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533 <= f_vco <= 1066:
                continue
            for divq in range(1, 7):
                f = f_vco / (1 << divq)
                err = abs(f - f_out_mhz)
                if best is None or err < best[0]:
                    filt = next(i for i, lim in enumerate((17, 26, 44, 66, 101, 1e9), start=1) if f_pfd < lim)
                    best = (err, Ice40PllParams(divr, divf, divq, filt, f))
    if best is None:
        raise ValueError(f"no iCE40 PLL setting for {f_in_mhz} MHz -> {f_out_mhz} MHz")
    return best[1]


@dataclass(frozen=True)
class Ecp5PllParams:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int
    f_out: float


def ecp5_pll(f_in_mhz: float, f_out_mhz: float) -> Ecp5PllParams:
    """EHXPLLL parameters (CLKOP feedback), as ecppll computes them."""
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in_mhz / clki_div
        if f_pfd < 3.125:
            break
        for clkfb_div in range(1, 81):
            f = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                f_vco = f * clkop_div
                if not 400 <= f_vco <= 800:
                    continue
                # Exact frequency first, then a VCO near mid-range (as ecppll prefers).
                err = (abs(f - f_out_mhz), abs(f_vco - 600))
                if best is None or err < best[0]:
                    best = (err, Ecp5PllParams(clki_div, clkfb_div, clkop_div, clkop_div // 2 - 1, f))
    if best is None:
        raise ValueError(f"no ECP5 PLL setting for {f_in_mhz} MHz -> {f_out_mhz} MHz")
    return best[1]
