"""Two :class:`TemporalLayerEngine` instances in one top level (hidden ``hid_*``, output ``out_*``).

Only a test fixture: one Verilator build for both layers of the fitting task. Every port of each engine
is forwarded with its prefix; the host moves spikes and gradients between them.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from rtl.exodus.engine import TemporalLayerEngine

__all__ = ["TwoLayerTop"]


class TwoLayerTop(wiring.Component):
    def __init__(self, cfg, *, n_in, n_hidden, n_out, max_steps):
        self._engines = {
            "hid": TemporalLayerEngine(cfg, fan_in=n_in, fan_out=n_hidden, max_steps=max_steps, backprop=False),
            "out": TemporalLayerEngine(cfg, fan_in=n_hidden, fan_out=n_out, max_steps=max_steps, backprop=True),
        }
        super().__init__({f"{p}_{name}": member for p, eng in self._engines.items()
                          for name, member in eng.signature.members.items()})

    def elaborate(self, platform):
        m = Module()
        for p, eng in self._engines.items():
            m.submodules[p] = eng
            for name, member in eng.signature.members.items():
                outer, inner = getattr(self, f"{p}_{name}"), getattr(eng, name)
                if member.is_signature:
                    wiring.connect(m, wiring.flipped(outer), inner)
                elif member.flow == In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
        return m
