"""The EXODUS chi-recurrence unit (``docs/exodus.md`` §4-§5).

Per neuron and time step, streamed in reverse time order::

    i    = clamp(((u - theta_q) >> lut_shift) + lut_size/2, 0, lut_size - 1)
    f, c = fprime[i], (slayer_coef if slayer else coef[i])
    lam  = saturate(round_shift(f*g + c*lam_next, fprime_frac), grad_bits)  if m else 0

``lam_next`` is the unit's own previous output for the same neuron (zero on
a beat marked ``first``, i.e. at ``n = T - 1``); it lives in a small memory
indexed by the neuron group, so any interleaving of neurons works.

The recurrence takes two pipeline stages (the product ``c*lam_next`` is
registered before the addition, rounding and saturation), so a beat needs the
result of the beat two places ahead of it. Beats of different groups flow one
per cycle; a beat that follows one of its own group directly waits one cycle
(a bubble), after which the transparent read port forwards the value being
written. A single group (one neuron, one lane) thus runs at one beat per two
cycles, every other case at one per cycle.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikecore.config import ExodusConfig

from ..arith import saturate

__all__ = ["ChiRecurrence", "COUNTER_BITS", "index_bits", "lane_layout", "input_layout", "output_layout",
           "table_write_layout", "saturating", "round_half_up_shift", "lut_index_expr", "LATENCY"]

COUNTER_BITS = 32
#: Cycles from an input transfer to its output beat being valid (no stalls).
LATENCY = 5


def index_bits(n: int) -> int:
    """Bits to index ``n`` items (at least 1)."""
    return max(1, (n - 1).bit_length())


def lane_layout(cfg: ExodusConfig, *, direct: bool = False) -> data.StructLayout:
    """One neuron-step of one lane: membrane ``u`` (or ``fprime``/``coef`` with ``direct``), ``g``, mask ``m``."""
    fields = ({"fprime": unsigned(cfg.fprime_bits), "coef": signed(cfg.coef_bits)} if direct
              else {"u": signed(cfg.u_bits)})
    return data.StructLayout({**fields, "g": signed(cfg.grad_bits), "m": unsigned(1)})


def input_layout(cfg: ExodusConfig, *, neurons: int, lanes: int, direct: bool = False) -> data.StructLayout:
    """A beat: neuron group ``index`` (lane ``l`` is neuron ``index*lanes + l``), ``first`` (``n = T-1``)."""
    return data.StructLayout({
        "index": unsigned(index_bits(-(-neurons // lanes))),
        "first": unsigned(1),
        "lanes": data.ArrayLayout(lane_layout(cfg, direct=direct), lanes),
    })


def output_layout(cfg: ExodusConfig, *, neurons: int, lanes: int) -> data.StructLayout:
    return data.StructLayout({
        "index": unsigned(index_bits(-(-neurons // lanes))),
        "lam": data.ArrayLayout(signed(cfg.grad_bits), lanes),
    })


def table_write_layout(cfg: ExodusConfig) -> data.StructLayout:
    """A table write: entry ``addr`` of both tables; ``slayer`` set writes the SLAYER constant (``coef``) instead."""
    return data.StructLayout({
        "addr": unsigned(index_bits(cfg.lut_size)),
        "fprime": unsigned(cfg.fprime_bits),
        "coef": signed(cfg.coef_bits),
        "slayer": unsigned(1),
    })


def saturating(m: Module, value, bits: int, name: str):
    """``(result, clamped)``: ``value`` clamped to a signed ``bits``-wide range, as named comb signals
    (:func:`rtl.arith.saturate`: a sign-extension test, no range comparisons)."""
    out = Signal(signed(bits), name=name)
    hit = Signal(name=f"{name}_sat")
    clamped, over = saturate(value, bits)
    m.d.comb += [out.eq(clamped), hit.eq(over)]
    return out, hit


def round_half_up_shift(value, k: int):
    """``round_shift`` of ``docs/exodus.md`` §3: add ``2**(k-1)``, arithmetic shift right by ``k``."""
    return (value + (1 << (k - 1))) >> k if k > 0 else value


def lut_index_expr(u, cfg: ExodusConfig):
    """Table address of membrane value ``u`` (``lut_index`` of the golden model), as an expression."""
    d = (u - cfg.theta_q) >> cfg.lut_shift
    half = cfg.lut_size // 2
    return Mux(d < -half, 0, Mux(d >= half, cfg.lut_size - 1, d + half))


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi if hi is not None else 'inf'}], not {value}")
    return value


class ChiRecurrence(wiring.Component):
    """Pipelined chi recurrence, ``lanes`` neurons per cycle (half that for back-to-back beats of one group).

    Parameters
    ----------
    cfg : ExodusConfig
        Every width; the tables are filled from ``build_tables(cfg)`` at elaboration.
    neurons : int, keyword-only
        Neurons whose ``lambda[n+1]`` the unit keeps (``ceil(neurons/lanes)`` groups).
    lanes : int, keyword-only
        Neurons per beat (default ``cfg.lanes``).
    direct : bool, keyword-only
        Lanes carry ``fprime`` and ``coef`` instead of ``u`` (no table lookup).
    writable_tables : bool, keyword-only
        Add the ``table`` write port (tables and the SLAYER constant become RAM).

    Members
    -------
    i : ``In(stream.Signature(input_layout(...)))``
        Neuron-steps in reverse time order; a beat with ``first`` starts a neuron group at ``n = T - 1``.
    o : ``Out(stream.Signature(output_layout(...)))``
        ``lambda[n]`` per lane, in input order, :data:`LATENCY` cycles after the input (stall-all pipeline:
        ``i.ready = (~o.valid | o.ready) & ~hazard``, where the hazard is a beat directly behind one of its
        own group; see the module docstring).
    slayer : ``In(1)``
        SLAYER mode: the coefficient is the constant ``alpha`` (reset term dropped). Hold it during a sequence.
    table : ``In(stream.Signature(table_write_layout(cfg)))`` (only with ``writable_tables``)
        Always ready; write it while no beat is in flight.
    clear : ``In(1)``
        Clears ``sat``, ``sat_count`` and ``steps``.
    sat : ``Out(1)``
        Sticky: some unmasked output saturated (set one cycle after that output's beat).
    sat_count : ``Out(32)``
        Saturated outputs (counted one cycle after the beat).
    steps : ``Out(32)``
        Neuron-steps done (``lanes`` per output beat).
    """

    def __init__(self, cfg: ExodusConfig, *, neurons: int, lanes: int | None = None, direct: bool = False,
                 writable_tables: bool = False):
        if not isinstance(cfg, ExodusConfig):
            raise TypeError(f"cfg must be an ExodusConfig, not {cfg!r}")
        lanes = cfg.lanes if lanes is None else lanes
        _check_int("neurons", neurons, 1, 1 << 16)
        _check_int("lanes", lanes, 1, 64)
        if lanes & (lanes - 1):
            raise ValueError(f"lanes must be a power of two, not {lanes}")
        for name, flag in (("direct", direct), ("writable_tables", writable_tables)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, not {flag!r}")
        self._cfg, self._neurons, self._lanes = cfg, neurons, lanes
        self._direct, self._writable = direct, writable_tables
        ports = {
            "i": In(stream.Signature(input_layout(cfg, neurons=neurons, lanes=lanes, direct=direct))),
            "o": Out(stream.Signature(output_layout(cfg, neurons=neurons, lanes=lanes))),
            "slayer": In(1),
            "clear": In(1),
            "sat": Out(1),
            "sat_count": Out(COUNTER_BITS),
            "steps": Out(COUNTER_BITS),
        }
        if writable_tables:
            ports["table"] = In(stream.Signature(table_write_layout(cfg)))
        super().__init__(ports)

    cfg = property(lambda self: self._cfg)
    neurons = property(lambda self: self._neurons)
    lanes = property(lambda self: self._lanes)
    direct = property(lambda self: self._direct)
    writable_tables = property(lambda self: self._writable)

    @property
    def groups(self) -> int:
        return -(-self._neurons // self._lanes)

    def elaborate(self, platform):
        from golden.exodus.fixedpoint import build_tables

        cfg, lanes = self._cfg, self._lanes
        F = cfg.fprime_frac
        m = Module()
        tables = build_tables(cfg)

        # ---- stage 1 registers (input beat, table reads issued)
        v1, first1 = Signal(), Signal()
        idx1 = Signal.like(self.i.payload.index)
        lane1 = Signal(data.ArrayLayout(lane_layout(cfg, direct=self._direct), lanes))
        # ---- stage b registers (table outputs registered: an ECP5 block RAM's 5.8 ns
        # clock-to-output in front of a multiplier does not fit 10 ns)
        vb, firstb = Signal(), Signal()
        idxb = Signal.like(idx1)
        # ---- stage 2 registers (f*g done, lambda_next read)
        v2, first2 = Signal(), Signal()
        idx2 = Signal.like(idx1)
        # ---- stage 3 registers (c*lambda_next done)
        v3 = Signal()
        idx3 = Signal.like(idx1)

        # advance: the whole pipeline moves (stall-all on the output). hazard: the beat in
        # stage b needs lambda of the beat in stage 2, which is written only from stage 3,
        # so stage b (with stage 1 and the input) holds for a cycle and a bubble goes on
        # into stage 2.
        advance, hazard, advance1 = Signal(), Signal(), Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready),
                     hazard.eq(vb & v2 & ~firstb & (idxb == idx2)),
                     advance1.eq(advance & ~hazard),
                     self.i.ready.eq(advance1)]

        # SLAYER constant: a register when writable, else a constant.
        if self._writable:
            slayer_coef = Signal(signed(cfg.coef_bits), init=tables.slayer_coef)
            m.d.comb += self.table.ready.eq(1)
            with m.If(self.table.valid & self.table.payload.slayer):
                m.d.sync += slayer_coef.eq(self.table.payload.coef)
        else:
            slayer_coef = Const(tables.slayer_coef, signed(cfg.coef_bits))

        with m.If(advance1):
            m.d.sync += [v1.eq(self.i.valid), first1.eq(self.i.payload.first), idx1.eq(self.i.payload.index),
                         lane1.eq(self.i.payload.lanes)]
            m.d.sync += [vb.eq(v1), firstb.eq(first1), idxb.eq(idx1)]
        with m.If(advance):
            m.d.sync += [v2.eq(vb & ~hazard), first2.eq(firstb), idx2.eq(idxb), v3.eq(v2), idx3.eq(idx2)]

        n_sat = Signal(range(lanes + 1))
        half = cfg.lut_size // 2
        sat_bits = []
        for l in range(lanes):
            lin = self.i.payload.lanes[l]
            if self._direct:
                f1, c1 = lane1[l].fprime, lane1[l].coef
            else:
                fmem = Memory(shape=unsigned(cfg.fprime_bits), depth=cfg.lut_size, init=tables.fprime)
                cmem = Memory(shape=signed(cfg.coef_bits), depth=cfg.lut_size, init=tables.coef)
                m.submodules[f"fprime{l}"] = fmem
                m.submodules[f"coef{l}"] = cmem
                addr = lut_index_expr(lin.u, cfg)
                # beyond the table: f' = 0 and c = alpha (docs/exodus.md §4, golden lut_lookup)
                d = (lin.u - cfg.theta_q) >> cfg.lut_shift
                outside1 = Signal(name=f"outside{l}")
                with m.If(advance1):
                    m.d.sync += outside1.eq((d < -half) | (d >= half))
                frd, crd = fmem.read_port(), cmem.read_port()
                m.d.comb += [frd.addr.eq(addr), crd.addr.eq(addr), frd.en.eq(advance1), crd.en.eq(advance1)]
                if self._writable:
                    for mem, field in ((fmem, "fprime"), (cmem, "coef")):
                        wp = mem.write_port()
                        m.d.comb += [wp.addr.eq(self.table.payload.addr),
                                     wp.data.eq(self.table.payload[field]),
                                     wp.en.eq(self.table.valid & ~self.table.payload.slayer)]
                f1 = Mux(outside1, 0, frd.data)
                c1 = Mux(outside1, slayer_coef, crd.data)

            # stage 1 -> b: the table outputs (or direct inputs) into registers
            fb = Signal(unsigned(cfg.fprime_bits), name=f"fb{l}")
            cb = Signal(signed(cfg.coef_bits), name=f"cb{l}")
            gb = Signal(signed(cfg.grad_bits), name=f"gb{l}")
            mb = Signal(name=f"mb{l}")
            with m.If(advance1):
                m.d.sync += [fb.eq(f1), cb.eq(c1), gb.eq(lane1[l].g), mb.eq(lane1[l].m)]

            # stage b -> 2: product f*g, coefficient, mask
            p2 = Signal(signed(cfg.fprime_bits + cfg.grad_bits + 1), name=f"fg{l}")
            c2 = Signal(signed(cfg.coef_bits), name=f"c{l}")
            m2 = Signal(name=f"m{l}")
            with m.If(advance):
                m.d.sync += [p2.eq(fb * gb), c2.eq(Mux(self.slayer, slayer_coef, cb)), m2.eq(mb)]

            # lambda[n+1] of this lane's neurons: read for the beat in stage b every cycle the
            # pipeline moves (so a held beat reads again), used in stage 2, written from stage 3.
            lmem = Memory(shape=signed(cfg.grad_bits), depth=max(2, self.groups), init=[])  # no 0-bit address
            m.submodules[f"lam{l}"] = lmem
            lwp = lmem.write_port()
            lrd = lmem.read_port(transparent_for=(lwp,))
            m.d.comb += [lrd.addr.eq(idxb), lrd.en.eq(advance)]

            # stage 2 -> 3: c * lambda[n+1] (its own register: the multiplier is half the recurrence).
            # A group's first beat has lambda[n+1] = 0: the product register is cleared instead of
            # the multiplier's input (a constant mux in front of the register, which synthesis can
            # fold into its reset, instead of one between the lambda memory and the multiplier).
            p3 = Signal.like(p2, name=f"fg3_{l}")
            cl3 = Signal(signed(cfg.coef_bits + cfg.grad_bits), name=f"clam{l}")
            m3 = Signal(name=f"m3_{l}")
            with m.If(advance):
                m.d.sync += [p3.eq(p2), cl3.eq(Mux(first2, 0, c2 * lrd.data)), m3.eq(m2)]

            # stage 3: one addition, one rounding, one saturation
            acc = Signal(signed(max(p3.shape().width, cl3.shape().width) + 1), name=f"acc{l}")
            m.d.comb += acc.eq(p3 + cl3)
            lam_sat, hit = saturating(m, round_half_up_shift(acc, F), cfg.grad_bits, f"lam{l}")
            lam = Signal(signed(cfg.grad_bits), name=f"lam_out{l}")
            hit_m = Signal(name=f"sat{l}")
            m.d.comb += [lam.eq(Mux(m3, lam_sat, 0)), hit_m.eq(m3 & hit & v3),
                         lwp.addr.eq(idx3), lwp.data.eq(lam), lwp.en.eq(advance & v3)]
            sat_bits.append(hit_m)
            with m.If(advance):
                m.d.sync += self.o.payload.lam[l].eq(lam)
        m.d.comb += n_sat.eq(sum(sat_bits))

        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v3), self.o.payload.index.eq(idx3)]

        # counters and the sticky flag; the saturation count of a beat is registered
        # first (one cycle later): the saturation test ends the recurrence's long path,
        # and a 32-bit counter behind it was the slowest path of the EXODUS engine.
        fire = advance & v3
        n_sat_r = Signal.like(n_sat)
        m.d.sync += n_sat_r.eq(Mux(fire & ~self.clear, n_sat, 0))
        with m.If(self.clear):
            m.d.sync += [self.sat.eq(0), self.sat_count.eq(0), self.steps.eq(0)]
        with m.Else():
            m.d.sync += self.sat_count.eq(self.sat_count + n_sat_r)
            with m.If(n_sat_r != 0):
                m.d.sync += self.sat.eq(1)
            with m.If(fire):
                m.d.sync += self.steps.eq(self.steps + lanes)
        return m
