"""Feed-forward spiking networks built from :class:`~golden.exodus.layers.LIF` layers.

The linear layers act on all time steps at once (one matmul over
``T * batch`` rows), as in sinabs and SLAYER; only the neuron dynamics loop
over time.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import LIF


class SpikingMLP(nn.Module):
    """``Linear -> LIF -> Linear -> LIF ... [-> Linear readout]``, time-major.

    With ``readout=True`` the last linear layer is a non-spiking readout (the
    paper's classification networks: the loss sees the last layer's current),
    so its weight gradient does not pass through any spiking layer.
    """

    def __init__(self, sizes, neuron: LIF, *, readout: bool = True, dtype=torch.float32, init_gain: float = 1.0):
        super().__init__()
        self.linears = nn.ModuleList(
            nn.Linear(a, b, bias=False, dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():
            for lin in self.linears:
                lin.weight.mul_(init_gain)
        self.readout = readout
        self.neuron = neuron

    @property
    def num_spiking(self) -> int:
        return len(self.linears) - (1 if self.readout else 0)

    def set_backward(self, backward: str) -> None:
        """Switch every spiking layer to ``bptt``, ``exodus`` or ``slayer``."""
        self.neuron.backward_mode = backward

    def forward(self, x: torch.Tensor, u0s=None) -> torch.Tensor:
        """``x``: ``(T, batch, sizes[0])``. Returns readout current or last spikes."""
        h = x
        for i, lin in enumerate(self.linears):
            h = lin(h)
            if i < self.num_spiking:
                h = self.neuron(h, None if u0s is None else u0s[i])
        return h
