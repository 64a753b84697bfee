"""Hypothesis strategies for random SpikeGrad networks, shared by the tests."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from spikecore.config import SpikeGradConfig
from golden.spikegrad.params import SpikeGradParams


@st.composite
def configs(draw, *, max_layers: int = 3, max_size: int = 7, wide: bool = True) -> SpikeGradConfig:
    """Random small configurations; ``wide`` widths never saturate on the inputs below."""
    n_layers = draw(st.integers(1, max_layers))
    sizes = [draw(st.integers(1, max_size)) for _ in range(n_layers + 1)]
    sizes[-1] = max(sizes[-1], 2)
    acts = [draw(st.sampled_from(["relu", "linear"])) for _ in range(n_layers - 1)] + ["linear"]
    theta_ff = draw(st.integers(2, 80))
    theta_bp = draw(st.integers(2, 80))
    weight_bits = draw(st.integers(3, 9))
    prob_bits = draw(st.integers(3, 10))
    error_bits = 40 if wide else draw(st.integers((2 * theta_bp).bit_length() + 1, 16))
    return SpikeGradConfig(
        layer_sizes=tuple(sizes), activations=tuple(acts),
        weight_bits=weight_bits,
        membrane_bits=40 if wide else draw(st.integers((2 * theta_ff).bit_length() + 1, 14)),
        error_bits=error_bits,
        trace_bits=30 if wide else draw(st.integers(3, 8)),
        count_bits=20 if wide else draw(st.integers(2, 6)),
        theta_ff=theta_ff, theta_bp=theta_bp,
        eta=draw(st.integers(1, 3)),
        error_shift=draw(st.integers(0, min(error_bits - 2, prob_bits + 8))),
        softmax_shift=draw(st.integers(0, 4)),
        exp_lut_size=draw(st.sampled_from([4, 16, 64])),
        exp_bits=draw(st.integers(4, 12)),
        prob_bits=prob_bits,
        bias=draw(st.booleans()),
    )


@st.composite
def networks(draw, cfg_strategy=None):
    """``(params, input_counts, label)`` for a random configuration."""
    cfg = draw(cfg_strategy or configs())
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    ws, bs = [], []
    for l in range(cfg.num_layers):
        shape = cfg.weight_shape(l)
        ws.append(torch.randint(-cfg.weight_limit, cfg.weight_limit + 1, shape, generator=g))
        if cfg.bias:
            bs.append(torch.randint(-cfg.bias_limit, cfg.bias_limit + 1, (shape[0],), generator=g))
        else:
            bs.append(torch.zeros(shape[0], dtype=torch.int64))
    params = SpikeGradParams(cfg, ws, bs)
    counts = draw(st.lists(st.integers(-4, 6), min_size=cfg.layer_sizes[0], max_size=cfg.layer_sizes[0]))
    label = draw(st.integers(0, cfg.num_classes - 1))
    return params, counts, label
