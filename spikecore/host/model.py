"""Reference model of the device side of the protocol (what ``rtl.host.HostBridge`` does).

Feed it the bytes sent to the device; it answers with the responses the
device must send, byte for byte, and keeps the device's weights, input-count
buffer and registers. ``gap()`` is an idle gap longer than the timeout.
A response's payload is ``None`` where the model cannot predict it (the
cycle counters of READ_STATUS, the result of a sample when no core model is
given).

The checks run in this order, and the first failing one is the answer:
timeout, CRC, payload larger than the buffer, unknown command, length,
header fields, then each value in order (address, then range).
"""

from __future__ import annotations

import struct
from typing import Callable

from golden.data import encode_counts
from spikecore.config import ExodusConfig, SpikeGradConfig
from spikecore.config.exodus import ExodusOp

from .protocol import (CORE_FLAGS, COUNTERS, EX_ACCESS_HEADER, EX_RUN_LEN, EX_STATUS_REQ_LEN, EXODUS_COMMANDS,
                       MAX_LEN, READ_WEIGHTS_LEN, REG_BYTES, SAMPLE_HEADER, SYNC_REQUEST, WRITE_HEADER, Cmd, Kind,
                       Reg, Response, RunFlag, Status, WireFormat, check_exodus_wire, crc16, decode_ex_elements,
                       exodus_backprop, exodus_target, identify_payload, pack_int, pack_values, to_bits,
                       unpack_int, unpack_values)

EXACT_LEN = {Cmd.IDENTIFY: 0, Cmd.READ_WEIGHTS: READ_WEIGHTS_LEN, Cmd.WRITE_REG: 1 + REG_BYTES, Cmd.READ_REG: 1,
             Cmd.INFER: 0, Cmd.TRAIN: 1, Cmd.READ_STATUS: 0, Cmd.CLEAR_FLAGS: 0, Cmd.RESET: 0,
             Cmd.EX_READ: EX_ACCESS_HEADER, Cmd.EX_RUN: EX_RUN_LEN, Cmd.EX_STATUS: EX_STATUS_REQ_LEN}

#: ``core(model, events, label) -> (prediction, v_top)``; may change ``model.weights`` / ``model.bias``.
CoreModel = Callable[["BridgeModel", list, "int | None"], "tuple[int, list[int]]"]


def golden_core(model: "BridgeModel", events, label):
    """The golden event-driven simulator as the core behind the model."""
    import torch

    from golden.spikegrad.event_sim import EventDrivenSimulator
    from golden.spikegrad.params import SpikeGradParams

    cfg = model.cfg.replace(error_shift=model.error_shift)
    params = SpikeGradParams(cfg, [torch.tensor(w, dtype=torch.int64) for w in model.weights],
                             [torch.tensor(b, dtype=torch.int64) for b in model.bias])
    sim = EventDrivenSimulator(params)
    res = sim.train_step(events, label) if label is not None else sim.forward(events)
    if label is not None:
        model.weights = [w.tolist() for w in sim.params.weights]
        model.bias = [b.tolist() for b in sim.params.biases]
    for k, v in res.flags.items():
        model.flags[k] = model.flags[k] | int(v)
    return res.prediction, list(res.v_top)


