"""HostBridge: the framed UART protocol of ``docs/protocol.md`` in front of a SpikeGradCore.

A request is received completely into a buffer and checked (CRC, command,
length, every field and every value) before anything is executed, so a
malformed, truncated or unknown frame gets an error response and changes
nothing. An idle gap of ``timeout_cycles`` inside a frame drops it (TIMEOUT
response) and the parser hunts for the next sync byte again.

All codes, field layouts and sizes come from :mod:`spikecore.host.protocol`.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.spikegrad.layouts import (COUNTER_BITS, Op, command_layout, counters_layout, flags_layout,
                                   result_layout, spike_layout, weight_access_layout)
from spikecore.config import ExodusConfig, SpikeGradConfig
from spikecore.config.exodus import ExodusOp
from spikecore.host.protocol import (CORE_FLAGS, EX_ACCESS_HEADER, EX_FLAGS, EX_RUN_LEN, EX_STATUS_LEN, EX_STATUS_REQ_LEN,
                                     MAX_LEN, READ_WEIGHTS_LEN, REG_BYTES, SAMPLE_HEADER, STATUS_LEN, SYNC_REQUEST,
                                     SYNC_RESPONSE, WRITE_HEADER, Cmd, Kind, Reg, RunFlag, Status, WireFormat,
                                     check_exodus_wire, exodus_backprop, exodus_targets, identify_payload)

from rtl.skid import RegisterSlice

from .crc import CRC16
from .uart import UARTRx, UARTTx, check_divisor

#: Parser states that wait for bytes of a frame (the timeout runs in them).
RECEIVE_STATES = ("CMD", "LEN", "PAYLOAD", "RCRC1", "RCRC2")
HEADER_BYTES = 8   # payload bytes kept in registers for field decoding


def core_ports(cfg: SpikeGradConfig) -> dict:
    """The ports of a SpikeGradCore, from the core's side (what :class:`rtl.host.standin.StandInCore` has)."""
    return {
        "cmd": In(stream.Signature(command_layout(cfg))),
        "spikes": In(stream.Signature(spike_layout(cfg))),
        "result": Out(stream.Signature(result_layout(cfg))),
        "weights": In(stream.Signature(weight_access_layout(cfg))),
        "weights_rdata": Out(stream.Signature(signed(cfg.weight_bits))),
        "error_shift": In(range(cfg.error_bits - 1), init=cfg.error_shift),
        "flags": Out(flags_layout()),
        "clear_flags": In(1),
        "counters": Out(counters_layout()),
        "busy": Out(1),
    }


def bridge_signature(cfg: SpikeGradConfig) -> dict:
    """Core-facing ports of :class:`HostBridge`: the core's ports flipped (``busy`` becomes ``core_busy``)."""
    return {("core_busy" if name == "busy" else name): member.flip() for name, member in core_ports(cfg).items()}


def read_states(m, prefix, *, request, rdata, shift, k, nbytes, index, remaining, send, crc_on):
    """FSM states ``{prefix}_REQ``, ``_WAIT``, ``_SEND`` that answer a read: request element ``index``
    (``request()`` drives the request and returns its ``ready``), take it from the ``rdata`` stream into
    ``shift``, send its ``nbytes`` bytes (LSB first, ``k`` counts them), then the next element until
    ``remaining`` reaches 0, then the CRC (``TCRC1``)."""
    with m.State(f"{prefix}_REQ"):
        with m.If(request()):
            m.next = f"{prefix}_WAIT"
    with m.State(f"{prefix}_WAIT"):
        m.d.comb += [rdata.ready.eq(1)]
        with m.If(rdata.valid):
            m.d.sync += [shift.eq(rdata.payload), k.eq(0)]
            m.next = f"{prefix}_SEND"
    with m.State(f"{prefix}_SEND"):
        m.d.comb += crc_on.eq(1)
        with m.If(send(shift[:8])):
            m.d.sync += [shift.eq(shift >> 8), k.eq(k + 1)]
            with m.If(k == nbytes - 1):
                m.d.sync += [index.eq(index + 1), remaining.eq(remaining - 1)]
                m.next = f"{prefix}_REQ"
                with m.If(remaining == 1):
                    m.next = "TCRC1"


