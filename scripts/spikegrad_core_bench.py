"""Throughput of the Verilated SpikeGrad core on the digits workload, lanes 1 vs 4.

For each lane count: builds the core (cached), runs the 360-sample test split
(INFER) and N training samples (TRAIN) through Verilator, checks every result
against the golden model (the bench fails otherwise), and reads the core's own
counters to compute synaptic operations per cycle per phase and cycles per
training sample. Writes ``core_bench.json`` and a table on stdout.

    python scripts/spikegrad_core_bench.py --out runs/core_bench [--train 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from golden.data import encode_counts, load_digits_split
from golden.spikegrad.params import SpikeGradParams
from golden.spikegrad.train import train_onchip
from golden.spikegrad.vectors import sequence_vectors
from sim.runner import run_cocotb
from spikecore.config import SpikeGradConfig

BENCH = "cocotb_tests.spikegrad_core.bench_core"


def run_on_core(cfg: SpikeGradConfig, vectors: dict) -> dict:
    """Replay golden ``vectors`` on the Verilated core (the bench fails on any difference);
    returns the core's own counters per sample and the wall time of the replay."""
    from rtl.spikegrad import generate_core_verilog
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        run = run_cocotb(generate_core_verilog(cfg, name="spikegrad_core"), "spikegrad_core", BENCH,
                         args={**vectors, "stats_file": str(stats)}, testcase="golden_samples",
                         build_key=cfg.to_json())
        out = json.loads(stats.read_text())
    out["build_seconds"] = run.build_seconds
    return out


def phase_rates(rows: list[dict]) -> dict:
    tot = {k: sum(r[k] for r in rows) for k in rows[0]}
    return {
        "cycles_per_sample": tot["cycles"] / len(rows),
        "forward_sops_per_cycle": tot["forward_ops"] / max(1, tot["forward_cycles"]),
        "backward_sops_per_cycle": tot["backward_ops"] / max(1, tot["backward_cycles"]),
        "update_ops_per_cycle": tot["update_ops"] / max(1, tot["update_cycles"]),
        "propagation_sops_per_cycle": (tot["forward_ops"] + tot["backward_ops"])
        / max(1, tot["forward_cycles"] + tot["backward_cycles"]),
        "forward_ops_per_sample": tot["forward_ops"] / len(rows),
        "backward_ops_per_sample": tot["backward_ops"] / len(rows),
        "update_ops_per_sample": tot["update_ops"] / len(rows),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/core_bench")
    ap.add_argument("--train", type=int, default=100, help="training samples per lane count")
    ap.add_argument("--infer", type=int, default=360, help="test samples (max 360)")
    ap.add_argument("--lanes", default="1,4")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_digits_split()
    results = {}
    for lanes in [int(x) for x in args.lanes.split(",")]:
        cfg = SpikeGradConfig(lanes=lanes)
        # Realistic weights: one pass of the on-chip rule over 400 samples.
        init = SpikeGradParams.random(cfg, seed=0, input_scale=7 / 4, fraction=0.5)
        params, _ = train_onchip(init, data.train_x[:400], data.train_y[:400], data.test_x[:1], data.test_y[:1],
                                 epochs=1)
        t0 = time.time()
        infer_vec = sequence_vectors(params, [(encode_counts(x), None, cfg.error_shift)
                                              for x in data.test_x[:args.infer]])
        infer = run_on_core(cfg, infer_vec)
        train_vec = sequence_vectors(params, [(encode_counts(data.train_x[n]), int(data.train_y[n]),
                                               cfg.error_shift - 3) for n in range(400, 400 + args.train)])
        train = run_on_core(cfg, train_vec)
        results[lanes] = {
            "inference": {**phase_rates(infer["counters"]), "samples": len(infer["counters"]),
                          "verilator_wall_seconds": infer["wall_seconds"],
                          "build_seconds": infer["build_seconds"]},
            "training": {**phase_rates(train["counters"]), "samples": len(train["counters"]),
                         "verilator_wall_seconds": train["wall_seconds"]},
            "all_results_identical_to_golden": True,
            "script_seconds": time.time() - t0,
        }
        print(f"lanes {lanes}: done ({time.time() - t0:.0f} s)", flush=True)
    lanes_list = sorted(results)
    if 1 in results and 4 in results:
        r = results[1]["training"]["cycles_per_sample"] / results[4]["training"]["cycles_per_sample"]
        results["training_cycle_ratio_lanes1_over_lanes4"] = r
    (out / "core_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'lanes':>5} {'phase':>9} {'cycles/sample':>13} {'fwd sops/cyc':>12} {'bwd sops/cyc':>12} "
          f"{'upd ops/cyc':>11} {'wall s':>7}")
    for lanes in lanes_list:
        for phase in ("inference", "training"):
            p = results[lanes][phase]
            print(f"{lanes:>5} {phase:>9} {p['cycles_per_sample']:13.0f} {p['forward_sops_per_cycle']:12.2f} "
                  f"{p['backward_sops_per_cycle']:12.2f} {p['update_ops_per_cycle']:11.2f} "
                  f"{p['verilator_wall_seconds']:7.1f}")
    if "training_cycle_ratio_lanes1_over_lanes4" in results:
        print(f"training cycles per sample, lanes 1 / lanes 4: {results['training_cycle_ratio_lanes1_over_lanes4']:.2f}x")
    print(f"wrote {out / 'core_bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
