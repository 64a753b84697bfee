"""The spike-train fitting task trained on the Verilated temporal layer engines (full size: 250-25-1, T = 200).

Every spike train and loss equals the fixed-point golden model in every epoch; every weight after each of the
first 5 epochs; the loss falls by at least 50 %.
"""

from __future__ import annotations

import dataclasses

from cocotb_tests.exodus_engine.dut import TwoLayerTop
from cocotb_tests.exodus_engine.fit import FitTask, GoldenFit
from sim.runner import run_cocotb
from sim.verilog import generate_verilog

BENCH = "cocotb_tests.exodus_engine.bench_engine"
NO_SPLIT = ("--output-split", "0")  # see tests/test_rtl_exodus_chi_cocotb.py


def engine_verilog(task: FitTask) -> str:
    cfg = task.config()
    return generate_verilog(TwoLayerTop(cfg, n_in=task.n_in, n_hidden=task.n_hidden, n_out=1,
                                        max_steps=cfg.max_steps), name="exodus_fit")


def golden_run(task: FitTask, epochs: int, check_epochs: int, backward: str = "exodus"):
    fit = GoldenFit(task, backward)
    per_epoch, weights = [], []
    for e in range(epochs):
        h, _, _ = fit.hidden.forward(fit.x)
        loss, o, _ = fit.epoch()
        per_epoch.append({"hidden_spikes": h.tolist(), "out_spikes": [r[0] for r in o], "loss": loss})
        if e < check_epochs:
            weights.append({"hidden": fit.hidden.w.flatten().tolist(), "out": fit.out.w.flatten().tolist()})
    return per_epoch, weights


def run_fit(task: FitTask, epochs: int, check_epochs: int, backward: str = "exodus", result_file=None):
    per_epoch, weights = golden_run(task, epochs, check_epochs, backward)
    args = {"task": dataclasses.asdict(task), "backward": backward, "epochs": epochs,
            "golden": per_epoch, "golden_weights": weights, "result_file": result_file}
    run_cocotb(engine_verilog(task), "exodus_fit", BENCH, args=args, extra_build_args=NO_SPLIT, timeout=900)
    return per_epoch


def test_fit_task_trains_bit_exact_on_verilated_engine():
    per_epoch = run_fit(FitTask(lr_shift=12), epochs=12, check_epochs=5)
    losses = [p["loss"] for p in per_epoch]
    assert min(losses[1:]) <= 0.5 * losses[0], losses
