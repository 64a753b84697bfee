"""The SpikeGrad learning core: layer engines, queues, weight banks, softmax error and update units."""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikecore.config import SpikeGradConfig

from ..skid import SkidBuffer

from .banks import LaneBanks, WeightGeometry, addr_range, ceil_div, fit, log2_exact
from ..arith import saturate

from .engine import EngineOp, LayerEngine, addsub, entry_layout
from .layouts import (COUNTER_BITS, Op, command_layout, counters_layout, flags_layout, index_bits, result_layout,
                      spike_layout, weight_access_layout)
from .softmax_error import SoftmaxError, error_shift_bits
from .update import WeightUpdateUnit

__all__ = ["SpikeGradCore"]


def pipelined_sum(m, terms, name):
    """Sum of ``terms`` through registers: every adder has two operands and feeds a register."""
    level = []
    for n, t in enumerate(terms):
        r = Signal(unsigned(len(Value.cast(t))), name=f"{name}_t{n}")
        m.d.sync += r.eq(t)
        level.append(r)
    depth = 0
    while len(level) > 1:
        nxt = []
        for n in range(0, len(level) - 1, 2):
            r = Signal(unsigned(max(len(level[n]), len(level[n + 1])) + 1), name=f"{name}_s{depth}_{n}")
            m.d.sync += r.eq(level[n] + level[n + 1])
            nxt.append(r)
        if len(level) % 2:
            nxt.append(level[-1])
        level, depth = nxt, depth + 1
    return level[0]


