"""Bit-exact integer primitives shared by the golden models and the RTL.

Everything here works on Python ints (the scalar reference, easy to read and to
port to RTL) and, where the equivalent ANN needs it, on int64 torch tensors.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

from spikecore.config import SpikeGradConfig

if TYPE_CHECKING:  # torch is imported lazily: the RTL (and every Verilator bench) imports this module
    import torch


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def saturate(value: int, bits: int) -> tuple[int, bool]:
    """Clamp ``value`` to a ``bits``-wide two's-complement range.

    Returns ``(clamped, saturated)``; arithmetic in spikecore never wraps.
    """
    lo, hi = signed_range(bits)
    if value > hi:
        return hi, True
    if value < lo:
        return lo, True
    return value, False


def clamp(value: int, limit: int) -> tuple[int, bool]:
    """Clamp to ``[-limit, limit]``; returns ``(clamped, clamped_flag)``."""
    if value > limit:
        return limit, True
    if value < -limit:
        return -limit, True
    return value, False


def div_round_half_away(num: int, den: int) -> int:
    """``round(num / den)`` with ties rounded away from zero (``den > 0``).

    This is the rounding of the paper's eqs. 15 and 18, which the residual
    spike phase (eqs. 16 and 19) reproduces exactly.
    """
    q = (2 * abs(num) + den) // (2 * den)
    return q if num >= 0 else -q


def div_round_half_away_t(num: "torch.Tensor", den: int) -> "torch.Tensor":
    """Vectorised :func:`div_round_half_away` on int64 tensors."""
    import torch
    q = torch.div(2 * num.abs() + den, 2 * den, rounding_mode="floor")
    return torch.where(num >= 0, q, -q)


def ternary(value: int, theta: int) -> int:
    """The symmetric spike activation of eq. 3 (also the error activation)."""
    if value >= theta:
        return 1
    if value <= -theta:
        return -1
    return 0


def residual_spike(value: int, count: int, theta: int, *, relu: bool = False) -> int:
    """The residual activation of eqs. 16 / 19 on integers.

    ``count`` is the signed number of spikes emitted so far (its sign breaks the
    tie at exactly theta/2 so that the total rounds half away from zero). A ReLU
    neuron may only emit a negative residual spike when it has a positive count
    (as in eq. 4), which makes the total equal ``ReLU(round(.))``.
    """
    twice = 2 * value
    if twice > theta or (twice == theta and count >= 0):
        return 1
    if (twice < -theta or (twice == -theta and count <= 0)) and (not relu or count > 0):
        return -1
    return 0


# ----------------------------------------------------------------- softmax-CE
@lru_cache(maxsize=32)
def _exp_lut(theta_ff: int, softmax_shift: int, exp_lut_size: int, exp_bits: int) -> tuple[int, ...]:
    step = (1 << softmax_shift) / theta_ff
    one = 1 << exp_bits
    return tuple(int(math.floor(one * math.exp(-t * step) + 0.5)) for t in range(exp_lut_size))


def exp_lut(cfg: SpikeGradConfig) -> tuple[int, ...]:
    """The exponential lookup table: ``LUT[t] = round(2**exp_bits * exp(-t * 2**shift / theta_ff))``.

    Index ``t`` is ``(max(V^L) - V^L_i) >> softmax_shift`` clamped to the table;
    ``V / theta_ff`` is the equivalent ANN's logit. The RTL elaborates this same
    tuple into its ROM, so table values are defined once, here.
    """
    return _exp_lut(cfg.theta_ff, cfg.softmax_shift, cfg.exp_lut_size, cfg.exp_bits)


def restoring_divide(num: int, den: int, quotient_bits: int) -> int:
    """``floor(num / den)`` by shift-subtract, for ``0 <= num / den < 2**quotient_bits``.

    Written the way the hardware computes it (one quotient bit per step) so the
    reference and the RTL cannot drift apart; it equals ``num // den``.
    """
    assert num >= 0 and den > 0
    q = 0
    rem = 0
    width = max(num.bit_length(), 1)
    for bit in range(width - 1, -1, -1):
        rem = (rem << 1) | ((num >> bit) & 1)
        q <<= 1
        if rem >= den:
            rem -= den
            q |= 1
    assert q < (1 << quotient_bits)
    return q


def softmax_probabilities(cfg: SpikeGradConfig, v_top: list[int]) -> list[int]:
    """Fixed-point softmax of ``V^L``: ``p_i = floor(e_i * 2**prob_bits / sum(e))``."""
    lut = exp_lut(cfg)
    m = max(v_top)
    e = [lut[min((m - v) >> cfg.softmax_shift, cfg.exp_lut_size - 1)] for v in v_top]
    total = sum(e)
    return [restoring_divide(ei << cfg.prob_bits, total, cfg.prob_bits + 1) for ei in e]


def top_error(cfg: SpikeGradConfig, v_top: list[int], label: int) -> list[int]:
    """Initial top-layer error compartments ``U^L = round((p - onehot) * 2**error_shift)``.

    ``p - onehot`` has ``prob_bits`` fractional bits; scaling by ``2**error_shift``
    is a shift, rounded half away from zero when it is a right shift.
    """
    if not 0 <= label < len(v_top):
        raise ValueError(f"label {label} out of range [0, {len(v_top) - 1}]")
    p = softmax_probabilities(cfg, v_top)
    one = cfg.prob_one
    out = []
    for i, pi in enumerate(p):
        err = pi - (one if i == label else 0)
        out.append(div_round_half_away(err << cfg.error_shift, one))
    return out


def top_error_t(cfg: SpikeGradConfig, v_top: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
    """Batched :func:`top_error` on int64 tensors ``(B, C)``; bit-identical."""
    import torch
    lut = torch.tensor(exp_lut(cfg), dtype=torch.int64)
    m = v_top.max(dim=1, keepdim=True).values
    idx = torch.clamp((m - v_top) >> cfg.softmax_shift, max=cfg.exp_lut_size - 1)
    e = lut[idx]
    total = e.sum(dim=1, keepdim=True)
    p = torch.div(e << cfg.prob_bits, total, rounding_mode="floor")
    onehot = torch.nn.functional.one_hot(labels, v_top.shape[1]).to(torch.int64)
    err = p - onehot * cfg.prob_one
    return div_round_half_away_t(err << cfg.error_shift, cfg.prob_one)
