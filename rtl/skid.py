"""Register slices for valid/ready streams: :class:`SkidBuffer` (two entries, full rate) and
:class:`RegisterSlice` (one entry, half rate)."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "RegisterSlice"]


class _StreamSlice(wiring.Component):
    """A stream in, the same stream out; ``o.valid``, ``o.payload`` and ``i.ready`` all come from
    registers, so no combinational path crosses the slice. Order kept, one cycle of latency.

    Members
    -------
    i : ``In(stream.Signature(shape))``
    o : ``Out(stream.Signature(shape))``
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})


class SkidBuffer(_StreamSlice):
    """Full throughput (one beat per cycle): a second (skid) register parks the beat that
    arrives while the output is stalled."""

    def elaborate(self, platform):
        m = Module()
        skid = Signal.like(self.i.payload)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):          # the output register takes a beat
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):          # output stalled: park the beat
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


class RegisterSlice(_StreamSlice):
    """Half the cost of :class:`SkidBuffer` (one payload register, no skid) at most one beat every
    two cycles. For request streams that never run at full rate (host weight accesses)."""

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid)
        with m.If(self.o.valid):
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        with m.Elif(self.i.valid):
            m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(1)]
        return m
