"""The Poisson spike-train fitting task (``scripts/exodus_fit.py``) for the engine, in fixed point.

Network ``n_in -> n_hidden (LIF) -> 1 (LIF)``, no readout; one sample; plain SGD with the engine's
learning-rate shift. The loss stays in software, as the issue asks: the host computes
``L = sum_n (y[n] - y*[n])^2`` (both trains filtered by ``y[n] = beta y[n-1] + s[n]``) in float64 from the
engine's output spikes, and ``g[n] = dL/ds[n]``, quantised to the ``g`` format (round half up), is
written into the output engine. :func:`golden_epoch` is the reference for one epoch: the fixed-point
golden model of both layers driven by that same host-side loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from golden.exodus.fixedpoint import quantize
from spikecore.config import ExodusConfig

from .model import GoldenLayer


@dataclass(frozen=True)
class FitTask:
    n_in: int = 250
    n_hidden: int = 25
    steps: int = 200
    n_target: int = 4
    rate: float = 0.02
    alpha: float = 0.95
    filter_beta: float = 0.9
    init_gain: float = 3.0
    lr_shift: int = 2
    seed: int = 0

    def config(self, backward: str = "exodus") -> ExodusConfig:
        return ExodusConfig(layer_sizes=(self.n_in, self.n_hidden, 1), max_steps=max(self.steps, 2),
                            alpha=self.alpha, lr_shift=self.lr_shift, backward=backward)

    def data(self):
        """Input spikes ``(T, n_in)`` 0/1, target train ``(T,)``, initial weights (grid integers)."""
        g = torch.Generator().manual_seed(self.seed)
        x = (torch.rand(self.steps, self.n_in, generator=g) < self.rate).to(torch.int64)
        target = torch.zeros(self.steps, dtype=torch.float64)
        margin = min(10, self.steps // 10)
        target[torch.randperm(self.steps - 2 * margin, generator=g)[:self.n_target] + margin] = 1.0
        cfg = self.config()
        ws = []
        for fan_in, fan_out in ((self.n_in, self.n_hidden), (self.n_hidden, 1)):
            w = torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) * self.init_gain / fan_in ** 0.5
            ws.append(quantize(w, cfg.u_frac, cfg.weight_bits))
        return x, target, ws


def filter_matrix(steps: int, beta: float) -> torch.Tensor:
    n = torch.arange(steps)
    lag = (n[:, None] - n[None, :]).to(torch.float64)
    return torch.where(lag >= 0, beta ** lag.clamp(min=0), torch.zeros((), dtype=torch.float64))


def loss_and_grad(out_spikes, target: torch.Tensor, beta: float, cfg: ExodusConfig):
    """Host side: float loss of the output train and ``g = dL/ds`` quantised to the grad format."""
    K = filter_matrix(len(target), beta)
    s = torch.as_tensor(out_spikes, dtype=torch.float64).reshape(-1)
    err = K @ s - K @ target
    loss = float((err ** 2).sum())
    g = quantize(2.0 * (K.t() @ err), cfg.grad_frac, cfg.grad_bits)
    return loss, g


class GoldenFit:
    """Both layers of the task in the fixed-point golden model, epoch by epoch."""

    def __init__(self, task: FitTask, backward: str = "exodus"):
        self.task, self.cfg = task, task.config(backward)
        self.x, self.target, ws = task.data()
        self.hidden = GoldenLayer(self.cfg, ws[0])
        self.out = GoldenLayer(self.cfg, ws[1])
        self.slayer = backward == "slayer"

    def epoch(self):
        """One forward, host loss, backward and update; returns ``(loss, out_spikes, g)`` before the update."""
        h, _, _ = self.hidden.forward(self.x)
        o, _, _ = self.out.forward(h)
        loss, g = loss_and_grad(o.tolist(), self.target, self.task.filter_beta, self.cfg)
        _, gp = self.out.backward(g[:, None], slayer=self.slayer, grad_prev=True)
        self.hidden.backward(gp, slayer=self.slayer, grad_prev=False)
        self.out.update()
        self.hidden.update()
        return loss, o.tolist(), g


def golden_losses(task: FitTask, epochs: int, backward: str = "exodus") -> list[float]:
    fit = GoldenFit(task, backward)
    return [fit.epoch()[0] for _ in range(epochs)]