class BridgeModel:
    """Device-side protocol model.

    Members
    -------
    cfg, fmt : configuration and wire format.
    weights, bias : the device's parameters, lists of lists of ints.
    counts : the input-count buffer.  error_shift : the register.
    frames_ok, frames_error : frame counters.  flags : sticky flags (as far as modelled).
    exodus : the EXODUS network (:class:`~spikecore.host.exodus_model.ExodusNetworkModel`) or None.
    ex_status_snapshots : EX_STATUS payloads (``cycles`` reads 0), in order.
    """

    def __init__(self, cfg: SpikeGradConfig, max_payload: int | None = None, *, core: CoreModel | None = None,
                 exodus: ExodusConfig | None = None):
        self.cfg = cfg
        self.fmt = WireFormat.of(cfg, max_payload)
        self.core = core
        self.exodus = None
        if exodus is not None:
            from .exodus_model import ExodusNetworkModel
            check_exodus_wire(exodus, self.fmt.max_payload)
            self.exodus = ExodusNetworkModel(exodus)
        self.ex_status_snapshots = []
        self.weights = [[[0] * cfg.layer_sizes[l] for _ in range(cfg.layer_sizes[l + 1])]
                        for l in range(cfg.num_layers)]
        self.bias = [[0] * cfg.layer_sizes[l + 1] for l in range(cfg.num_layers)]
        self.counts = [0] * cfg.layer_sizes[0]
        self.error_shift = cfg.error_shift
        self.frames_ok = self.frames_error = 0
        self.flags = {k: 0 for k in CORE_FLAGS}
        self.bridge_flags = 0
        self.status_snapshots = []        # READ_STATUS payloads as far as modelled, in order
        self._state = "HUNT"

    # --------------------------------------------------------------- parser
    def feed(self, data: bytes) -> list[Response]:
        out = []
        for b in data:
            st = self._state
            if st == "HUNT":
                if b == SYNC_REQUEST:
                    self._cmd, self._body, self._state = 0, bytearray(), "CMD"
                continue
            self._body.append(b)
            if st == "CMD":
                self._cmd, self._state = b, "LEN"
            elif st == "LEN":
                self._len = b
                self._state = "PAYLOAD" if b else "CRC1"
            elif st == "PAYLOAD":
                if len(self._body) == 2 + self._len:
                    self._state = "CRC1"
            elif st == "CRC1":
                self._state = "CRC2"
            else:
                self._state = "HUNT"
                out.append(self._frame(bytes(self._body)))
        return out

    def gap(self) -> list[Response]:
        if self._state == "HUNT":
            return []
        self._state = "HUNT"
        return [self._respond(Status.TIMEOUT)]

    def _respond(self, status, payload=b"") -> Response:
        if status == Status.OK:
            self.frames_ok += 1
        else:
            self.frames_error += 1
        return Response(int(status), self._cmd, payload)

    def status_payload(self) -> bytes:
        """A READ_STATUS payload from what the model knows (the core's counters read as 0)."""
        flags = sum(v << i for i, v in enumerate(self.flags.values()))
        return (bytes([flags, self.bridge_flags]) + bytes(4 * len(COUNTERS)) +
                pack_int(self.frames_ok, 4) + pack_int(self.frames_error, 4))

    # ----------------------------------------------------------- semantics
    def _target(self, layer, kind, row):
        """Length of the addressed vector, or None when layer/kind/row is out of range."""
        cfg = self.cfg
        if layer >= cfg.num_layers or kind > 1 or (kind == Kind.BIAS and not cfg.bias):
            return None
        fan_out, fan_in = cfg.weight_shape(layer)
        if kind == Kind.WEIGHTS:
            return fan_in if row < fan_out else None
        return fan_out if row == 0 else None

    def _frame(self, body: bytes) -> Response:
        cfg, fmt = self.cfg, self.fmt
        if crc16(body) != 0:
            return self._respond(Status.BAD_CRC)
        if self._len > fmt.max_payload:
            return self._respond(Status.BAD_LENGTH)
        p = body[2:-2]
        try:
            cmd = Cmd(self._cmd)
        except ValueError:
            return self._respond(Status.UNKNOWN_COMMAND)
        if cmd in EXODUS_COMMANDS and self.exodus is None:
            return self._respond(Status.UNKNOWN_COMMAND)
        if cmd in EXACT_LEN:
            if len(p) != EXACT_LEN[cmd]:
                return self._respond(Status.BAD_LENGTH)
        elif cmd == Cmd.EX_WRITE:
            if len(p) < EX_ACCESS_HEADER:
                return self._respond(Status.BAD_LENGTH)
        else:
            base, eb = (WRITE_HEADER, fmt.weight_bytes) if cmd == Cmd.WRITE_WEIGHTS else (SAMPLE_HEADER, fmt.count_bytes)
            if len(p) < base + eb or (len(p) - base) % eb:
                return self._respond(Status.BAD_LENGTH)
        bad = lambda: self._respond(Status.OUT_OF_RANGE)

        if cmd in EXODUS_COMMANDS:
            return self._exodus_frame(cmd, p)
        if cmd == Cmd.IDENTIFY:
            return self._respond(Status.OK, identify_payload(cfg, fmt, self.exodus and self.exodus.ex))
        if cmd == Cmd.WRITE_WEIGHTS:
            layer, kind, row, start = struct.unpack_from("<BBHH", p)
            n = self._target(layer, kind, row)
            if n is None or start >= n:
                return bad()
            values = unpack_values(p[WRITE_HEADER:], fmt.weight_bytes)
            lim = cfg.weight_limit if kind == Kind.WEIGHTS else cfg.bias_limit
            for k, v in enumerate(values):
                if start + k >= n or not -lim <= v <= lim:
                    return bad()
            vec = self.weights[layer][row] if kind == Kind.WEIGHTS else self.bias[layer]
            vec[start:start + len(values)] = values
            return self._respond(Status.OK)
        if cmd == Cmd.READ_WEIGHTS:
            layer, kind, row, start, count = struct.unpack_from("<BBHHH", p)
            n = self._target(layer, kind, row)
            if n is None or count == 0 or count > fmt.max_read or start + count > n:
                return bad()
            vec = self.weights[layer][row] if kind == Kind.WEIGHTS else self.bias[layer]
            return self._respond(Status.OK, pack_values(vec[start:start + count], fmt.weight_bytes))
        if cmd == Cmd.WRITE_REG:
            value = unpack_int(p[1:], signed=False)
            if p[0] != Reg.ERROR_SHIFT or value > cfg.error_bits - 2:
                return bad()
            self.error_shift = value
            return self._respond(Status.OK)
        if cmd == Cmd.READ_REG:
            if p[0] != Reg.ERROR_SHIFT:
                return bad()
            return self._respond(Status.OK, pack_int(self.error_shift, REG_BYTES))
        if cmd == Cmd.LOAD_SAMPLE:
            start = struct.unpack_from("<H", p)[0]
            values = unpack_values(p[SAMPLE_HEADER:], fmt.count_bytes)
            if start >= len(self.counts):
                return bad()
            for k, v in enumerate(values):
                if start + k >= len(self.counts) or abs(v) > cfg.input_max:
                    return bad()
            self.counts[start:start + len(values)] = values
            return self._respond(Status.OK)
        if cmd in (Cmd.INFER, Cmd.TRAIN):
            label = p[0] if cmd == Cmd.TRAIN else None
            if label is not None and label >= cfg.num_classes:
                return bad()
            if self.core is None:
                return self._respond(Status.OK, None)
            pred, v_top = self.core(self, encode_counts(self.counts), label)
            return self._respond(Status.OK, bytes([pred]) + pack_values(v_top, fmt.value_bytes))
        if cmd == Cmd.READ_STATUS:
            self.status_snapshots.append(self.status_payload())
            return self._respond(Status.OK, None)
        if cmd == Cmd.CLEAR_FLAGS:
            self.flags = {k: 0 for k in CORE_FLAGS}
            self.bridge_flags = 0
            return self._respond(Status.OK)
        assert cmd == Cmd.RESET
        self.flags = {k: 0 for k in CORE_FLAGS}
        return self._respond(Status.OK)

    # ------------------------------------------------------------- EXODUS
    def _exodus_frame(self, cmd: Cmd, p: bytes) -> Response:
        """EX_* commands; the checks in the order of ``docs/protocol.md`` (the model is never BUSY)."""
        net = self.exodus
        bad = lambda: self._respond(Status.OUT_OF_RANGE)
        layer = p[0]
        if layer >= len(net.layers):
            return bad()
        eng = net.layers[layer]
        if cmd == Cmd.EX_STATUS:
            self.ex_status_snapshots.append(eng.status_payload())
            return self._respond(Status.OK, None)
        if cmd == Cmd.EX_RUN:
            _, op, steps, flags = struct.unpack_from("<BBHB", p)
            if op > max(ExodusOp) or flags & ~int(RunFlag.SLAYER | RunFlag.GRAD_PREV | RunFlag.NOWAIT):
                return bad()
            if flags & RunFlag.GRAD_PREV and not exodus_backprop(layer):
                return bad()
            if op == ExodusOp.FORWARD and not 1 <= steps <= net.ex.max_steps:
                return bad()
            if op == ExodusOp.BACKWARD and eng.steps == 0:
                return bad()
            eng.run(ExodusOp(op), steps, bool(flags & RunFlag.SLAYER), bool(flags & RunFlag.GRAD_PREV))
            return self._respond(Status.OK)
        _, target, addr, count = struct.unpack_from("<BBHH", p)
        f = exodus_target(net.ex, layer, target)
        if f is None or (cmd == Cmd.EX_WRITE and not f.writable):
            return bad()
        if count == 0 or addr + count > f.depth:
            return bad()
        size = count * f.nbytes
        if cmd == Cmd.EX_READ:
            if size > MAX_LEN:
                return bad()
            mem = eng.mem[target][addr:addr + count]
            return self._respond(Status.OK, b"".join(v.to_bytes(f.nbytes, "little") for v in mem))
        if len(p) != EX_ACCESS_HEADER + size:
            return self._respond(Status.BAD_LENGTH)
        vals = decode_ex_elements(p[EX_ACCESS_HEADER:], f.nbytes)
        eng.mem[target][addr:addr + count] = [to_bits(v, f.bits) for v in vals]
        return self._respond(Status.OK)
