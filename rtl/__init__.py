"""Amaranth RTL of the spikecore engines.

* :mod:`rtl.spikegrad` -- the SpikeGrad learning core (:class:`SpikeGradCore`).
* :mod:`rtl.exodus` -- the EXODUS chi-recurrence unit and temporal engine.
"""
