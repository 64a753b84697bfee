"""The simulated-core half of the main job (``spikecore demo`` / ``make run``).

Everything goes through the host protocol, over the UART pins of the Verilated
``SpikeGradSystem``: load the offline-trained weights (validated, read back),
run the digits test split, train on the core, and compare every prediction,
``V^L`` and weight with the golden model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from spikecore.config import SpikeGradConfig


def run_core_demo(cfg: SpikeGradConfig, out: Path, *, train_samples: int = 100, progress: bool = True) -> int:
    from golden.spikegrad import weights as weight_file
    from spikecore.host.client import evaluate, load, train_on_device
    from spikecore.host.transports import SimulatedSystem

    t0 = time.time()
    print("simulated core: building the Verilated SpikeGradSystem (cached after the first run)...", flush=True)
    with SimulatedSystem(cfg) as dev:
        t_ready = time.time()
        load(out / "weights_offline.json", dev, progress=progress)
        ev = evaluate(dev, "test", progress=progress)
        t_eval = time.time()
        tr = train_on_device(dev, train_samples, 1, progress=progress)
        t_train = time.time()
    weight_file.save(tr["params"], out / "weights_after_core_training.json")
    report = {
        "core_test_accuracy": ev["accuracy"],
        "golden_test_accuracy": ev.get("golden_accuracy"),
        "test_split_identical_to_golden": ev.get("identical_to_golden"),
        "core_training_samples": tr["steps"],
        "core_training_weights_identical_to_golden": tr.get("identical_to_golden"),
        "seconds": {"build_and_start": t_ready - t0, "load_and_eval": t_eval - t_ready, "train": t_train - t_eval},
        "transport": "UART protocol, Verilated SpikeGradSystem",
    }
    (out / "core_report.json").write_text(json.dumps(report, indent=2) + "\n")
    ok = bool(ev.get("identical_to_golden")) and bool(tr.get("identical_to_golden"))
    print(f"simulated core, test split:        {100 * ev['accuracy']:.2f} % "
          f"({'identical to' if ev.get('identical_to_golden') else 'DIFFERENT FROM'} the golden integer model)")
    print(f"simulated core, {tr['steps']} training steps: weights "
          f"{'identical to' if tr.get('identical_to_golden') else 'DIFFERENT FROM'} the golden model")
    print(f"wrote {out}/core_report.json and weights_after_core_training.json")
    return 0 if ok else 1
