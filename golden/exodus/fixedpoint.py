"""Bit-exact model of the EXODUS hardware: chi unit and temporal layer engine.

Every quantity is an integer; its format comes from
:class:`spikecore.config.ExodusConfig` (``docs/exodus.md`` is the spec).
Two implementations of each step are given:

* a scalar reference on Python ints (``round_shift``, ``saturate``,
  ``lif_step``, ``chi_step``, ...) -- short enough to port to RTL and to reuse
  in cocotb checkers;
* a vectorised ``torch.int64`` version (``lif_forward_fixed``,
  ``chi_scan_fixed``, ...) for whole layers, tested against the scalar one.

Arithmetic rules, everywhere:

* a product is exact; it is brought to the destination format by
  :func:`round_shift` -- add ``2**(k-1)``, arithmetic shift right by ``k``
  (round half up, i.e. towards +infinity on ties);
* the result is then *saturated* to the destination width (never wrapped) and
  every saturation is counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from spikecore.config import ExodusConfig

from .surrogates import Surrogate


# ---------------------------------------------------------------- primitives
def round_shift(x: int, k: int) -> int:
    """``x * 2**-k`` rounded half up (``k = 0``: unchanged)."""
    return (x + (1 << (k - 1))) >> k if k > 0 else x


def saturate(x: int, bits: int) -> tuple[int, bool]:
    """Clamp ``x`` to a signed ``bits``-wide integer; also says whether it clamped."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if x < lo:
        return lo, True
    if x > hi:
        return hi, True
    return x, False


def round_shift_t(x: torch.Tensor, k: int) -> torch.Tensor:
    """Vectorised :func:`round_shift` on int64 tensors (``>>`` is arithmetic)."""
    return (x + (1 << (k - 1))) >> k if k > 0 else x


def saturate_t(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, int]:
    """Vectorised :func:`saturate`; returns the clamped tensor and how many clamped."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    n = int(((x < lo) | (x > hi)).sum())
    return x.clamp(lo, hi), n


def quantize(x: torch.Tensor, frac: int, bits: int) -> torch.Tensor:
    """Float to a signed ``Q(bits-frac).frac`` int64 tensor, round half up, saturating."""
    q = torch.floor(x.to(torch.float64) * (1 << frac) + 0.5).to(torch.int64)
    return saturate_t(q, bits)[0]


def dequantize(q: torch.Tensor, frac: int, dtype=torch.float64) -> torch.Tensor:
    """Integer tensor with ``frac`` fractional bits back to float."""
    return q.to(dtype) / (1 << frac)


def exact_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Integer ``a @ b`` (int64). Uses float64 BLAS when every partial sum is
    below ``2**53`` (then the result is exact), integer matmul otherwise."""
    bound = int(a.abs().max()) * int(b.abs().max()) * a.shape[-1] if a.numel() and b.numel() else 0
    if bound < (1 << 53):
        return torch.round(a.to(torch.float64) @ b.to(torch.float64)).to(torch.int64)
    return a @ b


# ------------------------------------------------------------- lookup tables
@dataclass(frozen=True)
class ChiTables:
    """Contents of the chi unit's two tables and its SLAYER constant.

    ``fprime[i]``: ``f'`` (unsigned, ``fprime_frac`` fractional bits) at the
    midpoint of bin ``i``, which holds ``d = u - theta`` in
    ``[(i - N/2) * 2**lut_shift, (i - N/2 + 1) * 2**lut_shift)`` membrane LSBs.
    ``coef[i]``: ``alpha - theta f'`` (or ``alpha (1 - theta f')``) computed
    exactly from the *quantised* ``alpha`` and ``fprime[i]``, rounded half up
    to ``fprime_frac`` fractional bits, saturated to ``coef_bits``.
    ``slayer_coef``: ``alpha`` in the coefficient format (SLAYER mode).
    """

    fprime: tuple[int, ...]
    coef: tuple[int, ...]
    slayer_coef: int


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def lut_index(u: int, cfg: ExodusConfig) -> int | None:
    """Table address of membrane value ``u``: ``((u - theta) >> lut_shift) + lut_size/2``,
    or ``None`` when that falls outside the table (then ``f' = 0``, ``c = alpha``)."""
    i = ((u - cfg.theta_q) >> cfg.lut_shift) + cfg.lut_size // 2
    return i if 0 <= i < cfg.lut_size else None


