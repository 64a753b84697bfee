"""Host-side helpers for :class:`rtl.exodus.TemporalLayerEngine`: word packing and the golden layer model.

Shared by the Amaranth-simulator tests, the cocotb bench and ``scripts/exodus_rtl_bench.py``. The golden
model is :mod:`golden.exodus.fixedpoint` (one layer: ``synaptic_current_fixed`` + ``lif_forward_fixed``,
``chi_scan_fixed``, ``backprop_fixed``, ``weight_grad_fixed``, ``weight_update_fixed``).
"""

from __future__ import annotations

import torch

from golden.exodus.fixedpoint import (backprop_fixed, build_tables, chi_scan_fixed, lif_forward_fixed,
                                      synaptic_current_fixed, weight_grad_fixed, weight_update_fixed)
from spikecore.config import ExodusConfig
from spikecore.host.protocol import (from_bits, pack_word, spikes_to_word, to_bits, unpack_word,  # noqa: F401
                                     word_to_spikes)


class GoldenLayer:
    """One spiking layer in the fixed-point golden model, with the engine's memories as state."""

    def __init__(self, cfg: ExodusConfig, w: torch.Tensor):
        self.cfg = cfg
        self.w = w.clone().to(torch.int64)             # (fan_out, fan_in)
        self.acc = torch.zeros_like(self.w)
        self.sat = {"fwd": 0, "chi": 0, "grad": 0, "acc": 0, "weight": 0}

    def forward(self, x: torch.Tensor):
        """``x``: (T, fan_in) 0/1. Returns ``(s, u, mask)`` shaped (T, fan_out)."""
        z, n1 = synaptic_current_fixed(self.w, x[:, None, :].to(torch.int64), self.cfg)
        s, u, mask, n2 = lif_forward_fixed(z, torch.zeros((), dtype=torch.int64), self.cfg)
        self.sat["fwd"] += n1 + n2
        self.x, self.u, self.mask = x.to(torch.int64), u[:, 0], mask[:, 0]
        return s[:, 0], self.u, self.mask

    def backward(self, g: torch.Tensor, *, slayer: bool = False, grad_prev: bool = True):
        """``g``: (T, fan_out) in the grad format. Returns ``(lam, gp)``; accumulates ``acc``."""
        cfg = self.cfg.replace(backward="slayer" if slayer else "exodus")
        lam, n = chi_scan_fixed(self.u, g.to(torch.int64), self.mask, build_tables(cfg), cfg)
        self.sat["chi"] += n
        gp = None
        if grad_prev:
            gp, n = backprop_fixed(self.w, lam, cfg)
            self.sat["grad"] += n
        acc, n = weight_grad_fixed(lam[:, None, :], self.x[:, None, :], cfg)
        self.sat["acc"] += n
        self.acc, n = torch.clamp(self.acc + acc, *ExodusConfig.signed_range(cfg.acc_bits)), 0
        return lam, gp

    def update(self):
        self.w, n = weight_update_fixed(self.w, self.acc, self.cfg)
        self.sat["weight"] += n
        self.acc = torch.zeros_like(self.acc)
        return self.w
