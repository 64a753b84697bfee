"""The EXODUS temporal layer engine (``docs/exodus.md`` §6-§7): one IF/LIF layer over ``T`` steps.

Commands (``cmd`` stream), each runs to completion while ``busy`` is high:

* ``FORWARD`` (``steps = T``): ``z_i[n] = sat(sum_j w_ij x_j[n])`` as gated additions over the set bits of
  the input word ``x[n]`` (skipping silent inputs), then the fixed-point neuron step; stores ``u``/mask per
  neuron and step and the output spike word ``s[n]``.
* ``BACKWARD``: ``lambda`` through :class:`ChiRecurrence` (reverse time, one neuron-step per cycle; one per
  two cycles on a one-neuron layer) from
  the host-written ``g``; with ``grad_prev`` the gradient to the layer below
  ``gp_j[n] = sat(round_shift(sum_i w_ij lambda_i[n], u_frac))``; then the weight-gradient accumulation
  ``acc_ij += lambda_i[n]`` for every input spike ``x_j[n] = 1``. ``acc`` sums over ``BACKWARD`` commands
  (a batch) until ``UPDATE``.
* ``UPDATE``: ``w = sat(w - round_shift(acc, update_shift))``, ``acc = 0``.
* ``CLEAR``: sticky saturation flags and counters to zero.

The host reads and writes every memory through ``host``/``rdata`` while the engine is idle.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikecore.config import ExodusConfig
from spikecore.config.exodus import ExodusOp, ExodusTarget
from spikecore.host.protocol import exodus_layer_targets

from ..arith import registered_product
from ..column_memory import ColumnMemory
from ..skid import SkidBuffer
from .chi import COUNTER_BITS, ChiRecurrence, _check_int, index_bits, round_half_up_shift, saturating
from .chi import SPACING as CHI_SPACING
from .scanner import SetBitScanner

__all__ = ["TemporalLayerEngine", "Op", "Target", "cmd_layout", "host_layout", "flags_layout", "u_record_layout",
           "host_data_bits"]


#: The engine's commands and host-access targets (defined with the configuration: the host protocol uses them too).
Op, Target = ExodusOp, ExodusTarget


def cmd_layout(max_steps: int) -> data.StructLayout:
    return data.StructLayout({"op": Op, "steps": unsigned(max_steps.bit_length()), "slayer": unsigned(1),
                              "grad_prev": unsigned(1)})


def u_record_layout(cfg: ExodusConfig) -> data.StructLayout:
    return data.StructLayout({"u": signed(cfg.u_bits), "m": unsigned(1)})


def flags_layout() -> data.StructLayout:
    return data.StructLayout({"fwd": 1, "chi": 1, "grad": 1, "acc": 1, "weight": 1})


def host_data_bits(cfg: ExodusConfig, fan_in: int, fan_out: int, backprop: bool) -> int:
    """Width of the host port's data: the widest memory element (``protocol.exodus_layer_targets``)."""
    return max(f.bits for f in exodus_layer_targets(cfg, fan_in, fan_out, backprop).values())


def host_layout(cfg: ExodusConfig, fan_in: int, fan_out: int, max_steps: int, backprop: bool) -> data.StructLayout:
    depth = max(fan_in * fan_out, max_steps * fan_out)
    return data.StructLayout({"write": unsigned(1), "target": Target, "addr": unsigned(index_bits(depth)),
                              "data": unsigned(host_data_bits(cfg, fan_in, fan_out, backprop))})


class _Request:
    """What the engine's FSM drives for one RAM port: ``addr``, ``en`` (and ``data`` for a write
    port); ``data`` of a read request is the port's output."""

    def __init__(self, **signals):
        self.__dict__.update(signals)


def _ram_ports(m, ports, *, hold, hold_names, direct_data):
    """Put a register stage between the FSM's RAM requests and the block RAM ports.

    Returns ``(R, W)``: per memory a read and a write request (:class:`_Request`, comb
    signals, default 0). Each request reaches its port a cycle later, reads and writes
    alike, so the order of the operations at every RAM is what the FSM issued; read data
    appears three cycles after the read request (port registers, block RAM, the memory's
    output register). While ``hold`` is high the read requests of the ``hold_names``
    memories stay in their registers, and their RAMs and output registers keep their data.
    The memories named in ``direct_data`` take their write data unregistered from a source
    that holds it for the cycle after the request (the caller drives ``W[name].data``,
    which is then the port's own data signal).
    """
    R, W = {}, {}
    for name, (wp, rp) in ports.items():
        rq = _Request(addr=Signal.like(rp.addr, name=f"{name}_rd_addr"), en=Signal(name=f"{name}_rd_en"),
                      data=rp.data)
        wq = _Request(addr=Signal.like(wp.addr, name=f"{name}_wr_addr"), en=Signal.like(wp.en, name=f"{name}_wr_en"),
                      data=wp.data if name in direct_data else Signal(wp.data.shape(), name=f"{name}_wr_data"))
        en_r = Signal(name=f"{name}_rd_en_r")
        if name in hold_names:
            with m.If(~hold):
                m.d.sync += [rp.addr.eq(rq.addr), en_r.eq(rq.en)]
            m.d.comb += [rp.en.eq(en_r & ~hold), rp.oen.eq(~hold)]
        else:
            m.d.sync += [rp.addr.eq(rq.addr), en_r.eq(rq.en)]
            m.d.comb += rp.en.eq(en_r)
        m.d.sync += [wp.addr.eq(wq.addr), wp.en.eq(wq.en)]
        if name not in direct_data:
            m.d.sync += wp.data.eq(wq.data)
        R[name], W[name] = rq, wq
    return R, W


