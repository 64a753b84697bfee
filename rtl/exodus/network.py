"""ExodusNetwork: the temporal layer engines of an EXODUS network behind one access port.

Layer ``k`` is a :class:`TemporalLayerEngine` ``layer_sizes[k] -> layer_sizes[k+1]`` (every layer but
the first builds the gradient-to-the-layer-below path). The layers are chained by the host: it copies
``S`` of layer ``k`` into ``X`` of layer ``k+1`` and ``GP`` of layer ``k+1`` into ``G`` of layer ``k``.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikecore.config import ExodusConfig
from spikecore.config.exodus import ExodusOp, ExodusTarget
from spikecore.host.protocol import EX_COUNTERS, EX_FLAGS, exodus_backprop

from .chi import COUNTER_BITS, index_bits
from .engine import TemporalLayerEngine, host_data_bits

__all__ = ["ExodusNetwork", "network_ports", "network_data_bits"]


def network_data_bits(ex: ExodusConfig) -> int:
    """Width of the access port's data: the widest element of any layer."""
    return max(host_data_bits(ex, *reversed(ex.weight_shape(k)), exodus_backprop(k)) for k in range(ex.num_layers))


def status_layout() -> data.StructLayout:
    """Flags (``EX_FLAGS``, bit 0 first) then the counters (``EX_COUNTERS``): the EX_STATUS payload once
    the flags are padded to a byte."""
    fields = {k: unsigned(1) for k in EX_FLAGS}
    fields.update({k: unsigned(COUNTER_BITS) for k in EX_COUNTERS})
    return data.StructLayout(fields)


def network_ports(ex: ExodusConfig) -> dict:
    """The ports of :class:`ExodusNetwork`, from the network's side."""
    L = ex.num_layers
    access = data.StructLayout({"layer": unsigned(index_bits(L)), "write": unsigned(1), "target": ExodusTarget,
                                "addr": unsigned(16), "data": unsigned(network_data_bits(ex))})
    cmd = data.StructLayout({"layer": unsigned(index_bits(L)), "op": ExodusOp,
                             "steps": unsigned(ex.max_steps.bit_length()), "slayer": unsigned(1),
                             "grad_prev": unsigned(1)})
    return {
        "access": In(stream.Signature(access)),
        "rdata": Out(stream.Signature(unsigned(network_data_bits(ex)))),
        "cmd": In(stream.Signature(cmd)),
        "busy": Out(L),
        "status_layer": In(index_bits(L)),
        "status": Out(status_layout()),
    }


class ExodusNetwork(wiring.Component):
    """The engines of ``ex.layer_sizes``, each with ``max_steps = ex.max_steps``.

    Members
    -------
    access : In stream (``layer``, ``write``, ``target``, ``addr``, ``data``): a memory access to engine
        ``layer`` (taken while that engine is idle); a read answers one beat on ``rdata``.
    rdata : Out stream, the element read (zero-extended).
    cmd : In stream (``layer``, ``op``, ``steps``, ``slayer``, ``grad_prev``), to engine ``layer``.
    busy : Out(L), bit ``k``: engine ``k`` runs a command; registered, so one cycle behind the
        engine (the bridge's decisions on it were the dual-engine ECP5 build's critical path).
    status_layer : In, the engine whose flags and counters ``status`` shows.
    status : Out(:func:`status_layout`), live.
    """

    def __init__(self, ex: ExodusConfig):
        if not isinstance(ex, ExodusConfig):
            raise TypeError(f"ex must be an ExodusConfig, not {ex!r}")
        self._ex = ex
        self._engines = [TemporalLayerEngine(ex, fan_in=ex.layer_sizes[k], fan_out=ex.layer_sizes[k + 1],
                                             backprop=exodus_backprop(k)) for k in range(ex.num_layers)]
        super().__init__(network_ports(ex))

    @property
    def ex(self) -> ExodusConfig:
        return self._ex

    @property
    def engines(self) -> tuple:
        return tuple(self._engines)

    def elaborate(self, platform):
        m = Module()
        a, c = self.access.payload, self.cmd.payload
        readies, cmd_readies = [], []
        for k, eng in enumerate(self._engines):
            m.submodules[f"layer{k}"] = eng
            hp, cp = eng.host.payload, eng.cmd.payload
            m.d.comb += [
                eng.host.valid.eq(self.access.valid & (a.layer == k)),
                hp.write.eq(a.write), hp.target.eq(a.target), hp.addr.eq(a.addr), hp.data.eq(a.data),
                eng.cmd.valid.eq(self.cmd.valid & (c.layer == k)),
                cp.op.eq(c.op), cp.steps.eq(c.steps), cp.slayer.eq(c.slayer), cp.grad_prev.eq(c.grad_prev),
                eng.rdata.ready.eq(self.rdata.ready),
            ]
            m.d.sync += self.busy[k].eq(eng.busy)
            readies.append(eng.host.ready)
            cmd_readies.append(eng.cmd.ready)
        L = len(self._engines)
        m.d.comb += [self.access.ready.eq(Array(readies)[a.layer] if L > 1 else readies[0]),
                     self.cmd.ready.eq(Array(cmd_readies)[c.layer] if L > 1 else cmd_readies[0])]
        # one read is outstanding at a time: OR the (zero) payloads of the idle engines
        m.d.comb += [self.rdata.valid.eq(Cat(e.rdata.valid for e in self._engines).any())]
        rd = Const(0, len(self.rdata.payload))
        for e in self._engines:
            rd = rd | Mux(e.rdata.valid, e.rdata.payload, 0)
        m.d.comb += self.rdata.payload.eq(rd)

        st = self.status
        with m.Switch(self.status_layer):
            for k, e in enumerate(self._engines):
                with m.Case(k):
                    m.d.comb += [st.busy.eq(e.busy), *(st[f].eq(getattr(e, f)) for f in EX_COUNTERS)]
                    m.d.comb += [st[f].eq(e.flags[f]) for f in EX_FLAGS if f != "busy"]
        return m