class SpikeGradCore(wiring.Component):
    """SpikeGrad inference and on-chip training, bit-exact with ``golden.spikegrad.event_sim``.

    Parameters
    ----------
    cfg : SpikeGradConfig
    softmax : optional factory ``cfg -> component`` with the :class:`SoftmaxError`
        interface (tests may substitute a stand-in); default :class:`SoftmaxError`.
    counter_bits : width of each performance counter (default ``COUNTER_BITS`` = 32; they wrap).
        Small FPGAs use fewer; the host bridge zero-extends them to the wire format's 32 bits.
    register_ram_outputs : the layer engines' stage-1 registers (see :class:`LayerEngine`) and the
        update units' clamp thresholds and registered reads (``clamp_thresholds`` and
        ``registered_reads`` of :class:`WeightUpdateUnit`, a cycle more per row and column group);
        False saves logic cells on small FPGAs. Results are identical either way.

    Members
    -------
    cmd : ``In(stream.Signature(command_layout(cfg)))`` -- INFER / TRAIN / RESET, accepted when idle.
    spikes : ``In(stream.Signature(spike_layout(cfg)))`` -- input events of the current sample,
        accepted after an INFER / TRAIN command up to the beat with ``last``.
    result : ``Out(stream.Signature(result_layout(cfg)))`` -- C beats per INFER / TRAIN.
    weights : ``In(stream.Signature(weight_access_layout(cfg)))`` -- host weight / bias access.
    weights_rdata : ``Out(stream.Signature(signed(weight_bits)))`` -- one beat per read.
    error_shift : ``In(unsigned(error_shift_bits(cfg)))`` -- run-time scale of U^L.
    flags : ``Out(flags_layout())`` sticky; ``clear_flags`` : ``In(1)`` strobe.
    counters : ``Out(counters_layout(counter_bits))`` -- cleared when a command starts.
    busy : ``Out(1)``.
    """

    def __init__(self, cfg: SpikeGradConfig, *, softmax=None, counter_bits: int = COUNTER_BITS,
                 register_ram_outputs: bool = True):
        if not isinstance(cfg, SpikeGradConfig):
            raise TypeError(f"cfg must be a SpikeGradConfig, got {cfg!r}")
        if softmax is not None and not callable(softmax):
            raise TypeError(f"softmax must be a factory callable, got {softmax!r}")
        counters = counters_layout(counter_bits)   # validates counter_bits
        self._cfg = cfg
        self._softmax = softmax
        self._counter_bits = counter_bits
        if not isinstance(register_ram_outputs, bool):
            raise TypeError(f"register_ram_outputs must be a bool, not {register_ram_outputs!r}")
        self._ram_regs = register_ram_outputs
        super().__init__({
            "cmd": In(stream.Signature(command_layout(cfg))),
            "spikes": In(stream.Signature(spike_layout(cfg))),
            "result": Out(stream.Signature(result_layout(cfg))),
            "weights": In(stream.Signature(weight_access_layout(cfg))),
            "weights_rdata": Out(stream.Signature(signed(cfg.weight_bits))),
            "error_shift": In(unsigned(error_shift_bits(cfg))),
            "flags": Out(flags_layout()),
            "clear_flags": In(1),
            "counters": Out(counters),
            "busy": Out(1),
        })

    @property
    def config(self):
        return self._cfg

    def elaborate(self, platform):
        cfg = self._cfg
        P, L, C = cfg.lanes, cfg.num_layers, cfg.num_classes
        lb = log2_exact(P)
        sizes = cfg.layer_sizes
        depth = cfg.queue_depth
        m = Module()

        eng = [LayerEngine(cfg, l, register_ram_outputs=self._ram_regs) for l in range(L)]
        for l, e in enumerate(eng):
            m.submodules[f"engine{l}"] = e
        geo = [WeightGeometry(cfg, l) for l in range(L)]
        # (ECP5 forms: reads not transparent. The update units write back a column group other
        # than the one they read, and neither the engines nor the host read while weights are
        # written, so no word is read in the cycle it is written.)
        transparent = not self._ram_regs
        wbank = [LaneBanks(signed(cfg.weight_bits), geo[l].depth, P, transparent=transparent) for l in range(L)]
        bbank = [LaneBanks(signed(cfg.weight_bits), geo[l].groups, P, transparent=transparent) for l in range(L)]
        upd = [WeightUpdateUnit(cfg, l, clamp_thresholds=self._ram_regs, registered_reads=self._ram_regs)
               for l in range(L)]
        for l in range(L):
            m.submodules[f"weights{l}"] = wbank[l]
            m.submodules[f"bias{l}"] = bbank[l]
            m.submodules[f"update{l}"] = upd[l]
        fifo = []
        for l in range(L):
            f = SyncFIFOBuffered(width=entry_layout(P, eng[l].in_group_bits).size, depth=depth)
            m.submodules[f"queue{l}"] = f
            fifo.append(f)
        sm = (self._softmax or SoftmaxError)(cfg)
        m.submodules.softmax = sm

        H0 = ceil_div(sizes[0], P)
        m.submodules.xin = xin = Memory(shape=data.ArrayLayout(signed(cfg.trace_bits), P), depth=max(2, H0), init=[])
        xin_wp = xin.write_port()
        xin_rp = xin.read_port(transparent_for=(xin_wp,))
        # (ECP5 forms: update unit 0 reads the input traces through a read port of its own, a
        # copy of the small LUT RAM, so its column address does not reach the input events'
        # read-modify-write path through a shared address multiplexer)
        xin_up = xin.read_port(transparent_for=(xin_wp,)) if self._ram_regs else xin_rp

        # ---------------------------------------------------------- phases
        # The phases are registers, set and cleared on the control FSM's transitions into and
        # out of their states, not decodes of its state: they select the engines' event kind,
        # the queue routing and the bank ports, and the decodes put the control FSM in front
        # of each engine's issue logic and of the bank addresses.
        ph_bwd = Signal()          # SOFTMAX..BRES0_WAIT: error events; weights read by the layer below
        ph_upd = Signal()          # UPD0..UPD{L-1}_WAIT: the update units own the banks
        ph_idle = Signal(init=1)   # IDLE: the host owns the banks
        label = Signal.like(self.cmd.payload.label)
        is_train = Signal()

        flag_set = Signal(flags_layout())
        flags = Signal(flags_layout())
        ctr = Signal(counters_layout(self._counter_bits))
        m.d.comb += [self.flags.eq(flags), self.counters.eq(ctr)]

        # ---------------------------------------------------------- queues
        def entry_bits(src, gbits):
            return Cat(fit(src.group, gbits), src.mask, src.signs)

        sp = self.spikes.payload
        in_ev = Signal()
        in_lane = sp.index[:lb] if lb else None
        in_group = sp.index[lb:]
        out_slice = []
        for l in range(L):
            f, e = fifo[l], eng[l]
            gbits = e.in_group_bits
            # A register slice between queue and engine: the engine's ready depends on its
            # issue decision, which must not reach the queue's read side in the same cycle.
            # Entries in the slice are out of the queue (its level no longer counts them)
            # and count as work in progress for ``all_idle``.
            sk = SkidBuffer(entry_layout(P, gbits))
            m.submodules[f"queue{l}_out"] = sk
            out_slice.append(sk)
            m.d.comb += [sk.i.valid.eq(f.r_rdy), sk.i.payload.eq(f.r_data), f.r_en.eq(sk.i.ready)]
            wiring.connect(m, sk.o, e.ev)
            with m.If(ph_bwd):
                if l + 1 < L:
                    m.d.comb += [f.w_en.eq(eng[l + 1].push), f.w_data.eq(entry_bits(eng[l + 1].push_data, gbits))]
            with m.Else():
                if l == 0:
                    bit = (Const(1, P) << in_lane)[:P] if lb else Const(1, 1)
                    m.d.comb += [f.w_en.eq(in_ev),
                                 f.w_data.eq(Cat(fit(in_group, gbits), bit, Mux(sp.negative, bit, 0)))]
                else:
                    m.d.comb += [f.w_en.eq(eng[l - 1].push), f.w_data.eq(entry_bits(eng[l - 1].push_data, gbits))]
            with m.If(f.w_en & ~f.w_rdy):
                m.d.comb += flag_set.queue_overflow.eq(1)
            # room for this engine's pushes
            fwd_level = fifo[l + 1].level if l + 1 < L else 0
            bwd_level = fifo[l - 1].level if l > 0 else 0
            m.d.comb += e.room_level.eq(Mux(ph_bwd, bwd_level, fwd_level))
            m.d.comb += e.bwd.eq(ph_bwd)

        all_idle = Signal()
        m.d.comb += all_idle.eq(Cat(*[e.idle for e in eng], *[f.level == 0 for f in fifo],
                                    *[sk.i.ready & ~sk.o.valid for sk in out_slice]).all())

        # ---------------------------------------------------------- weights and biases
        acc = self.weights.payload
        host_w_addr = Signal(max(g.addr_bits for g in geo))
        for l in range(L):
            g_, wbk, bbk, u = geo[l], wbank[l], bbank[l], upd[l]
            # read addresses
            hostaddr = Cat(fit(acc.col[lb:], g_.col_bits), fit(acc.row, g_.row_bits)) if g_.col_bits \
                else fit(acc.row, g_.row_bits)
            for b in range(P):
                with m.If(ph_idle):
                    m.d.comb += [wbk.raddr[b].eq(hostaddr), bbk.raddr[b].eq(acc.row[lb:])]
                with m.Elif(ph_upd):
                    m.d.comb += [wbk.raddr[b].eq(u.w_raddr), bbk.raddr[b].eq(u.b_raddr)]
                with m.Elif(ph_bwd):
                    if l > 0:
                        m.d.comb += wbk.raddr[b].eq(eng[l - 1].wt_addr[b])
                with m.Else():
                    m.d.comb += [wbk.raddr[b].eq(eng[l].wt_addr[b]), bbk.raddr[b].eq(eng[l].bias_addr)]
            # read data
            m.d.comb += eng[l].bias_data.eq(bbk.rdata)
            m.d.comb += [u.w_rdata.eq(wbk.rdata), u.b_rdata.eq(bbk.rdata)]
            if l + 1 < L:
                m.d.comb += eng[l].wt_data.eq(Mux(ph_bwd, wbank[l + 1].rdata.as_value(), wbank[l].rdata.as_value()))
            else:
                m.d.comb += eng[l].wt_data.eq(wbank[l].rdata)
            # writes: update unit (or host, below)
            for b in range(P):
                m.d.comb += [wbk.waddr[b].eq(u.w_waddr), wbk.wdata[b].eq(u.w_wdata[b]),
                             bbk.waddr[b].eq(u.b_waddr), bbk.wdata[b].eq(u.b_wdata[b])]
            m.d.comb += [wbk.we.eq(u.w_we), bbk.we.eq(u.b_we)]
            # update unit reads: E of this layer, x of the layer below (or the input traces)
            m.d.comb += u.e_data.eq(Cat(*[eng[l].state[p].e for p in range(P)]))
            if l == 0:
                m.d.comb += u.x_data.eq(xin_up.data)
            else:
                m.d.comb += u.x_data.eq(Cat(*[eng[l - 1].state[p].x for p in range(P)]))

        # engine aux read addresses: OR of the (otherwise zero) requesters
        ro_addr = Signal(addr_range(ceil_div(C, P)))
        for l in range(L):
            reqs = [upd[l].e_addr]
            if l + 1 < L:
                reqs.append(upd[l + 1].x_addr)
            else:
                reqs.append(ro_addr)
            v = 0
            for r in reqs:
                v = v | r
            m.d.comb += eng[l].aux_addr.eq(v)

        # host access
        resp_pending = Signal()
        resp_ok = Signal()
        resp_bias = Signal()
        resp_layer = Signal.like(acc.layer)
        resp_sel = Signal(max(lb, 1))
        resp_valid = Signal()
        resp_data = Signal(signed(cfg.weight_bits))
        # With stage-1 registers (ECP5) a read answers a cycle later: the bank outputs are
        # registered (wcap, bcap) before the lane and layer selects (a block RAM's 5.8 ns
        # clock-to-output and those multiplexers did not fit 10 ns in the dual build).
        resp_pending2 = Signal()
        if self._ram_regs:
            m.d.comb += self.weights.ready.eq(~resp_pending & ~resp_pending2 & ~resp_valid)
        else:
            m.d.comb += self.weights.ready.eq(~resp_pending & ~resp_valid)
        m.d.comb += [self.weights_rdata.valid.eq(resp_valid), self.weights_rdata.payload.eq(resp_data)]
        take = Signal()
        m.d.comb += take.eq(self.weights.valid & self.weights.ready)
        in_range = Signal()
        with m.Switch(acc.layer):
            for l in range(L):
                with m.Case(l):
                    m.d.comb += in_range.eq((acc.row < sizes[l + 1]) & (acc.bias | (acc.col < sizes[l])))
        ok = Signal()
        m.d.comb += ok.eq(ph_idle & in_range & ~(acc.write & acc.bias & (not cfg.bias)))
        sel = Signal(max(lb, 1))
        m.d.comb += sel.eq(Mux(acc.bias, acc.row[:lb], (acc.row + acc.col)[:lb]) if lb else 0)
        with m.If(take & ~ok):
            m.d.comb += flag_set.protocol_error.eq(1)
        with m.If(take & acc.write & ok):
            for l in range(L):
                with m.If(acc.layer == l):
                    g_ = geo[l]
                    hostaddr = Cat(fit(acc.col[lb:], g_.col_bits), fit(acc.row, g_.row_bits)) if g_.col_bits \
                        else fit(acc.row, g_.row_bits)
                    for b in range(P):
                        with m.If(acc.bias):
                            m.d.comb += [bbank[l].waddr[b].eq(acc.row[lb:]), bbank[l].wdata[b].eq(acc.data)]
                        with m.Else():
                            m.d.comb += [wbank[l].waddr[b].eq(hostaddr), wbank[l].wdata[b].eq(acc.data)]
                    bit = (Const(1, P) << sel) if lb else Const(1, 1)
                    with m.If(acc.bias):
                        m.d.comb += bbank[l].we.eq(bit)
                    with m.Else():
                        m.d.comb += wbank[l].we.eq(bit)
        with m.If(take & ~acc.write):
            m.d.sync += [resp_pending.eq(1), resp_ok.eq(ok), resp_bias.eq(acc.bias), resp_layer.eq(acc.layer),
                         resp_sel.eq(sel)]
        wsrc, bsrc = [wbank[l].rdata for l in range(L)], [bbank[l].rdata for l in range(L)]
        answer = resp_pending      # the cycle that loads the response
        if self._ram_regs:
            wsrc = [Signal.like(d, name=f"wcap{l}", reset_less=True) for l, d in enumerate(wsrc)]
            bsrc = [Signal.like(d, name=f"bcap{l}", reset_less=True) for l, d in enumerate(bsrc)]
            m.d.sync += [c.eq(bank.rdata) for c, bank in zip(wsrc + bsrc, wbank + bbank)]
            with m.If(resp_pending):
                m.d.sync += [resp_pending.eq(0), resp_pending2.eq(1)]
            answer = resp_pending2
        with m.If(answer):
            m.d.sync += [answer.eq(0), resp_valid.eq(1), resp_data.eq(0)]
            with m.If(resp_ok):
                for l in range(L):
                    with m.If(resp_layer == l):
                        wd = Array([wsrc[l][b] for b in range(P)])[resp_sel]
                        bd = Array([bsrc[l][b] for b in range(P)])[resp_sel]
                        m.d.sync += resp_data.eq(Mux(resp_bias, bd, wd))
        with m.If(self.weights_rdata.valid & self.weights_rdata.ready):
            m.d.sync += resp_valid.eq(0)

        # ---------------------------------------------------------- input traces
        xp_valid = Signal()
        xp_group = Signal(addr_range(H0))
        xp_lane = Signal(max(lb, 1))
        xp_neg = Signal()
        xin_clear = Signal()
        xin_ccnt = Signal(addr_range(H0))
        xin_cbusy = Signal()
        m.d.sync += xp_valid.eq(in_ev)
        with m.If(in_ev):
            m.d.sync += [xp_group.eq(in_group), xp_neg.eq(sp.negative)]
            if lb:
                m.d.sync += xp_lane.eq(in_lane)
        if self._ram_regs:
            m.d.comb += [xin_up.addr.eq(upd[0].x_addr), xin_rp.addr.eq(in_group)]
        else:
            with m.If(ph_upd):
                m.d.comb += xin_rp.addr.eq(upd[0].x_addr)
            with m.Else():
                m.d.comb += xin_rp.addr.eq(in_group)
        xnew = Signal(data.ArrayLayout(signed(cfg.trace_bits), P))
        m.d.comb += xnew.eq(xin_rp.data)
        xw = Array([xin_rp.data[p] for p in range(P)])[xp_lane] if lb else xin_rp.data[0]
        xcl, xfl = saturate(addsub(xw, cfg.eta, xp_neg), cfg.trace_bits)
        for p in range(P):
            with m.If(xp_lane == p if lb else 1):
                m.d.comb += xnew[p].eq(xcl)
        if self._ram_regs:
            # (ECP5) the saturation strobe is registered, like the engines' strobes: the trace
            # read, the lane select, the addition and the saturation test ended in the bridge's
            # flag register. It lands long before the sample ends (input events precede the
            # layers' last events).
            xfl_r = Signal()
            m.d.sync += xfl_r.eq(xp_valid & xfl)
            with m.If(xfl_r):
                m.d.comb += flag_set.trace_saturated.eq(1)
        with m.If(xp_valid):
            if self._ram_regs:
                m.d.comb += [xin_wp.en.eq(1), xin_wp.addr.eq(xp_group), xin_wp.data.eq(xnew)]
            else:
                m.d.comb += [xin_wp.en.eq(1), xin_wp.addr.eq(xp_group), xin_wp.data.eq(xnew),
                             flag_set.trace_saturated.eq(xfl)]
        with m.Elif(xin_cbusy):
            m.d.comb += [xin_wp.en.eq(1), xin_wp.addr.eq(xin_ccnt), xin_wp.data.eq(0)]
            with m.If(xin_ccnt == H0 - 1):
                m.d.sync += [xin_cbusy.eq(0), xin_ccnt.eq(0)]
            with m.Else():
                m.d.sync += xin_ccnt.eq(xin_ccnt + 1)
        with m.If(xin_clear):
            m.d.sync += [xin_cbusy.eq(1), xin_ccnt.eq(0)]

        # ---------------------------------------------------------- top readout / softmax / result
        # V^L is read from the top engine's state memory (aux port, data one cycle later) both
        # for the readout (best class, and V^L into the softmax unit when training) and for the
        # result beats; V^L is not changed by the backward pass or the update.
        best_v = Signal(signed(cfg.membrane_bits))
        best_i = Signal(addr_range(C))
        rc = Signal(range(C + 1))
        rd_valid = Signal()
        rd_c = Signal(addr_range(C))
        res_fetched = Signal()   # the top state word addressed by rc is on the read port
        top = eng[L - 1]
        lanes_v = Array([top.state[p].v for p in range(P)])
        val = Signal(signed(cfg.membrane_bits))
        m.d.comb += val.eq(lanes_v[rd_c[:lb]] if lb else top.state[0].v)
        m.d.sync += rd_valid.eq(0)
        # (stage-1 registers, the ECP5: the word read and its class are registered before the
        # comparisons; the LUT RAM read, a compare's carry chain and the enables of best_v and
        # best_i, or of the softmax unit's v_max, in one cycle were failing paths of the dual build)
        if self._ram_regs:
            cmp_valid, cmp_c, cmp_v = Signal(), Signal.like(rd_c), Signal.like(val)
            m.d.sync += [cmp_valid.eq(rd_valid), cmp_c.eq(rd_c), cmp_v.eq(val)]
        else:
            cmp_valid, cmp_c, cmp_v = rd_valid, rd_c, val
        with m.If(cmp_valid):
            with m.If((cmp_c == 0) | (cmp_v > best_v)):
                m.d.sync += [best_v.eq(cmp_v), best_i.eq(cmp_c)]

        # (the softmax unit takes V^L from the same registers: its running maximum compares too)
        m.d.comb += [sm.v.payload.eq(cmp_v), sm.v.valid.eq(cmp_valid & is_train), sm.label.eq(label),
                     sm.error_shift.eq(self.error_shift)]
        m.d.comb += [top.u.valid.eq(sm.u.valid), top.u.payload.eq(sm.u.payload.value), sm.u.ready.eq(top.u.ready)]

        rp_ = self.result.payload
        m.d.comb += [rp_.index.eq(rc), rp_.value.eq(val), rp_.prediction.eq(best_i),
                     rp_.last.eq(rc == C - 1)]

        # ---------------------------------------------------------- control
        start_all = Signal()
        start_op = Signal(EngineOp)
        start_mask = Signal(L)
        for l in range(L):
            m.d.comb += [eng[l].start.eq(start_all | start_mask[l]), eng[l].op.eq(start_op)]
        upd_start = Signal(L)
        for l in range(L):
            m.d.comb += upd[l].start.eq(upd_start[l])
        upd_busy = Cat(*[u.busy for u in upd]).any()
        # The waits for idle use registered copies of the idle conditions: all_idle is an AND
        # over every engine, queue and slice, and as a combinational input of the control
        # FSM it was the iCE40's critical path. A copy is a cycle late, so a waiting state
        # ignores it in its first cycle (``settled`` is low), when it still shows the cycle
        # in which the state's work was started. Every waiting state is entered from a
        # non-waiting one (the start or the last input comes first), so ``settled`` is the
        # registered ``waiting``. Each wait then ends one cycle after the combinational
        # condition first holds; nothing new starts while a waiting state waits.
        waiting, settled = Signal(), Signal()
        idle_r, idle_x_r, idle_s_r = Signal(), Signal(), Signal()
        m.d.sync += [settled.eq(waiting), idle_r.eq(all_idle), idle_x_r.eq(all_idle & ~xin_cbusy),
                     idle_s_r.eq(all_idle & ~sm.busy)]
        idle_done, idle_x_done, idle_s_done = settled & idle_r, settled & idle_x_r, settled & idle_s_r
        cnt_fwd, cnt_bwd, cnt_upd = Signal(), Signal(), Signal()

        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [ph_idle.eq(0), ctr.eq(0), label.eq(self.cmd.payload.label),
                                 is_train.eq(self.cmd.payload.op == Op.TRAIN)]
                    m.d.comb += [start_all.eq(1), start_op.eq(EngineOp.INIT), xin_clear.eq(1)]
                    with m.If(self.cmd.payload.op == Op.RESET):
                        m.d.sync += flags.eq(0)
                        m.next = "RESET"
                    with m.Else():
                        m.next = "INIT"
            with m.State("RESET"):
                m.d.comb += waiting.eq(1)
                with m.If(idle_x_done):
                    m.d.sync += ph_idle.eq(1)
                    m.next = "IDLE"
            with m.State("INIT"):
                m.d.comb += [cnt_fwd.eq(1), waiting.eq(1)]
                with m.If(idle_x_done):
                    m.next = "INPUT"
            with m.State("INPUT"):
                m.d.comb += [cnt_fwd.eq(1), self.spikes.ready.eq(fifo[0].w_rdy)]
                with m.If(self.spikes.valid & self.spikes.ready):
                    with m.If(~sp.nop):
                        with m.If(sp.index < sizes[0]):
                            m.d.comb += in_ev.eq(1)
                        with m.Else():
                            m.d.comb += flag_set.protocol_error.eq(1)
                    with m.If(sp.last):
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += [cnt_fwd.eq(1), waiting.eq(1)]
                with m.If(idle_done):
                    m.next = "FRES0" if L > 1 else "READOUT"
            for l in range(L - 1):
                with m.State(f"FRES{l}"):
                    m.d.comb += [cnt_fwd.eq(1), start_mask[l].eq(1), start_op.eq(EngineOp.FRES)]
                    m.next = f"FRES{l}_WAIT"
                with m.State(f"FRES{l}_WAIT"):
                    m.d.comb += [cnt_fwd.eq(1), waiting.eq(1)]
                    with m.If(idle_done):
                        m.next = f"FRES{l + 1}" if l + 1 < L - 1 else "READOUT"
            with m.State("READOUT"):
                with m.If(rc < C):
                    m.d.comb += ro_addr.eq(rc >> lb)
                    m.d.sync += [rd_valid.eq(1), rd_c.eq(rc), rc.eq(rc + 1)]
                with m.Elif(~(rd_valid | cmp_valid) if self._ram_regs else ~rd_valid):
                    m.d.sync += [rc.eq(0), rd_c.eq(0), res_fetched.eq(0)]
                    with m.If(is_train):
                        m.d.sync += ph_bwd.eq(1)
                        m.next = "SOFTMAX"
                    with m.Else():
                        m.next = "RESULT"
            with m.State("SOFTMAX"):
                m.d.comb += [cnt_bwd.eq(1), start_mask[L - 1].eq(1), start_op.eq(EngineOp.TOPEMIT)]
                m.next = "BWD"
            with m.State("BWD"):
                m.d.comb += [cnt_bwd.eq(1), waiting.eq(1)]
                with m.If(idle_s_done):
                    m.next = f"BRES{L - 1}"
            for l in reversed(range(L)):
                with m.State(f"BRES{l}"):
                    m.d.comb += [cnt_bwd.eq(1), start_mask[l].eq(1), start_op.eq(EngineOp.BRES)]
                    m.next = f"BRES{l}_WAIT"
                with m.State(f"BRES{l}_WAIT"):
                    m.d.comb += [cnt_bwd.eq(1), waiting.eq(1)]
                    with m.If(idle_done):
                        if l > 0:
                            m.next = f"BRES{l - 1}"
                        else:
                            m.d.sync += [ph_bwd.eq(0), ph_upd.eq(1)]
                            m.next = "UPD0"
            for l in range(L):
                with m.State(f"UPD{l}"):
                    m.d.comb += [cnt_upd.eq(1), upd_start[l].eq(1)]
                    m.next = f"UPD{l}_WAIT"
                with m.State(f"UPD{l}_WAIT"):
                    m.d.comb += cnt_upd.eq(1)
                    with m.If(~upd_busy):
                        if l + 1 < L:
                            m.next = f"UPD{l + 1}"
                        else:
                            m.d.sync += ph_upd.eq(0)
                            m.next = "RESULT"
            with m.State("RESULT"):
                # rd_c follows rc; a beat is valid once its word has been read (one cycle).
                m.d.comb += ro_addr.eq(rc >> lb)
                m.d.sync += res_fetched.eq(1)
                with m.If(self.result.valid & self.result.ready):
                    m.d.sync += [rc.eq(rc + 1), rd_c.eq(rc + 1), res_fetched.eq(0)]
                    with m.If(rc == C - 1):
                        m.d.sync += [rc.eq(0), rd_c.eq(0), ph_idle.eq(1)]
                        m.next = "IDLE"

        m.d.comb += self.busy.eq(~ph_idle)
        # ``res_fetched`` is set only in RESULT and cleared with its last beat, so it is the
        # result stream's valid on its own: a register, not a decode of the control state
        # (the host bridge's state machine waits on it).
        m.d.comb += self.result.valid.eq(res_fetched)

        # ---------------------------------------------------------- counters and flags
        # Per-cycle increments summed by a registered tree of two-input adders (a multi-operand
        # adder would become a $macc cell); the counters settle a few cycles after the last event.
        fops = pipelined_sum(m, [Mux(eng[l].event & ~ph_bwd, sizes[l + 1], 0) for l in range(L)], "fops")
        bops = pipelined_sum(m, [Mux(eng[l].event & ph_bwd, sizes[l + 1], 0) for l in range(L)], "bops")
        uops = pipelined_sum(m, [u.ops for u in upd], "uops")
        with m.If(~ph_idle):
            m.d.sync += [
                ctr.cycles.eq(ctr.cycles + 1),
                ctr.forward_ops.eq(ctr.forward_ops + fops),
                ctr.backward_ops.eq(ctr.backward_ops + bops),
                ctr.update_ops.eq(ctr.update_ops + uops),
                ctr.forward_cycles.eq(ctr.forward_cycles + cnt_fwd),
                ctr.backward_cycles.eq(ctr.backward_cycles + cnt_bwd),
                ctr.update_cycles.eq(ctr.update_cycles + cnt_upd),
            ]
        for e in eng:
            with m.If(e.sat.membrane):
                m.d.comb += flag_set.membrane_saturated.eq(1)
            with m.If(e.sat.error):
                m.d.comb += flag_set.error_saturated.eq(1)
            with m.If(e.sat.trace):
                m.d.comb += flag_set.trace_saturated.eq(1)
            with m.If(e.sat.count):
                m.d.comb += flag_set.count_saturated.eq(1)
        for l, u in enumerate(upd):
            # (stage-1 registers, the ECP5: registered beside the update unit, a cycle later;
            # the flags are at the bridge. The update phase ends at least a cycle after the
            # unit's last busy cycle, so the flag is set before RESULT.)
            clamped = u.clamped
            if self._ram_regs:
                clamped = Signal(name=f"clamped{l}_r")
                m.d.sync += clamped.eq(u.clamped)
            with m.If(clamped):
                m.d.comb += flag_set.weight_clamped.eq(1)
        with m.If(self.clear_flags):
            m.d.sync += flags.eq(flag_set)
        with m.Elif(~(ph_idle & self.cmd.valid & (self.cmd.payload.op == Op.RESET))):
            m.d.sync += flags.eq(flags.as_value() | flag_set.as_value())
        return m
