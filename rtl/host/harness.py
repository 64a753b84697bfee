"""Simulation harness: a SpikeGradSystem with a host-side UART PHY, for fast cosimulation.

The system's ``uart_rx`` / ``uart_tx`` pins carry real 8N1 bits either way; they come from
(``bypass`` = 0) a host-side :class:`UARTTx` / :class:`UARTRx` pair fed by byte FIFOs, so the
bench handles bytes and Python wakes once per byte, or (``bypass`` = 1) straight from the
harness's own ``uart_rx`` pin, for a bench that drives and decodes the bits itself.
"""

from amaranth.hdl import Module, Mux
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .uart import UARTRx, UARTTx

__all__ = ["UARTHarness"]


class UARTHarness(wiring.Component):
    """Members
    -------
    host_tx : In(stream.Signature(8)), bytes for the device (FIFO of ``depth``).
    host_rx : Out(stream.Signature(8)), bytes from the device (FIFO of ``depth``).
    phy_busy : Out(1), a byte is queued or on either wire.
    pace : In(1), hold the next host byte while the bridge is busy (``leds`` bit 0), as a host
        waiting for each response would: a host may then send many frames back to back.
    bypass : In(1).  uart_rx : In(1), the device's receive line when ``bypass``.
    uart_tx : Out(1), the device's transmit line.  leds : Out(4), the system's.
    """

    host_tx: In(stream.Signature(8))
    host_rx: Out(stream.Signature(8))
    phy_busy: Out(1)
    pace: In(1)
    bypass: In(1)
    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    leds: Out(4)

    def __init__(self, system, *, divisor: int, depth: int = 1024):
        self._system = system
        self._divisor = divisor
        self._depth = depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.system = sys_ = self._system
        m.submodules.phy_tx = ptx = UARTTx(self._divisor)
        m.submodules.phy_rx = prx = UARTRx(self._divisor)
        m.submodules.tx_fifo = txf = fifo.SyncFIFOBuffered(width=8, depth=self._depth)
        m.submodules.rx_fifo = rxf = fifo.SyncFIFOBuffered(width=8, depth=self._depth)
        wiring.connect(m, wiring.flipped(self.host_tx), txf.w_stream)
        hold = self.pace & sys_.leds[0]
        m.d.comb += [ptx.data.payload.eq(txf.r_data), ptx.data.valid.eq(txf.r_rdy & ~hold),
                     txf.r_en.eq(ptx.data.ready & ~hold)]
        wiring.connect(m, prx.data, rxf.w_stream)
        wiring.connect(m, rxf.r_stream, wiring.flipped(self.host_rx))
        m.d.comb += [
            sys_.uart_rx.eq(Mux(self.bypass, self.uart_rx, ptx.tx)),
            prx.rx.eq(sys_.uart_tx),
            self.uart_tx.eq(sys_.uart_tx),
            self.leds.eq(sys_.leds),
            self.phy_busy.eq(txf.r_rdy | ptx.busy | prx.busy | prx.data.valid),
        ]
        return m
