"""The integer equivalent ANN (eqs. 15-20): vectorised, batched, exact.

With residual spikes the event-driven network's accumulated responses equal

* ``S^l = act(round((W^l S^{l-1} + b^l) / theta_ff))`` (round half away from zero),
* ``V^L = W^L S^{L-1} + b^L`` (the top layer never spikes),
* ``S'^l = [W^l S^{l-1} + b^l > 0]`` for ReLU layers, 1 for linear,
* ``E^L = round(U^L / theta_bp)``, ``E^l = S'^l * round((W^{l+1})^T E^{l+1} / theta_bp)``,
* ``Delta W^l = -E^l (eta S^{l-1})^T`` and ``Delta b^l = -eta E^l``, clamped,

as long as no compartment saturates (the model reports when a value leaves its
width, in which case the event-driven simulator is the reference). This is the
model the RTL is compared with, and it trains fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecore.config import SpikeGradConfig

from .fixedpoint import div_round_half_away_t, signed_range, top_error_t
from .params import SpikeGradParams


@dataclass
class AnnForward:
    counts: list[torch.Tensor]      # S^0 (input) .. S^{L-1}; (B, N)
    v_top: torch.Tensor             # (B, C)
    surrogate: list[torch.Tensor]   # S' per neuron layer, (B, N)
    prediction: torch.Tensor        # (B,)
    overflow: bool                  # some value left its configured width


@dataclass
class AnnBackward:
    u_top: torch.Tensor              # (B, C)
    error_counts: list[torch.Tensor]  # E per neuron layer, (B, N)
    overflow: bool


def _out_of(t: torch.Tensor, bits: int) -> bool:
    lo, hi = signed_range(bits)
    return bool(((t < lo) | (t > hi)).any())


def forward(params: SpikeGradParams, s0: torch.Tensor) -> AnnForward:
    """Accumulated responses for input counts ``s0`` of shape ``(B, N0)``."""
    cfg = params.config
    s = torch.as_tensor(s0, dtype=torch.int64)
    if s.dim() == 1:
        s = s[None]
    counts, surrogate = [s], []
    overflow = _out_of(cfg.eta * s, cfg.trace_bits)
    for l in range(cfg.num_layers):
        pre = s @ params.weights[l].T + params.biases[l]
        overflow |= _out_of(pre, cfg.membrane_bits)
        if l == cfg.num_layers - 1:
            v_top = pre
            surrogate.append(torch.ones_like(pre))
            break
        q = div_round_half_away_t(pre, cfg.theta_ff)
        if cfg.activations[l] == "relu":
            s = q.clamp(min=0)
            surrogate.append((pre > 0).to(torch.int64))
        else:
            s = q
            surrogate.append(torch.ones_like(pre))
        overflow |= _out_of(cfg.eta * s, cfg.trace_bits)
        counts.append(s)
    pred = _argmax_first(v_top)
    return AnnForward(counts, v_top, surrogate, pred, overflow)


def _argmax_first(v: torch.Tensor) -> torch.Tensor:
    """Index of the first maximum (the core breaks ties towards the lower class)."""
    m = v.max(dim=1, keepdim=True).values
    idx = torch.arange(v.shape[1]).expand_as(v)
    return torch.where(v == m, idx, v.shape[1]).min(dim=1).values


def backward(params: SpikeGradParams, fwd: AnnForward, labels: torch.Tensor) -> AnnBackward:
    cfg = params.config
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    u_top = top_error_t(cfg, fwd.v_top, labels)
    overflow = _out_of(u_top, cfg.error_bits)
    L = cfg.num_layers
    errs = [None] * L
    e = div_round_half_away_t(u_top, cfg.theta_bp)
    errs[L - 1] = e
    for l in range(L - 2, -1, -1):
        pre = e @ params.weights[l + 1]
        e = div_round_half_away_t(pre, cfg.theta_bp) * fwd.surrogate[l]
        errs[l] = e
    for e in errs:
        overflow |= _out_of(e, cfg.count_bits)
    return AnnBackward(u_top, errs, overflow)


def apply_updates(params: SpikeGradParams, fwd: AnnForward, bwd: AnnBackward) -> tuple[SpikeGradParams, bool]:
    """New parameters after ``Delta W = -E (eta S)^T`` summed over the batch; and a clamp flag."""
    cfg = params.config
    ws, bs, clamped = [], [], False
    for l in range(cfg.num_layers):
        e = bwd.error_counts[l]
        dw = -(e.T @ (cfg.eta * fwd.counts[l]))
        w = params.weights[l] + dw
        clamped |= bool((w.abs() > cfg.weight_limit).any())
        ws.append(w.clamp(-cfg.weight_limit, cfg.weight_limit))
        if cfg.bias:
            b = params.biases[l] - cfg.eta * e.sum(dim=0)
            clamped |= bool((b.abs() > cfg.bias_limit).any())
            bs.append(b.clamp(-cfg.bias_limit, cfg.bias_limit))
        else:
            bs.append(params.biases[l].clone())
    return SpikeGradParams(cfg, ws, bs), clamped


def train_step(params: SpikeGradParams, s0: torch.Tensor, labels) -> tuple[SpikeGradParams, AnnForward, AnnBackward]:
    """One step of the on-chip rule (batch 1 is exactly what the core does)."""
    fwd = forward(params, s0)
    bwd = backward(params, fwd, labels)
    new, _ = apply_updates(params, fwd, bwd)
    return new, fwd, bwd


def operation_counts_lower_bound(cfg: SpikeGradConfig, fwd: AnnForward, bwd: AnnBackward | None = None) -> dict:
    """Synaptic operations if every response were carried by exactly ``|S|`` spikes (eq. 21's n_min)."""
    sizes = cfg.layer_sizes
    f = sum(int(fwd.counts[l].abs().sum()) * sizes[l + 1] for l in range(cfg.num_layers))
    out = {"forward_ops": f}
    if bwd is not None:
        out["backward_ops"] = sum(int(bwd.error_counts[l].abs().sum()) * sizes[l]
                                  for l in range(1, cfg.num_layers))
    return out
