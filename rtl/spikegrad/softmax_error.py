"""The Softmax-CE error unit of the SpikeGrad core.

Turns the top layer's membrane values ``V^L`` (one stream beat per class) into
the initial error compartments ``U^L = round((p - onehot(label)) * 2**error_shift)``,
bit-exact with :func:`golden.spikegrad.fixedpoint.top_error`. No multiplier
and no divider cells: the exponential is a ROM, the division a pipelined
restoring (shift-subtract) divider, the scaling a barrel shift.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.spikegrad.fixedpoint import exp_lut
from spikecore.config import SpikeGradConfig

from .layouts import index_bits

__all__ = ["SoftmaxError", "error_layout", "error_shift_bits", "softmax_error_latency"]


def error_layout(cfg: SpikeGradConfig) -> data.StructLayout:
    """One beat of the error stream: class ``index``, ``U^L_index`` and ``last`` on the final class."""
    return data.StructLayout({
        "index": unsigned(index_bits(cfg.num_classes)),
        "value": signed(cfg.error_bits),
        "last": unsigned(1),
    })


def error_shift_bits(cfg: SpikeGradConfig) -> int:
    """Width of the run-time ``error_shift`` input (it holds ``0 .. error_bits - 2``)."""
    return max(1, (cfg.error_bits - 2).bit_length())


DIVIDERS = ("pipelined", "iterative")


def softmax_error_latency(cfg: SpikeGradConfig, divider: str = "pipelined") -> int:
    """Cycles from the last ``v`` transfer to the last ``u`` transfer without back-pressure:
    ``2 * num_classes + prob_bits + 6`` with the pipelined divider,
    ``num_classes * (prob_bits + 8) + 1`` with the iterative one (see :class:`SoftmaxError`)."""
    if divider == "iterative":
        return cfg.num_classes * (cfg.prob_bits + 8) + 1
    return 2 * cfg.num_classes + cfg.prob_bits + 6


class SoftmaxError(wiring.Component):
    """Softmax cross-entropy error of the top layer.

    For the ``C = cfg.num_classes`` values ``V_i`` of a sample::

        m   = max_i V_i
        t_i = min((m - V_i) >> softmax_shift, exp_lut_size - 1)
        e_i = LUT[t_i]                                   # exp_lut(cfg), exp_bits fraction bits
        p_i = floor(e_i * 2**prob_bits / sum_j e_j)      # prob_bits + 1 quotient bits
        U_i = round_half_away((p_i - 2**prob_bits * [i == label]) * 2**error_shift / 2**prob_bits)

    Schedule (cycle 0 = the last ``v`` transfer): the exponential pass reads
    one stored ``V_i`` and one LUT entry per cycle (cycles 1..C) and
    accumulates the sum (complete at C + 2); the division pass feeds one class
    per cycle into a ``prob_bits + 1``-stage restoring divider from cycle C + 2;
    two output registers subtract the label, then scale and round. With ``u.ready``
    held high the last ``u`` beat transfers in cycle :attr:`latency`
    ``= 2*C + prob_bits + 4``. Back-pressure on ``u`` stalls the division
    pass as a whole; the unit takes the next sample after the last ``u`` beat.

    With ``divider="iterative"`` the division pass uses one shift-subtract
    stage for ``prob_bits + 1`` cycles per class instead of ``prob_bits + 1``
    pipeline stages (same results, about ten times less logic; the division
    pass then takes ``C * (prob_bits + 7)`` cycles: see :func:`softmax_error_latency`).
    Board tops with little logic (iCE40UP5K) use it.

    Parameters
    ----------
    cfg : SpikeGradConfig
        Widths, LUT and number of classes.
    divider : ``"pipelined"`` (default) or ``"iterative"``.

    Members
    -------
    v : ``In(stream.Signature(signed(cfg.membrane_bits)))``
        ``V^L``: exactly ``C`` beats per sample, in class order. Ready only
        while the unit is idle or loading a sample.
    label : ``In(unsigned(index_bits(C)))``
        The target class; held stable from the first ``v`` beat to the last ``u`` beat.
    error_shift : ``In(unsigned(error_shift_bits(cfg)))``
        Run-time scale ``0 .. error_bits - 2``; held like ``label``.
    u : ``Out(stream.Signature(error_layout(cfg)))``
        ``U^L``: ``C`` beats in class order, ``last`` on class ``C - 1``.
    busy : ``Out(1)``
        High from the first ``v`` beat until the last ``u`` beat has transferred.
    """

    def __init__(self, cfg: SpikeGradConfig, *, divider: str = "pipelined"):
        if not isinstance(cfg, SpikeGradConfig):
            raise TypeError(f"cfg must be a SpikeGradConfig, not {cfg!r}")
        if divider not in DIVIDERS:
            raise ValueError(f"divider must be one of {DIVIDERS}, not {divider!r}")
        self._cfg = cfg
        self._divider = divider
        super().__init__({
            "v": In(stream.Signature(signed(cfg.membrane_bits))),
            "label": In(unsigned(index_bits(cfg.num_classes))),
            "error_shift": In(unsigned(error_shift_bits(cfg))),
            "u": Out(stream.Signature(error_layout(cfg))),
            "busy": Out(1),
        })

    @property
    def cfg(self) -> SpikeGradConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Cycles from the last ``v`` transfer to the last ``u`` transfer without back-pressure."""
        return softmax_error_latency(self._cfg, self._divider)

    @property
    def divider(self) -> str:
        return self._divider

    def elaborate(self, platform):
        cfg = self._cfg
        n_classes, prob_bits, exp_bits = cfg.num_classes, cfg.prob_bits, cfg.exp_bits
        sum_bits, lut_size = cfg.exp_sum_bits, cfg.exp_lut_size
        iterative = self._divider == "iterative"
        m = Module()

        # V store, exponential ROM (LUT[0] == 2**exp_bits needs exp_bits + 1 bits) and e store.
        m.submodules.v_mem = v_mem = Memory(shape=signed(cfg.membrane_bits), depth=max(2, n_classes), init=[])
        v_wr = v_mem.write_port()
        v_rd = v_mem.read_port(transparent_for=(v_wr,))
        # With the pipelined divider (the fast variant) the ROM is logic: its registered read
        # then takes a few LUT levels, where a block RAM's 5.8 ns clock-to-output and the
        # route to ``total``'s adder did not fit 10 ns on an ECP5 (about 550 LUTs for the
        # default 1024 x 17 bits).
        m.submodules.lut = lut = Memory(shape=unsigned(exp_bits + 1), depth=lut_size, init=exp_lut(cfg),
                                        attrs=None if iterative else {"rom_style": "logic"})
        lut_rd = lut.read_port()
        m.submodules.e_mem = e_mem = Memory(shape=unsigned(exp_bits + 1), depth=max(2, n_classes), init=[])
        e_wr = e_mem.write_port()
        e_rd = e_mem.read_port(transparent_for=(e_wr,))

        count = Signal(range(n_classes + 1))
        v_max = Signal(signed(cfg.membrane_bits))
        total = Signal(sum_bits)
        adv = Signal()              # the division pipeline moves
        m.d.comb += adv.eq(~self.u.valid | self.u.ready)

        # Exponential pass, LUT stage -> accumulate stage.
        lut_valid = Signal()
        lut_index = Signal(range(n_classes))
        m.d.sync += lut_valid.eq(0)
        step_valid = Signal()
        step_r = Signal(range(lut_size))
        step_index = Signal(range(n_classes))
        if not iterative:
            m.d.sync += [step_valid.eq(0), lut_valid.eq(step_valid), lut_index.eq(step_index)]
            m.d.comb += lut_rd.addr.eq(step_r)
        with m.If(lut_valid):
            m.d.sync += total.eq(total + lut_rd.data)
            m.d.comb += [e_wr.en.eq(1), e_wr.addr.eq(lut_index), e_wr.data.eq(lut_rd.data)]

        # Division pass, e-store read stage.
        feed_valid = Signal()
        feed_index = Signal(range(n_classes))
        if not iterative:
            m.d.comb += [e_rd.addr.eq(count), e_rd.en.eq(adv)]
            with m.If(adv):
                m.d.sync += feed_valid.eq(0)

        def next_class(then):
            # count walks the classes; after the last one the FSM moves on.
            with m.If(count == n_classes - 1):
                m.d.sync += count.eq(0)
                m.next = then
            with m.Else():
                m.d.sync += count.eq(count + 1)

        last_out = self.u.valid & self.u.ready & self.u.payload.last
        # The pipelined form reads V one class ahead into a register (``v_q``), so EXP's
        # subtraction starts from a flip-flop instead of behind the LUT RAM read (that read, the
        # subtraction's carry and the clamp into step_r were a failing path of the ECP5 build).
        # LOAD's last beat addresses class 1 (the port is transparent for the write of that
        # beat), EXP class ``count + 2``; with a single class the distance is read directly.
        prefetch = not iterative and n_classes >= 2
        if prefetch:
            v_q = Signal(signed(cfg.membrane_bits))
            m.d.sync += v_q.eq(v_rd.data)
        with m.FSM(name="phase") as fsm:
            with m.State("LOAD"):
                m.d.comb += [
                    self.v.ready.eq(1),
                    v_wr.addr.eq(count), v_wr.data.eq(self.v.payload), v_wr.en.eq(self.v.valid),
                    v_rd.addr.eq(Mux(self.v.valid & (count == n_classes - 1), 1, 0) if prefetch else 0),
                ]
                m.d.sync += total.eq(0)
                with m.If(self.v.valid):
                    with m.If((count == 0) | (self.v.payload > v_max)):
                        m.d.sync += v_max.eq(self.v.payload)
                    next_class("EXP")
            with m.State("EXP"):
                # v_rd.data is V[count]; address the next class.
                distance = Signal(cfg.membrane_bits)
                step = Signal(range(lut_size))
                m.d.comb += [
                    v_rd.addr.eq(count + 2 if prefetch else count + 1),
                    distance.eq(v_max - (v_q if prefetch else v_rd.data)),
                ]
                shifted = distance >> cfg.softmax_shift
                if not iterative and lut_size & (lut_size - 1) == 0:
                    # the same clamp (at lut_size - 1 both give lut_size - 1) as an OR of the
                    # bits above the table index: no comparator's carry behind the subtraction
                    k = lut_size.bit_length() - 1
                    m.d.comb += step.eq(Mux(shifted[k:].any(), lut_size - 1, shifted))
                else:
                    m.d.comb += step.eq(Mux(shifted >= lut_size - 1, lut_size - 1, shifted))
                if iterative:
                    m.d.comb += lut_rd.addr.eq(step)
                    m.d.sync += [lut_valid.eq(1), lut_index.eq(count)]
                else:
                    # the ROM address is registered first (the subtraction, shift and clamp
                    # behind the V read were an ECP5 path into the block RAM's address)
                    m.d.sync += [step_valid.eq(1), step_r.eq(step), step_index.eq(count)]
                next_class("DIV" if iterative else "EXP_END")
            if not iterative:
                with m.State("EXP_END"):
                    # the last class's exponential is still on its way into ``total``
                    m.next = "DIV"
            with m.State("DIV"):
                # e_rd.data is e[feed_index] while feed_valid.
                if not iterative:
                    with m.If(adv & (count < n_classes)):
                        m.d.sync += [feed_valid.eq(1), feed_index.eq(count), count.eq(count + 1)]
                with m.If(last_out):
                    m.d.sync += count.eq(0)
                    m.next = "LOAD"
        m.d.comb += self.busy.eq(~fsm.ongoing("LOAD") | (count != 0))

        def error_terms(quot, index):
            """Subtract the one-hot label: the sign and magnitude of ``p - onehot``."""
            err = Signal(signed(prob_bits + 2))
            negative = Signal()
            magnitude = Signal(prob_bits + 1)
            m.d.comb += [
                err.eq(quot - Mux(index == self.label, 1 << prob_bits, 0)),
                negative.eq(err < 0),
                magnitude.eq(Mux(negative, -err, err)),
            ]
            return negative, magnitude

        def scaled_magnitude(magnitude):
            """``magnitude`` scaled by 2**(error_shift - prob_bits), rounded half up (half away
            from zero once the sign is applied)."""
            scaled = Signal(unsigned(prob_bits + 1 + (1 << len(self.error_shift)) - 1))
            rounded = Signal(cfg.error_bits - 1)
            m.d.comb += [
                scaled.eq(magnitude << self.error_shift),
                rounded.eq((scaled + (1 << (prob_bits - 1))) >> prob_bits),
            ]
            return rounded

        def signed_error(negative, rounded, index):
            """Assignments to ``u``: the rounded magnitude with its sign."""
            return [self.u.payload.index.eq(index), self.u.payload.value.eq(Mux(negative, -rounded, rounded)),
                    self.u.payload.last.eq(index == n_classes - 1)]

        if iterative:
            # One shift-subtract stage reused prob_bits + 1 times per class:
            # FETCH (address e[count]) -> LOAD_E -> prob_bits + 1 STEP cycles -> ERR -> SCALE
            # -> SIGN -> OUT (u valid). ERR, SCALE and SIGN give the label subtraction, the
            # scaling (a shift by the run-time ``error_shift`` and the rounding addition) and
            # the negation a cycle each: on an iCE40 the quotient-to-error chain alone is two
            # 30 MHz cycles, and shift, rounding and negation together most of a third.
            it_rem = Signal(sum_bits)
            o_neg = Signal()
            o_mag = Signal(prob_bits + 1)
            o_rounded = Signal(cfg.error_bits - 1)
            it_quot = Signal(prob_bits + 1)
            it_step = Signal(range(prob_bits + 1))
            trial = Signal(sum_bits + 1)
            m.d.comb += trial.eq(Mux(it_step == 0, it_rem, Cat(0, it_rem)))
            fits = trial >= total
            quot_next = Cat(fits, it_quot[:prob_bits])
            m.d.comb += [e_rd.addr.eq(count), e_rd.en.eq(1)]
            with m.FSM(name="idiv"):
                with m.State("WAIT"):
                    with m.If(fsm.ongoing("DIV")):
                        m.next = "FETCH"
                with m.State("FETCH"):
                    m.next = "LOAD_E"
                with m.State("LOAD_E"):
                    m.d.sync += [it_rem.eq(e_rd.data), it_step.eq(0)]
                    m.next = "STEP"
                with m.State("STEP"):
                    m.d.sync += [it_quot.eq(quot_next), it_rem.eq(Mux(fits, trial - total, trial)),
                                 it_step.eq(it_step + 1)]
                    with m.If(it_step == prob_bits):
                        m.next = "ERR"
                with m.State("ERR"):
                    neg, mag = error_terms(it_quot, count)
                    m.d.sync += [o_neg.eq(neg), o_mag.eq(mag)]
                    m.next = "SCALE"
                with m.State("SCALE"):
                    m.d.sync += o_rounded.eq(scaled_magnitude(o_mag))
                    m.next = "SIGN"
                with m.State("SIGN"):
                    m.d.sync += [self.u.valid.eq(1), *signed_error(o_neg, o_rounded, count)]
                    m.next = "OUT"
                with m.State("OUT"):
                    with m.If(self.u.ready):
                        m.d.sync += self.u.valid.eq(0)
                        with m.If(self.u.payload.last):
                            m.next = "WAIT"
                        with m.Else():
                            m.d.sync += count.eq(count + 1)
                            m.next = "FETCH"
            return m

        # Restoring divider: stage j decides quotient bit prob_bits - j. The
        # remainder stays below ``total``; ``total`` is constant during the pass.
        valid, index, rem, quot = feed_valid, feed_index, e_rd.data, None
        for j in range(prob_bits + 1):
            trial = Signal(sum_bits + 1, name=f"trial_{j}")
            m.d.comb += trial.eq(rem if j == 0 else Cat(0, rem))
            fits = trial >= total
            nvalid = Signal(name=f"div_valid_{j}")
            nindex = Signal(range(n_classes), name=f"div_index_{j}")
            nquot = Signal(j + 1, name=f"div_quot_{j}")
            with m.If(adv):
                m.d.sync += [
                    nvalid.eq(valid), nindex.eq(index),
                    nquot.eq(fits if quot is None else Cat(fits, quot)),
                ]
            if j < prob_bits:
                nrem = Signal(sum_bits, name=f"div_rem_{j}")
                with m.If(adv):
                    m.d.sync += nrem.eq(Mux(fits, trial - total, trial))
                rem = nrem
            valid, index, quot = nvalid, nindex, nquot

        # Output stages: the label subtraction, the scaling and rounding, and the sign, a
        # register each (together they were the slowest paths of the core on an ECP5).
        o_valid, o_neg = Signal(), Signal()
        o_mag = Signal(prob_bits + 1)
        o_index = Signal(range(n_classes))
        r_valid, r_neg = Signal(), Signal()
        r_rounded = Signal(cfg.error_bits - 1)
        r_index = Signal(range(n_classes))
        neg, mag = error_terms(quot, index)
        with m.If(adv):
            m.d.sync += [o_valid.eq(valid), o_neg.eq(neg), o_mag.eq(mag), o_index.eq(index),
                         r_valid.eq(o_valid), r_neg.eq(o_neg), r_rounded.eq(scaled_magnitude(o_mag)),
                         r_index.eq(o_index),
                         self.u.valid.eq(r_valid), *signed_error(r_neg, r_rounded, r_index)]
        return m
