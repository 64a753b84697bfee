"""The ``spikecore train`` job: offline float training, quantisation, on-chip
rule training, operation counts, and the files it writes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from golden.data import encode_counts, load_digits_split
from spikecore.config import SpikeGradConfig

from . import weights as weight_file
from .event_sim import EventDrivenSimulator
from .params import SpikeGradParams
from .train import DEFAULT_SHIFT_SCHEDULE, accuracy, train_float, train_onchip


def ann_macs(cfg: SpikeGradConfig) -> dict:
    """Multiply-accumulates of the same network as an ANN, per sample."""
    sizes = cfg.layer_sizes
    fwd = sum(sizes[l] * sizes[l + 1] for l in range(cfg.num_layers))
    bwd = sum(sizes[l] * sizes[l + 1] for l in range(1, cfg.num_layers))
    return {"forward": fwd, "backward": bwd, "update": fwd}


def measure_sops(params: SpikeGradParams, x, y, *, progress: bool = True) -> dict:
    """Mean synaptic operations per training sample, event by event (weights not updated)."""
    tot = {"forward_ops": 0, "backward_ops": 0, "update_ops": 0}
    it = range(len(y))
    for n in tqdm(it, desc="sops (event sim)", disable=not progress, leave=False):
        sim = EventDrivenSimulator(params)
        res = sim.train_step(encode_counts(x[n].tolist()), int(y[n]))
        for k in tot:
            tot[k] += getattr(res.counters, k)
    return {k: v / len(y) for k, v in tot.items()}


def run_training(cfg: SpikeGradConfig, out: Path, *, float_epochs: int = 100, onchip_epochs: int = 10,
                 seed: int = 0, sops_samples: int | None = None, progress: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    data = load_digits_split()
    t0 = time.time()

    bar = tqdm(total=float_epochs, desc="float training", disable=not progress)
    fres = train_float(cfg, data.train_x, data.train_y, data.test_x, data.test_y, epochs=float_epochs, seed=seed,
                       progress=lambda ep, acc: (bar.update(1), bar.set_postfix(test=f"{acc:.3f}")))
    bar.close()
    qparams = fres.net.quantize()
    weight_file.save(qparams, out / "weights_offline.json")
    int_acc = accuracy(qparams, data.test_x, data.test_y)

    init = SpikeGradParams.random(cfg, seed=seed, input_scale=7 / 4, fraction=0.5)
    n_train = len(data.train_y)
    bar = tqdm(total=onchip_epochs * n_train, desc="on-chip rule", disable=not progress)
    trained, epochs = train_onchip(init, data.train_x, data.train_y, data.test_x, data.test_y,
                                   epochs=onchip_epochs, seed=seed,
                                   progress=lambda ep, n: bar.update(1))
    bar.close()
    weight_file.save(trained, out / "weights_onchip.json")
    weight_file.export_hex(trained, out / "hex")

    n = len(data.test_y) if sops_samples is None else sops_samples
    sops = measure_sops(trained, data.test_x[:n], data.test_y[:n], progress=progress)
    macs = ann_macs(cfg)
    report = {
        "config": cfg.to_dict(),
        "float_test_accuracy": fres.test_accuracy,
        "int_inference_test_accuracy": int_acc,
        "onchip_rule_test_accuracy": [e.test_accuracy for e in epochs],
        "onchip_rule_train_accuracy": [e.train_accuracy for e in epochs],
        "onchip_error_shift_schedule": [e.error_shift for e in epochs],
        "error_spikes_per_sample": [e.error_spikes_per_sample for e in epochs],
        "forward_sops_per_sample": sops["forward_ops"],
        "backward_sops_per_sample": sops["backward_ops"],
        "update_ops_per_sample": sops["update_ops"],
        "ann_macs_per_sample": macs,
        "relative_sops": {
            "forward": sops["forward_ops"] / macs["forward"],
            "backward": sops["backward_ops"] / macs["backward"] if macs["backward"] else 0.0,
            "update": sops["update_ops"] / macs["update"],
        },
        "sops_measured_on": f"{n} test samples, event-driven simulator, on-chip-trained weights",
        "seed": seed,
        "float_epochs": float_epochs,
        "wall_seconds": time.time() - t0,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_training(report, out / "training.png")
    return report


def plot_training(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = list(range(1, len(report["onchip_rule_test_accuracy"]) + 1))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [100 * a for a in report["onchip_rule_test_accuracy"]], "o-", label="on-chip rule (test)")
    a1.plot(ep, [100 * a for a in report["onchip_rule_train_accuracy"]], "s--", label="on-chip rule (train)")
    a1.axhline(100 * report["float_test_accuracy"], color="k", ls=":", label="float offline (test)")
    a1.axhline(100 * report["int_inference_test_accuracy"], color="g", ls="-.", label="quantised offline (test)")
    a1.set_xlabel("epoch")
    a1.set_ylabel("accuracy (%)")
    a1.set_title("SpikeGrad on digits, 64-32-10")
    a1.legend(loc="lower right", fontsize=8)
    a2.bar(ep, report["error_spikes_per_sample"])
    a2.set_xlabel("epoch")
    a2.set_ylabel("error spikes per sample (all layers)")
    a2.set_title("backward activity")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
