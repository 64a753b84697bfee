"""Integer primitives against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings, strategies as st

from spikecore.config import SpikeGradConfig
from golden.spikegrad.fixedpoint import (div_round_half_away, div_round_half_away_t, exp_lut, residual_spike,
                                         restoring_divide, saturate, softmax_probabilities, top_error, top_error_t)


def round_half_away(q: Fraction) -> int:
    f = math.floor(abs(q) + Fraction(1, 2))
    return f if q >= 0 else -f


@given(st.integers(-10**6, 10**6), st.integers(1, 5000))
def test_division_rounds_half_away_from_zero(n, d):
    assert div_round_half_away(n, d) == round_half_away(Fraction(n, d))


def test_division_ties():
    assert [div_round_half_away(n, 2) for n in (-3, -1, 1, 3)] == [-2, -1, 1, 2]
    t = torch.tensor([-3, -1, 1, 3, 5, -5])
    assert div_round_half_away_t(t, 2).tolist() == [-2, -1, 1, 2, 3, -3]


@given(st.integers(-200, 200), st.integers(-5, 5), st.integers(2, 64), st.booleans())
def test_residual_spike_rounds_the_total(v, count, theta, relu):
    """eqs. 16/17: count + residual = round(count + V/theta), for V in (-theta, theta)."""
    v = max(-theta + 1, min(theta - 1, v))
    if relu and count < 0:
        count = -count
    total = count + residual_spike(v, count, theta, relu=relu)
    want = round_half_away(count + Fraction(v, theta))
    if relu:
        want = max(want, 0)
    assert total == want


@given(st.integers(0, 2**30), st.integers(1, 2**20))
def test_restoring_divide_is_floor_division(n, d):
    qbits = max(1, (n // d).bit_length())
    assert restoring_divide(n, d, qbits + 1) == n // d


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_saturate_never_wraps(bits):
    hi = (1 << (bits - 1)) - 1
    assert saturate(hi + 1, bits) == (hi, True)
    assert saturate(-hi - 2, bits) == (-hi - 1, True)
    assert saturate(hi, bits) == (hi, False)


def test_exp_lut_matches_the_exponential():
    cfg = SpikeGradConfig()
    lut = exp_lut(cfg)
    assert len(lut) == cfg.exp_lut_size and lut[0] == 1 << cfg.exp_bits
    step = (1 << cfg.softmax_shift) / cfg.theta_ff
    for t in (1, 10, 100, 500):
        assert abs(lut[t] - 2 ** cfg.exp_bits * math.exp(-t * step)) <= 0.5
    assert all(a >= b for a, b in zip(lut, lut[1:]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2**20, 2**20), min_size=2, max_size=12), st.data())
def test_top_error_scalar_and_batched_agree_and_track_float_softmax(v, data):
    cfg = SpikeGradConfig(layer_sizes=(4, len(v)), activations=("linear",))
    label = data.draw(st.integers(0, len(v) - 1))
    u = top_error(cfg, v, label)
    assert u == top_error_t(cfg, torch.tensor([v]), torch.tensor([label]))[0].tolist()
    p = softmax_probabilities(cfg, v)
    assert sum(p) <= cfg.prob_one
    # Against float softmax: the LUT bin (2**shift / theta logits wide) and the
    # table's rounding bound the error of each probability.
    logits = torch.tensor(v, dtype=torch.float64) / cfg.theta_ff
    ref = torch.softmax(logits, 0)
    bin_width = (1 << cfg.softmax_shift) / cfg.theta_ff
    tol = (math.exp(bin_width) - 1) + len(v) * 2.0 ** -cfg.exp_bits + 2.0 ** -cfg.prob_bits
    assert max(abs(pi / cfg.prob_one - float(r)) for pi, r in zip(p, ref)) <= tol + 1e-9
    onehot = [1.0 if i == label else 0.0 for i in range(len(v))]
    scale = 2 ** cfg.error_shift
    for ui, r, o in zip(u, ref.tolist(), onehot):
        assert abs(ui - scale * (r - o)) <= scale * (tol + 1e-9) + 0.5
