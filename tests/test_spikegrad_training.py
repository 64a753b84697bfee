"""Training behaviour (small, fast runs; the full numbers come from `spikecore train`)."""

from __future__ import annotations

import json

import torch

from spikecore.cli import main
from spikecore.config import SpikeGradConfig
from golden.data import encode_counts, load_digits_split
from golden.spikegrad import int_ann
from golden.spikegrad.event_sim import EventDrivenSimulator
from golden.spikegrad.params import SpikeGradParams
from golden.spikegrad.train import accuracy, train_float, train_onchip


def test_digits_split_is_fixed_and_stratified():
    a, b = load_digits_split(), load_digits_split()
    assert a.train_x.shape == (1437, 64) and a.test_x.shape == (360, 64)
    assert torch.equal(a.test_x, b.test_x)
    counts = torch.bincount(a.test_y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    assert int(a.train_x.max()) == 16 and int(a.train_x.min()) == 0


def test_encoding_is_round_robin_and_complete():
    ev = encode_counts([2, 0, 1, -2])
    assert ev == [(0, 1), (2, 1), (3, -1), (0, 1), (3, -1)]


def test_onchip_rule_learns_from_random_weights():
    d = load_digits_split()
    cfg = SpikeGradConfig()
    init = SpikeGradParams.random(cfg, seed=0, input_scale=7 / 4, fraction=0.5)
    before = accuracy(init, d.test_x, d.test_y)
    trained, epochs = train_onchip(init, d.train_x[:500], d.train_y[:500], d.test_x, d.test_y, epochs=1)
    assert before < 0.3
    assert epochs[0].test_accuracy > 0.8
    assert epochs[0].error_spikes_per_sample > 0


def test_onchip_rule_equals_the_event_driven_core_sample_by_sample():
    """The fast trainer is the chip: 30 consecutive event-driven training steps
    leave exactly the weights the integer ANN trainer produces."""
    d = load_digits_split()
    cfg = SpikeGradConfig()
    p = SpikeGradParams.random(cfg, seed=1, input_scale=7 / 4, fraction=0.5)
    sim = EventDrivenSimulator(p)
    for n in range(30):
        res = sim.train_step(encode_counts(d.train_x[n]), int(d.train_y[n]))
        assert not any(v for k, v in res.flags.items() if k != "weight_clamped")
        p, _, _ = int_ann.train_step(p, d.train_x[n:n + 1], d.train_y[n:n + 1])
    assert sim.params.equal(p)


def test_float_training_and_quantisation_agree():
    d = load_digits_split()
    cfg = SpikeGradConfig()
    res = train_float(cfg, d.train_x, d.train_y, d.test_x, d.test_y, epochs=8, finetune_epochs=2)
    q = res.net.quantize()
    assert res.test_accuracy > 0.9
    assert abs(accuracy(q, d.test_x, d.test_y) - res.test_accuracy) < 0.03


def test_train_command_writes_report_weights_and_plot(tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), "--epochs", "1", "--float-epochs", "2", "--sops-samples", "5", "--quiet"])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    for key in ("float_test_accuracy", "int_inference_test_accuracy", "onchip_rule_test_accuracy",
                "forward_sops_per_sample", "backward_sops_per_sample", "relative_sops"):
        assert key in rep
    assert len(rep["onchip_rule_test_accuracy"]) == 1
    assert rep["forward_sops_per_sample"] > 0
    assert (out / "training.png").stat().st_size > 1000
    assert (out / "weights_onchip.json").exists() and (out / "hex" / "layer0_weights.hex").exists()
    assert main(["check", str(out / "weights_onchip.json")]) == 0