class HostBridge(wiring.Component):
    """UART framed-protocol bridge to a SpikeGradCore.

    Parameters
    ----------
    cfg : the core's configuration.
    divisor : clock cycles per UART bit.
    timeout_cycles : idle cycles inside a frame after which it is dropped.
    max_payload : request buffer in bytes (default :meth:`WireFormat.of`).
    rx_fifo_depth : bytes buffered between the receiver and the parser.
    exodus : the :class:`ExodusConfig` of an attached :class:`rtl.exodus.network.ExodusNetwork`, or None
        (then the EX_* commands are unknown and nothing of them is built).
    registered_walk_end : keep the value walks' end test, the next walk address and the command and
        length checks in registers a cycle ahead, the response length minus one a cycle behind, and
        FIELDS' response in registers of its own, sent from a FIELDS_RESP state a cycle later (a few
        flip-flops more; the ECP5 builds use it, the full iCE40 has no room for it). Same responses
        either way.

    Members
    -------
    rx : In(1), UART receive line.  tx : Out(1), UART transmit line.
    cmd, spikes, weights : Out streams to the core; result, weights_rdata : In streams.
    error_shift : Out, the run-time register.  clear_flags : Out strobe.
    flags, counters, core_busy : In, from the core.
    busy : Out(1), executing or answering a frame.  receiving : Out(1), inside a frame.
    error : Out(1), the last response was an error.
    ex_access, ex_cmd : Out streams to the EXODUS network; ex_rdata : In stream; ex_busy, ex_status : In;
        ex_status_layer : Out (only with ``exodus``; :func:`rtl.exodus.network.network_ports` flipped).
    """

    def __init__(self, cfg: SpikeGradConfig, *, divisor: int, timeout_cycles: int,
                 max_payload: int | None = None, rx_fifo_depth: int = 64, exodus: ExodusConfig | None = None,
                 registered_walk_end: bool = False):
        if not isinstance(cfg, SpikeGradConfig):
            raise TypeError(f"cfg must be a SpikeGradConfig, not {cfg!r}")
        if isinstance(timeout_cycles, bool) or not isinstance(timeout_cycles, int) or timeout_cycles < 16:
            raise ValueError(f"timeout_cycles must be an integer >= 16, not {timeout_cycles!r}")
        self._cfg = cfg
        self._divisor = divisor
        self._timeout = timeout_cycles
        self._fmt = WireFormat.of(cfg, max_payload)
        self._rx_fifo_depth = rx_fifo_depth
        if not isinstance(registered_walk_end, bool):
            raise TypeError(f"registered_walk_end must be a bool, not {registered_walk_end!r}")
        self._registered_walk_end = registered_walk_end
        check_divisor(divisor)
        ex_ports = {}
        if exodus is not None:
            if not isinstance(exodus, ExodusConfig):
                raise TypeError(f"exodus must be an ExodusConfig or None, not {exodus!r}")
            from rtl.exodus.network import network_ports
            check_exodus_wire(exodus, self._fmt.max_payload)
            ex_ports = {f"ex_{name}": member.flip() for name, member in network_ports(exodus).items()}
        self._exodus = exodus
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "busy": Out(1), "receiving": Out(1), "error": Out(1),
            **bridge_signature(cfg), **ex_ports,
        })

    @property
    def cfg(self) -> SpikeGradConfig:
        return self._cfg

    @property
    def exodus(self) -> ExodusConfig | None:
        return self._exodus

    @property
    def wire_format(self) -> WireFormat:
        return self._fmt

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def timeout_cycles(self) -> int:
        return self._timeout

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self._cfg, self._fmt
        wb, cb, vb, mp = fmt.weight_bytes, fmt.count_bytes, fmt.value_bytes, fmt.max_payload
        L, n_in, n_cls = cfg.num_layers, cfg.layer_sizes[0], cfg.num_classes

        m.submodules.uart_rx = urx = UARTRx(self._divisor)
        m.submodules.uart_tx = utx = UARTTx(self._divisor)
        m.submodules.rx_fifo = rxf = fifo.SyncFIFOBuffered(width=8, depth=self._rx_fifo_depth)
        m.submodules.rx_crc = rcrc = CRC16()
        m.submodules.tx_crc = tcrc = CRC16()
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # ---------------------------------------------------- receive path
        rx_framing = Signal()
        rx_overflow = Signal()
        m.d.comb += [rxf.w_data.eq(urx.data.payload), rxf.w_en.eq(urx.data.valid), urx.data.ready.eq(1)]
        with m.If(urx.data.valid & ~rxf.w_rdy | urx.overrun):
            m.d.sync += rx_overflow.eq(1)
        with m.If(urx.framing_error):
            m.d.sync += rx_framing.eq(1)

        # The buffers have synchronous read ports (block RAM on FPGAs; asynchronous
        # reads would become flip-flops and wide multiplexers on an iCE40). The request
        # buffer and the IDENTIFY ROM are addressed with the *next* value of their index
        # register (``pos_n``, ``pidx_n``), so their data belongs to the index register's
        # current value; the sample counts are read through a prefetch (see EXPAND).
        m.submodules.buf = buf = memory.Memory(shape=8, depth=mp, init=[])
        buf_w = buf.write_port()
        buf_r = buf.read_port()
        m.submodules.counts = cmem = memory.Memory(shape=signed(8 * cb), depth=max(2, n_in), init=[])
        cnt_w = cmem.write_port()
        cnt_r = cmem.read_port()
        ex = self._exodus
        idp = identify_payload(cfg, fmt, ex)
        m.submodules.id_rom = rom = memory.Memory(shape=8, depth=len(idp), init=list(idp))
        rom_r = rom.read_port()

        cmd_r = Signal(8)
        len_r = Signal(8)
        len_m1 = Signal(8)      # len_r - 1, stored with it: the PAYLOAD state's last-byte test is then a compare
        idx = Signal(8)
        too_long = Signal()
        hdr = Array(Signal(8, name=f"hdr{k}") for k in range(HEADER_BYTES))
        # The receive timeout: ``timer`` counts idle cycles inside a frame. ``timer_last``
        # (``timer == timeout - 1``) is registered from the timer's next value, so the
        # receive states' decisions see one flip-flop instead of a wide comparison.
        timer = Signal(range(self._timeout + 1))
        timer_n = Signal.like(timer)
        timer_last = Signal(init=int(self._timeout == 1))
        m.d.comb += timer_n.eq(timer)
        m.d.sync += [timer.eq(timer_n), timer_last.eq(timer_n == self._timeout - 1)]
        byte = rxf.r_data
        pop = Signal()
        m.d.comb += [rxf.r_en.eq(pop), rcrc.data.eq(byte), rcrc.en.eq(pop & rxf.r_rdy)]

        # ------------------------------------------------------ fields
        f_layer, f_kind = hdr[0], hdr[1]
        f_row, f_start, f_count = Cat(hdr[2], hdr[3]), Cat(hdr[4], hdr[5]), Cat(hdr[6], hdr[7])
        f_reg, f_regval = hdr[0], Cat(*(hdr[1 + k] for k in range(REG_BYTES)))
        f_label, f_sstart = hdr[0], Cat(hdr[0], hdr[1])
        fan_in = Array(Const(cfg.layer_sizes[l], 16) for l in range(L))
        fan_out = Array(Const(cfg.layer_sizes[l + 1], 16) for l in range(L))
        layer_ok = f_layer < L
        kind_w_c = f_kind == Kind.WEIGHTS
        kind_ok = kind_w_c | ((f_kind == Kind.BIAS) & int(cfg.bias))
        lidx_c = Mux(layer_ok, f_layer, 0)
        row_ok = Mux(kind_w_c, f_row < fan_out[lidx_c], f_row == 0)
        # The header is complete three cycles before FIELDS (RCRC1, RCRC2, CHECK) and
        # does not change until the next frame, so its decodes are registered: layer
        # index -> size table -> comparison is long, and it would otherwise sit in
        # front of every response decision (FIELDS, WALK).
        kind_w, lidx = Signal(), Signal(range(max(2, L)))
        w_limit, target_ok = Signal(16), Signal()
        m.d.sync += [kind_w.eq(kind_w_c), lidx.eq(lidx_c), target_ok.eq(layer_ok & kind_ok & row_ok),
                     w_limit.eq(Mux(kind_w_c, fan_in[lidx_c], fan_out[lidx_c]))]   # length of the addressed vector
        # FIELDS' range checks, one register further (they use w_limit and target_ok), so
        # every FIELDS decision starts from a register: the adder and comparator chains of
        # these checks were the iCE40's critical path in front of the response registers.
        bad_write_w, bad_read_w, bad_sample = Signal(), Signal(), Signal()
        bad_reg, bad_write_reg, bad_label = Signal(), Signal(), Signal()
        m.d.sync += [
            bad_write_w.eq(~target_ok | (f_start >= w_limit)),
            bad_read_w.eq(~target_ok | (f_count == 0) | (f_count > fmt.max_read) | (f_start + f_count > w_limit)),
            bad_sample.eq(f_sstart >= n_in),
            bad_reg.eq(f_reg != Reg.ERROR_SHIFT),
            bad_write_reg.eq((f_reg != Reg.ERROR_SHIFT) | (f_regval > cfg.error_bits - 2)),
            bad_label.eq(f_label >= n_cls),
        ]

        # ------------------------------------------------------ response state
        status_r = Signal(8)
        plen = Signal(8)
        plen_m1 = Signal(8)     # plen - 1, stored with it (STATIC's last-byte test is then a compare)
        hidx = Signal(2)
        pidx = Signal(8)
        pidx_n = Signal(8)
        m.d.comb += pidx_n.eq(pidx)
        m.d.sync += pidx.eq(pidx_n)
        # The identify ROM is read only in STATIC; elsewhere it is addressed at 0, which is
        # where STATIC starts (HDR, which always precedes it, zeroes pidx), keeping the
        # response decisions of every other state out of the ROM's address path and out
        # of pidx's enable.
        in_static = Signal()
        m.d.comb += rom_r.addr.eq(Mux(in_static, pidx_n, 0))
        # READ_STATUS snapshots the flag bytes and the frame counters; the core's
        # counters are sent live (they only change while the core runs, and it is
        # idle while a response is sent), which saves a 224-bit copy on small FPGAs.
        # EX_STATUS snapshots its whole payload when the frame is accepted: an engine
        # started with NOWAIT keeps counting while the bytes go out, and a live copy
        # would mix bytes of different cycles.
        snapshot_bits = 16 + 2 * COUNTER_BITS
        if ex is not None:
            snapshot_bits = max(snapshot_bits, 8 * EX_STATUS_LEN)
        snapshot = Signal(snapshot_bits)
        status_bytes = Cat(snapshot[:16], self.counters.as_value(), snapshot[16:16 + 2 * COUNTER_BITS])
        assert len(status_bytes) == 8 * STATUS_LEN
        # STATIC sends byte ``pidx`` of a status, register or EX_STATUS payload from a register
        # loaded a cycle earlier: the byte multiplexers (up to 38 ways) then end there instead
        # of running on into the transmit path. ``static_fresh``: pidx did not move last cycle,
        # so ``static_r`` is its byte (after a byte goes out, the next one waits a cycle).
        reg_bytes = snapshot[:8 * REG_BYTES]   # REG_BYTES == 4: pidx[:2] selects the byte
        static = Mux(cmd_r == Cmd.READ_REG, reg_bytes.word_select(pidx[:2], 8), status_bytes.word_select(pidx, 8))
        if ex is not None:
            static = Mux(cmd_r == Cmd.EX_STATUS, snapshot.word_select(pidx, 8), static)
        static_r, static_fresh = Signal(8), Signal()
        m.d.sync += [static_r.eq(static), static_fresh.eq(pidx_n == pidx)]
        error_shift = Signal.like(self.error_shift)
        m.d.comb += self.error_shift.eq(error_shift)
        frames_ok = Signal(COUNTER_BITS)
        frames_err = Signal(COUNTER_BITS)
        last_error = Signal()
        m.d.comb += self.error.eq(last_error)

        tx_byte = Signal(8)
        tx_send = Signal()      # offer tx_byte this cycle
        tx_fire = Signal()
        crc_on = Signal()
        # Each response byte goes through a register slice on its way to the
        # transmitter: the byte multiplexers (status and snapshot bytes, ROM, header
        # fields) then end at the slice's register instead of running on into the
        # transmitter's shift register, and the FSM sees a registered ``ready``. A
        # byte takes 10 bit times on the line, so the slice's half rate costs nothing.
        m.submodules.tx_slice = txs = RegisterSlice(8)
        wiring.connect(m, txs.o, utx.data)
        m.d.comb += [txs.i.payload.eq(tx_byte), txs.i.valid.eq(tx_send),
                     tx_fire.eq(tx_send & txs.i.ready),
                     tcrc.data.eq(tx_byte), tcrc.en.eq(tx_fire & crc_on)]

        # ------------------------------------------------------ walk / read / run state
        commit = Signal()
        pos = Signal(8)
        pos_n = Signal(8)
        m.d.comb += pos_n.eq(pos)
        m.d.sync += pos.eq(pos_n)
        # ``pos == len_r``, the walks' end test. With ``registered_walk_end`` (ECP5) it is a
        # register loaded from pos's next value (len_r does not change inside a frame's
        # walk), so the compare does not sit in front of the next address (pos_n), which
        # is the request buffer's read address.
        # Likewise ``pos + 1``, the walks' next address: a register loaded with pos's next value
        # plus one, so no carry chain sits between the state machine and the buffer's address.
        if self._registered_walk_end:
            walk_end = Signal()
            pos_inc = Signal(8)
            m.d.sync += [walk_end.eq(pos_n == len_r), pos_inc.eq(pos_n + 1)]
        else:
            walk_end = pos == len_r
            pos_inc = pos + 1
        widx = Signal(16)
        kbyte = Signal(range(8))
        sh = Signal(8 * max(wb, vb, cb))
        acc_w = Signal(8 * wb)
        acc_c = Signal(8 * cb)
        remaining = Signal(16)
        # registered like the header decodes: the command byte is stored long before WALK
        is_w = Signal()
        m.d.sync += is_w.eq(cmd_r == Cmd.WRITE_WEIGHTS)
        acc_w_next = Cat(acc_w[8:], buf_r.data) if wb > 1 else buf_r.data
        acc_c_next = Cat(acc_c[8:], buf_r.data) if cb > 1 else buf_r.data
        val_w, val_c = acc_w_next.as_signed(), acc_c_next.as_signed()
        lim_w = Mux(kind_w, cfg.weight_limit, cfg.bias_limit)
        bad_value = Mux(is_w, (val_w > lim_w) | (val_w < -lim_w),
                        (val_c > cfg.input_max) | (val_c < -cfg.input_max))
        walk_limit = Signal(16)
        m.d.sync += walk_limit.eq(Mux(is_w, w_limit, n_in))
        walk_base = Mux(is_w, WRITE_HEADER, SAMPLE_HEADER)
        walk_last_byte = Mux(is_w, kbyte == wb - 1, kbyte == cb - 1)
        m.d.comb += buf_r.addr.eq(pos_n)

        # Sample expansion reads the count buffer through a two-stage prefetch
        # pipeline (address -> RAM output -> register) so that no path runs from the
        # RAM output back into its own read address: the block-RAM clock-to-output
        # time alone is most of a 100 MHz cycle on an ECP5. ``stall`` (computed from
        # registers only) freezes both stages while a spike waits for the core.
        rnd = Signal(range(cfg.input_max + 2))
        any_r = Signal()
        h_valid, h_idx, h_neg = Signal(), Signal(range(n_in)), Signal()
        ra = Signal(range(n_in))                        # next count address to read
        v1, i1 = Signal(), Signal(range(n_in))          # the RAM output holds count i1
        v2, i2 = Signal(), Signal(range(n_in))          # registered count i2
        c2 = Signal(signed(8 * cb))
        cand = Signal()                                 # |c2| >= rnd, for the rnd in force when i2 is taken
        stall = Signal()
        expanding = Signal()                            # in state EXPAND (a register, see below)
        accept = Signal()
        round_end = Signal()                            # rnd steps up at this clock edge
        c1 = cnt_r.data
        m.d.comb += [cnt_r.addr.eq(ra), cnt_r.en.eq(expanding & ~stall)]
        with m.If(expanding & ~stall):
            m.d.sync += [v1.eq(1), i1.eq(ra), ra.eq(Mux(ra == n_in - 1, 0, ra + 1)),
                         v2.eq(v1), i2.eq(i1), c2.eq(c1),
                         cand.eq(Mux(c1 < 0, -c1, c1) >= Mux(round_end, rnd + 1, rnd))]
        first = Signal()
        pred = Signal(8)
        last_beat = Signal()
        rst_wait = Signal(2)

        # With the registered walk bookkeeping (ECP5) plen_m1 follows plen a cycle later
        # (STATIC, its only reader, comes four header bytes after a response starts), so no
        # response decision ends in a carry chain.
        if self._registered_walk_end:
            m.d.sync += plen_m1.eq(plen - 1)

        def respond(status, length=0):
            if self._registered_walk_end:
                m.d.sync += [status_r.eq(status), plen.eq(length), hidx.eq(0)]
            else:
                m.d.sync += [status_r.eq(status), plen.eq(length), plen_m1.eq(length - 1), hidx.eq(0)]
            m.next = "HDR"

        # FIELDS' responses. With ``registered_walk_end`` (ECP5) FIELDS only decides: status
        # and length go into registers of their own and FIELDS_RESP responds from them a
        # cycle later, loading the snapshot there too (selected by registered command
        # decodes). The command byte's decode and the checks then end at these few
        # registers instead of running on into the response registers, which every
        # responding state loads (their input multiplexers sit far from the decode).
        if self._registered_walk_end:
            f_status, f_plen = Signal(8), Signal(8)

            def respond_fields(status, length=0):
                m.d.sync += [f_status.eq(status), f_plen.eq(length)]
                m.next = "FIELDS_RESP"
        else:
            respond_fields = respond

        def send(value):
            """Offer ``value`` to the transmitter; returns the condition that it is taken this cycle.

            That is the slice's ``ready`` (a register) alone, not ``tx_fire``: the caller's
            state offers a byte unconditionally, and ``tx_send`` is an OR over every sending
            state, whose decode would otherwise sit in front of each of their transitions."""
            m.d.comb += [tx_byte.eq(value), tx_send.eq(1)]
            return txs.i.ready

        def weight_access(write, data=0):
            p = self.weights.payload
            m.d.comb += [self.weights.valid.eq(1), p.write.eq(write), p.bias.eq(~kind_w), p.layer.eq(lidx),
                         p.row.eq(Mux(kind_w, f_row, widx)), p.col.eq(Mux(kind_w, widx, 0)), p.data.eq(data)]

        if ex is not None:
            exodus_fields, exodus_states, ex_status_bytes = self._exodus_logic(
                m, hdr=hdr, cmd_r=cmd_r, len_r=len_r, pos=pos, pos_n=pos_n, pos_inc=pos_inc, walk_end=walk_end,
                buf_r=buf_r, remaining=remaining, respond=respond, respond_fields=respond_fields, send=send,
                crc_on=crc_on, snapshot=snapshot)

        exact = {Cmd.IDENTIFY: 0, Cmd.READ_WEIGHTS: READ_WEIGHTS_LEN, Cmd.WRITE_REG: 1 + REG_BYTES,
                 Cmd.READ_REG: 1, Cmd.INFER: 0, Cmd.TRAIN: 1, Cmd.READ_STATUS: 0, Cmd.CLEAR_FLAGS: 0,
                 Cmd.RESET: 0}
        minimum = {}
        if ex is not None:
            exact.update({Cmd.EX_READ: EX_ACCESS_HEADER, Cmd.EX_RUN: EX_RUN_LEN,
                          Cmd.EX_STATUS: EX_STATUS_REQ_LEN})
            minimum[Cmd.EX_WRITE] = EX_ACCESS_HEADER
        # Command and length checks, registered: command and length are known from the
        # LEN state on, at least two cycles (RCRC1, RCRC2) before CHECK uses them, and the
        # command decode and the length comparisons no longer sit in front of CHECK's
        # transitions.
        unknown_cmd, bad_len = Signal(init=1), Signal()
        unknown_c, bad_len_c = Signal(), Signal()
        # each command's length test
        tests = ([(cmd, len_r != n) for cmd, n in exact.items()]
                 + [(cmd, (len_r < base + eb) | ((len_r - base)[:8] & (eb - 1)).bool())
                    for cmd, base, eb in ((Cmd.WRITE_WEIGHTS, WRITE_HEADER, wb), (Cmd.LOAD_SAMPLE, SAMPLE_HEADER, cb))]
                 + [(cmd, len_r < n) for cmd, n in minimum.items()])
        assert len({cmd for cmd, _ in tests}) == len(tests)   # (a Switch takes the first case)
        if self._registered_walk_end:
            # Two register stages (RCRC1 and RCRC2 both lie between LEN and CHECK): each
            # command's decode and its length test are registered apart, then combined.
            is_cmd = Signal(len(tests))
            index = {cmd: k for k, (cmd, _) in enumerate(tests)}
            len_bad = Signal(len(tests))
            m.d.sync += [is_cmd.eq(Cat(cmd_r == cmd for cmd, _ in tests)), len_bad.eq(Cat(t for _, t in tests))]
            m.d.comb += [unknown_c.eq(~is_cmd.any()), bad_len_c.eq((is_cmd & len_bad).any())]
        else:
            with m.Switch(cmd_r):
                for cmd, t in tests:
                    with m.Case(cmd):
                        m.d.comb += bad_len_c.eq(t)
                with m.Default():
                    m.d.comb += unknown_c.eq(1)
        m.d.sync += [unknown_cmd.eq(unknown_c), bad_len.eq(bad_len_c)]

        flags = Cat(*(getattr(self.flags, k) for k in CORE_FLAGS))
        status_snapshot = Cat(flags, Const(0, 8 - len(CORE_FLAGS)), rx_framing, rx_overflow, Const(0, 6),
                              frames_ok, frames_err)

        with m.FSM() as fsm:
            # ============================================== receive
            with m.State("HUNT"):
                m.d.comb += [pop.eq(1), timer_n.eq(0)]
                with m.If(rxf.r_rdy & (byte == SYNC_REQUEST)):
                    m.d.comb += rcrc.clear.eq(1)
                    m.d.sync += [cmd_r.eq(0), too_long.eq(0)]
                    m.next = "CMD"
            for name in RECEIVE_STATES:
                with m.State(name):
                    m.d.comb += pop.eq(1)
                    with m.If(rxf.r_rdy):
                        m.d.comb += timer_n.eq(0)
                    with m.Elif(timer_last):
                        respond(Status.TIMEOUT)
                    with m.Else():
                        m.d.comb += timer_n.eq(timer + 1)
                    with m.If(rxf.r_rdy):
                        if name == "CMD":
                            m.d.sync += cmd_r.eq(byte)
                            m.next = "LEN"
                        elif name == "LEN":
                            m.d.sync += [len_r.eq(byte), len_m1.eq(byte - 1), idx.eq(0), too_long.eq(byte > mp)]
                            m.next = "PAYLOAD"
                            with m.If(byte == 0):
                                m.next = "RCRC1"
                        elif name == "PAYLOAD":
                            m.d.comb += [buf_w.addr.eq(idx), buf_w.data.eq(byte), buf_w.en.eq(idx < mp)]
                            with m.If(idx < HEADER_BYTES):
                                m.d.sync += hdr[idx].eq(byte)
                            m.d.sync += idx.eq(idx + 1)
                            with m.If(idx == len_m1):
                                m.next = "RCRC1"
                        elif name == "RCRC1":
                            m.next = "RCRC2"
                        else:
                            m.next = "CHECK"

            # ============================================== check the whole frame
            with m.State("CHECK"):
                # Point the buffer at the first value now (the command byte is long known),
                # so FIELDS' decisions do not reach the buffer's read address.
                m.d.comb += pos_n.eq(walk_base)
                with m.If(rcrc.crc != 0):
                    respond(Status.BAD_CRC)
                with m.Elif(too_long):
                    respond(Status.BAD_LENGTH)
                with m.Elif(unknown_cmd):
                    respond(Status.UNKNOWN_COMMAND)
                with m.Elif(bad_len):
                    respond(Status.BAD_LENGTH)
                with m.Else():
                    m.next = "FIELDS"

            with m.State("FIELDS"):
                m.d.sync += [commit.eq(0), kbyte.eq(0)]
                with m.Switch(cmd_r):
                    with m.Case(Cmd.IDENTIFY):
                        respond_fields(Status.OK, len(idp))
                    with m.Case(Cmd.WRITE_WEIGHTS):
                        with m.If(bad_write_w):
                            respond_fields(Status.OUT_OF_RANGE)
                        with m.Else():
                            m.d.sync += widx.eq(f_start)
                            m.next = "WALK"
                    with m.Case(Cmd.LOAD_SAMPLE):
                        with m.If(bad_sample):
                            respond_fields(Status.OUT_OF_RANGE)
                        with m.Else():
                            m.d.sync += widx.eq(f_sstart)
                            m.next = "WALK"
                    with m.Case(Cmd.READ_WEIGHTS):
                        with m.If(bad_read_w):
                            respond_fields(Status.OUT_OF_RANGE)
                        with m.Else():
                            m.d.sync += [widx.eq(f_start), remaining.eq(f_count)]
                            respond_fields(Status.OK, (f_count * wb)[:8])
                    with m.Case(Cmd.WRITE_REG):
                        with m.If(bad_write_reg):
                            respond_fields(Status.OUT_OF_RANGE)
                        with m.Else():
                            m.d.sync += error_shift.eq(f_regval)
                            respond_fields(Status.OK)
                    with m.Case(Cmd.READ_REG):
                        with m.If(bad_reg):
                            respond_fields(Status.OUT_OF_RANGE)
                        with m.Else():
                            if not self._registered_walk_end:
                                m.d.sync += snapshot.eq(error_shift)   # bytes 0..REG_BYTES-1, rest zero
                            respond_fields(Status.OK, REG_BYTES)
                    with m.Case(Cmd.INFER):
                        m.next = "RUN_CMD"
                    with m.Case(Cmd.TRAIN):
                        with m.If(bad_label):
                            respond_fields(Status.OUT_OF_RANGE)
                        with m.Else():
                            m.next = "RUN_CMD"
                    with m.Case(Cmd.READ_STATUS):
                        if not self._registered_walk_end:
                            m.d.sync += snapshot.eq(status_snapshot)
                        respond_fields(Status.OK, STATUS_LEN)
                    with m.Case(Cmd.CLEAR_FLAGS):
                        if not self._registered_walk_end:
                            m.d.comb += self.clear_flags.eq(1)
                            m.d.sync += [rx_framing.eq(0), rx_overflow.eq(0)]
                        respond_fields(Status.OK)
                    with m.Case(Cmd.RESET):
                        m.d.sync += rst_wait.eq(3)
                        m.next = "RST_CMD"
                    if ex is not None:
                        exodus_fields()

            if self._registered_walk_end:
                with m.State("FIELDS_RESP"):
                    # any command's snapshot may be loaded: only STATIC reads it, and only
                    # after a response of READ_REG, READ_STATUS or EX_STATUS
                    snap = Mux(is_cmd[index[Cmd.READ_REG]], error_shift, status_snapshot)
                    if ex is not None:
                        snap = Mux(is_cmd[index[Cmd.EX_STATUS]], ex_status_bytes, snap)
                    m.d.sync += snapshot.eq(snap)
                    # CLEAR_FLAGS clears here too, from the registered decode: the strobe reaches
                    # flag registers all over the device
                    with m.If(is_cmd[index[Cmd.CLEAR_FLAGS]]):
                        m.d.comb += self.clear_flags.eq(1)
                        m.d.sync += [rx_framing.eq(0), rx_overflow.eq(0)]
                    respond(f_status, f_plen)

            # ============================================== validate, then commit, a value list
            with m.State("WALK"):
                if self._registered_walk_end:
                    # the next address whatever the walk decides at its end (after the commit
                    # pass the response follows and pos is not read again), so only the walk's
                    # end register, not the commit flag, reaches the buffer's address
                    m.d.comb += pos_n.eq(Mux(walk_end, walk_base, pos_inc))
                with m.If(walk_end):
                    with m.If(commit):
                        respond(Status.OK)
                    with m.Else():
                        if not self._registered_walk_end:
                            m.d.comb += pos_n.eq(walk_base)
                        m.d.sync += [commit.eq(1), kbyte.eq(0),
                                     widx.eq(Mux(is_w, f_start, f_sstart))]
                with m.Else():
                    if not self._registered_walk_end:
                        m.d.comb += pos_n.eq(pos_inc)
                    m.d.sync += [acc_w.eq(acc_w_next), acc_c.eq(acc_c_next),
                                 kbyte.eq(Mux(walk_last_byte, 0, kbyte + 1))]
                    with m.If(walk_last_byte):
                        with m.If(~commit):
                            with m.If((widx >= walk_limit) | bad_value):
                                respond(Status.OUT_OF_RANGE)
                            with m.Else():
                                m.d.sync += widx.eq(widx + 1)
                        with m.Elif(is_w):
                            m.d.sync += sh.eq(val_w)
                            m.next = "PUSH"
                        with m.Else():
                            m.d.comb += [cnt_w.addr.eq(widx), cnt_w.data.eq(val_c), cnt_w.en.eq(1)]
                            m.d.sync += widx.eq(widx + 1)
            with m.State("PUSH"):
                weight_access(1, sh)
                with m.If(self.weights.ready):
                    m.d.sync += widx.eq(widx + 1)
                    m.next = "WALK"

            # ============================================== run a sample
            with m.State("RUN_CMD"):
                m.d.comb += [self.cmd.valid.eq(1),
                             self.cmd.payload.op.eq(Mux(cmd_r == Cmd.TRAIN, Op.TRAIN, Op.INFER)),
                             self.cmd.payload.label.eq(Mux(cmd_r == Cmd.TRAIN, f_label, 0))]
                with m.If(self.cmd.ready):
                    m.d.sync += [rnd.eq(1), any_r.eq(0), h_valid.eq(0), ra.eq(0), v1.eq(0), v2.eq(0),
                                 expanding.eq(1)]
                    m.next = "EXPAND"
            with m.State("EXPAND"):       # the expansion itself runs on ``expanding`` (below)
                # Leave once ``expanding`` has dropped (a cycle after the last spike went out):
                # the register, not the combinational end-of-expansion condition, so that the
                # core's ``ready`` and the prefetch pipeline stay out of the state register's enable.
                with m.If(~expanding):
                    m.next = "EXPAND_LAST"
            with m.State("EXPAND_LAST"):
                sp = self.spikes.payload
                m.d.comb += [self.spikes.valid.eq(1), sp.index.eq(Mux(h_valid, h_idx, 0)),
                             sp.negative.eq(h_neg & h_valid), sp.last.eq(1), sp.nop.eq(~h_valid)]
                with m.If(self.spikes.ready):
                    m.d.sync += first.eq(1)
                    respond(Status.OK, fmt.result_len(cfg))
            with m.State("RES_WAIT"):
                m.d.comb += [self.result.ready.eq(1)]
                with m.If(self.result.valid):
                    r = self.result.payload
                    m.d.sync += [sh.eq(r.value), pred.eq(r.prediction), last_beat.eq(r.last), kbyte.eq(0)]
                    m.next = "RES_SEND"
                    with m.If(first):
                        m.next = "RES_PRED"
            with m.State("RES_PRED"):
                m.d.comb += crc_on.eq(1)
                with m.If(send(pred)):
                    m.d.sync += first.eq(0)
                    m.next = "RES_SEND"
            with m.State("RES_SEND"):
                m.d.comb += crc_on.eq(1)
                with m.If(send(sh[:8])):
                    m.d.sync += [sh.eq(sh >> 8), kbyte.eq(kbyte + 1)]
                    with m.If(kbyte == vb - 1):
                        m.next = "RES_WAIT"
                        with m.If(last_beat):
                            m.next = "TCRC1"

            if ex is not None:
                exodus_states()

            # ============================================== reset the core
            with m.State("RST_CMD"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.op.eq(Op.RESET)]
                with m.If(self.cmd.ready):
                    m.next = "RST_WAIT"
            with m.State("RST_WAIT"):
                with m.If(rst_wait != 0):
                    m.d.sync += rst_wait.eq(rst_wait - 1)
                with m.Elif(~self.core_busy):
                    respond(Status.OK)

            # ============================================== respond
            with m.State("HDR"):
                m.d.comb += [crc_on.eq(hidx != 0), pidx_n.eq(0)]
                with m.If(send(Array([Const(SYNC_RESPONSE, 8), status_r, cmd_r, plen])[hidx])):
                    m.d.sync += hidx.eq(hidx + 1)
                    with m.If(hidx == 0):
                        m.d.comb += tcrc.clear.eq(1)
                        m.d.sync += last_error.eq(status_r != Status.OK)
                        with m.If(status_r == Status.OK):
                            m.d.sync += frames_ok.eq(frames_ok + 1)
                        with m.Else():
                            m.d.sync += frames_err.eq(frames_err + 1)
                    with m.If(hidx == 3):
                        with m.If((status_r != Status.OK) | (plen == 0)):
                            m.next = "TCRC1"
                        with m.Elif(cmd_r == Cmd.READ_WEIGHTS):
                            m.next = "RD_REQ"
                        with m.Elif((cmd_r == Cmd.INFER) | (cmd_r == Cmd.TRAIN)):
                            m.next = "RES_WAIT"
                        if ex is not None:
                            with m.Elif(cmd_r == Cmd.EX_READ):
                                m.next = "EX_RD_REQ"
                        with m.Else():
                            m.next = "STATIC"
            with m.State("STATIC"):
                m.d.comb += [crc_on.eq(1), in_static.eq(1)]
                with m.If(static_fresh):
                    with m.If(send(Mux(cmd_r == Cmd.IDENTIFY, rom_r.data, static_r))):
                        m.d.comb += pidx_n.eq(pidx + 1)
                        with m.If(pidx == plen_m1):
                            m.next = "TCRC1"
            def request_weight():
                weight_access(0)
                return self.weights.ready
            read_states(m, "RD", request=request_weight, rdata=self.weights_rdata, shift=sh, k=kbyte,
                        nbytes=wb, index=widx, remaining=remaining, send=send, crc_on=crc_on)
            with m.State("TCRC1"):
                with m.If(send(tcrc.crc[8:])):
                    m.next = "TCRC2"
            with m.State("TCRC2"):
                with m.If(send(tcrc.crc[:8])):
                    m.next = "HUNT"
        # Sample expansion (state EXPAND). It runs on ``expanding``, a register set on entry
        # and cleared on exit, rather than on the decode of the FSM state: on the iCE40
        # the decode and its fan-out into the prefetch pipeline were the critical path.
        with m.If(expanding):
            with m.If(cand & h_valid):
                sp = self.spikes.payload
                m.d.comb += [self.spikes.valid.eq(v2), sp.index.eq(h_idx), sp.negative.eq(h_neg)]
                m.d.comb += [accept.eq(v2 & self.spikes.ready), stall.eq(v2 & ~self.spikes.ready)]
            with m.Else():
                m.d.comb += accept.eq(v2)
            with m.If(accept & cand):
                m.d.sync += [h_idx.eq(i2), h_neg.eq(c2 < 0), h_valid.eq(1)]
            with m.If(accept):
                with m.If(i2 == n_in - 1):
                    m.d.comb += round_end.eq(1)
                    m.d.sync += [rnd.eq(rnd + 1), any_r.eq(0)]
                    with m.If(~(any_r | cand)):
                        m.d.sync += expanding.eq(0)
                with m.Else():
                    m.d.sync += any_r.eq(any_r | cand)
        receiving = Cat(*(fsm.ongoing(s) for s in RECEIVE_STATES)).any()
        m.d.comb += [self.receiving.eq(receiving),
                     self.busy.eq(~(fsm.ongoing("HUNT") | receiving) | txs.o.valid | utx.busy)]
        return m

    def _exodus_logic(self, m, *, hdr, cmd_r, len_r, pos, pos_n, pos_inc, walk_end, buf_r, remaining, respond,
                      respond_fields, send, crc_on, snapshot):
        """The EX_* commands: ``(fields, states)``, two callables that add the FIELDS cases and the
        states inside the bridge's FSM (checks in the order of ``docs/protocol.md``)."""
        ex = self._exodus
        L = ex.num_layers
        targets = list(exodus_targets(ex))
        max_nb = max(f.nbytes for _, _, f in targets)
        layer, tgt = hdr[0], hdr[1]
        addr, count = Cat(hdr[2], hdr[3]), Cat(hdr[4], hdr[5])
        op, steps, flags = hdr[1], Cat(hdr[2], hdr[3]), hdr[4]
        # the header's layer checked and clamped into registers (like the decodes below; the
        # header is complete three cycles before FIELDS): lidx selects the engine's ready
        # and busy, and a compare in front of those selections reached the frame FSM
        layer_ok, lidx = Signal(), Signal(range(max(2, L)))
        m.d.sync += [layer_ok.eq(layer < L), lidx.eq(Mux(layer < L, layer, 0))]
        # the addressed engine's busy, registered once more here (the network's busy is a
        # register already; its selection by the header's layer reached the receive buffer's
        # address through the FIELDS/EX_SIZE_DONE decisions)
        busy_l = Signal()
        m.d.sync += busy_l.eq(self.ex_busy.bit_select(lidx, 1))
        is_write = cmd_r == Cmd.EX_WRITE
        m.d.comb += self.ex_status_layer.eq(lidx)

        # the addressed memory: found, writable, bytes per element, depth. Registered, like
        # the SpikeGrad header decodes: the header is complete three cycles before FIELDS.
        # pad_m1/padded: the element's bytes are shifted into exd from the top (see EX_WALK),
        # so an element narrower than exd takes max_nb - nb further shifts to reach the bottom.
        t_ok, t_wr = Signal(), Signal()
        nb, t_depth = Signal(range(max_nb + 1)), Signal(16)
        pad_m1, padded = Signal(range(max_nb)), Signal()
        m.d.sync += [t_ok.eq(0), t_wr.eq(0), nb.eq(0), t_depth.eq(0), pad_m1.eq(0), padded.eq(0)]
        with m.Switch(Cat(tgt, layer)):
            for l, t, f in targets:
                with m.Case(int(t) | l << 8):
                    m.d.sync += [t_ok.eq(1), t_wr.eq(int(f.writable)), nb.eq(f.nbytes), t_depth.eq(f.depth),
                                 pad_m1.eq(max(0, max_nb - f.nbytes - 1)), padded.eq(f.nbytes < max_nb)]

        # size = count * bytes per element, a registered product of count's low byte (a count
        # above 255 is too long anyway), then its checks, registered: the old loop of
        # additions put a comparator and an adder in front of the response logic
        size = Signal(8 + nb.shape().width)
        size_over, len_bad = Signal(), Signal()
        ea = Signal(16)
        ek = Signal(range(max_nb))
        exd = Signal(8 * max_nb)
        fwd_seen = Signal(L)
        wait = Signal(3)
        acc = self.ex_access.payload
        m.d.comb += [acc.layer.eq(lidx), acc.target.eq(tgt), acc.addr.eq(ea), acc.data.eq(exd)]

        # the range checks, registered once more (from t_ok and t_depth; see the SpikeGrad ones)
        bad_access, bad_run = Signal(), Signal()
        no_backprop = Const(sum(1 << l for l in range(L) if not exodus_backprop(l)), L)
        m.d.sync += [
            bad_access.eq(~t_ok | (is_write & ~t_wr) | (count == 0) | (addr + count > t_depth)),
            bad_run.eq(~layer_ok | (op > max(ExodusOp)) | flags[len(RunFlag):].any() |
                       ((flags & RunFlag.GRAD_PREV).bool() & no_backprop.bit_select(lidx, 1)) |
                       ((op == ExodusOp.FORWARD) & ((steps == 0) | (steps > ex.max_steps))) |
                       ((op == ExodusOp.BACKWARD) & ~fwd_seen.bit_select(lidx, 1))),
        ]

        st = self.ex_status.as_value()
        nf = len(EX_FLAGS)
        st_bytes = Cat(st[:nf], Const(0, 8 - nf), st[nf:])
        assert len(st_bytes) == 8 * EX_STATUS_LEN

        def fields():
            with m.Case(Cmd.EX_WRITE, Cmd.EX_READ):
                with m.If(bad_access):
                    respond_fields(Status.OUT_OF_RANGE)
                with m.Else():
                    m.d.sync += ea.eq(addr)
                    m.next = "EX_SIZE"
            with m.Case(Cmd.EX_RUN):
                with m.If(bad_run):
                    respond_fields(Status.OUT_OF_RANGE)
                with m.Elif(busy_l):
                    respond_fields(Status.BUSY)
                with m.Else():
                    m.next = "EX_CMD"
            with m.Case(Cmd.EX_STATUS):
                with m.If(~layer_ok):
                    respond_fields(Status.OUT_OF_RANGE)
                with m.Else():
                    if not self._registered_walk_end:
                        m.d.sync += snapshot.eq(st_bytes)
                    respond_fields(Status.OK, EX_STATUS_LEN)

        def states():
            with m.State("EX_SIZE"):     # size = count * bytes per element
                m.d.sync += size.eq(count[:8] * nb)
                m.next = "EX_SIZE_CHECK"
            with m.State("EX_SIZE_CHECK"):
                m.d.sync += [size_over.eq(count[8:].any() | (size > MAX_LEN)),
                             len_bad.eq(size + EX_ACCESS_HEADER != len_r)]
                # Point the buffer at the first value now, whatever EX_SIZE_DONE decides (pos
                # matters only in EX_WALK), so its checks stay off the buffer's read address.
                m.d.comb += pos_n.eq(EX_ACCESS_HEADER)
                m.next = "EX_SIZE_DONE"
            with m.State("EX_SIZE_DONE"):
                with m.If(size_over):
                    respond(Mux(is_write, Status.BAD_LENGTH, Status.OUT_OF_RANGE))
                with m.Elif(is_write & len_bad):
                    respond(Status.BAD_LENGTH)
                with m.Elif(busy_l):
                    respond(Status.BUSY)
                with m.Elif(is_write):
                    # exd is not cleared: EX_WALK and EX_ALIGN move every element to its
                    # bottom with zeros above it (a clear here put the checks above on the
                    # enable of all of exd's flip-flops)
                    m.d.sync += ek.eq(0)
                    m.next = "EX_WALK"
                with m.Else():
                    m.d.sync += remaining.eq(count)
                    respond(Status.OK, size[:8])
            # Each element's bytes (LSB first) are shifted into exd from the top, then
            # EX_ALIGN shifts a narrower element down to bit 0: every flip-flop of exd takes
            # its neighbour, not a byte picked by a decoder of ek (that decoder reached all
            # of exd's enables, 600 bits with the ULX3S configuration).
            with m.State("EX_WALK"):     # assemble each element from its bytes, then write it
                # the next byte's address whether or not this was the last (then pos is unused)
                m.d.comb += pos_n.eq(pos_inc)
                with m.If(walk_end):
                    respond(Status.OK)
                with m.Else():
                    m.d.sync += exd.eq(Cat(exd[8:], buf_r.data))
                    m.d.sync += ek.eq(ek + 1)
                    with m.If(ek == nb - 1):
                        m.d.sync += ek.eq(0)
                        m.next = "EX_PUSH"
                        with m.If(padded):
                            m.next = "EX_ALIGN"
            with m.State("EX_ALIGN"):
                m.d.sync += [exd.eq(exd >> 8), ek.eq(ek + 1)]
                with m.If(ek == pad_m1):
                    m.d.sync += ek.eq(0)
                    m.next = "EX_PUSH"
            with m.State("EX_PUSH"):
                m.d.comb += [self.ex_access.valid.eq(1), acc.write.eq(1)]
                with m.If(self.ex_access.ready):
                    m.d.sync += ea.eq(ea + 1)
                    m.next = "EX_WALK"
            def request_element():
                m.d.comb += self.ex_access.valid.eq(1)
                return self.ex_access.ready
            read_states(m, "EX_RD", request=request_element, rdata=self.ex_rdata, shift=exd, k=ek, nbytes=nb,
                        index=ea, remaining=remaining, send=send, crc_on=crc_on)
            with m.State("EX_CMD"):
                c = self.ex_cmd.payload
                m.d.comb += [self.ex_cmd.valid.eq(1), c.layer.eq(lidx), c.op.eq(op), c.steps.eq(steps),
                             c.slayer.eq((flags & RunFlag.SLAYER).bool()),
                             c.grad_prev.eq((flags & RunFlag.GRAD_PREV).bool())]
                with m.If(self.ex_cmd.ready):
                    with m.If(op == ExodusOp.FORWARD):
                        m.d.sync += fwd_seen.eq(fwd_seen | (1 << lidx))
                    with m.If((flags & RunFlag.NOWAIT).bool()):
                        respond(Status.OK)
                    with m.Else():
                        m.d.sync += wait.eq(4)   # until the command's busy has reached busy_l
                        m.next = "EX_CMD_WAIT"
            with m.State("EX_CMD_WAIT"):
                with m.If(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
                with m.Elif(~busy_l):
                    respond(Status.OK)

        return fields, states, st_bytes
