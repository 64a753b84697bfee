"""Float model of the equivalent ANN (eqs. 10-14) for offline training.

In float units a weight is ``w / theta_ff`` and a neuron's output is its spike
count, so the network is an ordinary MLP on pixel counts:
``S^l = act(W^l S^{l-1} + b^l)`` and logits ``V^L / theta_ff``. Weights are kept
inside the integer format's range during training, so quantising
(``round(w * theta_ff)``) never clips.
"""

from __future__ import annotations

import torch
from torch import nn

from spikecore.config import SpikeGradConfig

from .params import SpikeGradParams


class FloatSpikeGradNet(nn.Module):
    """The equivalent ANN with autograd.

    ``rounding=True`` rounds hidden activations half away from zero in the
    forward pass with a straight-through gradient, which is exactly what the
    integer network computes; use it to fine-tune before quantising.
    """

    def __init__(self, cfg: SpikeGradConfig, *, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for l in range(cfg.num_layers):
            fan_out, fan_in = cfg.weight_shape(l)
            # Inputs are pixel counts up to 16 (rms ~7): scale the init for that.
            scale = (2.0 / fan_in) ** 0.5 / (7.0 if l == 0 else 1.0)
            self.weights.append(nn.Parameter(torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) * scale))
            self.biases.append(nn.Parameter(torch.zeros(fan_out, dtype=torch.float64), requires_grad=cfg.bias))
        self.rounding = False

    @property
    def weight_max(self) -> float:
        return self.cfg.weight_limit / self.cfg.theta_ff

    @property
    def bias_max(self) -> float:
        return self.cfg.bias_limit / self.cfg.theta_ff

    def forward(self, s0: torch.Tensor) -> torch.Tensor:
        s = s0.to(torch.float64)
        for l in range(self.cfg.num_layers):
            pre = s @ self.weights[l].T + self.biases[l]
            if l == self.cfg.num_layers - 1:
                return pre
            if self.rounding:
                r = torch.sign(pre) * torch.floor(pre.abs() + 0.5)
                pre = pre + (r - pre).detach()
            s = torch.relu(pre) if self.cfg.activations[l] == "relu" else pre
        raise AssertionError("unreachable")

    @torch.no_grad()
    def clip_(self) -> None:
        """Project parameters back into the representable range."""
        for w in self.weights:
            w.clamp_(-self.weight_max, self.weight_max)
        for b in self.biases:
            b.clamp_(-self.bias_max, self.bias_max)

    @torch.no_grad()
    def quantize(self) -> SpikeGradParams:
        """Integer parameters: ``round(w * theta_ff)``, clamped to the format."""
        cfg = self.cfg
        ws = [torch.round(w * cfg.theta_ff).clamp(-cfg.weight_limit, cfg.weight_limit).to(torch.int64)
              for w in self.weights]
        if cfg.bias:
            bs = [torch.round(b * cfg.theta_ff).clamp(-cfg.bias_limit, cfg.bias_limit).to(torch.int64)
                  for b in self.biases]
        else:
            bs = [torch.zeros(cfg.layer_sizes[l + 1], dtype=torch.int64) for l in range(cfg.num_layers)]
        return SpikeGradParams(cfg, ws, bs)

    @classmethod
    def from_params(cls, params: SpikeGradParams) -> "FloatSpikeGradNet":
        net = cls(params.config)
        with torch.no_grad():
            for l in range(params.config.num_layers):
                net.weights[l].copy_(params.weights[l].double() / params.config.theta_ff)
                net.biases[l].copy_(params.biases[l].double() / params.config.theta_ff)
        return net
