"""Acceptance of the host interface (issue 6) in simulation, entirely through the UART protocol.

The Verilated ``SpikeGradSystem`` (default configuration, the real core) is driven by the host
library over its UART pins (:class:`spikecore.host.transports.SimulatedSystem`):

1. load a weight file (validated first) and read it back;
2. digits test split (360 samples by default): accuracy and every ``V^L`` identical to the golden
   integer model (weights read back through the protocol);
3. on-device training of ``--train`` samples: the weights read back equal the golden event-driven
   model's after the same steps.

Prints and writes a JSON report with the wall times and simulation speeds.

    python scripts/uart_acceptance.py --out runs/uart_acceptance [--test 360] [--train 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from golden.spikegrad.params import SpikeGradParams  # noqa: E402
from golden.spikegrad.train import train_onchip  # noqa: E402
from golden.spikegrad.weights import save  # noqa: E402
from spikecore.config import SpikeGradConfig  # noqa: E402


def acceptance_weights(cfg: SpikeGradConfig, digits, n: int = 400) -> SpikeGradParams:
    """Realistic weights: one short pass of the on-chip rule from a seeded initialisation."""
    init = SpikeGradParams.random(cfg, seed=0, input_scale=7 / 4, fraction=0.5)
    params, _ = train_onchip(init, digits.train_x[:n], digits.train_y[:n], digits.test_x[:1], digits.test_y[:1],
                             epochs=1)
    return params


def run(out: Path, n_test: int, n_train: int, divisor: int, progress: bool) -> dict:
    from golden.data import load_digits_split
    from spikecore.host.client import evaluate, load, train_on_device
    from spikecore.host.transports import SimulatedSystem

    cfg = SpikeGradConfig()
    digits = load_digits_split()
    params = acceptance_weights(cfg, digits)
    out.mkdir(parents=True, exist_ok=True)
    wpath = out / "weights.json"
    save(params, wpath)
    report = {"config": "default", "divisor": divisor}
    t = time.monotonic()
    sim = SimulatedSystem(cfg, divisor=divisor, timeout_cycles=2000)
    with sim as tr:
        report["startup_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        load(wpath, tr, progress=progress)
        report["load_and_verify_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        ev = evaluate(tr, "test", limit=n_test, progress=progress)
        dt = time.monotonic() - t
        report["inference"] = {k: ev[k] for k in ("samples", "correct", "accuracy", "golden_accuracy",
                                                 "identical_to_golden")}
        report["inference"]["wall_s"] = round(dt, 1)
        report["inference"]["samples_per_s"] = round(ev["samples"] / dt, 2)
        t = time.monotonic()
        tr_out = train_on_device(tr, n_train, epochs=1, progress=progress)
        dt = time.monotonic() - t
        report["training"] = {"samples": n_train, "identical_to_golden": tr_out["identical_to_golden"],
                              "online_accuracy": tr_out["online_accuracy"], "wall_s": round(dt, 1),
                              "samples_per_s": round(n_train / dt, 2),
                              "weights_changed": not tr_out["params"].equal(params)}
    report["passed"] = bool(report["inference"]["identical_to_golden"] and report["training"]["identical_to_golden"])
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/uart_acceptance")
    ap.add_argument("--test", type=int, default=360, help="test samples to infer (360 = the whole split)")
    ap.add_argument("--train", type=int, default=100, help="training samples on the device")
    ap.add_argument("--divisor", type=int, default=8, help="clock cycles per UART bit in simulation")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    report = run(Path(a.out), a.test, a.train, a.divisor, not a.quiet)
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
