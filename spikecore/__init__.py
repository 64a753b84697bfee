"""spikecore: an on-chip learning core for spiking neural networks.

The Python side of the project: the configuration object that drives the
RTL, the golden model and the file formats (:mod:`spikecore.config`) and the
``spikecore`` command line (:mod:`spikecore.cli`).
"""

__version__ = "0.1.0"
