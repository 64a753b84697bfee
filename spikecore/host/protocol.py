"""The framed host protocol of the SpikeGrad core: codes, frame codec, field packing.

This module is the single definition of every constant the RTL bridge
(``rtl.host.bridge``) and the host library share: the RTL imports the enums,
the sync bytes, the CRC parameters and the field layouts from here.

Request (host -> device)::

    0xA5 | cmd | len | payload[len] | crc_hi | crc_lo

Response (device -> host)::

    0x5A | status | cmd | len | payload[len] | crc_hi | crc_lo

``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no
reflection, no final XOR) over every byte after the sync byte and before the
CRC, sent most significant byte first (so the CRC run over the whole frame
after the sync byte, CRC included, is zero). Multi-byte fields are
little-endian two's complement. See ``docs/protocol.md``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from spikecore.config import ExodusConfig, SpikeGradConfig
from spikecore.config.exodus import BACKWARDS, RESET_ORDERS, SURROGATES, ExodusOp, ExodusTarget

PROTOCOL_VERSION = 2          # 2: EXODUS commands, IDENTIFY ends with the EXODUS block
SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
MAX_LEN = 255                 # ``len`` is one byte
WEIGHTS_PER_FRAME = 64        # default chunk of a weight write
REG_BYTES = 4                 # register values on the wire

WRITE_HEADER = 6              # WRITE_WEIGHTS: layer, kind, row(2), start(2), then values
READ_WEIGHTS_LEN = 8          # READ_WEIGHTS: layer, kind, row(2), start(2), count(2)
SAMPLE_HEADER = 2             # LOAD_SAMPLE: start(2), then counts
EX_ACCESS_HEADER = 6          # EX_WRITE / EX_READ: layer, target, addr(2), count(2) (then EX_WRITE's values)
EX_RUN_LEN = 5                # EX_RUN: layer, op, steps(2), flags
EX_STATUS_REQ_LEN = 1         # EX_STATUS: layer


class Cmd(enum.IntEnum):
    """Request command codes."""
    IDENTIFY = 0x01       # -> version, max_payload, binary configuration
    WRITE_WEIGHTS = 0x02  # layer, kind, row, start, values...
    READ_WEIGHTS = 0x03   # layer, kind, row, start, count -> values
    WRITE_REG = 0x04      # reg, value(4)
    READ_REG = 0x05       # reg -> value(4)
    LOAD_SAMPLE = 0x06    # start, counts... (into the bridge's input-count buffer)
    INFER = 0x07          # run the buffered sample -> prediction, V^L
    TRAIN = 0x08          # label; run one training step -> prediction, V^L
    READ_STATUS = 0x09    # -> flags, bridge flags, counters, frame counters
    CLEAR_FLAGS = 0x0A    # clear the sticky core and bridge flags
    RESET = 0x0B          # reset the core's state (neurons, counters, flags); weights kept
    EX_WRITE = 0x0C       # layer, target, addr, count, elements... (EXODUS engine memory)
    EX_READ = 0x0D        # layer, target, addr, count -> elements
    EX_RUN = 0x0E         # layer, op, steps, flags: one EXODUS engine command
    EX_STATUS = 0x0F      # layer -> EXODUS engine flags and counters


#: The commands that exist only on a device with an EXODUS network (UNKNOWN_COMMAND without one).
EXODUS_COMMANDS = (Cmd.EX_WRITE, Cmd.EX_READ, Cmd.EX_RUN, Cmd.EX_STATUS)


class Status(enum.IntEnum):
    """Response status codes (0 = OK; every other value is an error, and the frame was not executed)."""
    OK = 0x00
    BAD_CRC = 0x01          # the CRC does not match
    TIMEOUT = 0x02          # the frame was truncated: an idle gap before its last byte
    UNKNOWN_COMMAND = 0x03  # cmd is not a Cmd
    BAD_LENGTH = 0x04       # len is wrong for cmd, or larger than the device's buffer
    OUT_OF_RANGE = 0x05     # a field (layer, row, index, count, value, register, label) is out of range
    BUSY = 0x06             # an EXODUS access or command while that engine still runs (EX_RUN nowait)


class Reg(enum.IntEnum):
    """Run-time registers (WRITE_REG / READ_REG)."""
    ERROR_SHIFT = 0x00


class Kind(enum.IntEnum):
    """What a weight access addresses."""
    WEIGHTS = 0   # row ``row`` of W^layer (length fan_in)
    BIAS = 1      # b^layer (length fan_out); ``row`` must be 0


CORE_FLAGS = ("membrane_saturated", "error_saturated", "trace_saturated", "count_saturated",
              "weight_clamped", "queue_overflow", "protocol_error")
BRIDGE_FLAGS = ("rx_framing_error", "rx_overflow")
COUNTERS = ("cycles", "forward_ops", "backward_ops", "update_ops",
            "forward_cycles", "backward_cycles", "update_cycles")
FRAME_COUNTERS = ("frames_ok", "frames_error")
STATUS_LEN = 2 + 4 * (len(COUNTERS) + len(FRAME_COUNTERS))


class RunFlag(enum.IntFlag):
    """EX_RUN ``flags`` byte."""
    SLAYER = 1       # BACKWARD: SLAYER mode (coefficient alpha)
    GRAD_PREV = 2    # BACKWARD: compute GP, the gradient to the layer below (not on layer 0)
    NOWAIT = 4       # answer as soon as the engine has accepted the command (else when it has finished)


#: EX_STATUS: flag bits (bit 0 first), then the 4-byte counters in this order.
EX_FLAGS = ("busy", "fwd", "chi", "grad", "acc", "weight")
EX_COUNTERS = ("fwd_steps", "bwd_steps", "syn_events", "sat_count", "chi_sat_count", "cycles")
EX_STATUS_LEN = 1 + 4 * len(EX_COUNTERS)
#: EX_WRITE is allowed on these targets only (the others are results of the engine).
EX_WRITABLE = (ExodusTarget.W, ExodusTarget.X, ExodusTarget.G)


class ProtocolError(Exception):
    """A response could not be decoded, or the device answered with an error status."""

    def __init__(self, message, status: Status | None = None):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ CRC
def crc16_update(crc: int, byte: int) -> int:
    """One byte of CRC-16/CCITT-FALSE, bit by bit (what the RTL unrolls)."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    for b in data:
        crc = crc16_update(crc, b)
    return crc


