"""8N1 UART receiver and transmitter.

``divisor`` is the number of clock cycles per bit (``clk_freq / baud``, at
least 4). The receiver synchronises ``rx`` with two flip-flops, finds the
falling edge of the start bit, checks the start bit at its middle (a glitch
is ignored) and samples each data bit and the stop bit at their middles.
"""


from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out


def check_divisor(divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise TypeError(f"divisor must be an integer, not {divisor!r}")
    if divisor < 4:
        raise ValueError(f"divisor must be at least 4 clock cycles per bit, not {divisor}")
    return divisor


class _BitClocked(wiring.Component):
    """A component clocked at ``divisor`` cycles per bit (the signature comes from the subclass)."""

    def __init__(self, divisor: int):
        self._divisor = check_divisor(divisor)
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor


class UARTRx(_BitClocked):
    """8N1 receiver.

    Members
    -------
    rx : In(1), the line (idle high), asynchronous.
    data : Out(stream.Signature(8)), one beat per received byte. A byte that
        arrives while the previous one is still waiting is dropped (``overrun``).
    framing_error : Out(1), one-cycle pulse: the stop bit was low (the byte is dropped).
    break_detected : Out(1), one-cycle pulse: a framing error with all data bits low
        (a break); the receiver then waits for the line to return high.
    overrun : Out(1), one-cycle pulse.
    busy : Out(1), a byte is being received.
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    framing_error: Out(1)
    break_detected: Out(1)
    overrun: Out(1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(d))
        bit = Signal(range(9))
        shreg = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"          # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), shreg.eq((rx << 7) | (shreg >> 1)), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.data.valid & ~self.data.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.d.comb += self.break_detected.eq(shreg == 0)
                        m.next = "WAIT_IDLE"
            with m.State("WAIT_IDLE"):
                with m.If(rx):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m


class UARTTx(_BitClocked):
    """8N1 transmitter.

    Members
    -------
    data : In(stream.Signature(8)), one byte per beat; ``ready`` while idle.
    tx : Out(1), the line (idle high).
    busy : Out(1), a byte is being sent.
    """

    data: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        bits = Signal(10)             # stop, data[7:0], start: shifted out LSB first
        left = Signal(range(11))

        m.d.comb += self.busy.eq(left != 0)
        m.d.comb += self.data.ready.eq(left == 0)
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [bits.eq((1 << 9) | (self.data.payload << 1)), left.eq(10), timer.eq(0)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [self.tx.eq(bits[0]), bits.eq(bits >> 1), timer.eq(d - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 1):
                    m.d.sync += left.eq(left - 1)
        return m
