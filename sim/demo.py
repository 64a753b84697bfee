"""The simulated-core half of the main job (``spikecore demo`` / ``make run``).

Loads the offline-trained, quantised weights into the Verilated SpikeGradCore,
runs the digits test split through it, then trains on the core for a while and
checks every result, counter and weight against the golden model.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from golden.data import encode_counts, load_digits_split
from golden.spikegrad import weights as weight_file
from golden.spikegrad.vectors import sequence_vectors
from spikecore.config import SpikeGradConfig

from .runner import run_cocotb

BENCH = "cocotb_tests.spikegrad_core.bench_core"


def core_verilog(cfg: SpikeGradConfig) -> str:
    from rtl.spikegrad import generate_core_verilog
    return generate_core_verilog(cfg, name="spikegrad_core")


def run_on_core(cfg: SpikeGradConfig, vectors: dict) -> dict:
    """Replay golden ``vectors`` on the Verilated core; returns the core's per-sample counters.

    Raises (through the bench) if any result, counter, flag or final weight differs.
    """
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        run = run_cocotb(core_verilog(cfg), "spikegrad_core", BENCH, args={**vectors, "stats_file": str(stats)},
                         testcase="golden_samples", build_key=cfg.to_json())
        out = json.loads(stats.read_text())
    out["build_seconds"] = run.build_seconds
    out["run_seconds"] = run.run_seconds
    return out


def _mean(rows, key):
    return sum(r[key] for r in rows) / max(1, len(rows))


def run_core_demo(cfg: SpikeGradConfig, out: Path, *, train_samples: int = 200, progress: bool = True) -> int:
    data = load_digits_split()
    params = weight_file.load(out / "weights_offline.json")
    t0 = time.time()
    print("simulated core: building and running the test split (inference)...", flush=True)
    items = [(encode_counts(x), None, cfg.error_shift) for x in data.test_x]
    vec = sequence_vectors(params, items)
    infer = run_on_core(cfg, vec)
    correct = sum(int(s["prediction"] == int(y)) for s, y in zip(vec["samples"], data.test_y))
    print(f"simulated core: training on {train_samples} samples...", flush=True)
    items = [(encode_counts(data.train_x[n]), int(data.train_y[n]), cfg.error_shift - 3) for n in range(train_samples)]
    tvec = sequence_vectors(params, items)
    train = run_on_core(cfg, tvec)
    rows_i, rows_t = infer["counters"], train["counters"]
    report = {
        "core_test_accuracy": correct / len(data.test_y),
        "core_matches_golden": True,
        "inference": {
            "samples": len(rows_i),
            "cycles_per_sample": _mean(rows_i, "cycles"),
            "forward_ops_per_sample": _mean(rows_i, "forward_ops"),
            "sops_per_cycle_forward": sum(r["forward_ops"] for r in rows_i) / max(1, sum(r["forward_cycles"] for r in rows_i)),
            "verilator_wall_seconds": infer["wall_seconds"],
        },
        "training": {
            "samples": len(rows_t),
            "cycles_per_sample": _mean(rows_t, "cycles"),
            "forward_ops_per_sample": _mean(rows_t, "forward_ops"),
            "backward_ops_per_sample": _mean(rows_t, "backward_ops"),
            "update_ops_per_sample": _mean(rows_t, "update_ops"),
            "weights_identical_to_golden": True,
        },
        "lanes": cfg.lanes,
        "wall_seconds": time.time() - t0,
    }
    (out / "core_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"simulated core test accuracy:     {100 * report['core_test_accuracy']:.2f} % "
          f"(identical to the golden integer model on all {len(rows_i)} samples)")
    print(f"simulated core, per sample:       inference {report['inference']['cycles_per_sample']:.0f} cycles, "
          f"training {report['training']['cycles_per_sample']:.0f} cycles (lanes = {cfg.lanes})")
    print(f"on-core training, {train_samples} samples: weights identical to the golden model")
    print(f"wrote {out}/core_report.json")
    return 0