# --------------------------------------------------------- value packing
def value_bytes(bits: int) -> int:
    """Bytes on the wire for a ``bits``-wide value: the next power of two of ``ceil(bits/8)``."""
    n = 1
    while 8 * n < bits:
        n *= 2
    return n


def pack_int(value: int, nbytes: int) -> bytes:
    lo, hi = -(1 << (8 * nbytes - 1)), (1 << (8 * nbytes)) - 1
    if not lo <= value <= hi:
        raise ValueError(f"{value} does not fit in {nbytes} bytes")
    return (value & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little")


def unpack_int(data: bytes, *, signed: bool = True) -> int:
    return int.from_bytes(data, "little", signed=signed)


def pack_values(values, nbytes: int) -> bytes:
    return b"".join(pack_int(int(v), nbytes) for v in values)


def unpack_values(data: bytes, nbytes: int) -> list[int]:
    return [unpack_int(data[k:k + nbytes]) for k in range(0, len(data), nbytes)]


@dataclass(frozen=True)
class WireFormat:
    """Sizes of the protocol's fields for one configuration (shared by the RTL and the host)."""
    weight_bytes: int     # one weight or bias
    count_bytes: int      # one signed input count
    value_bytes: int      # one V^L value in a result
    max_payload: int      # the device's request buffer

    @classmethod
    def of(cls, cfg: SpikeGradConfig, max_payload: int | None = None) -> "WireFormat":
        wb = value_bytes(cfg.weight_bits)
        cb = value_bytes(cfg.input_bits + 1)
        vb = value_bytes(cfg.membrane_bits)
        if max_payload is None:
            max_payload = min(MAX_LEN, max(WRITE_HEADER + WEIGHTS_PER_FRAME * wb, SAMPLE_HEADER + cb,
                                           READ_WEIGHTS_LEN))
        if not WRITE_HEADER + wb <= max_payload <= MAX_LEN or max_payload < READ_WEIGHTS_LEN:
            raise ValueError(f"max_payload {max_payload} must be in [{max(WRITE_HEADER + wb, READ_WEIGHTS_LEN)}, "
                             f"{MAX_LEN}]")
        if 1 + cfg.num_classes * vb > MAX_LEN:
            raise ValueError(f"a result of {cfg.num_classes} classes x {vb} bytes does not fit in one frame")
        return cls(wb, cb, vb, max_payload)

    @property
    def max_read(self) -> int:
        """Most weights one READ_WEIGHTS may ask for."""
        return self.max_payload // self.weight_bytes

    @property
    def max_write(self) -> int:
        """Most weights one WRITE_WEIGHTS may carry."""
        return (self.max_payload - WRITE_HEADER) // self.weight_bytes

    @property
    def max_counts(self) -> int:
        """Most input counts one LOAD_SAMPLE may carry."""
        return (self.max_payload - SAMPLE_HEADER) // self.count_bytes

    def result_len(self, cfg: SpikeGradConfig) -> int:
        return 1 + cfg.num_classes * self.value_bytes


# ------------------------------------------------------ EXODUS memories
@dataclass(frozen=True)
class ExodusTargetFormat:
    """One memory of one EXODUS layer engine as the protocol sees it: ``depth`` elements, each
    ``per_word`` values of ``value_bits`` (value 0 in the low bits; two's complement when ``signed``,
    else spikes), with a mask bit above the value when ``mask`` (``U``). The one description of every
    memory: the wire, the host library, the reference device and the engine's port width use it."""
    value_bits: int
    per_word: int
    signed: bool
    depth: int
    writable: bool
    row: int             # values in one row of the memory as a tensor (W/ACC: fan_in; else one time step)
    timed: bool          # addressed by time step (depth = max_steps * elements per step)
    mask: bool = False

    @property
    def bits(self) -> int:
        """Element width (the engine's host data, low bits)."""
        return self.value_bits * self.per_word + int(self.mask)

    @property
    def nbytes(self) -> int:
        """Bytes per element on the wire: ceil(bits / 8), zero-extended."""
        return (self.bits + 7) // 8

    def elements(self, steps: int) -> int:
        """Elements holding the first ``steps`` time steps of a timed memory; all of an untimed one."""
        return steps * (self.row // self.per_word) if self.timed else self.depth

    def encode(self, rows) -> list[int]:
        """Rows of values (``U``: rows of ``(u, mask)`` pairs) -> raw elements."""
        flat = [v for r in rows for v in r]
        if self.mask:
            return [to_bits(int(u), self.value_bits) | (int(mk) & 1) << self.value_bits for u, mk in flat]
        if self.per_word == 1:
            return [to_bits(int(v), self.value_bits) for v in flat]
        return [pack_word(flat[k:k + self.per_word], self.value_bits) for k in range(0, len(flat), self.per_word)]

    def decode(self, raw) -> list:
        """Raw elements -> rows of ``row`` values (``U``: ``(u, mask)`` pairs); spikes as 0/1."""
        if self.mask:
            flat = [(from_bits(v, self.value_bits), v >> self.value_bits & 1) for v in raw]
        elif not self.signed:
            flat = [b for v in raw for b in word_to_spikes(v, self.per_word)]
        else:
            flat = [x for v in raw for x in unpack_word(v, self.value_bits, self.per_word)]
        return [flat[k:k + self.row] for k in range(0, len(flat), self.row)]


def exodus_backprop(layer: int) -> bool:
    """Whether EXODUS layer ``layer`` has the gradient-to-the-layer-below path (every layer but the first)."""
    return layer > 0


def exodus_layer_targets(ex: ExodusConfig, fan_in: int, fan_out: int, backprop: bool) -> dict:
    """``{ExodusTarget: ExodusTargetFormat}`` of an engine of ``fan_in -> fan_out`` neurons."""
    Tg, gb = ExodusTarget, ex.grad_bits

    def fmt(t, value_bits, per_word, row, *, timed=True, signed=True, mask=False):
        # timed: one row per step over max_steps; untimed (W, ACC): one row per neuron
        depth = ex.max_steps * (row // per_word) if timed else row * fan_out
        return ExodusTargetFormat(value_bits, per_word, signed, depth, t in EX_WRITABLE, row, timed, mask)

    f = {
        Tg.W: fmt(Tg.W, ex.weight_bits, 1, fan_in, timed=False),
        Tg.ACC: fmt(Tg.ACC, ex.acc_bits, 1, fan_in, timed=False),
        Tg.X: fmt(Tg.X, 1, fan_in, fan_in, signed=False),
        Tg.S: fmt(Tg.S, 1, fan_out, fan_out, signed=False),
        Tg.U: fmt(Tg.U, ex.u_bits, 1, fan_out, mask=True),
        Tg.G: fmt(Tg.G, gb, fan_out, fan_out),
        Tg.LAM: fmt(Tg.LAM, gb, 1, fan_out),
    }
    if backprop:
        f[Tg.GP] = fmt(Tg.GP, gb, fan_in, fan_in)
    return f


def exodus_target(ex: ExodusConfig, layer: int, target: int) -> ExodusTargetFormat | None:
    """Format of ``target`` on EXODUS layer ``layer``; None when there is no such layer or memory."""
    if not 0 <= layer < ex.num_layers or target not in ExodusTarget.__members__.values():
        return None
    fan_out, fan_in = ex.weight_shape(layer)
    return exodus_layer_targets(ex, fan_in, fan_out, exodus_backprop(layer)).get(ExodusTarget(target))


def exodus_targets(ex: ExodusConfig):
    """``(layer, target, format)`` of every memory of the network."""
    for layer in range(ex.num_layers):
        for t in ExodusTarget:
            f = exodus_target(ex, layer, t)
            if f is not None:
                yield layer, t, f


def check_exodus_wire(ex: ExodusConfig, max_payload: int) -> None:
    """Raise ValueError when an EXODUS network cannot be reached through frames of ``max_payload`` bytes."""
    for layer, t, f in exodus_targets(ex):
        if f.depth > 0xFFFF:
            raise ValueError(f"EXODUS layer {layer} {t.name}: {f.depth} elements exceed the 16-bit address")
        if EX_ACCESS_HEADER + f.nbytes > max_payload:
            raise ValueError(f"EXODUS layer {layer} {t.name}: a {f.nbytes}-byte element does not fit in a "
                             f"{max_payload}-byte request")


def exodus_max_elements(f: ExodusTargetFormat, max_payload: int, write: bool) -> int:
    """Most elements of format ``f`` one EX_WRITE (``write``) or EX_READ moves."""
    return (max_payload - EX_ACCESS_HEADER) // f.nbytes if write else MAX_LEN // f.nbytes


def to_bits(value: int, bits: int) -> int:
    return int(value) & ((1 << bits) - 1)


def from_bits(raw: int, bits: int) -> int:
    raw = int(raw) & ((1 << bits) - 1)
    return raw - (1 << bits) if raw >> (bits - 1) & 1 else raw


def pack_word(values, bits: int) -> int:
    """Elements ``values`` (element 0 in the low bits), each ``bits`` wide two's complement."""
    return sum(to_bits(int(v), bits) << (k * bits) for k, v in enumerate(values))


def unpack_word(raw: int, bits: int, count: int) -> list[int]:
    return [from_bits(raw >> (k * bits), bits) for k in range(count)]


def spikes_to_word(row) -> int:
    return sum(1 << k for k, v in enumerate(row) if int(v))


def word_to_spikes(raw: int, count: int) -> list[int]:
    return [raw >> k & 1 for k in range(count)]


# -------------------------------------------------- identify: the configuration
_CFG_TAIL = struct.Struct("<5B3IBBHBBBBIB")
_CFG_TAIL_FIELDS = ("weight_bits", "membrane_bits", "error_bits", "trace_bits", "count_bits",
                    "theta_ff", "theta_bp", "eta", "error_shift", "softmax_shift", "exp_lut_size",
                    "exp_bits", "prob_bits", "bias", "lanes", "queue_depth", "input_bits")


def encode_config(cfg: SpikeGradConfig) -> bytes:
    """Compact binary configuration: ``n``, ``n`` sizes (u16), ``n-1`` activations (0 relu, 1 linear),
    then the fixed fields of ``_CFG_TAIL_FIELDS`` (little-endian)."""
    n = len(cfg.layer_sizes)
    head = bytes([n]) + b"".join(struct.pack("<H", s) for s in cfg.layer_sizes)
    head += bytes(0 if a == "relu" else 1 for a in cfg.activations)
    return head + _CFG_TAIL.pack(*(int(getattr(cfg, f)) for f in _CFG_TAIL_FIELDS))


def decode_config(data: bytes) -> SpikeGradConfig:
    n = data[0]
    sizes = [struct.unpack_from("<H", data, 1 + 2 * k)[0] for k in range(n)]
    pos = 1 + 2 * n
    acts = ["relu" if b == 0 else "linear" for b in data[pos:pos + n - 1]]
    pos += n - 1
    if len(data) != pos + _CFG_TAIL.size:
        raise ProtocolError(f"identify: configuration of {len(data)} bytes, expected {pos + _CFG_TAIL.size}")
    vals = dict(zip(_CFG_TAIL_FIELDS, _CFG_TAIL.unpack_from(data, pos)))
    vals["bias"] = bool(vals["bias"])
    return SpikeGradConfig(layer_sizes=tuple(sizes), activations=tuple(acts), **vals)


_EX_TAIL = struct.Struct("<IddBdBBBdd8BI6B")
_EX_BYTES = ("u_bits", "u_frac", "weight_bits", "input_bits", "alpha_frac", "fprime_bits", "fprime_frac",
             "coef_bits")
_EX_TAIL_BYTES = ("lut_shift", "grad_bits", "grad_frac", "acc_bits", "lr_shift", "lanes")


def encode_exodus_config(ex: ExodusConfig) -> bytes:
    """``n``, ``n`` sizes (u16), then ``max_steps`` (u32), ``alpha``, ``threshold`` (f64), ``u_min`` present (u8)
    and value (f64), ``reset_order``, ``backward``, ``surrogate`` (u8 indices), ``surrogate_scale``,
    ``surrogate_width`` (f64), the eight widths of ``_EX_BYTES``, ``lut_size`` (u32), the six fields of
    ``_EX_TAIL_BYTES`` (u8)."""
    n = len(ex.layer_sizes)
    head = bytes([n]) + b"".join(struct.pack("<H", s) for s in ex.layer_sizes)
    return head + _EX_TAIL.pack(
        ex.max_steps, ex.alpha, ex.threshold, int(ex.u_min is not None), ex.u_min or 0.0,
        RESET_ORDERS.index(ex.reset_order), BACKWARDS.index(ex.backward), SURROGATES.index(ex.surrogate),
        ex.surrogate_scale, ex.surrogate_width, *(getattr(ex, f) for f in _EX_BYTES), ex.lut_size,
        *(getattr(ex, f) for f in _EX_TAIL_BYTES))


def decode_exodus_config(data: bytes) -> ExodusConfig:
    n = data[0]
    sizes = [struct.unpack_from("<H", data, 1 + 2 * k)[0] for k in range(n)]
    pos = 1 + 2 * n
    if len(data) != pos + _EX_TAIL.size:
        raise ProtocolError(f"identify: EXODUS configuration of {len(data)} bytes, expected {pos + _EX_TAIL.size}")
    v = list(_EX_TAIL.unpack_from(data, pos))
    widths = dict(zip(_EX_BYTES, v[10:18]))
    tail = dict(zip(_EX_TAIL_BYTES, v[19:]))
    return ExodusConfig(layer_sizes=tuple(sizes), max_steps=v[0], alpha=v[1], threshold=v[2],
                        u_min=v[4] if v[3] else None, reset_order=RESET_ORDERS[v[5]], backward=BACKWARDS[v[6]],
                        surrogate=SURROGATES[v[7]], surrogate_scale=v[8], surrogate_width=v[9], lut_size=v[18],
                        **widths, **tail)


def identify_payload(cfg: SpikeGradConfig, fmt: WireFormat, exodus: ExodusConfig | None = None) -> bytes:
    """What the device answers to IDENTIFY: version, max_payload, configuration, then the EXODUS
    block: 0 (no EXODUS network) or 1 followed by :func:`encode_exodus_config`."""
    body = bytes([PROTOCOL_VERSION, fmt.max_payload]) + encode_config(cfg)
    body += bytes([0]) if exodus is None else bytes([1]) + encode_exodus_config(exodus)
    if len(body) > MAX_LEN:
        raise ValueError("the configuration does not fit in an IDENTIFY response")
    return body


@dataclass(frozen=True)
class Identity:
    """A decoded IDENTIFY response."""
    version: int
    max_payload: int
    config: SpikeGradConfig
    exodus: ExodusConfig | None


def decode_identify(body: bytes) -> Identity:
    if len(body) < 3:
        raise ProtocolError(f"identify: response of {len(body)} bytes")
    version, max_payload = body[0], body[1]
    if version != PROTOCOL_VERSION:    # the layout below is this version's
        return Identity(version, max_payload, None, None)
    n = body[2]
    end = 2 + 1 + 2 * n + (n - 1) + _CFG_TAIL.size
    cfg = decode_config(body[2:end])
    if len(body) <= end or body[end] not in (0, 1):
        raise ProtocolError("identify: missing or bad EXODUS block")
    if body[end] == 0:
        if len(body) != end + 1:
            raise ProtocolError("identify: bytes after the EXODUS block")
        return Identity(version, max_payload, cfg, None)
    return Identity(version, max_payload, cfg, decode_exodus_config(body[end + 1:]))


# ------------------------------------------------------------------ frames
def encode_request(cmd: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_LEN:
        raise ValueError(f"payload of {len(payload)} bytes (at most {MAX_LEN})")
    body = bytes([int(cmd), len(payload)]) + bytes(payload)
    c = crc16(body)
    return bytes([SYNC_REQUEST]) + body + bytes([c >> 8, c & 0xFF])


def encode_response(status: int, cmd: int, payload: bytes = b"") -> bytes:
    body = bytes([int(status), int(cmd) & 0xFF, len(payload)]) + bytes(payload)
    c = crc16(body)
    return bytes([SYNC_RESPONSE]) + body + bytes([c >> 8, c & 0xFF])


@dataclass(frozen=True)
class Response:
    status: int
    cmd: int
    payload: bytes

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def status_name(self) -> str:
        try:
            return Status(self.status).name
        except ValueError:
            return f"0x{self.status:02x}"


class ResponseDecoder:
    """Incremental response parser: feed bytes, collect :class:`Response` objects.

    Bytes before a sync byte are skipped; a frame with a bad CRC raises
    :class:`ProtocolError` (the link is corrupt: the host should flush and retry).
    """

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Response]:
        self._buf += data
        out = []
        while True:
            start = self._buf.find(bytes([SYNC_RESPONSE]))
            if start < 0:
                self._buf.clear()
                return out
            del self._buf[:start]
            if len(self._buf) < 4:
                return out
            n = self._buf[3]
            total = 4 + n + 2
            if len(self._buf) < total:
                return out
            frame = bytes(self._buf[:total])
            del self._buf[:total]
            if crc16(frame[1:]) != 0:
                raise ProtocolError(f"response with a bad CRC: {frame.hex()}")
            out.append(Response(frame[1], frame[2], frame[4:4 + n]))

    def needed(self) -> int:
        """Bytes still missing from the frame being received (at least 1)."""
        if len(self._buf) < 4:
            return 4 - len(self._buf) if self._buf else 4
        return max(1, 4 + self._buf[3] + 2 - len(self._buf))


# -------------------------------------------------------- request payloads
def write_weights_payload(layer: int, kind: int, row: int, start: int, values, nbytes: int) -> bytes:
    return struct.pack("<BBHH", layer, int(kind), row, start) + pack_values(values, nbytes)


def read_weights_payload(layer: int, kind: int, row: int, start: int, count: int) -> bytes:
    return struct.pack("<BBHHH", layer, int(kind), row, start, count)


def write_reg_payload(reg: int, value: int) -> bytes:
    return bytes([int(reg)]) + pack_int(value, REG_BYTES)


def load_sample_payload(start: int, counts, nbytes: int) -> bytes:
    return struct.pack("<H", start) + pack_values(counts, nbytes)


def ex_access_payload(layer: int, target: int, addr: int, count: int) -> bytes:
    return struct.pack("<BBHH", layer, int(target), addr, count)


def ex_write_payload(layer: int, target: int, addr: int, raw_values, nbytes: int) -> bytes:
    """EX_WRITE: raw element bit patterns (see :func:`to_bits`), ``nbytes`` each, little-endian."""
    vals = list(raw_values)
    return ex_access_payload(layer, target, addr, len(vals)) + b"".join(int(v).to_bytes(nbytes, "little")
                                                                        for v in vals)


def ex_run_payload(layer: int, op: int, steps: int = 0, flags: int = 0) -> bytes:
    return struct.pack("<BBHB", layer, int(op), steps, int(flags))


def decode_ex_elements(data: bytes, nbytes: int) -> list[int]:
    """EX_READ payload -> raw element bit patterns."""
    return [int.from_bytes(data[k:k + nbytes], "little") for k in range(0, len(data), nbytes)]


def decode_ex_status(payload: bytes) -> dict:
    """EX_STATUS payload -> ``{"flags": {...}, "counters": {...}}``."""
    if len(payload) != EX_STATUS_LEN:
        raise ProtocolError(f"EXODUS status payload of {len(payload)} bytes, expected {EX_STATUS_LEN}")
    flags = {k: (payload[0] >> i) & 1 for i, k in enumerate(EX_FLAGS)}
    words = [unpack_int(payload[1 + 4 * k:5 + 4 * k], signed=False) for k in range(len(EX_COUNTERS))]
    return {"flags": flags, "counters": dict(zip(EX_COUNTERS, words))}


def decode_status(payload: bytes) -> dict:
    """READ_STATUS payload -> ``{"flags": {...}, "bridge_flags": {...}, "counters": {...}}``."""
    if len(payload) != STATUS_LEN:
        raise ProtocolError(f"status payload of {len(payload)} bytes, expected {STATUS_LEN}")
    flags = {k: (payload[0] >> i) & 1 for i, k in enumerate(CORE_FLAGS)}
    bridge = {k: (payload[1] >> i) & 1 for i, k in enumerate(BRIDGE_FLAGS)}
    words = [unpack_int(payload[2 + 4 * k:6 + 4 * k], signed=False) for k in range(len(COUNTERS) + 2)]
    return {"flags": flags, "bridge_flags": bridge, "counters": dict(zip(COUNTERS + FRAME_COUNTERS, words))}


def decode_result(payload: bytes, cfg: SpikeGradConfig, fmt: WireFormat) -> dict:
    if len(payload) != fmt.result_len(cfg):
        raise ProtocolError(f"result payload of {len(payload)} bytes, expected {fmt.result_len(cfg)}")
    return {"prediction": payload[0], "v_top": unpack_values(payload[1:], fmt.value_bytes)}
