"""EXODUS golden model: IF/LIF layers with gradients equal to BPTT (Bauer et al. 2022).

* :mod:`.surrogates` -- surrogate derivatives ``f'(u)``.
* :mod:`.kernels` -- the fast path (no-graph forward loop, reverse chi scan),
  in C (:mod:`.cbuild` compiles ``csrc/exodus_kernels.c``), in torch, or on
  CUDA in Triton (:mod:`.triton_kernels`, optional, imported lazily).
* :mod:`.layers` -- IF/LIF modules with ``bptt`` / ``exodus`` / ``slayer`` backward.
* :mod:`.networks` -- feed-forward spiking networks.
* :mod:`.fixedpoint` -- the bit-exact model of the hardware chi unit and
  temporal layer engine.
"""

from . import cbuild, kernels
from .kernels import NeuronParams
from .layers import IF, LIF, ExodusFunction, lif, lif_bptt
from .networks import SpikingMLP
from .surrogates import Surrogate

__all__ = ["IF", "LIF", "ExodusFunction", "NeuronParams", "SpikingMLP", "Surrogate", "lif", "lif_bptt"]
