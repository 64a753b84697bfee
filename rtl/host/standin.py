"""A small stand-in with the SpikeGradCore's ports, for testing the bridge quickly.

It stores weights and biases, answers reads, and for INFER / TRAIN folds the
input event sequence into a checksum so that the order of the events the
bridge sends is checked exactly:

* ``acc = (3*acc + 2*index + negative + 1) mod 2^16`` over the non-``nop`` events;
* result beat ``i``: ``value = acc + i``, ``prediction = (number of events) mod C``;
* TRAIN adds 1 to ``W[0][label][0]``; counters: ``forward_ops`` = number of events.

:func:`standin_model` is the same behaviour for :class:`spikecore.host.model.BridgeModel`.
"""

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import memory, wiring

from rtl.spikegrad.layouts import COUNTER_BITS, Op
from spikecore.config import SpikeGradConfig

from .bridge import core_ports

ACC_BITS = 16


class StandInCore(wiring.Component):
    """Members: the ports of :class:`rtl.spikegrad.SpikeGradCore`."""

    def __init__(self, cfg: SpikeGradConfig):
        self._cfg = cfg
        super().__init__(core_ports(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        w = self.weights.payload
        addr_of = lambda p: Cat(p.col, p.row, p.layer, p.bias)
        abits = len(addr_of(w))
        m.submodules.mem = mem = memory.Memory(shape=signed(cfg.weight_bits), depth=1 << abits, init=[])
        wp = mem.write_port()
        rp = mem.read_port(domain="comb")

        # weight port: writes at once, reads answered on weights_rdata
        m.d.comb += self.weights.ready.eq(~self.weights_rdata.valid & ~self.busy)
        with m.If(self.weights_rdata.ready):
            m.d.sync += self.weights_rdata.valid.eq(0)
        m.d.comb += [rp.addr.eq(addr_of(w)), wp.addr.eq(addr_of(w)), wp.data.eq(w.data)]
        with m.If(self.weights.valid & self.weights.ready):
            with m.If(w.write):
                m.d.comb += wp.en.eq(1)
            with m.Else():
                m.d.sync += [self.weights_rdata.payload.eq(rp.data), self.weights_rdata.valid.eq(1)]

        acc = Signal(ACC_BITS)
        nev = Signal(16)
        label = Signal.like(self.cmd.payload.label)
        train = Signal()
        beat = Signal(range(cfg.num_classes))
        with m.If(self.clear_flags):
            m.d.sync += self.flags.eq(0)
        m.d.sync += self.counters.cycles.eq(self.counters.cycles + 1)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [acc.eq(0), nev.eq(0), label.eq(self.cmd.payload.label),
                                 train.eq(self.cmd.payload.op == Op.TRAIN), beat.eq(0),
                                 self.counters.eq(0)]
                    with m.If(self.cmd.payload.op == Op.RESET):
                        m.d.sync += self.flags.eq(0)
                        m.next = "BUSY"
                    with m.Else():
                        m.next = "SPIKES"
            with m.State("BUSY"):
                m.d.comb += self.busy.eq(1)
                m.next = "IDLE"
            with m.State("SPIKES"):
                m.d.comb += [self.busy.eq(1), self.spikes.ready.eq(1)]
                s = self.spikes.payload
                with m.If(self.spikes.valid):
                    with m.If(~s.nop):
                        m.d.sync += [acc.eq(acc * 3 + s.index * 2 + s.negative + 1), nev.eq(nev + 1),
                                     self.counters.forward_ops.eq(self.counters.forward_ops + 1)]
                    with m.If(s.last):
                        m.next = "TRAIN_RD"
            with m.State("TRAIN_RD"):
                m.d.comb += self.busy.eq(1)
                with m.If(train):
                    m.next = "TRAIN_WR"
                with m.Else():
                    m.next = "RESULT"
            with m.State("TRAIN_WR"):
                row = Signal.like(w.row)
                m.d.comb += row.eq(label)
                target = Cat(Const(0, len(w.col)), row, Const(0, len(w.layer) + 1))
                m.d.comb += [self.busy.eq(1), rp.addr.eq(target), wp.addr.eq(target),
                             wp.data.eq(rp.data + 1), wp.en.eq(1)]
                m.d.sync += self.flags.weight_clamped.eq(1)
                m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [self.busy.eq(1), self.result.valid.eq(1)]
                r = self.result.payload
                m.d.comb += [r.index.eq(beat), r.value.eq(acc + beat), r.prediction.eq(nev % cfg.num_classes),
                             r.last.eq(beat == cfg.num_classes - 1)]
                with m.If(self.result.ready):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == cfg.num_classes - 1):
                        m.next = "IDLE"
        return m


def standin_model(model, events, label):
    """:class:`StandInCore` for :class:`spikecore.host.model.BridgeModel`."""
    acc = 0
    for j, s in events:
        acc = (3 * acc + 2 * j + (1 if s < 0 else 0) + 1) % (1 << ACC_BITS)
    if label is not None:
        model.weights[0][label][0] += 1
        model.flags["weight_clamped"] = 1
    return len(events) % model.cfg.num_classes, [acc + i for i in range(model.cfg.num_classes)]


__all__ = ["StandInCore", "standin_model", "COUNTER_BITS"]