class _FeedRegister(wiring.Component):
    """A stream through one register with no back-pressure (``i.ready`` is 1): for a consumer
    that is always ready (the chi feed of a layer of two neurons or more)."""

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m


class TemporalLayerEngine(wiring.Component):
    """One spiking layer ``fan_in -> fan_out`` with on-chip EXODUS training.

    Parameters
    ----------
    cfg : ExodusConfig
        Formats, neuron (``alpha``, ``threshold``, ``u_min``, ``reset_order``), tables and ``lr_shift``.
    fan_in, fan_out : int, keyword-only
        Layer size; inputs are spikes (``cfg.input_bits == 1``).
    max_steps : int, keyword-only
        Longest sequence stored (default ``cfg.max_steps``).
    backprop : bool, keyword-only
        Build the gradient-to-the-layer-below path (``GP`` memory, one multiplier).

    Members
    -------
    cmd : ``In(stream.Signature(cmd_layout(max_steps)))``
        Taken into a register (``ready`` is a register), started when the engine is idle; ``busy``
        is high from the cycle after it is taken.
    busy : ``Out(1)``
        A command is running.
    host : ``In(stream.Signature(host_layout(...)))``
        Memory access, taken into a register like ``cmd`` and performed while idle (before a
        command taken in the same cycle); a read answers one beat on ``rdata``.
    rdata : ``Out(stream.Signature(unsigned(host_data_bits(...))))``
    flags : ``Out(flags_layout())``
        Sticky saturation flags: forward (``z`` or ``u``), chi, gradient to the layer below,
        accumulator, weight update.
    sat_count : ``Out(32)``
        Saturations of the engine's own datapath (the chi unit's are in ``chi_sat_count``).
    chi_sat_count, cycles, fwd_steps, bwd_steps, syn_events : ``Out(32)``
        Chi saturations; busy cycles; forward and chi neuron-steps; gated additions (forward and weight
        gradient) done.
    """

    def __init__(self, cfg: ExodusConfig, *, fan_in: int, fan_out: int, max_steps: int | None = None,
                 backprop: bool = True):
        if not isinstance(cfg, ExodusConfig):
            raise TypeError(f"cfg must be an ExodusConfig, not {cfg!r}")
        if cfg.input_bits != 1:
            raise ValueError(f"the engine takes spike inputs (input_bits = 1), not input_bits = {cfg.input_bits}")
        max_steps = cfg.max_steps if max_steps is None else max_steps
        _check_int("fan_in", fan_in, 1, 4096)
        _check_int("fan_out", fan_out, 1, 4096)
        _check_int("max_steps", max_steps, 1, cfg.max_steps)
        if not isinstance(backprop, bool):
            raise TypeError(f"backprop must be a bool, not {backprop!r}")
        self._cfg, self._fan_in, self._fan_out = cfg, fan_in, fan_out
        self._max_steps, self._backprop = max_steps, backprop
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(max_steps))),
            "busy": Out(1),
            "host": In(stream.Signature(host_layout(cfg, fan_in, fan_out, max_steps, backprop))),
            "rdata": Out(stream.Signature(unsigned(host_data_bits(cfg, fan_in, fan_out, backprop)))),
            "flags": Out(flags_layout()),
            "sat_count": Out(COUNTER_BITS),
            "chi_sat_count": Out(COUNTER_BITS),
            "cycles": Out(COUNTER_BITS),
            "fwd_steps": Out(COUNTER_BITS),
            "bwd_steps": Out(COUNTER_BITS),
            "syn_events": Out(COUNTER_BITS),
        })

    cfg = property(lambda self: self._cfg)
    fan_in = property(lambda self: self._fan_in)
    fan_out = property(lambda self: self._fan_out)
    max_steps = property(lambda self: self._max_steps)
    backprop = property(lambda self: self._backprop)

    def elaborate(self, platform):
        cfg, NI, NO, TM = self._cfg, self._fan_in, self._fan_out, self._max_steps
        m = Module()
        m.submodules.chi = chi = ChiRecurrence(cfg, neurons=NO, lanes=1)
        # The input spikes of a step, one index per cycle (forward and weight gradient).
        m.submodules.scan = scan = SetBitScanner(NI)

        # ------------------------------------------------------------ memories
        def mem(name, shape, depth):
            # bit columns one block RAM deep each: no depth cascade multiplexer behind the reads
            # (rtl/column_memory.py)
            # (read data registered per column: see ``_ram_ports``)
            mm = ColumnMemory(shape=shape, depth=depth, output_register=True)
            m.submodules[name] = mm
            return mm

        urec = u_record_layout(cfg)
        w_mem = mem("w_mem", signed(cfg.weight_bits), NI * NO)
        acc_mem = mem("acc_mem", signed(cfg.acc_bits), NI * NO)
        x_mem = mem("x_mem", unsigned(NI), TM)
        u_mem = mem("u_mem", urec, TM * NO)
        s_mem = mem("s_mem", unsigned(NO), TM)
        g_mem = mem("g_mem", data.ArrayLayout(signed(cfg.grad_bits), NO), TM)
        lam_mem = mem("lam_mem", signed(cfg.grad_bits), TM * NO)
        ports = {}
        for name, mm in (("w", w_mem), ("acc", acc_mem), ("x", x_mem), ("u", u_mem), ("s", s_mem),
                         ("g", g_mem), ("lam", lam_mem)):
            wp = mm.write_port()
            ports[name] = (wp, mm.read_port())
        if self._backprop:
            gp_mem = mem("gp_mem", data.ArrayLayout(signed(cfg.grad_bits), NI), TM)
            wp = gp_mem.write_port()
            ports["gp"] = (wp, gp_mem.read_port())
        # The FSM below drives requests (R[...].addr/en, W[...].addr/data/en); a register stage
        # carries them to the block RAMs a cycle later (``_ram_ports``), so no RAM pin sees an
        # FSM decode, an adder or a multiplexer.
        ram_hold = Signal()   # B_CHI: the chi feed is full; the read in the register stage waits
        R, W = _ram_ports(m, ports, hold=ram_hold, hold_names=("u", "g"), direct_data=("x", "g", "gp"))

        # ------------------------------------------------------------ registers
        T = Signal(range(TM + 1))
        slayer, grad_prev = Signal(), Signal()
        n = Signal(range(TM + 1))
        i = Signal(range(NO + 1))
        j = Signal(range(NI + 1))
        # Row bases kept beside their indices (i_ni = i * NI, n_no = n * NO, out_n_no = the
        # chi output's step * NO, TNO = T * NO), stepped by additions: as products they put a
        # multiplier on every memory address path.
        i_ni = Signal(range(NO * NI + 1))
        n_no = Signal(range((TM + 1) * NO + 1))
        TNO = Signal(range(TM * NO + 1))
        xw = Signal(NI)          # the input word of the current step
        pend0 = Signal()         # a read issued last cycle is in the RAM port registers now
        pend = Signal()          # ... on the block RAM output now
        pend2 = Signal()         # ... and in the memory's output register (w_r, lam_r) now
        u_wait = Signal(2)       # F_ACC's first two cycles: the u read is not in the output register yet
        z = Signal(signed(cfg.weight_bits + NI.bit_length() + 1))
        s_word = Signal(NO)
        m.d.comb += chi.slayer.eq(slayer)

        syn_inc = Signal()       # a gated addition happened this cycle
        fwd_inc = Signal()       # a forward neuron-step (F_LIF)
        in_gpel = Signal()       # a gradient-to-the-layer-below element is finished
        wb_acc = Signal()        # a weight-gradient write-back
        wb_upd = Signal()        # a weight-update write-back

        idle = Signal()
        sat_pending = Signal()   # a registered saturation event not yet counted (see below)
        # The command and host-access streams end in registers (cmd_q, hq; cmd_held, host_held):
        # both readies are registers, so no path runs from the engine's state through the
        # network's stream multiplexers and back into the engine's command decode. A held
        # access is performed first; neither stream is taken while the other holds a beat.
        cmd_held, host_held = Signal(), Signal()
        cmd_q = Signal(cmd_layout(TM))
        hq = Signal(host_layout(cfg, NI, NO, TM, self._backprop))
        clear_now = Signal()     # a CLEAR taken last cycle: flags and counters clear now
        m.d.comb += self.busy.eq(~idle | sat_pending | cmd_held | clear_now)
        with m.If(~idle):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        rd_pending0 = Signal()   # a host read was taken last cycle: it is in the RAM port registers
        rd_pending = Signal()    # ... its data is on the block RAM output
        rd_pending2 = Signal()   # ... and now in the memory's output register (cap)
        host_busy = sat_pending | rd_pending0 | rd_pending | rd_pending2 | self.rdata.valid
        m.d.comb += [self.cmd.ready.eq(~cmd_held & ~host_held), self.host.ready.eq(~cmd_held & ~host_held)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [cmd_held.eq(1), cmd_q.eq(self.cmd.payload)]
        # hq keeps only the data bits a write can use (the read-only targets, e.g. a 600-bit
        # GP word, are wider); the other bits stay 0 and synthesis drops them
        wbits = max(f.bits for f in exodus_layer_targets(cfg, NI, NO, self._backprop).values() if f.writable)
        with m.If(self.host.valid & self.host.ready):
            hp_in = self.host.payload
            m.d.sync += [host_held.eq(1), hq.write.eq(hp_in.write), hq.target.eq(hp_in.target),
                         hq.addr.eq(hp_in.addr), hq.data[:wbits].eq(hp_in.data[:wbits])]
        hp = hq
        host_fire, cmd_go = Signal(), Signal()   # IDLE performs the held access / command
        m.d.comb += [host_fire.eq(idle & host_held & ~host_busy),
                     cmd_go.eq(idle & cmd_held & ~host_held & ~host_busy)]
        with m.If(host_fire):
            m.d.sync += host_held.eq(0)
        with m.If(cmd_go):
            m.d.sync += cmd_held.eq(0)
        m.d.sync += clear_now.eq(cmd_go & (cmd_q.op == Op.CLEAR))
        host_tgt = Signal(Target)
        # x and g are written by the host only, from hq, which holds its beat through the
        # cycle after host_fire (a new beat is taken at the earliest then)
        m.d.comb += [W["x"].data.eq(hp.data), W["g"].data.eq(hp.data)]

        # ---------------------------------------------------------- datapaths
        # The scanner's indices reach the FSM through a skid buffer, so the FSM's ready
        # (a state decode) does not reach into the scanner's chunk registers.
        m.submodules.scan_skid = spk = SkidBuffer(scan.o.payload.shape())
        scan_empty = Signal()    # no index left in the scanner or the skid buffer
        m.d.comb += [spk.i.valid.eq(scan.o.valid), spk.i.payload.eq(scan.o.payload), scan.o.ready.eq(spk.i.ready),
                     scan_empty.eq(scan.empty & ~spk.o.valid)]
        m.d.comb += [scan.word.eq(xw), scan.load.eq(0), spk.o.ready.eq(0)]

        # forward neuron step, one register stage per state, so no state chains a
        # multiplier, a carry chain and a saturation: F_ACC latches u[n-1] from its RAM;
        # F_DECAY the decay product and the saturated input; F_ROUND the rounded decay;
        # F_SUM the saturated sum; F_LIF clamp, threshold and write-back.
        u_prev_rec = urec(R["u"].data)
        u_prev = Signal(signed(cfg.u_bits))      # 0 at the first step
        s_prev = Signal()
        m.d.comb += s_prev.eq(u_prev >= cfg.theta_q)   # theta_q > 0, so never at the first step
        z_sat, z_hit = saturating(m, z, cfg.u_bits, "z")
        theta_s = Mux(s_prev, cfg.theta_q, 0)
        if cfg.reset_order == "after_decay":
            factor = u_prev
            rest = z_sat - theta_s
        else:
            factor = u_prev - theta_s
            rest = z_sat
        # the decay product as two registered partial products (F_DECAY), summed with the
        # rounding in F_ROUND: one multiplier per register, no adder behind it
        in_decay = Signal()      # F_DECAY
        prod = registered_product(m, Const(cfg.alpha_q), factor, en=in_decay, name="prod", platform=platform)
        decay = round_half_up_shift(prod, cfg.alpha_frac)
        decay_r = Signal(signed(len(decay) + 1))
        rest_r = Signal(signed(cfg.u_bits + 2))
        z_hit_r = Signal()
        v_sat, v_hit = saturating(m, decay_r + rest_r, cfg.u_bits, "v")
        v_sat_r = Signal(signed(cfg.u_bits))
        v_hit_r = Signal()
        v = Signal(signed(cfg.u_bits))
        v_mask = Signal()
        if cfg.u_min_q is None:
            m.d.comb += [v.eq(v_sat_r), v_mask.eq(1)]
        else:
            m.d.comb += [v_mask.eq(v_sat_r >= cfg.u_min_q), v.eq(Mux(v_sat_r >= cfg.u_min_q, v_sat_r, cfg.u_min_q))]
        spike = Signal()
        m.d.comb += spike.eq(v >= cfg.theta_q)

        # gradient to the layer below
        mac = Signal(signed(cfg.weight_bits + cfg.grad_bits + NO.bit_length() + 1))
        pend3 = Signal()         # B_GP: the operands are in w_m, lam_m
        pend4 = Signal()         # ... and the partial products (gp_prod*) are to be added now
        gp_sat, gp_hit = saturating(m, round_half_up_shift(mac, cfg.u_frac), cfg.grad_bits, "gp")
        gp_word = Signal(data.ArrayLayout(signed(cfg.grad_bits), NI)) if self._backprop else None
        gp_el = Signal(signed(cfg.grad_bits), reset_less=True)
        if self._backprop:
            # gp_word changes only in B_GPPUT, cycles after the B_GPW write request
            m.d.comb += W["gp"].data.eq(gp_word)

        # Weight-gradient read-modify-write and update: six stages. The reads are
        # requested (iv_valid/iv_addr), reach the RAM port registers (rd_valid/rd_addr
        # mark them), their block RAM outputs (5.8 ns clock-to-output on an ECP5) land in
        # the memories' output registers (wb_valid/wb_addr; w_r, acc_r, lam_r), the sums
        # are registered (ar_valid/ar_addr), and saturation feeds the write-back.
        iv_valid = Signal()
        iv_addr = Signal(range(NI * NO))
        rd_valid = Signal()
        rd_addr = Signal(range(NI * NO))
        wb_valid = Signal()
        wb_addr = Signal(range(NI * NO))
        w_r, acc_r, lam_r = R["w"].data, R["acc"].data, R["lam"].data   # output registers
        # B_GP: w*lambda as two registered partial products (lambda split: one multiplier
        # each, no adder behind them), added to the sum in the next cycle. The operands are
        # copied from the output registers first (w_m, lam_m): the route from a block RAM
        # across the die and a multiplier did not fit one cycle together.
        w_m = Signal.like(w_r, name="w_m", reset_less=True)
        lam_m = Signal.like(lam_r, name="lam_m", reset_less=True)
        gp_sum = registered_product(m, w_m, lam_m, en=pend3, name="gp_prod", platform=platform)
        m.d.sync += [rd_valid.eq(iv_valid), rd_addr.eq(iv_addr), wb_valid.eq(rd_valid), wb_addr.eq(rd_addr)]
        # A fourth stage: the sums are registered (ar_*) before their saturation and the
        # write-back; rounding, subtraction and saturation in one cycle were too slow.
        ar_valid = Signal()
        ar_addr = Signal(range(NI * NO))
        # Before that, the output registers are copied (xr_*) and the update's rounding is
        # registered: the routes from the block RAMs' output registers across the die took
        # most of a cycle in front of two carry chains.
        xr_valid = Signal()
        xr_addr = Signal(range(NI * NO))
        acc_x, lam_x, w_x = (Signal.like(v, name=f"{n}_x", reset_less=True)
                             for n, v in (("acc", acc_r), ("lam", lam_r), ("w", w_r)))
        acc_rnd = round_half_up_shift(acc_r, cfg.update_shift)
        acc_rnd_x = Signal(signed(len(acc_rnd)), reset_less=True)
        m.d.sync += [xr_valid.eq(wb_valid), xr_addr.eq(wb_addr), acc_x.eq(acc_r), lam_x.eq(lam_r), w_x.eq(w_r),
                     acc_rnd_x.eq(acc_rnd)]
        acc_raw = acc_x + lam_x
        upd_raw = w_x - acc_rnd_x
        acc_raw_r = Signal(acc_raw.shape(), reset_less=True)
        upd_raw_r = Signal(upd_raw.shape(), reset_less=True)
        m.d.sync += [ar_valid.eq(xr_valid), ar_addr.eq(xr_addr), acc_raw_r.eq(acc_raw), upd_raw_r.eq(upd_raw)]
        acc_sum, acc_hit = saturating(m, acc_raw_r, cfg.acc_bits, "acc_sum")
        upd, upd_hit = saturating(m, upd_raw_r, cfg.weight_bits, "upd")

        # chi feed: reads issued for (n, i) in reverse time order; chi outputs come back in the same order
        iss_valid = Signal()     # a read of (u, g) in the RAM port registers
        iss_i = Signal(range(max(2, NO)))
        iss_first = Signal()
        ram_valid = Signal()     # ... on the block RAM outputs
        ram_i = Signal(range(max(2, NO)))
        ram_first = Signal()
        feed_valid = Signal()    # ... in the output registers, offered to the chi feed
        feed_i = Signal(range(max(2, NO)))
        feed_first = Signal()
        # The feed puts the memories' output registers through one more register before the
        # chi unit turns u into table addresses.
        feed_layout = data.StructLayout({"index": chi.i.payload.index.shape(), "first": 1,
                                         "u": signed(cfg.u_bits), "m": 1, "g": signed(cfg.grad_bits)})
        if NO >= CHI_SPACING:
            # With CHI_SPACING neurons or more the chi unit never refuses a beat (its only stall
            # is a beat fewer than CHI_SPACING places behind one of its own group, and the beats
            # here go round the neurons in turn; its output is always taken), so the feed is a
            # plain register stage and the reads never hold. The neurons of a step come in order 0..NO-1, so
            # the step's g word is loaded whole at neuron 0 into a shift register and moved
            # down one element per beat: element i is then always at the bottom. (A 25-way
            # multiplexer of 24-bit elements here was a long path and the densest routing of
            # the ECP5 build.)
            feed = _FeedRegister(feed_layout)
            g_shift = Signal(data.ArrayLayout(signed(cfg.grad_bits), NO))
            with m.If(feed_valid):
                with m.If(feed_i == 0):
                    m.d.sync += g_shift.eq(R["g"].data)
                with m.Else():
                    m.d.sync += g_shift.as_value().eq(g_shift.as_value() >> cfg.grad_bits)
            g_elem = g_shift[0]
        else:
            # A layer of fewer neurons: consecutive steps of a neuron stall the chi unit, so
            # the feed is a skid buffer and the reads hold while it is full.
            feed = SkidBuffer(feed_layout)
            m.d.comb += ram_hold.eq(feed_valid & ~feed.i.ready)   # feed_valid is 0 outside B_CHI
            m.d.comb += feed.i.payload.g.eq(R["g"].data[feed_i] if NO > 1 else R["g"].data[0])
            g_elem = feed.o.payload.g
        m.submodules.chi_feed = feed
        fo = feed.o.payload
        m.d.comb += [
            feed.i.valid.eq(feed_valid),
            feed.i.payload.index.eq(feed_i),
            feed.i.payload.first.eq(feed_first),
            feed.i.payload.u.eq(u_prev_rec.u),
            feed.i.payload.m.eq(u_prev_rec.m),
            chi.i.valid.eq(feed.o.valid),
            feed.o.ready.eq(chi.i.ready),
            chi.i.payload.index.eq(fo.index),
            chi.i.payload.first.eq(fo.first),
            chi.i.payload.lanes[0].u.eq(fo.u),
            chi.i.payload.lanes[0].m.eq(fo.m),
            chi.i.payload.lanes[0].g.eq(g_elem),
            chi.o.ready.eq(1),
        ]
        out_n_no = Signal(range((TM + 1) * NO + 1))
        out_i = Signal(range(NO + 1))
        out_left = Signal(range(TM * NO + 1))

        rd_tgt = Signal(Target)
        # every memory's output register (w_r, acc_r, lam_r serve the datapaths too)
        cap = {name: R[name].data for name in R}

        with m.FSM(name="engine"):
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                # host access
                m.d.comb += host_tgt.eq(hp.target)
                addr_map = {"w": Target.W, "acc": Target.ACC, "x": Target.X, "s": Target.S, "u": Target.U,
                            "g": Target.G, "lam": Target.LAM, "gp": Target.GP}
                for name, tgt in addr_map.items():
                    if name not in R:
                        continue
                    # A held read enables the read port whether or not it is performed this
                    # cycle: a repeated read is harmless (the capture registers take the data of
                    # the performed one first), and the pending flags stay off the RAM enables.
                    m.d.comb += [R[name].addr.eq(hp.addr), R[name].en.eq(host_held & ~hp.write)]
                    if name in ("w", "x", "g"):
                        m.d.comb += [W[name].addr.eq(hp.addr),
                                     W[name].en.eq(host_fire & hp.write & (hp.target == tgt))]
                        if name == "w":   # (x and g are written by the host only: data set below)
                            m.d.comb += W[name].data.eq(hp.data)
                m.d.sync += [rd_pending0.eq(0), rd_pending.eq(rd_pending0), rd_pending2.eq(rd_pending)]
                with m.If(host_fire & ~hp.write):
                    m.d.sync += [rd_pending0.eq(1), rd_tgt.eq(hp.target)]
                # Host reads take three cycles: the RAM port registers, the block RAM, then the
                # memories' output registers (cap) before the target multiplexer; the target
                # multiplexer behind a block RAM output was too slow for one cycle.
                with m.If(rd_pending2):
                    with m.Switch(rd_tgt):
                        for name, tgt in addr_map.items():
                            if name in R:
                                with m.Case(tgt):
                                    m.d.sync += self.rdata.payload.eq(Cat(cap[name]))
                    m.d.sync += self.rdata.valid.eq(1)
                with m.If(self.rdata.valid & self.rdata.ready):
                    m.d.sync += self.rdata.valid.eq(0)

                with m.If(cmd_go):
                    c = cmd_q
                    m.d.sync += [n.eq(0), n_no.eq(0), i.eq(0), i_ni.eq(0), j.eq(0), pend0.eq(0), pend.eq(0),
                                 iv_valid.eq(0), rd_valid.eq(0), wb_valid.eq(0), xr_valid.eq(0), ar_valid.eq(0),
                                 s_word.eq(0),
                                 iss_valid.eq(0), ram_valid.eq(0), feed_valid.eq(0)]
                    with m.Switch(c.op):
                        with m.Case(Op.FORWARD):
                            m.d.sync += [T.eq(c.steps), TNO.eq(c.steps * NO)]
                            m.next = "F_STEP"
                        with m.Case(Op.BACKWARD):
                            m.d.sync += [slayer.eq(c.slayer), grad_prev.eq(c.grad_prev & self._backprop),
                                         n.eq(T - 1), n_no.eq(TNO - NO), out_n_no.eq(TNO - NO),
                                         out_i.eq(0), out_left.eq(TNO)]
                            m.next = "B_CHI"
                        with m.Case(Op.UPDATE):
                            m.next = "U_RUN"
                        # Op.CLEAR: clear_now (below), a cycle later

            # ---------------------------------------------------------- forward
            with m.State("F_STEP"):
                m.d.comb += [R["x"].addr.eq(n), R["x"].en.eq(1)]
                m.next = "F_XWAIT"
            with m.State("F_XWAIT"):     # the read is in the RAM port registers
                m.next = "F_XWAIT2"
            with m.State("F_XWAIT2"):    # ... on the block RAM output
                m.next = "F_XLOAD"
            with m.State("F_XLOAD"):
                m.d.sync += [xw.eq(R["x"].data), i.eq(0), i_ni.eq(0)]
                m.next = "F_NEURON"
            with m.State("F_NEURON"):
                m.d.comb += [R["u"].addr.eq(n_no - NO + i), R["u"].en.eq(n != 0), scan.load.eq(1)]
                m.d.sync += [z.eq(0), pend0.eq(0), pend.eq(0), pend2.eq(0), u_wait.eq(0b11)]
                m.next = "F_ACC"
            with m.State("F_ACC"):
                # read W[i][j] for each input spike j; the read goes through the port registers
                # (pend0), the block RAM output (pend) lands in the output register w_r and is
                # added from there (pend2): no block RAM output drives an adder directly
                m.d.comb += [R["w"].addr.eq(i_ni + spk.o.payload), R["w"].en.eq(spk.o.valid),
                             spk.o.ready.eq(1)]
                with m.If(pend2):
                    m.d.sync += z.eq(z + w_r)
                    m.d.comb += syn_inc.eq(1)
                m.d.sync += [pend0.eq(spk.o.valid), pend.eq(pend0), pend2.eq(pend), u_wait.eq(u_wait >> 1)]
                # the u read issued in F_NEURON is in the output register from the third F_ACC
                # cycle on (u_wait holds the first two)
                m.d.sync += u_prev.eq(Mux(n == 0, 0, u_prev_rec.u))
                with m.If(scan_empty & ~pend0 & ~pend & ~pend2 & (u_wait == 0)):
                    m.next = "F_DECAY"
            with m.State("F_DECAY"):
                m.d.comb += in_decay.eq(1)
                m.d.sync += [rest_r.eq(rest), z_hit_r.eq(z_hit)]
                m.next = "F_ROUND"
            with m.State("F_ROUND"):
                m.d.sync += decay_r.eq(decay)
                m.next = "F_SUM"
            with m.State("F_SUM"):
                m.d.sync += [v_sat_r.eq(v_sat), v_hit_r.eq(v_hit)]
                m.next = "F_LIF"
            with m.State("F_LIF"):
                m.d.comb += [W["u"].addr.eq(n_no + i), W["u"].data.eq(Cat(v, v_mask)), W["u"].en.eq(1),
                             fwd_inc.eq(1)]
                m.d.sync += [s_word.eq(s_word | (spike << i)), i.eq(i + 1), i_ni.eq(i_ni + NI)]
                with m.If(i == NO - 1):
                    m.next = "F_SWRITE"
                with m.Else():
                    m.next = "F_NEURON"
            with m.State("F_SWRITE"):
                m.d.comb += [W["s"].addr.eq(n), W["s"].data.eq(s_word), W["s"].en.eq(1)]
                m.d.sync += [s_word.eq(0), n.eq(n + 1), n_no.eq(n_no + NO)]
                with m.If(n == T - 1):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "F_STEP"

            # ---------------------------------------------------------- backward: chi
            with m.State("B_CHI"):
                # The feed holds (reads and all) while the chi unit refuses a beat: it takes
                # one per cycle, but back-to-back steps of a one-neuron layer one per two.
                # A read goes through the port registers (iss_*) and the block RAMs (ram_*) to
                # the output registers (feed_*); while the feed is full (ram_hold) all three hold.
                issuing, hold = Signal(), Signal()
                m.d.comb += [hold.eq(ram_hold),
                             issuing.eq((n != TM) & ~hold)]  # n wraps to TM... marks "all issued" (see below)
                m.d.comb += [R["u"].addr.eq(n_no + i), R["u"].en.eq(issuing),
                             R["g"].addr.eq(n), R["g"].en.eq(issuing)]
                with m.If(~hold):
                    m.d.sync += [iss_valid.eq(issuing), iss_i.eq(i), iss_first.eq(n == T - 1),
                                 ram_valid.eq(iss_valid), ram_i.eq(iss_i), ram_first.eq(iss_first),
                                 feed_valid.eq(ram_valid), feed_i.eq(ram_i), feed_first.eq(ram_first)]
                with m.If(issuing):
                    with m.If(i == NO - 1):
                        m.d.sync += [i.eq(0), i_ni.eq(0), n.eq(Mux(n == 0, TM, n - 1)),
                                     n_no.eq(Mux(n == 0, TM * NO, n_no - NO))]
                    with m.Else():
                        m.d.sync += [i.eq(i + 1), i_ni.eq(i_ni + NI)]
                with m.If(chi.o.valid):
                    m.d.comb += [W["lam"].addr.eq(out_n_no + out_i), W["lam"].data.eq(chi.o.payload.lam[0]),
                                 W["lam"].en.eq(1)]
                    m.d.sync += out_left.eq(out_left - 1)
                    with m.If(out_i == NO - 1):
                        m.d.sync += [out_i.eq(0), out_n_no.eq(out_n_no - NO)]
                    with m.Else():
                        m.d.sync += out_i.eq(out_i + 1)
                    with m.If(out_left == 1):
                        m.d.sync += [n.eq(0), n_no.eq(0), i.eq(0), i_ni.eq(0), j.eq(0), pend0.eq(0), pend.eq(0),
                                     iss_valid.eq(0), ram_valid.eq(0), feed_valid.eq(0)]
                        m.next = "B_GP" if self._backprop else "B_WX"

            # ---------------------------------------------------------- backward: gradient to the layer below
            if self._backprop:
                with m.State("B_GP"):
                    with m.If(~grad_prev):
                        m.next = "B_WX"
                    with m.Else():
                        issuing = Signal()
                        m.d.comb += [issuing.eq(i != NO),
                                     R["w"].addr.eq(i_ni + j), R["w"].en.eq(issuing),
                                     R["lam"].addr.eq(n_no + i), R["lam"].en.eq(issuing)]
                        # the product of the registered RAM outputs (w_r, lam_r) is registered
                        # as partial products (gp_prod*), then added: a multiplier and a wide
                        # adder in series are too slow for one cycle
                        with m.If(i == 0):
                            m.d.sync += mac.eq(0)
                        with m.If(pend2):
                            m.d.sync += [w_m.eq(w_r), lam_m.eq(lam_r)]
                        with m.If(pend4):
                            m.d.sync += mac.eq(mac + gp_sum)
                        m.d.sync += [pend0.eq(issuing), pend.eq(pend0), pend2.eq(pend), pend3.eq(pend2),
                                     pend4.eq(pend3),
                                     i.eq(Mux(issuing, i + 1, i)), i_ni.eq(Mux(issuing, i_ni + NI, i_ni))]
                        with m.If(~issuing & ~pend0 & ~pend & ~pend2 & ~pend3 & ~pend4):
                            m.next = "B_GPEL"
                with m.State("B_GPEL"):
                    # the element is rounded and saturated into gp_el, and goes into the
                    # word a cycle later: rounding, saturation and the fan-out to every
                    # element of the word were too slow for one cycle
                    m.d.comb += in_gpel.eq(1)
                    m.d.sync += gp_el.eq(gp_sat)
                    m.next = "B_GPPUT"
                with m.State("B_GPPUT"):
                    m.d.sync += [gp_word[j].eq(gp_el), j.eq(j + 1), i.eq(0), i_ni.eq(0), mac.eq(0)]
                    with m.If(j == NI - 1):
                        m.next = "B_GPW"
                    with m.Else():
                        m.next = "B_GP"
                with m.State("B_GPW"):
                    m.d.comb += [W["gp"].addr.eq(n), W["gp"].en.eq(1)]   # data: gp_word, held
                    m.d.sync += [j.eq(0), n.eq(n + 1), n_no.eq(n_no + NO)]
                    with m.If(n == T - 1):
                        m.d.sync += [n.eq(0), n_no.eq(0)]
                        m.next = "B_WX"
                    with m.Else():
                        m.next = "B_GP"

            # ---------------------------------------------------------- backward: weight gradient
            with m.State("B_WX"):
                m.d.comb += [R["x"].addr.eq(n), R["x"].en.eq(1)]
                m.d.sync += [i.eq(0), i_ni.eq(0), iv_valid.eq(0), rd_valid.eq(0)]
                m.next = "B_WXWAIT"
            with m.State("B_WXWAIT"):    # the read is in the RAM port registers
                m.next = "B_WXWAIT2"
            with m.State("B_WXWAIT2"):   # ... on the block RAM output
                m.next = "B_WLOAD"
            with m.State("B_WLOAD"):
                m.d.sync += xw.eq(R["x"].data)
                m.next = "B_WSTART"
            with m.State("B_WSTART"):
                m.d.comb += scan.load.eq(1)
                m.next = "B_WSCAN"
            with m.State("B_WSCAN"):
                # issue (j, i) reads, j from the scanner (held for the fan_out neurons);
                # write back the previous one
                j_spk = spk.o.payload
                m.d.comb += [R["acc"].addr.eq(i_ni + j_spk), R["lam"].addr.eq(n_no + i),
                             R["acc"].en.eq(spk.o.valid), R["lam"].en.eq(spk.o.valid),
                             spk.o.ready.eq(i == NO - 1)]
                with m.If(ar_valid):
                    m.d.comb += [W["acc"].addr.eq(ar_addr), W["acc"].data.eq(acc_sum), W["acc"].en.eq(1),
                                 syn_inc.eq(1), wb_acc.eq(1)]
                m.d.sync += [iv_valid.eq(spk.o.valid), iv_addr.eq(i_ni + j_spk)]
                with m.If(spk.o.valid):
                    with m.If(i == NO - 1):
                        m.d.sync += [i.eq(0), i_ni.eq(0)]
                    with m.Else():
                        m.d.sync += [i.eq(i + 1), i_ni.eq(i_ni + NI)]
                with m.Elif(scan_empty & ~iv_valid & ~rd_valid & ~wb_valid & ~xr_valid & ~ar_valid):
                    m.d.sync += [n.eq(n + 1), n_no.eq(n_no + NO)]
                    with m.If(n == T - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "B_WX"

            # ---------------------------------------------------------- update
            with m.State("U_RUN"):
                last = NI * NO
                issuing = Signal()
                k = Signal(range(last + 1))
                m.d.comb += [issuing.eq(k != last), R["w"].addr.eq(k), R["acc"].addr.eq(k),
                             R["w"].en.eq(issuing), R["acc"].en.eq(issuing)]
                with m.If(ar_valid):
                    m.d.comb += [W["w"].addr.eq(ar_addr), W["w"].data.eq(upd), W["w"].en.eq(1),
                                 W["acc"].addr.eq(ar_addr), W["acc"].data.eq(0), W["acc"].en.eq(1),
                                 wb_upd.eq(1)]
                m.d.sync += [iv_valid.eq(issuing), iv_addr.eq(k), k.eq(Mux(issuing, k + 1, k))]
                with m.If(~issuing & ~iv_valid & ~rd_valid & ~wb_valid & ~xr_valid & ~ar_valid):
                    m.d.sync += k.eq(0)
                    m.next = "IDLE"

        # ------------------------------------------------------------ flags and counters
        # The saturation events are registered before they reach the flags and the
        # counter (each ends a long arithmetic path); the engine stays busy while one
        # is pending, so flags and counts are complete when it reports idle.
        sat_events = [("fwd", fwd_inc & z_hit_r), ("fwd", fwd_inc & v_hit_r), ("grad", in_gpel & gp_hit),
                      ("acc", wb_acc & acc_hit), ("weight", wb_upd & upd_hit)]
        sat_r = Signal(len(sat_events))
        m.d.sync += sat_r.eq(Cat(cond for _, cond in sat_events))
        m.d.comb += sat_pending.eq(sat_r.any())
        n_sat = Signal(range(len(sat_events) + 1))
        m.d.comb += n_sat.eq(sum(sat_r[k] for k in range(len(sat_events))))
        m.d.comb += chi.clear.eq(clear_now)
        with m.If(clear_now):
            m.d.sync += [self.flags.eq(0), self.sat_count.eq(0), self.cycles.eq(0),
                         self.fwd_steps.eq(0), self.syn_events.eq(0)]
        with m.Else():
            m.d.sync += self.sat_count.eq(self.sat_count + n_sat)
            for k, (name, _) in enumerate(sat_events):
                with m.If(sat_r[k]):
                    m.d.sync += self.flags[name].eq(1)
            with m.If(syn_inc):
                m.d.sync += self.syn_events.eq(self.syn_events + 1)
            with m.If(fwd_inc):
                m.d.sync += self.fwd_steps.eq(self.fwd_steps + 1)
            with m.If(chi.sat):   # inside the guard: CLEAR clears the chi flag too
                m.d.sync += self.flags.chi.eq(1)
        m.d.comb += [self.chi_sat_count.eq(chi.sat_count), self.bwd_steps.eq(chi.steps)]
        return m
