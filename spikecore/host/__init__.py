"""Host side of the SpikeGrad core's UART protocol: frame codec, client, transports.

* :mod:`spikecore.host.protocol` -- codes, frames, CRC (shared with ``rtl.host``);
* :mod:`spikecore.host.model` -- reference model of the device side;
* :mod:`spikecore.host.client` -- :class:`SpikecoreClient` and the load / evaluate / train operations;
* :mod:`spikecore.host.transports` -- a serial port, or the Verilated system.
"""
