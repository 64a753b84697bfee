"""The Verilated SpikeGradCore against the golden model, through cocotb.

Every configuration is built once (cached per configuration by the harness);
Python prepares golden vectors here, the bench replays them at full speed.
"""

from __future__ import annotations

import random

import pytest
import torch

from golden.data import encode_counts, load_digits_split
from golden.spikegrad import int_ann
from golden.spikegrad.params import SpikeGradParams
from golden.spikegrad.train import train_onchip
from golden.spikegrad.vectors import sequence_vectors
from spikecore.config import SpikeGradConfig
from sim.runner import run_cocotb

BENCH = "cocotb_tests.spikegrad_core.bench_core"


def core_verilog(cfg: SpikeGradConfig) -> str:
    from rtl.spikegrad import generate_core_verilog
    return generate_core_verilog(cfg, name="spikegrad_core")


def run_bench(cfg, vectors, testcase="golden_samples", **extra):
    return run_cocotb(core_verilog(cfg), "spikegrad_core", BENCH, args={**vectors, **extra},
                      testcase=testcase, build_key=cfg.to_json())


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def trained_params(cfg, digits, n=400):
    """Realistic weights: one short pass of the on-chip rule from a seeded init."""
    init = SpikeGradParams.random(cfg, seed=0, input_scale=7 / 4, fraction=0.5)
    p, _ = train_onchip(init, digits.train_x[:n], digits.train_y[:n], digits.test_x[:1], digits.test_y[:1], epochs=1)
    return p


def test_digits_test_split_inference_is_identical(digits):
    """All 360 test samples: V^L, class, op counters and flags equal the golden model."""
    cfg = SpikeGradConfig()
    params = trained_params(cfg, digits)
    items = [(encode_counts(x), None, cfg.error_shift) for x in digits.test_x]
    vec = sequence_vectors(params, items)
    # The integer ANN (the reference the RTL is compared with) agrees on every sample too.
    fwd = int_ann.forward(params, digits.test_x)
    assert [s["v_top"] for s in vec["samples"]] == fwd.v_top.tolist()
    run_bench(cfg, vec)


@pytest.mark.parametrize("lanes", [1, 4])
def test_onchip_training_300_samples_leaves_identical_weights(digits, lanes):
    """300 consecutive TRAIN commands from random weights: every weight equals the golden model."""
    cfg = SpikeGradConfig(lanes=lanes)
    params = SpikeGradParams.random(cfg, seed=lanes, input_scale=7 / 4, fraction=0.5)
    items = [(encode_counts(digits.train_x[n]), int(digits.train_y[n]), cfg.error_shift - (n // 100))
             for n in range(300)]
    vec = sequence_vectors(params, items)
    assert vec["final"]["weights"] != vec["params"]["weights"]
    run_bench(cfg, vec, result_gaps=True)


RANDOM_CONFIGS = {
    "three_layers_lanes2": SpikeGradConfig(layer_sizes=(20, 12, 9, 5), activations=("relu", "linear", "linear"),
                                           weight_bits=12, theta_ff=1500, theta_bp=900, membrane_bits=24,
                                           error_bits=20, error_shift=13, prob_bits=10, softmax_shift=4,
                                           exp_lut_size=256, exp_bits=12, lanes=2, eta=2),
    "lanes4_no_bias": SpikeGradConfig(layer_sizes=(13, 11, 6), weight_bits=10, theta_ff=400, theta_bp=300,
                                      membrane_bits=20, error_bits=18, error_shift=12, prob_bits=8,
                                      softmax_shift=2, exp_lut_size=64, exp_bits=10, bias=False, lanes=4),
    "saturating_lanes4": SpikeGradConfig(layer_sizes=(10, 8, 4), weight_bits=8, theta_ff=100, theta_bp=20,
                                         membrane_bits=9, error_bits=9, trace_bits=4, count_bits=3,
                                         error_shift=7, prob_bits=6, softmax_shift=1, exp_lut_size=32,
                                         exp_bits=8, lanes=4, input_bits=4),
    "linear_hidden_lanes1": SpikeGradConfig(layer_sizes=(9, 7, 3), activations=("linear", "linear"),
                                            weight_bits=9, theta_ff=200, theta_bp=200, membrane_bits=16,
                                            error_bits=16, error_shift=10, prob_bits=8, softmax_shift=2,
                                            exp_lut_size=64, exp_bits=8, lanes=1),
}


def random_items(cfg, rng, n, *, max_count):
    items = []
    for k in range(n):
        counts = [rng.randint(-max_count // 3, max_count) for _ in range(cfg.layer_sizes[0])]
        events = encode_counts(counts)
        rng.shuffle(events) if k % 3 == 2 else None   # also non-canonical event orders
        label = rng.randrange(cfg.num_classes) if k % 4 != 3 else None
        shift = rng.randint(max(0, cfg.error_shift - 3), cfg.error_shift)
        items.append((events, label, shift))
    return items


@pytest.mark.parametrize("name", sorted(RANDOM_CONFIGS))
def test_constrained_random_networks(name):
    """Random weights (full range), random signed inputs in random orders, mixed INFER/TRAIN."""
    cfg = RANDOM_CONFIGS[name]
    rng = random.Random(name)
    g = torch.Generator().manual_seed(len(name))
    ws = [torch.randint(-cfg.weight_limit, cfg.weight_limit + 1, cfg.weight_shape(l), generator=g)
          for l in range(cfg.num_layers)]
    bs = [torch.randint(-cfg.bias_limit, cfg.bias_limit + 1, (cfg.layer_sizes[l + 1],), generator=g) if cfg.bias
          else torch.zeros(cfg.layer_sizes[l + 1], dtype=torch.int64) for l in range(cfg.num_layers)]
    params = SpikeGradParams(cfg, ws, bs)
    vec = sequence_vectors(params, random_items(cfg, rng, 60, max_count=cfg.input_max))
    if name.startswith("saturating"):
        hit = {k for s in vec["samples"] for k, v in s["flags"].items() if v}
        assert {"membrane_saturated", "trace_saturated", "count_saturated"} <= hit, hit
    run_bench(cfg, vec, result_gaps=True, spike_gaps=True, seed=7)


def test_weight_port_round_trip_and_protocol_errors():
    cfg = RANDOM_CONFIGS["lanes4_no_bias"]
    params = SpikeGradParams.random(cfg, seed=5)
    vec = {"config": cfg.to_dict(),
           "params": {"weights": [w.tolist() for w in params.weights], "bias": [b.tolist() for b in params.biases]}}
    run_bench(cfg, vec, testcase="weight_port_and_protocol_errors")