def lut_lookup(u: int, tables: "ChiTables", cfg: ExodusConfig) -> tuple[int, int]:
    """``(f', c)`` for membrane ``u``. Beyond the table the surrogate is taken as 0
    (one comparator in hardware): clamping to the edge entry instead would add
    ``theta * f'(edge)`` to ``1 - c`` at every step a neuron sits far from
    threshold, an error that compounds over ``T`` when ``alpha`` is close to 1."""
    i = lut_index(u, cfg)
    if i is None:
        return 0, tables.slayer_coef
    return tables.fprime[i], (tables.slayer_coef if cfg.slayer_mode else tables.coef[i])


def build_tables(cfg: ExodusConfig) -> ChiTables:
    """Fill the surrogate and coefficient tables of ``cfg`` (host-side, done once)."""
    sur = Surrogate(cfg.surrogate, cfg.surrogate_scale, cfg.surrogate_width)
    F = cfg.fprime_frac
    alpha = Fraction(cfg.alpha_q, 1 << cfg.alpha_frac)
    theta = Fraction(cfg.theta_q, 1 << cfg.u_frac)
    fmax = (1 << cfg.fprime_bits) - 1
    fprime, coef = [], []
    for i in range(cfg.lut_size):
        mid = Fraction(2 * (i - cfg.lut_size // 2) + 1, 2) * (1 << cfg.lut_shift)  # bin midpoint, LSBs
        f_real = sur.scalar(float(theta + mid / (1 << cfg.u_frac)), float(theta))
        f_q = min(math.floor(f_real * (1 << F) + 0.5), fmax)
        fprime.append(f_q)
        theta_f = theta * Fraction(f_q, 1 << F)
        c = alpha - theta_f if cfg.reset_order == "after_decay" else alpha * (1 - theta_f)
        coef.append(saturate(_round_half_up(c * (1 << F)), cfg.coef_bits)[0])
    slayer = saturate(_round_half_up(alpha * (1 << F)), cfg.coef_bits)[0]
    return ChiTables(tuple(fprime), tuple(coef), slayer)


# ------------------------------------------------------------ chi unit, scalar
def chi_core(lam_next: int, fprime: int, coef: int, g: int, mask: int, cfg: ExodusConfig) -> tuple[int, bool]:
    """One step of the chi recurrence on integers.

    ``lambda = sat(round_shift(f' g + c lambda_next, fprime_frac))`` if the clamp
    mask is 1, else 0. ``f'`` and ``c`` share ``fprime_frac`` fractional bits and
    ``g`` and ``lambda`` share ``grad_frac``, so both products are on one scale
    and the step rounds once.
    """
    if not mask:
        return 0, False
    acc = fprime * g + coef * lam_next
    return saturate(round_shift(acc, cfg.fprime_frac), cfg.grad_bits)


def chi_step(lam_next: int, u: int, g: int, mask: int, tables: ChiTables, cfg: ExodusConfig) -> tuple[int, bool]:
    """Chi unit fed with the membrane ``u``: :func:`lut_lookup`, then :func:`chi_core`."""
    fprime, coef = lut_lookup(u, tables, cfg)
    return chi_core(lam_next, fprime, coef, g, mask, cfg)


def chi_sequence(us, gs, masks, tables: ChiTables, cfg: ExodusConfig) -> tuple[list[int], int]:
    """Scalar reverse scan over one neuron's ``T`` steps; returns ``(lambda, saturations)``."""
    lam_next, n_sat = 0, 0
    lam = [0] * len(us)
    for t in range(len(us) - 1, -1, -1):
        lam_next, sat = chi_step(lam_next, us[t], gs[t], masks[t], tables, cfg)
        lam[t] = lam_next
        n_sat += sat
    return lam, n_sat


# ------------------------------------------------------ forward neuron, scalar
def lif_step(u_prev: int, s_prev: int, z: int, cfg: ExodusConfig) -> tuple[int, int, int, bool]:
    """One forward step of the fixed-point neuron; returns ``(u, s, mask, saturated)``.

    Reset after decay: ``v = round_shift(alpha u_prev, alpha_frac) + z - theta s_prev``;
    reset before decay: ``v = round_shift(alpha (u_prev - theta s_prev), alpha_frac) + z``.
    Then ``v`` is saturated to ``u_bits``, clamped from below at ``u_min``
    (``mask = v >= u_min``) and ``s = u >= theta``.
    """
    if cfg.reset_order == "after_decay":
        v = round_shift(cfg.alpha_q * u_prev, cfg.alpha_frac) + z - cfg.theta_q * s_prev
    else:
        v = round_shift(cfg.alpha_q * (u_prev - cfg.theta_q * s_prev), cfg.alpha_frac) + z
    v, sat = saturate(v, cfg.u_bits)
    mask = 1
    if cfg.u_min_q is not None:
        mask = int(v >= cfg.u_min_q)
        v = max(v, cfg.u_min_q)
    return v, int(v >= cfg.theta_q), mask, sat


# --------------------------------------------------------- vectorised layers
def lif_forward_fixed(z: torch.Tensor, u0: torch.Tensor, cfg: ExodusConfig):
    """:func:`lif_step` over ``T = z.shape[0]`` steps on int64 tensors.

    ``z``: input current in membrane LSBs (already saturated to ``u_bits``).
    Returns ``(s, u, mask, saturations)``; ``mask`` is all ones without a clamp.
    """
    u = torch.empty_like(z)
    s = torch.empty_like(z)
    mask = torch.ones(z.shape, dtype=torch.bool)
    u_prev = u0.expand(z.shape[1:]).to(torch.int64)
    s_prev = torch.zeros_like(u_prev)
    n_sat = 0
    for t in range(z.shape[0]):
        if cfg.reset_order == "after_decay":
            v = round_shift_t(cfg.alpha_q * u_prev, cfg.alpha_frac) + z[t] - cfg.theta_q * s_prev
        else:
            v = round_shift_t(cfg.alpha_q * (u_prev - cfg.theta_q * s_prev), cfg.alpha_frac) + z[t]
        v, n = saturate_t(v, cfg.u_bits)
        n_sat += n
        if cfg.u_min_q is not None:
            mask[t] = v >= cfg.u_min_q
            v = v.clamp(min=cfg.u_min_q)
        u[t] = v
        s[t] = (v >= cfg.theta_q).to(torch.int64)
        u_prev, s_prev = u[t], s[t]
    return s, u, mask, n_sat


def chi_scan_fixed(u: torch.Tensor, g: torch.Tensor, mask: torch.Tensor, tables: ChiTables, cfg: ExodusConfig):
    """:func:`chi_step` over a whole layer and all ``T`` steps (reverse order).

    Returns ``(lambda, saturations)`` with ``lambda`` int64 shaped like ``u``.
    """
    idx = ((u - cfg.theta_q) >> cfg.lut_shift) + cfg.lut_size // 2
    inside = (idx >= 0) & (idx < cfg.lut_size)
    idx = idx.clamp(0, cfg.lut_size - 1)
    fprime = torch.where(inside, torch.tensor(tables.fprime, dtype=torch.int64)[idx], 0)
    if cfg.slayer_mode:
        coef = torch.full_like(u, tables.slayer_coef)
    else:
        coef = torch.where(inside, torch.tensor(tables.coef, dtype=torch.int64)[idx], tables.slayer_coef)
    a = fprime * g
    lam = torch.zeros_like(u)
    lam_next = torch.zeros_like(u[0])
    n_sat = 0
    for t in range(u.shape[0] - 1, -1, -1):
        # Masked (clamped) steps output 0 and never count as saturated.
        raw = torch.where(mask[t], round_shift_t(a[t] + coef[t] * lam_next, cfg.fprime_frac), 0)
        lam_next, n = saturate_t(raw, cfg.grad_bits)
        n_sat += n
        lam[t] = lam_next
    return lam, n_sat


# ------------------------------------------------------- temporal layer engine
def synaptic_current_fixed(w: torch.Tensor, x: torch.Tensor, cfg: ExodusConfig) -> tuple[torch.Tensor, int]:
    """``z[n] = sum_j w_ij x_j[n]`` (exact), saturated to ``u_bits``.

    ``w``: ``(fan_out, fan_in)`` in membrane LSBs; ``x``: ``(T, batch, fan_in)``
    unsigned ``input_bits`` integers (spikes are 0/1, so this is a gated sum).
    """
    return saturate_t(exact_matmul(x, w.t()), cfg.u_bits)


def backprop_fixed(w: torch.Tensor, lam: torch.Tensor, cfg: ExodusConfig) -> tuple[torch.Tensor, int]:
    """Spike gradient of the previous layer ``g_j[n] = sum_i w_ij lambda_i[n]``.

    The sum of products is exact (``u_frac + grad_frac`` fractional bits), then
    ``round_shift`` by ``u_frac`` and saturation to ``grad_bits``.
    """
    return saturate_t(round_shift_t(exact_matmul(lam, w), cfg.u_frac), cfg.grad_bits)


def weight_grad_fixed(lam: torch.Tensor, x: torch.Tensor, cfg: ExodusConfig) -> tuple[torch.Tensor, int]:
    """Accumulator ``acc_ij = sum_{n,batch} lambda_i[n] x_j[n]`` (``grad_frac`` bits), saturated to ``acc_bits``.

    With spike inputs this is a gated addition of ``lambda`` per input spike.
    """
    lam2 = lam.reshape(-1, lam.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return saturate_t(exact_matmul(lam2.t(), x2), cfg.acc_bits)


def weight_update_fixed(w: torch.Tensor, acc: torch.Tensor, cfg: ExodusConfig) -> tuple[torch.Tensor, int]:
    """SGD step ``w - round_shift(acc, grad_frac - u_frac + lr_shift)``, saturated to ``weight_bits``.

    The real learning rate is ``2**-lr_shift``.
    """
    return saturate_t(w - round_shift_t(acc, cfg.update_shift), cfg.weight_bits)


@dataclass
class LayerRecord:
    """What the forward pass of one spiking layer leaves for the backward pass."""

    x: torch.Tensor  # the layer's input (spikes of the layer below)
    s: torch.Tensor
    u: torch.Tensor
    mask: torch.Tensor


def mlp_forward_fixed(weights, x: torch.Tensor, cfg: ExodusConfig, *, readout: bool = True):
    """Forward of a :class:`~golden.exodus.networks.SpikingMLP` in fixed point.

    Returns ``(records, out, saturations)``; ``out`` is the readout current
    (or the last spikes without a readout).
    """
    records, n_sat = [], 0
    h = x
    n_spiking = len(weights) - (1 if readout else 0)
    for i, w in enumerate(weights):
        z, n = synaptic_current_fixed(w, h, cfg)
        n_sat += n
        if i == n_spiking:
            return records, z, n_sat
        s, u, mask, n = lif_forward_fixed(z, torch.zeros((), dtype=torch.int64), cfg)
        n_sat += n
        records.append(LayerRecord(h, s, u, mask))
        h = s
    return records, h, n_sat


def mlp_backward_fixed(weights, records, grad_out: torch.Tensor, cfg: ExodusConfig, *, readout: bool = True):
    """Weight-gradient accumulators of every layer, from ``grad_out`` (in ``grad`` format).

    ``grad_out`` is ``dL/d(readout current)`` with a readout, else ``dL/ds`` of
    the last spiking layer. Returns ``(accs, lambdas, saturations)`` with
    ``accs[i]`` shaped like ``weights[i]``.
    """
    tables = build_tables(cfg)
    accs = [None] * len(weights)
    lams = [None] * len(records)
    n_sat = 0
    g = grad_out
    if readout:
        accs[-1], n = weight_grad_fixed(grad_out, records[-1].s, cfg)
        n_sat += n
        g, n = backprop_fixed(weights[-1], grad_out, cfg)
        n_sat += n
    for i in range(len(records) - 1, -1, -1):
        rec = records[i]
        lam, n = chi_scan_fixed(rec.u, g, rec.mask, tables, cfg)
        lams[i] = lam
        accs[i], n2 = weight_grad_fixed(lam, rec.x, cfg)
        n_sat += n + n2
        if i > 0:
            g, n = backprop_fixed(weights[i], lam, cfg)
            n_sat += n
    return accs, lams, n_sat
