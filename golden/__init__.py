"""Golden models: the specification every RTL block is checked against.

* :mod:`golden.spikegrad` -- SpikeGrad (event-driven simulator, integer
  equivalent ANN, float model, training, weight files, test vectors).
* :mod:`golden.exodus` -- EXODUS (IF/LIF layers with exact BPTT gradients,
  float and fixed point).
* :mod:`golden.data` -- the embedded digits data set.
"""
