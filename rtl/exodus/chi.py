"""The EXODUS chi-recurrence unit (``docs/exodus.md`` §4-§5).

Per neuron and time step, streamed in reverse time order::

    i    = clamp(((u - theta_q) >> lut_shift) + lut_size/2, 0, lut_size - 1)
    f, c = fprime[i], (slayer_coef if slayer else coef[i])
    lam  = saturate(round_shift(f*g + c*lam_next, fprime_frac), grad_bits)  if m else 0

``lam_next`` is the unit's own previous output for the same neuron (zero on
a beat marked ``first``, i.e. at ``n = T - 1``); it lives in a small memory
indexed by the neuron group, so any interleaving of neurons works.

The recurrence spans four pipeline stages, each short enough for 100 MHz on an
ECP5: ``lam_next`` is read and registered, the product ``c*lam_next`` is formed
as two registered partial products (each one 18x18 multiplier, no adder behind
it), the three terms are added (the rounding constant rides in with ``f*g``),
and the sum is shifted and saturated. A beat reads ``lam_next`` while it waits
in stage 1, and the read sees the write of the beat of its own group only once
that beat is in the last stage, :data:`SPACING` places ahead. So beats of one
group must be at least :data:`SPACING` beats apart; a closer one waits in stage
1 (bubbles go on behind it). With :data:`SPACING` groups or more in turn every
beat flows one per cycle; a single group (one neuron, one lane) runs at one
beat per :data:`SPACING` cycles.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikecore.config import ExodusConfig

from ..arith import registered_product, saturate

__all__ = ["ChiRecurrence", "COUNTER_BITS", "SPACING", "index_bits", "lane_layout", "input_layout", "output_layout",
           "table_write_layout", "saturating", "round_half_up_shift", "lut_index_expr", "LATENCY"]

COUNTER_BITS = 32
#: Cycles from an input transfer to its output beat being valid (no stalls).
LATENCY = 7
#: Fewest beats between two beats of one neuron group that flow without a wait (module docstring).
SPACING = 4


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
        ``i.ready = (~o.valid | o.ready) & ~hazard``, where the hazard is a beat in stage 1 fewer than
        :data:`SPACING` places behind one of its own group; see the module docstring).
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

        # ---- stage a registers (input beat, table addresses: the index arithmetic on u in
        # front of the block RAMs' address pins did not fit 10 ns on an ECP5)
        va, firsta = Signal(), Signal()
        idxa = Signal.like(self.i.payload.index)
        lanea = Signal(data.ArrayLayout(lane_layout(cfg, direct=self._direct), lanes))
        # ---- stage 1 registers (table reads and the lambda_next read issued)
        v1, first1 = Signal(), Signal()
        idx1 = Signal.like(self.i.payload.index)
        lane1 = Signal(data.ArrayLayout(lane_layout(cfg, direct=self._direct), lanes))
        # ---- stage b registers (table outputs registered: an ECP5 block RAM's 5.8 ns
        # clock-to-output in front of a multiplier does not fit 10 ns); lambda_next on
        # the memory output
        vb, firstb = Signal(), Signal()
        idxb = Signal.like(idx1)
        # ---- stage 2 registers (f*g done, lambda_next registered)
        v2 = Signal()
        idx2 = Signal.like(idx1)
        # ---- stage 3 registers (the partial products of c*lambda_next done)
        v3 = Signal()
        idx3 = Signal.like(idx1)
        # ---- stage 4 registers (the sum done; shift and saturation, lambda written)
        v4 = Signal()
        idx4 = Signal.like(idx1)

        # advance: the whole pipeline moves (stall-all on the output). hazard: the beat in
        # stage 1 needs lambda of a beat of its group in stage b, 2 or 3, which is written
        # only from stage 4, so stage 1 (with the input) holds and a bubble goes on into
        # stage b; the read is repeated every cycle the beat waits.
        advance, hazard, advance1 = Signal(), Signal(), Signal()
        ahead = [(vb, idxb), (v2, idx2), (v3, idx3)]
        assert len(ahead) == SPACING - 1
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready),
                     hazard.eq(v1 & ~first1 & Cat(*(v & (idx == idx1) for v, idx in ahead)).any()),
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
            m.d.sync += [va.eq(self.i.valid), firsta.eq(self.i.payload.first), idxa.eq(self.i.payload.index),
                         lanea.eq(self.i.payload.lanes),
                         v1.eq(va), first1.eq(firsta), idx1.eq(idxa), lane1.eq(lanea)]
        with m.If(advance):
            m.d.sync += [vb.eq(v1 & ~hazard), firstb.eq(first1), idxb.eq(idx1),
                         v2.eq(vb), idx2.eq(idxb), v3.eq(v2), idx3.eq(idx2), v4.eq(v3), idx4.eq(idx3)]

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
                addr_a = Signal(range(cfg.lut_size), name=f"addr{l}")
                # beyond the table: f' = 0 and c = alpha (docs/exodus.md §4, golden lut_lookup)
                d = (lin.u - cfg.theta_q) >> cfg.lut_shift
                outside_a, outside1 = Signal(name=f"outside_a{l}"), Signal(name=f"outside{l}")
                with m.If(advance1):
                    m.d.sync += [addr_a.eq(lut_index_expr(lin.u, cfg)), outside_a.eq((d < -half) | (d >= half)),
                                 outside1.eq(outside_a)]
                frd, crd = fmem.read_port(), cmem.read_port()
                m.d.comb += [frd.addr.eq(addr_a), crd.addr.eq(addr_a), frd.en.eq(advance1), crd.en.eq(advance1)]
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
            with m.If(advance):
                m.d.sync += [fb.eq(f1), cb.eq(c1), gb.eq(lane1[l].g), mb.eq(lane1[l].m)]

            # lambda[n+1] of this lane's neurons: read for the beat in stage 1 every cycle the
            # pipeline moves (so a waiting beat reads again, and the read of its last cycle
            # there sees the write from stage 4 of that cycle), registered into stage 2 (a
            # group's first beat takes 0), written from stage 4.
            lmem = Memory(shape=signed(cfg.grad_bits), depth=max(2, self.groups), init=[])  # no 0-bit address
            m.submodules[f"lam{l}"] = lmem
            lwp = lmem.write_port()
            lrd = lmem.read_port(transparent_for=(lwp,))
            m.d.comb += [lrd.addr.eq(idx1), lrd.en.eq(advance)]

            # stage b -> 2: product f*g (registered partial products: each one multiplier with
            # no adder behind it), coefficient, mask, lambda[n+1]
            fg = registered_product(m, fb, gb, en=advance, name=f"fg{l}", platform=platform)
            c2 = Signal(signed(cfg.coef_bits), name=f"c{l}")
            m2 = Signal(name=f"m{l}")
            lam2 = Signal(signed(cfg.grad_bits), name=f"lamn{l}")
            with m.If(advance):
                m.d.sync += [c2.eq(Mux(self.slayer, slayer_coef, cb)), m2.eq(mb),
                             lam2.eq(Mux(firstb, 0, lrd.data))]

            # stage 2 -> 3: c * lambda[n+1] as registered partial products; f*g joined, with
            # the rounding constant
            rnd = (1 << (F - 1)) if F > 0 else 0
            p3 = Signal((fg + rnd).shape(), name=f"fg3_{l}")
            cl = registered_product(m, c2, lam2, en=advance, name=f"clam{l}", platform=platform)
            m3 = Signal(name=f"m3_{l}")
            with m.If(advance):
                m.d.sync += [p3.eq(fg + rnd), m3.eq(m2)]

            # stage 3 -> 4: the sum  f*g + rnd + c*lambda[n+1]
            s4 = Signal((p3 + cl).shape(), name=f"acc{l}")
            m4 = Signal(name=f"m4_{l}")
            with m.If(advance):
                m.d.sync += [s4.eq(p3 + cl), m4.eq(m3)]

            # stage 4: the shift (round_half_up_shift: rnd is in the sum) and one saturation
            lam_sat, hit = saturating(m, s4 >> F, cfg.grad_bits, f"lam{l}")
            lam = Signal(signed(cfg.grad_bits), name=f"lam_out{l}")
            hit_m = Signal(name=f"sat{l}")
            m.d.comb += [lam.eq(Mux(m4, lam_sat, 0)), hit_m.eq(m4 & hit & v4),
                         lwp.addr.eq(idx4), lwp.data.eq(lam), lwp.en.eq(advance & v4)]
            sat_bits.append(hit_m)
            with m.If(advance):
                m.d.sync += self.o.payload.lam[l].eq(lam)
        m.d.comb += n_sat.eq(sum(sat_bits))

        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v4), self.o.payload.index.eq(idx4)]

        # counters and the sticky flag; the saturation count of a beat is registered
        # first (one cycle later): the saturation test ends the recurrence's long path,
        # and a 32-bit counter behind it was the slowest path of the EXODUS engine.
        fire = advance & v4
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
