"""IF/LIF layers with a choice of backward: ``bptt``, ``exodus`` or ``slayer``.

Tensors are time-major, ``(T, batch, neurons)``. The layer maps input current
``z`` to spikes ``s`` (the paper's convention, reset after decay)::

    u[n] = alpha u[n-1] + z[n] - theta s[n-1]        (reset_order="after_decay")
    u[n] = alpha (u[n-1] - theta s[n-1]) + z[n]      (reset_order="before_decay")
    u[n] = max(u[n], u_min)                          (optional clamp)
    s[n] = 1 if u[n] >= theta else 0

with ``u[-1] = u0`` and ``s[-1] = 0``. Gradients flow to ``z`` (hence to the
inputs and weights of whatever produced it) and to ``u0``.

* ``bptt``: autograd through the unrolled loop, reset *not* detached.
* ``exodus``: :class:`ExodusFunction`, the chi recurrence
  ``lambda[n] = f'[n] g[n] + (alpha - theta f'[n]) lambda[n+1]`` (the factor
  is ``alpha (1 - theta f'[n])`` with reset before decay). Equal to ``bptt``.
* ``slayer``: the same scan with the factor ``alpha`` -- equal to ``bptt``
  with the reset detached.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import kernels
from .kernels import NeuronParams
from .surrogates import Surrogate, spike

BACKWARDS = ("bptt", "exodus", "slayer")


def lif_bptt(z: torch.Tensor, u0: torch.Tensor, p: NeuronParams, *, detach_reset: bool = False) -> torch.Tensor:
    """Reference: the unrolled loop under autograd (one graph node per op and step).

    The operations mirror :func:`golden.exodus.kernels.lif_forward` exactly so
    that the spikes agree bit for bit. ``detach_reset`` cuts the gradient of
    the reset term (what SLAYER computes).
    """
    u = u0.expand(z.shape[1:])
    s = torch.zeros_like(u)
    spikes = []
    # unbind, not z[t]: the backward of indexing would allocate a full (T, ...)
    # gradient per step, O(T^2) work that is no part of BPTT itself.
    for zt in z.unbind(0):
        r = s.detach() if detach_reset else s
        if p.after_decay:
            u = u * p.alpha + zt - r * p.threshold
        else:
            u = (u - r * p.threshold) * p.alpha + zt
        if p.u_min is not None:
            u = torch.clamp(u, min=p.u_min)
        s = spike(u, p.threshold, p.surrogate)
        spikes.append(s)
    return torch.stack(spikes)


class ExodusFunction(torch.autograd.Function):
    """Forward by the no-graph loop, backward by the chi recurrence (EXODUS or SLAYER)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, u0: torch.Tensor, p: NeuronParams, slayer: bool) -> torch.Tensor:
        s, u, mask = kernels.lif_forward(z, u0, p)
        ctx.save_for_backward(u, mask)
        ctx.params = p
        ctx.slayer = slayer
        ctx.u0_shape = u0.shape
        return s

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):
        u, mask = ctx.saved_tensors
        p = ctx.params
        lam = kernels.chi_backward(u, grad_s.contiguous(), mask, p, ctx.slayer)
        grad_u0 = None
        if ctx.needs_input_grad[1]:
            # u[0] depends on u0 only through alpha * u0 (s[-1] = 0), in both orderings.
            grad_u0 = _sum_to_shape(lam[0] * p.alpha, ctx.u0_shape)
        return lam, grad_u0, None, None


def _sum_to_shape(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Undo broadcasting of ``u0`` (e.g. a per-neuron initial state shared by the batch)."""
    return x.sum_to_size(shape) if x.shape != shape else x


def lif(z: torch.Tensor, u0: torch.Tensor | None, p: NeuronParams, backward: str = "exodus") -> torch.Tensor:
    """Spikes of an IF/LIF layer driven by current ``z`` with initial membrane ``u0``."""
    if u0 is None:
        u0 = torch.zeros((), dtype=z.dtype, device=z.device)
    if backward == "bptt":
        return lif_bptt(z, u0, p)
    if backward in ("exodus", "slayer"):
        return ExodusFunction.apply(z, u0, p, backward == "slayer")
    raise ValueError(f"backward must be one of {list(BACKWARDS)}, got {backward!r}")


class LIF(nn.Module):
    """Leaky integrate-and-fire layer over time-major input ``(T, batch, neurons)``.

    Give ``alpha`` (decay per step) or ``tau`` (time constant in steps,
    ``alpha = exp(-1/tau)``).
    """

    def __init__(self, alpha: float | None = None, *, tau: float | None = None, threshold: float = 1.0,
                 reset_order: str = "after_decay", u_min: float | None = None, backward: str = "exodus",
                 surrogate: Surrogate | None = None):
        super().__init__()
        if (alpha is None) == (tau is None):
            raise ValueError("give exactly one of alpha and tau")
        if alpha is None:
            alpha = math.exp(-1.0 / tau)
        if backward not in BACKWARDS:
            raise ValueError(f"backward must be one of {list(BACKWARDS)}, got {backward!r}")
        self.params = NeuronParams(alpha, threshold, reset_order, u_min, surrogate or Surrogate())
        self.backward_mode = backward

    @classmethod
    def from_config(cls, cfg, backward: str | None = None) -> "LIF":
        """The layer described by a :class:`spikecore.config.ExodusConfig`."""
        return LIF(cfg.alpha, threshold=cfg.threshold, reset_order=cfg.reset_order, u_min=cfg.u_min,
                   backward=backward or cfg.backward,
                   surrogate=Surrogate(cfg.surrogate, cfg.surrogate_scale, cfg.surrogate_width))

    def forward(self, z: torch.Tensor, u0: torch.Tensor | None = None) -> torch.Tensor:
        return lif(z, u0, self.params, self.backward_mode)

    def extra_repr(self) -> str:
        p = self.params
        return (f"alpha={p.alpha}, threshold={p.threshold}, reset_order={p.reset_order}, "
                f"u_min={p.u_min}, backward={self.backward_mode}, surrogate={p.surrogate}")


class IF(LIF):
    """Integrate-and-fire layer: :class:`LIF` with ``alpha = 1``."""

    def __init__(self, **kwargs):
        super().__init__(1.0, **kwargs)
