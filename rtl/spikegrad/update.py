"""Weight update unit: ``w_ij -= E_i * x_j`` by ``|E_i|`` clamped additions, no multiplier."""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikecore.config import SpikeGradConfig

from .banks import WeightGeometry, addr_range, check_layer_args, bits_for, ceil_div, fit, log2_exact, rotate_to_banks, rotate_to_lanes
from .engine import addsub

__all__ = ["WeightUpdateUnit"]


def _clamp(value, limit):
    over, under = value > limit, value < -limit
    return Mux(over, limit, Mux(under, -limit, value)), over | under


def _clamp_by_thresholds(acc, total, hi, lo, limit):
    """``_clamp(total, limit)`` where ``total = acc + addend`` and ``hi = limit - addend``,
    ``lo = -limit - addend``: the tests compare ``acc``, not the sum."""
    over, under = acc > hi, acc < lo
    return Mux(over, limit, Mux(under, -limit, total)), over | under


class WeightUpdateUnit(wiring.Component):
    """Applies the accumulated error counts ``E`` of layer ``layer`` to ``W[layer]`` and ``b[layer]``.

    For each neuron ``i`` with ``E_i != 0`` (scanning the ``E`` words group by
    group, lanes in ascending order) and each column group ``h``: read the row
    word ``W[i][hP .. hP+P-1]`` (all banks, one address) and the presynaptic
    traces ``x[hP .. hP+P-1]``, then add ``-sign(E_i) * x_j`` ``|E_i|`` times,
    clamping to ``+-weight_limit`` after every addition (one cycle each), and
    write the row word back. The bias is updated alongside column group 0
    (``-sign(E_i) * eta`` per addition, clamped to ``+-bias_limit``).

    Members
    -------
    start : ``In(1)`` strobe; ``busy`` : ``Out(1)``.
    e_addr, e_data : read of the layer's error counts (group word; data one cycle later).
    x_addr, x_data : read of the presynaptic traces (group word; data one cycle later).
    w_raddr, w_rdata, w_we, w_waddr, w_wdata : the weight banks (raw bank order).
    b_raddr, b_rdata, b_we, b_waddr, b_wdata : the bias lanes.
    clamped : ``Out(1)`` -- a clamp happened this cycle.
    ops : ``Out`` -- additions performed this cycle (for ``update_ops``).

    With ``clamp_thresholds`` (the ECP5 builds) LOAD also registers the signed addend and, per
    lane, the two values of ``acc`` beyond which the sum clamps (``limit - addend`` and
    ``-limit - addend``), so each addition's clamp tests compare ``acc`` itself, beside the
    adder instead of behind it (the addition, two comparisons and the selects in series were
    one of the dual ULX3S build's last failing paths). Same results; more flip-flops.

    With ``registered_reads`` (the ECP5 builds) LOAD registers the weight and bias words as
    the banks deliver them and a ROTATE state moves them to the lanes a cycle later: the
    block RAM's clock-to-output time then ends at a flip-flop, not in front of the lane
    rotation. Same results; one cycle more per (neuron, column group).
    """

    def __init__(self, cfg: SpikeGradConfig, layer: int, *, clamp_thresholds: bool = False,
                 registered_reads: bool = False):
        check_layer_args(cfg, layer)
        for name, value in (("clamp_thresholds", clamp_thresholds), ("registered_reads", registered_reads)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {value!r}")
        self._thresholds = clamp_thresholds
        self._registered_reads = registered_reads
        self._cfg, self._layer = cfg, layer
        P = cfg.lanes
        self._geo = geo = WeightGeometry(cfg, layer)
        wb = signed(cfg.weight_bits)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "e_addr": Out(addr_range(geo.groups)),
            "e_data": In(data.ArrayLayout(signed(cfg.count_bits), P)),
            "x_addr": Out(addr_range(geo.col_groups)),
            "x_data": In(data.ArrayLayout(signed(cfg.trace_bits), P)),
            "w_raddr": Out(unsigned(geo.addr_bits)),
            "w_rdata": In(data.ArrayLayout(wb, P)),
            "w_we": Out(P),
            "w_waddr": Out(unsigned(geo.addr_bits)),
            "w_wdata": Out(data.ArrayLayout(wb, P)),
            "b_raddr": Out(addr_range(geo.groups)),
            "b_rdata": In(data.ArrayLayout(wb, P)),
            "b_we": Out(P),
            "b_waddr": Out(addr_range(geo.groups)),
            "b_wdata": Out(data.ArrayLayout(wb, P)),
            "clamped": Out(1),
            "ops": Out(range(P + 2)),
        })

    @property
    def geometry(self):
        return self._geo

    def elaborate(self, platform):
        cfg, geo = self._cfg, self._geo
        P = cfg.lanes
        lb = log2_exact(P)
        G, H, N = geo.groups, geo.col_groups, geo.fan_out
        cb = cfg.count_bits
        m = Module()

        g = Signal(addr_range(G))
        q = Signal(max(lb, 1))
        h = Signal(addr_range(H))
        eword = [Signal(signed(cb), name=f"eword{p}") for p in range(P)]
        emask = Signal(P)
        mag = Signal(cb)
        rep = Signal(cb)
        e_pos = Signal()
        pending = Signal()     # acc holds column group h - 1, to be written back
        acc = [Signal(signed(cfg.weight_bits), name=f"acc{p}") for p in range(P)]
        xr = [Signal(signed(cfg.trace_bits), name=f"xr{p}") for p in range(P)]
        bacc = Signal(signed(cfg.weight_bits))
        if self._registered_reads:
            w_raw = Signal.like(self.w_rdata)   # the words as read, bank order
            b_raw = Signal.like(self.b_rdata)
            # ADD's tests ``rep == mag`` and ``h == H - 1`` in registers (ROTATE precedes every
            # run of ADD cycles and sets them; h does not change within one), so they do not
            # sit in front of the next read address
            rep_done_r, h_last_r = Signal(), Signal()
            rep_done, h_last = rep_done_r, h_last_r
        else:
            rep_done, h_last = rep == mag, h == H - 1
        do_bias = cfg.bias
        if self._thresholds:
            tw = signed(max(cfg.weight_bits, cfg.trace_bits) + 2)
            xs = [Signal(signed(cfg.trace_bits + 1), name=f"xs{p}") for p in range(P)]   # -sign(E) * x
            hi_t = [Signal(tw, name=f"hi_t{p}") for p in range(P)]   # acc > hi_t: the sum is above +limit
            lo_t = [Signal(tw, name=f"lo_t{p}") for p in range(P)]   # acc < lo_t: below -limit
            bhi_t, blo_t = Signal(tw), Signal(tw)

        def write_back(hv):
            """Write ``acc`` (and ``bacc`` with column group 0) to row ``q``, column group ``hv``."""
            banks = rotate_to_banks(acc, q, P)
            m.d.comb += [self.w_we.eq((1 << P) - 1), self.w_waddr.eq(waddr(hv, q))]
            for b in range(P):
                m.d.comb += self.w_wdata[b].eq(banks[b])
            if do_bias:
                with m.If(hv == 0):
                    m.d.comb += self.b_we.eq(Const(1, P) << q)
                    for p in range(P):
                        m.d.comb += self.b_wdata[p].eq(bacc)

        def row(qv):
            return fit(Cat(qv[:lb], g), geo.row_bits)

        def waddr(hv, qv):
            return Cat(fit(hv, geo.col_bits), row(qv)) if geo.col_bits else row(qv)

        pick_q = Signal(max(lb, 1))
        for p in reversed(range(P)):
            with m.If(emask[p]):
                if lb:
                    m.d.comb += pick_q.eq(p)

        m.d.comb += [self.b_raddr.eq(g), self.b_waddr.eq(g)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += g.eq(0)
                    m.next = "E_RD"
            with m.State("E_RD"):
                m.d.comb += [self.busy.eq(1), self.e_addr.eq(g)]
                m.next = "E_LD"
            with m.State("E_LD"):
                m.d.comb += self.busy.eq(1)
                nz = []
                for p in range(P):
                    m.d.sync += eword[p].eq(self.e_data[p])
                    ok = (Cat(Const(p, lb), g) < N) if P > 1 else Const(1)
                    nz.append((self.e_data[p] != 0) & ok)
                m.d.sync += emask.eq(Cat(*nz))
                m.next = "PICK"
            with m.State("PICK"):
                m.d.comb += self.busy.eq(1)
                with m.If(emask == 0):
                    with m.If(g == G - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += g.eq(g + 1)
                        m.next = "E_RD"
                with m.Else():
                    e = Array(eword)[pick_q]
                    m.d.sync += [
                        q.eq(pick_q), h.eq(0), rep.eq(1),
                        e_pos.eq(e > 0), mag.eq(Mux(e > 0, e, -e)),
                        emask.eq(emask & ~(Const(1, P) << pick_q)),
                    ]
                    m.d.comb += [self.w_raddr.eq(waddr(Const(0, 1), pick_q)), self.x_addr.eq(0)]
                    m.next = "LOAD"
            # The weight, trace and bias reads (block RAM outputs) land in registers
            # before the additions; the result of the previous column group, in ``acc``
            # until the end of this cycle, is written back meanwhile.
            with m.State("LOAD"):
                m.d.comb += self.busy.eq(1)
                if self._registered_reads:
                    m.d.sync += [w_raw.eq(self.w_rdata), b_raw.eq(self.b_rdata)]
                else:
                    wl = rotate_to_lanes([self.w_rdata[b] for b in range(P)], q, P)
                for p in range(P):
                    if not self._registered_reads:
                        m.d.sync += acc[p].eq(wl[p])
                    m.d.sync += xr[p].eq(self.x_data[p])
                    if self._thresholds:
                        x, lim = self.x_data[p], cfg.weight_limit
                        m.d.sync += [xs[p].eq(Mux(e_pos, -x, x)), hi_t[p].eq(Mux(e_pos, lim + x, lim - x)),
                                     lo_t[p].eq(Mux(e_pos, x - lim, -lim - x))]
                if self._thresholds:
                    eta, blim = cfg.eta, cfg.bias_limit
                    m.d.sync += [bhi_t.eq(Mux(e_pos, blim + eta, blim - eta)),
                                 blo_t.eq(Mux(e_pos, eta - blim, -blim - eta))]
                if not self._registered_reads:
                    m.d.sync += bacc.eq(Array([self.b_rdata[p] for p in range(P)])[q])
                with m.If(pending):
                    write_back(h - 1)
                m.d.sync += pending.eq(0)
                m.next = "ROTATE" if self._registered_reads else "ADD"
            if self._registered_reads:
                with m.State("ROTATE"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += [rep_done_r.eq(rep == mag), h_last_r.eq(h == H - 1)]
                    wl = rotate_to_lanes([w_raw[b] for b in range(P)], q, P)
                    m.d.sync += [acc[p].eq(wl[p]) for p in range(P)]
                    m.d.sync += bacc.eq(Array([b_raw[p] for p in range(P)])[q])
                    m.next = "ADD"
            with m.State("ADD"):
                m.d.comb += self.busy.eq(1)
                clamps = []
                for p in range(P):
                    if self._thresholds:
                        c, f = _clamp_by_thresholds(acc[p], acc[p] + xs[p], hi_t[p], lo_t[p], cfg.weight_limit)
                    else:
                        c, f = _clamp(addsub(acc[p], xr[p], e_pos), cfg.weight_limit)
                    m.d.sync += acc[p].eq(c)
                    clamps.append(f)
                if self._thresholds:
                    bc, bf = _clamp_by_thresholds(bacc, bacc + Mux(e_pos, -cfg.eta, cfg.eta), bhi_t, blo_t,
                                                  cfg.bias_limit)
                else:
                    bc, bf = _clamp(addsub(bacc, cfg.eta, e_pos), cfg.bias_limit)
                m.d.sync += bacc.eq(bc)
                real = Mux(h == H - 1, geo.fan_in - (H - 1) * P, P)
                m.d.comb += self.ops.eq(real + ((h == 0) if do_bias else 0))
                m.d.comb += self.clamped.eq(Cat(*clamps).any() | ((h == 0) & bf if do_bias else 0))
                # hold the read addresses (traces and row) unless moving on
                m.d.comb += [self.w_raddr.eq(waddr(h, q)), self.x_addr.eq(h)]
                with m.If(rep_done):
                    m.d.sync += rep.eq(1)
                    with m.If(h_last):
                        m.next = "WRITE"
                    with m.Else():
                        m.d.sync += [h.eq(h + 1), pending.eq(1)]
                        m.d.comb += [self.w_raddr.eq(waddr(h + 1, q)), self.x_addr.eq(h + 1)]
                        m.next = "LOAD"
                with m.Else():
                    m.d.sync += rep.eq(rep + 1)
                if self._registered_reads:
                    # the next ADD cycle's test (after the last addition ROTATE comes first)
                    m.d.sync += rep_done_r.eq(rep + 1 == mag)
            with m.State("WRITE"):
                m.d.comb += self.busy.eq(1)
                write_back(h)
                m.next = "PICK"
        return m
