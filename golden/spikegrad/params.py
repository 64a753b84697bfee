"""Integer network parameters (weights and biases) of a SpikeGrad network."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikecore.config import SpikeGradConfig


class ParamsError(ValueError):
    """Parameters do not fit their configuration (shape or range)."""


@dataclass
class SpikeGradParams:
    """Weights ``W[l]`` (shape ``(fan_out, fan_in)``) and biases ``b[l]`` as int64.

    Members
    -------
    config : the :class:`SpikeGradConfig` the parameters belong to.
    weights : one int64 tensor per neuron layer.
    biases : one int64 tensor per neuron layer (all zero when ``config.bias`` is off).
    """

    config: SpikeGradConfig
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]

    def __post_init__(self):
        self.weights = [torch.as_tensor(w, dtype=torch.int64).clone() for w in self.weights]
        self.biases = [torch.as_tensor(b, dtype=torch.int64).clone() for b in self.biases]
        self.validate()

    def validate(self, source: str | None = None) -> None:
        """Raise :class:`ParamsError` naming the layer, field and range on any mismatch."""
        cfg = self.config
        where = f"{source}: " if source else ""
        if len(self.weights) != cfg.num_layers or len(self.biases) != cfg.num_layers:
            raise ParamsError(f"{where}expected {cfg.num_layers} layers, got {len(self.weights)} weight "
                              f"and {len(self.biases)} bias arrays")
        for l in range(cfg.num_layers):
            shape = cfg.weight_shape(l)
            w, b = self.weights[l], self.biases[l]
            if tuple(w.shape) != shape:
                raise ParamsError(f"{where}layers[{l}].weights: shape {tuple(w.shape)}, expected {shape}")
            if tuple(b.shape) != (shape[0],):
                raise ParamsError(f"{where}layers[{l}].bias: shape {tuple(b.shape)}, expected ({shape[0]},)")
            _check_range(w, cfg.weight_limit, f"{where}layers[{l}].weights")
            _check_range(b, cfg.bias_limit, f"{where}layers[{l}].bias")
            if not cfg.bias and bool((b != 0).any()):
                raise ParamsError(f"{where}layers[{l}].bias: nonzero bias but the configuration has bias=false")

    def clone(self) -> "SpikeGradParams":
        return SpikeGradParams(self.config, [w.clone() for w in self.weights], [b.clone() for b in self.biases])

    def equal(self, other: "SpikeGradParams") -> bool:
        return all(torch.equal(a, b) for a, b in zip(self.weights, other.weights)) and \
            all(torch.equal(a, b) for a, b in zip(self.biases, other.biases))

    @classmethod
    def zeros(cls, cfg: SpikeGradConfig) -> "SpikeGradParams":
        return cls(cfg, [torch.zeros(cfg.weight_shape(l), dtype=torch.int64) for l in range(cfg.num_layers)],
                   [torch.zeros(cfg.layer_sizes[l + 1], dtype=torch.int64) for l in range(cfg.num_layers)])

    @classmethod
    def random(cls, cfg: SpikeGradConfig, *, seed: int = 0, fraction: float = 0.25,
               input_scale: float | None = None) -> "SpikeGradParams":
        """Seeded random parameters (He-like scale, clamped to the weight limit).

        ``input_scale`` is the expected magnitude of a presynaptic spike count
        (default 1); weights get ``std = theta_ff / sqrt(fan_in) / input_scale``
        capped at ``fraction * weight_limit``.
        """
        g = torch.Generator().manual_seed(seed)
        ws, bs = [], []
        for l in range(cfg.num_layers):
            fan_out, fan_in = cfg.weight_shape(l)
            std = cfg.theta_ff / (fan_in ** 0.5) / (input_scale or 1.0)
            std = min(std, fraction * cfg.weight_limit)
            w = torch.round(torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) * std)
            ws.append(w.clamp(-cfg.weight_limit, cfg.weight_limit).to(torch.int64))
            if cfg.bias:
                b = torch.round(torch.randn(fan_out, generator=g, dtype=torch.float64) * 0.1 * cfg.bias_limit)
                bs.append(b.clamp(-cfg.bias_limit, cfg.bias_limit).to(torch.int64))
            else:
                bs.append(torch.zeros(fan_out, dtype=torch.int64))
        return cls(cfg, ws, bs)


def _check_range(t: torch.Tensor, limit: int, name: str) -> None:
    if t.numel() == 0:
        return
    lo, hi = int(t.min()), int(t.max())
    if lo < -limit or hi > limit:
        bad = lo if lo < -limit else hi
        idx = (t == bad).nonzero()[0].tolist()
        raise ParamsError(f"{name}{idx}: value {bad} is out of range [{-limit}, {limit}]")
