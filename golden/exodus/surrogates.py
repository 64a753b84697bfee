"""Surrogate derivatives of the spike function ``s = H(u - theta)``.

Every surrogate has the form ``f'(u) = scale / width * k((u - theta) / width)``
so that ``scale`` sets the area under ``f'`` (independent of ``width``) and
``width`` its spread, in membrane units:

* ``exponential`` (sinabs ``SingleExponential``): ``k(x) = exp(-|x|)``;
* ``fast_sigmoid`` (SuperSpike, Zenke & Ganguli 2018): ``k(x) = 1 / (1 + |x|)**2``;
* ``piecewise_linear`` (Esser et al. 2016): ``k(x) = max(0, 1 - |x|)``.

The same formula is evaluated by :meth:`Surrogate.scalar` on Python floats,
which is how the fixed-point tables are built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KINDS = ("exponential", "fast_sigmoid", "piecewise_linear")


@dataclass(frozen=True)
class Surrogate:
    """A surrogate derivative ``f'(u)`` around the threshold ``theta``."""

    kind: str = "exponential"
    scale: float = 1.0
    width: float = 0.5

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"surrogate kind {self.kind!r} is not one of {list(KINDS)}")
        if not (self.scale > 0 and self.width > 0):
            raise ValueError(f"surrogate scale and width must be positive, got {self.scale}, {self.width}")

    @property
    def peak(self) -> float:
        """``max f'`` (at ``u = theta``).

        ``theta * peak <= 2 alpha`` keeps the chi coefficient in ``[-alpha, alpha]``.
        """
        return self.scale / self.width

    def __call__(self, u: torch.Tensor, theta: float) -> torch.Tensor:
        """``f'(u)`` elementwise, in the dtype of ``u``."""
        x = (u - theta).abs_().div_(self.width)
        if self.kind == "exponential":
            k = x.neg_().exp_()
        elif self.kind == "fast_sigmoid":
            k = x.add_(1.0).square_().reciprocal_()
        else:
            k = x.neg_().add_(1.0).clamp_(min=0.0)
        return k.mul_(self.peak)

    def scalar(self, u: float, theta: float) -> float:
        """``f'(u)`` for one Python float (used to fill lookup tables)."""
        x = abs(u - theta) / self.width
        if self.kind == "exponential":
            k = math.exp(-x)
        elif self.kind == "fast_sigmoid":
            k = 1.0 / (1.0 + x) ** 2
        else:
            k = max(0.0, 1.0 - x)
        return self.peak * k


class SpikeFunction(torch.autograd.Function):
    """``s = H(u - theta)`` (``u >= theta`` spikes) with a surrogate backward.

    Used by the autograd BPTT reference: its backward is ``f'(u) * grad_s``.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, theta: float, surrogate: Surrogate) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.theta = theta
        ctx.surrogate = surrogate
        return (u >= theta).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad_s * ctx.surrogate(u, ctx.theta), None, None


def spike(u: torch.Tensor, theta: float, surrogate: Surrogate) -> torch.Tensor:
    """Heaviside spike with surrogate gradient (differentiable through autograd)."""
    return SpikeFunction.apply(u, theta, surrogate)
