"""EXODUS gateware: the chi-recurrence unit and the temporal layer engine (issue 5).

* :mod:`.chi` -- :class:`ChiRecurrence`, ``lambda[n] = f'g + c lambda[n+1]`` per neuron-step.
* :mod:`.engine` -- :class:`TemporalLayerEngine`, one IF/LIF layer over ``T`` steps:
  forward, backward (chi, weight gradient, gradient to the layer below), update.

``docs/exodus.md`` is the bit-level contract, ``docs/exodus_rtl.md`` describes the blocks.
"""

from .chi import ChiRecurrence

__all__ = ["ChiRecurrence"]
