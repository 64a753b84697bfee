"""One neuron layer of the SpikeGrad core: forward and backward event engine.

See ``docs/spikegrad_core.md`` for the pipeline and the schedule.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikecore.config import SpikeGradConfig

from ..arith import out_of_range, saturate

from .banks import WeightGeometry, addr_range, check_layer_args, bits_for, ceil_div, fit, log2_exact, rotate_to_lanes

__all__ = ["EngineOp", "LayerEngine", "entry_layout", "lane_layout", "spike_count_bits", "sat_flags_layout",
           "addsub"]


class EngineOp(enum.Enum, shape=3):
    """Sweeps a :class:`LayerEngine` runs over all its neuron groups."""
    NONE = 0
    INIT = 1       # V <- b, x = S = U = E = 0
    FRES = 2       # forward residual spikes (eq. 16)
    BRES = 3       # backward residual error spikes (eq. 19)
    TOPEMIT = 4    # top layer: take U^L from the u stream, emit all error spikes neuron by neuron


def spike_count_bits(cfg: SpikeGradConfig) -> int:
    """Width of the per-neuron signed spike count ``S`` (only its sign is used, by the residual).

    ``|S| >= 2**(trace_bits + 1)`` implies the trace already saturated
    (``trace_saturated`` is set), so the counter is exact whenever the flags are clear.
    """
    return max(cfg.trace_bits, cfg.count_bits, 14) + 2


def lane_layout(cfg: SpikeGradConfig) -> data.StructLayout:
    """Per-neuron state: membrane ``v``, trace ``x``, spike count ``s``, error ``u``, error count ``e``."""
    return data.StructLayout({
        "v": signed(cfg.membrane_bits),
        "x": signed(cfg.trace_bits),
        "s": signed(spike_count_bits(cfg)),
        "u": signed(cfg.error_bits),
        "e": signed(cfg.count_bits),
    })


def entry_layout(lanes: int, group_bits: int) -> data.StructLayout:
    """One queue entry: the spikes one neuron group emitted in one cycle (bit set in ``mask``; ``signs``: negative)."""
    return data.StructLayout({
        "group": unsigned(group_bits),
        "mask": unsigned(lanes),
        "signs": unsigned(lanes),
    })


def sat_flags_layout() -> data.StructLayout:
    return data.StructLayout({"membrane": 1, "error": 1, "trace": 1, "count": 1})


def addsub(a, b, sub):
    """``a - b`` when ``sub`` else ``a + b`` (signed ``a``; ``b`` signed or an int) with one carry chain.

    ``Mux(sub, a - b, a + b)`` synthesises to two adders and a multiplexer; here
    ``a + (b ^ sub) + sub``, the carry-in entering through an extra low bit
    (``Cat(sub, a) + Cat(sub, b')`` is ``2 (a + b' + sub)``). Same value; the
    result is one bit wider than the wider operand.
    """
    a = Value.cast(a)
    if isinstance(b, int):
        return a + Mux(sub, -b, b)
    b = Value.cast(b)
    assert a.shape().signed and b.shape().signed
    n = max(len(a), len(b)) + 1
    ax = Cat(a, a[-1].replicate(n - len(a)))
    bx = Cat(b, b[-1].replicate(n - len(b))) ^ sub.replicate(n)
    return (Cat(sub, ax) + Cat(sub, bx))[1:n + 1].as_signed()


def residual_spike(value, count, theta):
    """The residual test of FRES/BRES: ``(pos, neg)``, a +1 spike when ``2·value > θ`` (or ``= θ``
    with ``count >= 0``), else a -1 spike when ``2·value < -θ`` (or ``= -θ`` with ``count <= 0``):
    round half away from zero, the tie going the way of the spikes already sent."""
    twice = value << 1
    pos = (twice > theta) | ((twice == theta) & (count >= 0))
    return pos, ~pos & ((twice < -theta) | ((twice == -theta) & (count <= 0)))


def _threshold_paths(m, total, bits, theta, name):
    """From an unsaturated sum: ``sat(total)``, ``sat(total) - theta``, ``sat(total) + theta``, saturated.

    The two resets are computed from ``total`` itself (three carry chains side by side
    rather than one after the saturation multiplexer); the range's end replaces
    ``total`` where it saturated.
    """
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    over, under = out_of_range(total, bits)
    clamped, dn, up, hit = (Signal(signed(bits), name=f"{name}_sat"), Signal(signed(bits), name=f"{name}_dn"),
                            Signal(signed(bits), name=f"{name}_up"), Signal(name=f"{name}_hit"))
    m.d.comb += [
        clamped.eq(Mux(over, hi, Mux(under, lo, total))),
        dn.eq(Mux(over, hi - theta, Mux(under, lo - theta, total - theta))),
        up.eq(Mux(over, hi + theta, Mux(under, lo + theta, total + theta))),
        hit.eq(over | under),
    ]
    return clamped, dn, up, hit


class LayerEngine(wiring.Component):
    """Event engine of neuron layer ``layer``: ``P = cfg.lanes`` neurons per cycle.

    Neuron ``i`` is lane ``i mod P`` of group ``i // P``; a group's state is one
    word of a :class:`~amaranth.lib.memory.Memory` (``ArrayLayout(lane_layout, P)``).
    Pipeline (``docs/spikegrad_core.md``): stage 0 issues the group-word and weight
    reads, stage 1 registers the memory outputs, stage 2 computes the sums, stage 3
    tests the thresholds and writes back, stage 4 pushes the outgoing entry. The
    read port is transparent for the write port; an op on a group still in stage 1
    or 2 holds the issue (read-after-write interlock).

    Parameters
    ----------
    cfg : SpikeGradConfig
    layer : int
    register_ram_outputs : bool, keyword-only
        Stage 1 as registers (default). False makes stage 1 a wire: one cycle less
        latency and about 80 fewer flip-flops per lane, for FPGAs whose block RAM is
        fast next to their logic (iCE40) and whose logic cells are scarce. The
        results are the same either way.

    Members
    -------
    start, op : ``In`` strobe and :class:`EngineOp` -- begin a sweep (INIT, FRES, BRES, TOPEMIT).
    bwd : ``In(1)`` -- incoming events are error events from layer ``layer + 1`` (else spikes from below).
    ev : ``In(stream.Signature(entry_layout))`` -- incoming events, one queue entry per beat.
    push, push_data : ``Out`` -- an outgoing queue entry this cycle (no back-pressure: see ``room_level``).
    room_level : ``In`` -- fill level of the queue ``push`` writes; the engine issues only while
        ``room_level + in_flight <= queue_depth - 2`` (tested a cycle early, conservatively) so it
        never writes into a full queue.
    wt_addr : ``Out`` per-bank weight read address (``W[layer]`` forward, ``W[layer+1]`` backward).
    wt_data : ``In`` per-bank weight read data, one cycle later.
    bias_addr, bias_data : bias read (for INIT).
    aux_addr, state : read access to the state word while the engine is idle (data one cycle later).
    u : ``In(stream.Signature(signed(error_bits)))`` -- top layer only: U^L in class order.
    idle : ``Out(1)`` -- nothing held, in flight or sweeping.
    event : ``Out(1)`` -- an incoming event starts this cycle (for the op counters).
    sat : ``Out(sat_flags_layout())`` -- saturation strobes this cycle.
    """

    def __init__(self, cfg: SpikeGradConfig, layer: int, *, register_ram_outputs: bool = True):
        check_layer_args(cfg, layer)
        if not isinstance(register_ram_outputs, bool):
            raise TypeError(f"register_ram_outputs must be a bool, not {register_ram_outputs!r}")
        self._cfg, self._layer = cfg, layer
        self._ram_regs = register_ram_outputs
        P = cfg.lanes
        L = cfg.num_layers
        self._top = layer == L - 1
        self._n = cfg.layer_sizes[layer + 1]
        self._groups = ceil_div(self._n, P)
        self._fwd_geo = WeightGeometry(cfg, layer)
        self._bwd_geo = None if self._top else WeightGeometry(cfg, layer + 1)
        src_groups = [ceil_div(cfg.layer_sizes[layer], P)]
        if not self._top:
            src_groups.append(ceil_div(cfg.layer_sizes[layer + 2], P))
        self._in_gbits = bits_for(max(src_groups))
        self._out_gbits = bits_for(self._groups)
        abits = max(self._fwd_geo.addr_bits, self._bwd_geo.addr_bits if self._bwd_geo else 0)
        self._abits = abits
        members = {
            "start": In(1),
            "op": In(EngineOp),
            "bwd": In(1),
            "ev": In(stream.Signature(entry_layout(P, self._in_gbits))),
            "push": Out(1),
            "push_data": Out(entry_layout(P, self._out_gbits)),
            "room_level": In(range(cfg.queue_depth + 1)),
            "wt_addr": Out(data.ArrayLayout(unsigned(abits), P)),
            "wt_data": In(data.ArrayLayout(signed(cfg.weight_bits), P)),
            "bias_addr": Out(addr_range(self._groups)),
            "bias_data": In(data.ArrayLayout(signed(cfg.weight_bits), P)),
            "aux_addr": In(addr_range(self._groups)),
            "state": Out(data.ArrayLayout(lane_layout(cfg), P)),
            "idle": Out(1),
            "event": Out(1),
            "sat": Out(sat_flags_layout()),
        }
        if self._top:
            members["u"] = In(stream.Signature(signed(cfg.error_bits)))
        super().__init__(members)

    @property
    def config(self):
        return self._cfg

    @property
    def layer(self):
        return self._layer

    @property
    def groups(self):
        return self._groups

    @property
    def in_group_bits(self):
        return self._in_gbits

    @property
    def out_group_bits(self):
        return self._out_gbits

    def elaborate(self, platform):
        cfg, l = self._cfg, self._layer
        P, G, N, top = cfg.lanes, self._groups, self._n, self._top
        lb = log2_exact(P)
        relu = cfg.activations[l] == "relu"
        emit_fwd, emit_bwd = not top, l > 0
        th_f, th_b, eta = cfg.theta_ff, cfg.theta_bp, cfg.eta
        mb, tb, eb, cb = cfg.membrane_bits, cfg.trace_bits, cfg.error_bits, cfg.count_bits
        sb = spike_count_bits(cfg)
        m = Module()

        word = data.ArrayLayout(lane_layout(cfg), P)
        m.submodules.state = mem = Memory(shape=word, depth=max(2, G), init=[])  # never a 0-bit address
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        m.d.comb += self.state.eq(rp.data)

        # ------------------------------------------------------------ stage 0
        sweep_active = Signal()
        sweep_op = Signal(EngineOp)
        gcnt = Signal(addr_range(G))
        ent = Signal(entry_layout(P, self._in_gbits))
        ent_valid = Signal()

        cur_lane = Signal(max(lb, 1))
        for p in reversed(range(P)):
            with m.If(ent.mask[p]):
                if lb:
                    m.d.comb += cur_lane.eq(p)
        cur_neg = Signal()
        m.d.comb += cur_neg.eq((ent.signs >> cur_lane)[0])
        lane_bit = Signal(P)
        m.d.comb += lane_bit.eq(Const(1, P) << cur_lane)

        # Pipeline tags: stage 1 (memory outputs), 2 (sums), 3 (compare, write back), 4 (push).
        K_FEV, K_BEV, K_INIT, K_FRES, K_BRES = range(5)
        tag = data.StructLayout({"valid": 1, "kind": 3, "g": addr_range(G), "neg": 1, "rot": max(lb, 1)})
        s1, s2, s3 = Signal(tag, name="s1"), Signal(tag, name="s2"), Signal(tag, name="s3")
        s4_push = Signal()

        # Top-layer emitter state (only used when top).
        te_active = Signal()

        depth = cfg.queue_depth
        room_ok = Signal()
        in_flight = Signal(range(5))
        # a table, not a chain of additions (yosys would fold one into a $macc cell)
        # (without stage-1 registers s2 is s1: count it once)
        busy_bits = Cat(s1.valid, s2.valid if self._ram_regs else 0, s3.valid, s4_push)
        m.d.comb += in_flight.eq(Array(Const(bin(k).count("1"), 3) for k in range(16))[busy_bits])
        # room_ok is registered: the queue level feeds it, and the queue's read side
        # depends on this engine's issue decision, so a combinational check would be a
        # loop through both. It is conservative: the sum it tests, a cycle old plus that
        # cycle's issue, can only be larger than the current one (pushes move from
        # ``in_flight`` to the level, pops only lower it).
        room_next = Signal()
        m.d.sync += room_ok.eq(room_next)
        # Read-after-write: an issue sees the write of the op issued 3 cycles before it
        # (2 without stage-1 registers; transparent read); ops in stages 1 and 2 on the
        # same group must drain first.
        # With stage-1 registers the write-back is a register stage behind stage 3 (``wb``
        # below), so the op in stage 3 must drain as well.
        hazard = Signal()
        same_group = (s1.valid & (s1.g == gcnt)) | (s2.valid & (s2.g == gcnt))
        if self._ram_regs:
            same_group = same_group | (s3.valid & (s3.g == gcnt))
        m.d.comb += hazard.eq(same_group)
        emits = Signal()
        with m.If(sweep_active):
            m.d.comb += emits.eq(((sweep_op == EngineOp.FRES) & emit_fwd) | ((sweep_op == EngineOp.BRES) & emit_bwd))
        with m.Else():
            m.d.comb += emits.eq(Mux(self.bwd, emit_bwd, emit_fwd))
        can_issue = Signal()
        m.d.comb += can_issue.eq((~emits | room_ok) & ~hazard)

        issue = Signal()
        kind = Signal(3)
        last_of_entry = Signal()
        with m.If(sweep_active):
            with m.If(can_issue):
                m.d.comb += issue.eq(1)
                with m.Switch(sweep_op):
                    with m.Case(EngineOp.INIT):
                        m.d.comb += kind.eq(K_INIT)
                    with m.Case(EngineOp.FRES):
                        m.d.comb += kind.eq(K_FRES)
                    with m.Default():
                        m.d.comb += kind.eq(K_BRES)
                with m.If(gcnt == G - 1):
                    m.d.sync += [sweep_active.eq(0), gcnt.eq(0)]
                with m.Else():
                    m.d.sync += gcnt.eq(gcnt + 1)
        with m.Elif(ent_valid):
            with m.If(can_issue):
                m.d.comb += [issue.eq(1), kind.eq(Mux(self.bwd, K_BEV, K_FEV))]
                m.d.comb += self.event.eq(gcnt == 0)
                with m.If(gcnt == G - 1):
                    newmask = ent.mask & ~lane_bit
                    m.d.sync += [gcnt.eq(0), ent.mask.eq(newmask)]
                    with m.If(newmask == 0):
                        m.d.sync += ent_valid.eq(0)
                        m.d.comb += last_of_entry.eq(1)
                with m.Else():
                    m.d.sync += gcnt.eq(gcnt + 1)
        if self._ram_regs:
            # both outcomes of the issue decision compared beside each other, so the
            # decision (hazard compares, can_issue) selects a result instead of feeding
            # an adder and a comparator
            level = self.room_level + in_flight
            m.d.comb += room_next.eq(Mux(issue, level <= depth - 3, level <= depth - 2))
        else:
            m.d.comb += room_next.eq(self.room_level + in_flight + issue <= depth - 2)
        m.d.comb += self.ev.ready.eq(~sweep_active & (~ent_valid | last_of_entry))
        with m.If(self.ev.valid & self.ev.ready):
            m.d.sync += [ent.eq(self.ev.payload), ent_valid.eq(1)]
        with m.If(self.start & (self.op != EngineOp.TOPEMIT) & (self.op != EngineOp.NONE)):
            m.d.sync += [sweep_active.eq(1), sweep_op.eq(self.op), gcnt.eq(0)]

        # Addresses.
        te_addr = Signal(addr_range(G))
        with m.If(issue):
            m.d.comb += rp.addr.eq(gcnt)
        with m.Elif(te_active):
            m.d.comb += rp.addr.eq(te_addr)
        with m.Else():
            m.d.comb += rp.addr.eq(self.aux_addr)
        m.d.comb += self.bias_addr.eq(gcnt)
        fg = self._fwd_geo
        jh = fit(ent.group, fg.col_bits) if fg.col_bits else None
        with m.If(self.bwd & (self._bwd_geo is not None)):
            if self._bwd_geo is not None:
                bg = self._bwd_geo
                k = Cat(cur_lane[:lb], ent.group)
                a = Cat(fit(gcnt, bg.col_bits), fit(k, bg.row_bits)) if bg.col_bits else fit(k, bg.row_bits)
                for b in range(P):
                    m.d.comb += self.wt_addr[b].eq(a)
        with m.Else():
            for b in range(P):
                r = Const(b, max(lb, 1))[:lb] - cur_lane if lb else None
                row = Cat(r[:lb], gcnt) if lb else gcnt
                row = fit(row, fg.row_bits)
                m.d.comb += self.wt_addr[b].eq(Cat(jh, row) if fg.col_bits else row)

        with m.If(issue):
            m.d.sync += [s1.kind.eq(kind), s1.g.eq(gcnt), s1.neg.eq(cur_neg), s1.rot.eq(cur_lane)]
        m.d.sync += s1.valid.eq(issue)

        # ------------------------------------------------------------ stage 1
        # Block RAM outputs (several ns clock-to-out on an ECP5) go straight into registers.
        # Without them (``register_ram_outputs=False``) the interlock below still holds:
        # s2 is s1, so "stage 1 or 2" is the op issued one cycle before, the only one
        # whose write-back a new issue would miss.
        old2 = Signal(word, reset_less=True)
        w2 = Signal(data.ArrayLayout(signed(cfg.weight_bits), P), reset_less=True)
        bias2 = Signal(data.ArrayLayout(signed(cfg.weight_bits), P), reset_less=True)
        stage1 = m.d.sync if self._ram_regs else m.d.comb
        stage1 += [s2.eq(s1), old2.eq(rp.data), w2.eq(self.wt_data), bias2.eq(self.bias_data)]

        # ------------------------------------------------------------ stage 2
        # The additions, and every operand stage 3 may select once it knows whether the
        # neuron fires (trace, count and error count one step up or down).
        w = rotate_to_lanes([w2[b] for b in range(P)], s2.rot, P)
        lane2 = data.StructLayout({
            "vsum": signed(max(mb, cfg.weight_bits) + 1), "usum": signed(max(eb, cfg.weight_bits) + 1),
            "x_up": signed(tb), "x_dn": signed(tb), "s_up": signed(sb), "s_dn": signed(sb),
            "e_up": signed(cb), "e_dn": signed(cb), "xf_up": 1, "xf_dn": 1, "ef_up": 1, "ef_dn": 1,
            "sp": 1, "valid": 1,
            # the residual tests of FRES / BRES (``residual_spike``), decided here from
            # the old state so that stage 3 only selects: compare-then-select was the iCE40's
            # longest path into the state memory
            "fr_pos": 1, "fr_neg": 1, "br_pos": 1, "br_neg": 1,
            # with stage-1 registers (the ECP5), the FRES/BRES resets are computed here
            # too, so that stage 3 only selects (a subtraction after the residual decision
            # was the dual ECP5 build's longest path into the state memory)
            # and the residual decisions with the lane's valid (and, backward, sp) folded in
            **({"fr_dn": signed(mb), "fr_up": signed(mb), "br_dn": signed(eb), "br_up": signed(eb),
                "fres_pos": 1, "fres_neg": 1, "bres_pos": 1, "bres_neg": 1, "bev_act": 1}
               if self._ram_regs else {}),
        })
        r3 = Signal(data.ArrayLayout(lane2, P), reset_less=True)
        old3 = Signal(word, reset_less=True)
        bias3 = Signal(data.ArrayLayout(signed(cfg.weight_bits), P), reset_less=True)
        m.d.sync += [s3.eq(s2), old3.eq(old2), bias3.eq(bias2)]
        # stage 3's operation, one-hot with its valid bit folded in (ECP5: a kind test is then
        # one flip-flop, not a decode of three bits and valid)
        kind3 = None
        if self._ram_regs:
            kind3 = Signal(5)
            m.d.sync += kind3.eq(Mux(s2.valid, Const(1, 5) << s2.kind, 0))
        for p in range(P):
            o, r = old2[p], r3[p]
            steps = [(r.x_up, r.xf_up, o.x + eta, tb), (r.x_dn, r.xf_dn, o.x - eta, tb),
                     (r.s_up, None, o.s + 1, sb), (r.s_dn, None, o.s - 1, sb),
                     (r.e_up, r.ef_up, o.e + 1, cb), (r.e_dn, r.ef_dn, o.e - 1, cb)]
            for field, flag, value, bits in steps:
                clamped, hit = saturate(value, bits)
                m.d.sync += field.eq(clamped)
                if flag is not None:
                    m.d.sync += flag.eq(hit)
            sp2 = ((o.v > 0) | (o.x > 0)) if relu else 1
            valid2 = Cat(Const(p, lb), s2.g) < N if P > 1 else 1
            m.d.sync += [
                r.vsum.eq(addsub(o.v, w[p], s2.neg)), r.usum.eq(addsub(o.u, w[p], s2.neg)),
                r.sp.eq(sp2), r.valid.eq(valid2),
            ]
            if not top:
                fpos2, fneg2 = residual_spike(o.v, o.s, th_f)
                fneg2 = fneg2 & ((o.s > 0) if relu else 1)
                m.d.sync += [r.fr_pos.eq(fpos2), r.fr_neg.eq(fneg2)]
            bpos2, bneg2 = residual_spike(o.u, o.e, th_b)
            m.d.sync += [r.br_pos.eq(bpos2), r.br_neg.eq(bneg2)]
            if self._ram_regs:
                m.d.sync += [r.fr_dn.eq(o.v - th_f), r.fr_up.eq(o.v + th_f),
                             r.br_dn.eq(o.u - th_b), r.br_up.eq(o.u + th_b),
                             r.bres_pos.eq(valid2 & sp2 & bpos2), r.bres_neg.eq(valid2 & sp2 & bneg2),
                             r.bev_act.eq(valid2 & sp2)]
                if not top:
                    m.d.sync += [r.fres_pos.eq(valid2 & fpos2), r.fres_neg.eq(valid2 & fneg2)]

        # ------------------------------------------------------------ stage 3
        new = Signal(word)
        out_mask = Signal(P)
        out_signs = Signal(P)
        f_m, f_e, f_t, f_c = [], [], [], []
        for p in range(P):
            o, r, n = old3[p], r3[p], new[p]
            valid, sp = r.valid, r.sp
            m.d.comb += n.eq(o)
            # The threshold tests and the resets work on the unsaturated sum, in
            # parallel with its saturation: a sum above the range is above theta too,
            # and the reset of a saturated compartment starts from the range's end.
            vs, vs_dn, vs_up, vsat = _threshold_paths(m, r.vsum, mb, th_f, f"v{p}")
            us, us_dn, us_up, usat = _threshold_paths(m, r.usum, eb, th_b, f"u{p}")
            # firing (forward): +1 / -1 spike on this lane
            fpos, fneg = Signal(name=f"fpos{p}"), Signal(name=f"fneg{p}")
            # error emission (backward)
            zpos, zneg = Signal(name=f"zpos{p}"), Signal(name=f"zneg{p}")
            xcl, xfl = Mux(fneg, r.x_dn, r.x_up), Mux(fneg, r.xf_dn, r.xf_up)
            scl = Mux(fneg, r.s_dn, r.s_up)
            ecl, efl = Mux(zneg, r.e_dn, r.e_up), Mux(zneg, r.ef_dn, r.ef_up)
            msat, esat, tsat, csat = (Signal(name=f"{n_}{p}") for n_ in ("msat", "esat", "tsat", "csat"))
            if self._ram_regs:
                fr_dn, fr_up, br_dn, br_up = r.fr_dn, r.fr_up, r.br_dn, r.br_up
                fres_pos, fres_neg = (r.fres_pos, r.fres_neg) if not top else (0, 0)
                bev_act, bres_pos, bres_neg = r.bev_act, r.bres_pos, r.bres_neg
            else:
                fr_dn, fr_up, br_dn, br_up = o.v - th_f, o.v + th_f, o.u - th_b, o.u + th_b
                fres_pos, fres_neg = valid & r.fr_pos, valid & r.fr_neg
                bev_act = valid & sp
                bres_pos, bres_neg = bev_act & r.br_pos, bev_act & r.br_neg

            def stage3_cases(case):
                with case(K_FEV):
                    m.d.comb += [n.v.eq(vs), msat.eq(vsat & valid)]
                    if not top:
                        neg_ok = (o.x > 0) if relu else 1
                        m.d.comb += [fpos.eq(valid & (r.vsum >= th_f)),
                                     fneg.eq(valid & (r.vsum <= -th_f) & neg_ok)]
                        with m.If(fpos):
                            m.d.comb += n.v.eq(vs_dn)
                        with m.If(fneg):
                            m.d.comb += n.v.eq(vs_up)
                with case(K_FRES):
                    if not top:
                        m.d.comb += [fpos.eq(fres_pos), fneg.eq(fres_neg)]
                        with m.If(fpos):
                            m.d.comb += n.v.eq(fr_dn)
                        with m.If(fneg):
                            m.d.comb += n.v.eq(fr_up)
                with case(K_INIT):
                    m.d.comb += n.eq(0)
                    if cfg.bias:
                        m.d.comb += n.v.eq(bias3[p])
                with case(K_BEV):
                    with m.If(bev_act):
                        m.d.comb += [n.u.eq(us), esat.eq(usat),
                                     zpos.eq(r.usum >= th_b), zneg.eq(r.usum <= -th_b)]
                        with m.If(zpos):
                            m.d.comb += n.u.eq(us_dn)
                        with m.If(zneg):
                            m.d.comb += n.u.eq(us_up)
                with case(K_BRES):
                    m.d.comb += [zpos.eq(bres_pos), zneg.eq(bres_neg)]
                    with m.If(zpos):
                        m.d.comb += n.u.eq(br_dn)
                    with m.If(zneg):
                        m.d.comb += n.u.eq(br_up)

            if self._ram_regs:
                stage3_cases(lambda k: m.If(kind3[k]))
            else:
                with m.If(s3.valid):
                    with m.Switch(s3.kind):
                        stage3_cases(m.Case)
            with m.If(fpos | fneg):
                m.d.comb += [n.x.eq(xcl), n.s.eq(scl), tsat.eq(xfl)]
            with m.If(zpos | zneg):
                m.d.comb += [n.e.eq(ecl), csat.eq(efl)]
            m.d.comb += [out_mask[p].eq(fpos | fneg | zpos | zneg), out_signs[p].eq(fneg | zneg)]
            f_m.append(msat); f_e.append(esat); f_t.append(tsat); f_c.append(csat)

        s3_emits = Signal()
        fwd3 = (kind3[K_FEV] | kind3[K_FRES]) if self._ram_regs else ((s3.kind == K_FEV) | (s3.kind == K_FRES))
        m.d.comb += s3_emits.eq(Mux(fwd3, emit_fwd, emit_bwd))
        # The state write: from stage 3 directly, or (stage-1 registers, the ECP5) through a
        # register stage: the threshold tests and the selects of stage 3 then end in flip-flops
        # beside them, and the word crosses the routing to the LUT RAM's write ports from there
        # (together they were the SpikeGrad engines' longest paths). The top emitter writes
        # through the same stage.
        if self._ram_regs:
            wb_en, wb_addr, wb_data = Signal(), Signal.like(wp.addr), Signal(word)
            wb_pending = Signal()
            m.d.sync += [wp.addr.eq(wb_addr), wp.data.eq(wb_data), wp.en.eq(wb_en), wb_pending.eq(wb_en)]
        else:
            wb_en, wb_addr, wb_data = wp.en, wp.addr, wp.data
        m.d.comb += [wb_addr.eq(s3.g), wb_data.eq(new), wb_en.eq(s3.valid)]

        # ------------------------------------------------------------ stage 4
        s4_data = Signal(entry_layout(P, self._out_gbits))
        m.d.sync += [s4_push.eq(s3.valid & s3_emits & (out_mask != 0)),
                     s4_data.group.eq(s3.g), s4_data.mask.eq(out_mask), s4_data.signs.eq(out_signs)]
        m.d.comb += [self.push.eq(s4_push), self.push_data.eq(s4_data)]
        sat_m = Signal(); sat_e = Signal(); sat_t = Signal(); sat_c = Signal()
        # (stage-1 registers: the strobes are registered, a cycle later, beside the write-back;
        # the core's sticky flags sit across the device, at the bridge)
        sat_dom = m.d.sync if self._ram_regs else m.d.comb
        sat_dom += [sat_m.eq(Cat(*f_m).any()), sat_e.eq(Cat(*f_e).any()),
                    sat_t.eq(Cat(*f_t).any()), sat_c.eq(Cat(*f_c).any())]

        # --------------------------------------------- top emitter (TOPEMIT)
        te_c = Signal()
        if top:
            te_g = Signal(addr_range(G))
            te_q = Signal(max(lb, 1))
            te_word = Signal(word)
            te_u = [Signal(signed(eb), name=f"te_u{q}") for q in range(P)]
            te_e = [Signal(signed(cb), name=f"te_e{q}") for q in range(P)]
            au, ae = Array(te_u), Array(te_e)
            cu, ce = au[te_q], ae[te_q]
            # With stage-1 registers the current lane's u and e are mirrored in registers
            # (cur_u, cur_e) that EMIT tests and updates, so no lane multiplexer sits in front
            # of the threshold compares, whose result enables every lane's registers.
            if self._ram_regs:
                cur_u, cur_e = Signal(signed(eb), name="te_cur_u"), Signal(signed(cb), name="te_cur_e")
            else:
                cur_u, cur_e = cu, ce
            # registered like room_ok (the level plus this cycle's push can only overstate
            # the next cycle's level); a combinational test put the queue level in front
            # of the queue's own write enable
            te_room = Signal()
            if cfg.num_layers == 1:
                m.d.comb += te_room.eq(1)
            elif not self._ram_regs:
                m.d.sync += te_room.eq(self.room_level + self.push <= depth - 2)
            # (with stage-1 registers te_room is set after the FSM below)
            m.d.comb += te_addr.eq(te_g)
            with m.FSM(name="te") as te_fsm:
                with m.State("IDLE"):
                    with m.If(self.start & (self.op == EngineOp.TOPEMIT)):
                        m.d.sync += te_g.eq(0)
                        m.next = "RD"
                with m.State("RD"):
                    m.d.comb += te_active.eq(1)
                    m.next = "LD"
                with m.State("LD"):
                    m.d.comb += te_active.eq(1)
                    m.d.sync += [te_word.eq(rp.data), te_q.eq(0)]
                    for q in range(P):
                        m.d.sync += [te_u[q].eq(rp.data[q].u), te_e[q].eq(rp.data[q].e)]
                    m.next = "LANE"
                with m.State("LANE"):
                    m.d.comb += te_active.eq(1)
                    with m.If(Cat(te_q[:lb], te_g) < N if P > 1 else Const(1)):
                        m.d.comb += self.u.ready.eq(1)
                        with m.If(self.u.valid):
                            m.d.sync += cu.eq(self.u.payload)
                            if self._ram_regs:
                                m.d.sync += [cur_u.eq(self.u.payload), cur_e.eq(ce)]
                            m.next = "EMIT"
                    with m.Else():
                        m.next = "WR"
                with m.State("EMIT"):
                    m.d.comb += te_active.eq(1)
                    zp, zn = cur_u >= th_b, cur_u <= -th_b
                    with m.If(zp | zn):
                        with m.If(te_room):
                            u_next = addsub(cur_u, th_b, ~zn)
                            ecl2, efl2 = saturate(addsub(cur_e, 1, zn), cb)
                            m.d.sync += [cu.eq(u_next), ce.eq(ecl2)]
                            if self._ram_regs:
                                m.d.sync += [cur_u.eq(u_next), cur_e.eq(ecl2)]
                            m.d.comb += te_c.eq(efl2)
                            if cfg.num_layers > 1:
                                push_dom = m.d.sync if self._ram_regs else m.d.comb
                                push, push_data = (s4_push, s4_data) if self._ram_regs else (self.push, self.push_data)
                                push_dom += [push.eq(1), push_data.group.eq(te_g),
                                             push_data.mask.eq(Const(1, P) << te_q),
                                             push_data.signs.eq(Mux(zn, Const(1, P) << te_q, 0))]
                    with m.Elif(te_q == P - 1):
                        m.next = "WR"
                    with m.Else():
                        m.d.sync += te_q.eq(te_q + 1)
                        m.next = "LANE"
                with m.State("WR"):
                    m.d.comb += te_active.eq(1)
                    m.d.comb += [wb_addr.eq(te_g), wb_en.eq(1), wb_data.eq(te_word)]
                    for q in range(P):
                        m.d.comb += [wb_data[q].u.eq(te_u[q]), wb_data[q].e.eq(te_e[q])]
                    with m.If(te_g == G - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += te_g.eq(te_g + 1)
                        m.next = "RD"
            if cfg.num_layers > 1 and self._ram_regs:
                # The push is registered too (``s4_push``): the level, plus the push in flight,
                # plus one if a push may be decided this cycle (EMIT with room), so the test
                # does not wait for EMIT's threshold compare. Exact enough for any queue depth:
                # with nothing in flight it only asks that the queue have drained to depth - 2.
                may_push = te_room & te_fsm.ongoing("EMIT")
                m.d.sync += te_room.eq(self.room_level + s4_push + may_push <= depth - 2)

        te_c_out = te_c
        if self._ram_regs:
            te_c_out = Signal()
            m.d.sync += te_c_out.eq(te_c)
        m.d.comb += [
            self.sat.membrane.eq(sat_m), self.sat.error.eq(sat_e), self.sat.trace.eq(sat_t),
            self.sat.count.eq(sat_c | te_c_out),
        ]
        idle = ~sweep_active & ~ent_valid & ~s1.valid & ~s2.valid & ~s3.valid & ~s4_push & ~te_active
        if self._ram_regs:     # the registered write-back and strobes are work in flight too
            idle = idle & ~Cat(wb_pending, sat_m, sat_e, sat_t, sat_c, te_c_out).any()
        m.d.comb += self.idle.eq(idle)
        return m
