"""Lane-banked memories and the skewed weight layout of the SpikeGrad core.

Weights ``W[l]`` (``fan_out x fan_in``) live in ``P = cfg.lanes`` banks.
Element ``(i, j)`` is stored in bank ``(i + j) mod P`` at address
``i * H2 + j // P`` where ``H2`` is ``ceil(fan_in / P)`` rounded up to a power
of two (so the address is a concatenation ``{i, j // P}`` and needs no
multiplier). Rows are padded to ``G * P`` (``G = ceil(fan_out / P)``) and
columns to ``H2 * P`` with zero entries that are never updated.

* forward event from presynaptic ``j``, neuron group ``g``: lane ``p``
  (row ``gP + p``) is in bank ``(p + j) mod P``; every bank gets its own
  address ``{gP + ((b - j) mod P), j // P}``;
* backward / update access to row ``i``, column group ``h``: all banks at
  address ``{i, h}``; lane ``q`` (column ``hP + q``) is in bank ``(i + q) mod P``.

Both are conflict-free: the ``P`` elements are in ``P`` distinct banks.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikecore.config import SpikeGradConfig

__all__ = ["WeightGeometry", "LaneBanks", "ceil_div", "log2_exact", "bits_for", "fit", "rotate_to_lanes",
           "rotate_to_banks"]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def log2_exact(n: int) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1


def bits_for(n: int) -> int:
    """Bits of an unsigned counter holding ``0 .. n - 1`` (at least 1)."""
    return max(1, (n - 1).bit_length())


def check_layer_args(cfg, layer) -> None:
    """The parameter checks every per-layer block (engine, update unit) makes."""
    from spikecore.config import SpikeGradConfig
    if not isinstance(cfg, SpikeGradConfig):
        raise TypeError(f"cfg must be a SpikeGradConfig, got {cfg!r}")
    if not isinstance(layer, int) or not 0 <= layer < cfg.num_layers:
        raise ValueError(f"layer must be in [0, {cfg.num_layers - 1}], got {layer!r}")


def addr_range(n: int) -> range:
    """Shape of an index into ``n`` items that is never zero bits wide.

    A layer that fits in one lane group has one address; a zero-width signal
    would be emitted as ``[-1:0]``, which Verilog reads as two bits.
    """
    return range(max(2, n))


def fit(value, width: int):
    """``value`` truncated or zero-extended to ``width`` bits."""
    value = value.as_value() if hasattr(value, "as_value") else value
    if len(value) >= width:
        return value[:width]
    return Cat(value, Const(0, width - len(value)))


class WeightGeometry:
    """Shape of the banked storage of ``W[layer]`` (a pure-Python model of the layout).

    Members
    -------
    fan_out, fan_in : the matrix shape.
    groups : ``G = ceil(fan_out / P)``; rows are padded to ``G * P``.
    col_groups : ``H = ceil(fan_in / P)``; ``stride`` = ``H2`` its power-of-two roundup.
    col_bits, row_bits : address field widths; ``addr_bits`` = their sum; ``depth`` per bank.
    """

    def __init__(self, cfg: SpikeGradConfig, layer: int):
        if not isinstance(cfg, SpikeGradConfig):
            raise TypeError(f"cfg must be a SpikeGradConfig, got {cfg!r}")
        if not 0 <= layer < cfg.num_layers:
            raise ValueError(f"layer {layer} out of range [0, {cfg.num_layers - 1}]")
        P = cfg.lanes
        self.lanes = P
        self.fan_out, self.fan_in = cfg.weight_shape(layer)
        self.groups = ceil_div(self.fan_out, P)
        self.col_groups = ceil_div(self.fan_in, P)
        self.col_bits = (self.col_groups - 1).bit_length()
        self.stride = 1 << self.col_bits
        self.row_bits = bits_for(self.groups * P)
        self.addr_bits = self.col_bits + self.row_bits
        self.depth = self.groups * P * self.stride

    def bank(self, i: int, j: int) -> int:
        return (i + j) % self.lanes

    def addr(self, i: int, j: int) -> int:
        return i * self.stride + j // self.lanes

    def forward_addrs(self, j: int, g: int) -> list[int]:
        """Per-bank addresses for forward event ``j`` at neuron group ``g``."""
        P = self.lanes
        return [self.addr(g * P + (b - j) % P, j) for b in range(P)]

    def row_addr(self, i: int, h: int) -> int:
        """The common address of row ``i``, column group ``h`` in every bank."""
        return i * self.stride + h

    def store(self, w) -> list[list[int]]:
        """Bank contents (one list per bank) holding matrix ``w`` (nested lists)."""
        banks = [[0] * self.depth for _ in range(self.lanes)]
        for i in range(self.fan_out):
            for j in range(self.fan_in):
                banks[self.bank(i, j)][self.addr(i, j)] = int(w[i][j])
        return banks


def rotate_to_lanes(banks, shift, lanes: int):
    """Lane ``p`` gets ``banks[(p + shift) mod P]`` (``shift`` a Value of log2(P) bits)."""
    if lanes == 1:
        return [banks[0]]
    arr = Array(banks)
    lb = log2_exact(lanes)
    return [arr[(shift + p)[:lb]] for p in range(lanes)]


def rotate_to_banks(values, shift, lanes: int):
    """Bank ``b`` gets ``values[(b - shift) mod P]`` (the inverse of :func:`rotate_to_lanes`)."""
    if lanes == 1:
        return [values[0]]
    arr = Array(values)
    lb = log2_exact(lanes)
    return [arr[(b - shift)[:lb]] for b in range(lanes)]


class LaneBanks(wiring.Component):
    """``lanes`` independent memories with one read and one write port each.

    Read ports are synchronous and, with ``transparent`` (the default), transparent for the
    bank's write port. Without it a word read in the cycle it is written returns its old value;
    the core's ECP5 forms use that (nothing there reads a word in the cycle it is written), which
    spares the bypass logic Yosys puts behind every block RAM read for a transparent port.

    Members
    -------
    raddr : ``In(ArrayLayout(unsigned(addr_bits), lanes))`` per-bank read address.
    rdata : ``Out(ArrayLayout(shape, lanes))`` read data, one cycle later.
    we : ``In(lanes)`` per-bank write enable; ``waddr``, ``wdata`` like the read side.
    """

    def __init__(self, shape, depth: int, lanes: int, *, init=None, transparent: bool = True):
        if not isinstance(transparent, bool):
            raise TypeError(f"transparent must be a bool, not {transparent!r}")
        self._transparent = transparent
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {lanes!r}")
        self._shape, self._depth, self._lanes = shape, depth, lanes
        self._init = init
        self._abits = bits_for(depth)
        super().__init__({
            "raddr": In(data.ArrayLayout(unsigned(self._abits), lanes)),
            "rdata": Out(data.ArrayLayout(shape, lanes)),
            "we": In(lanes),
            "waddr": In(data.ArrayLayout(unsigned(self._abits), lanes)),
            "wdata": In(data.ArrayLayout(shape, lanes)),
        })

    @property
    def depth(self):
        return self._depth

    @property
    def addr_bits(self):
        return self._abits

    def elaborate(self, platform):
        m = Module()
        for b in range(self._lanes):
            init = self._init[b] if self._init is not None else []
            mem = Memory(shape=self._shape, depth=max(2, self._depth), init=init)  # depth 1 would mean a 0-bit address
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,) if self._transparent else ())
            m.d.comb += [
                rp.addr.eq(self.raddr[b]),
                self.rdata[b].eq(rp.data),
                wp.addr.eq(self.waddr[b]),
                wp.data.eq(self.wdata[b]),
                wp.en.eq(self.we[b]),
            ]
        return m
