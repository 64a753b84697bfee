"""The SpikeGrad golden model (Thiele, Bichler, Dupret 2019).

* :mod:`.event_sim` -- Algorithms 1-3 event by event, in integers: the
  bit-level specification of the core (event order, saturation, counters).
* :mod:`.int_ann` -- the integer equivalent ANN, vectorised: equal to the event
  simulator with residual spikes (eqs. 15-20); the reference for the RTL.
* :mod:`.float_model` -- the float equivalent ANN for offline training.
* :mod:`.fixedpoint` -- rounding, saturation and the fixed-point softmax error.
* :mod:`.params`, :mod:`.weights` -- parameters and the weight-file format.
* :mod:`.train`, :mod:`.vectors` -- training loops and testbench vectors.
* :mod:`.nir_io` -- NIR graph export and import.

Submodules are imported explicitly (``from golden.spikegrad.params import ...``):
this package stays free of eager imports so that the RTL, which takes its
lookup tables from :mod:`.fixedpoint`, never loads torch.
"""
