"""Training: offline in float, and with the integer on-chip rule, sample by sample."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from spikecore.config import SpikeGradConfig

from . import int_ann
from .float_model import FloatSpikeGradNet
from .params import SpikeGradParams

# The on-chip rule's error-scale schedule (alpha = 2**error_shift / theta_bp), one
# entry per epoch, relative to the configured error_shift: a large error scale
# learns fast early, a small one settles. The host writes it into the core's
# run-time error_shift register before each epoch.
DEFAULT_SHIFT_SCHEDULE = (0, 0, -1, -1, -2, -2, -3, -3, -3, -3)


def accuracy(params: SpikeGradParams, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((int_ann.forward(params, x).prediction == y).double().mean())


@dataclass
class FloatTrainResult:
    net: FloatSpikeGradNet
    test_accuracy: float
    history: list[float] = field(default_factory=list)


def train_float(cfg: SpikeGradConfig, train_x, train_y, test_x, test_y, *, epochs: int = 100,
                batch_size: int = 32, lr: float = 1e-2, seed: int = 0, finetune_epochs: int = 20,
                progress=None) -> FloatTrainResult:
    """Adam on cross-entropy with cosine decay; the last ``finetune_epochs`` see
    the integer rounding of hidden activations (straight-through), so the
    quantised network behaves like the float one."""
    torch.manual_seed(seed)
    net = FloatSpikeGradNet(cfg, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1 + math.cos(math.pi * e / max(1, epochs))))
    g = torch.Generator().manual_seed(seed)
    history = []
    for ep in range(epochs):
        net.rounding = ep >= epochs - finetune_epochs
        perm = torch.randperm(len(train_y), generator=g)
        for k in range(0, len(perm), batch_size):
            idx = perm[k:k + batch_size]
            loss = torch.nn.functional.cross_entropy(net(train_x[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.clip_()
        sched.step()
        history.append(float_accuracy(net, test_x, test_y))
        if progress is not None:
            progress(ep, history[-1])
    net.rounding = False
    return FloatTrainResult(net, float_accuracy(net, test_x, test_y), history)


@torch.no_grad()
def float_accuracy(net: FloatSpikeGradNet, x, y) -> float:
    rounding, net.rounding = net.rounding, False
    acc = float((net(x).argmax(dim=1) == y).double().mean())
    net.rounding = rounding
    return acc


@dataclass
class OnChipEpoch:
    epoch: int
    error_shift: int
    test_accuracy: float
    train_accuracy: float
    error_spikes_per_sample: float   # |E| summed over all layers, mean per training sample
    top_error_spikes_per_sample: float


def train_onchip(params: SpikeGradParams, train_x, train_y, test_x, test_y, *, epochs: int = 10,
                 seed: int = 0, shift_schedule=DEFAULT_SHIFT_SCHEDULE, progress=None):
    """Integer SpikeGrad, batch 1, exactly as the core learns (the integer ANN is
    bit-identical to the event-driven core while nothing saturates).

    Returns ``(params, [OnChipEpoch, ...])``.
    """
    base = params.config
    g = torch.Generator().manual_seed(seed)
    out = []
    for ep in range(epochs):
        rel = shift_schedule[min(ep, len(shift_schedule) - 1)] if shift_schedule else 0
        cfg = base.replace(error_shift=max(0, base.error_shift + rel))
        params = SpikeGradParams(cfg, params.weights, params.biases)
        perm = torch.randperm(len(train_y), generator=g).tolist()
        spikes = top = 0
        for n, k in enumerate(perm):
            params, fwd, bwd = int_ann.train_step(params, train_x[k:k + 1], train_y[k:k + 1])
            spikes += sum(int(e.abs().sum()) for e in bwd.error_counts)
            top += int(bwd.error_counts[-1].abs().sum())
            if progress is not None:
                progress(ep, n)
        out.append(OnChipEpoch(ep + 1, cfg.error_shift, accuracy(params, test_x, test_y),
                               accuracy(params, train_x, train_y), spikes / len(perm), top / len(perm)))
    return SpikeGradParams(base, params.weights, params.biases), out
