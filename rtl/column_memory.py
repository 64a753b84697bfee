"""A memory split into bit columns, each as deep as the whole memory and narrow enough to fit one
block RAM: :class:`ColumnMemory`.

Why: Yosys maps a deep, wide memory onto ECP5 block RAMs in their widest mode (512 or 1024 words)
and cascades them in depth, so every read passes a multiplexer over the cascade after the block
RAM's 5.8 ns clock-to-output; on the dual ULX3S build these reads (EXODUS ``ACC``, ``U``, ``LAM``,
``W``: 5000-6250 words) were the longest paths. Split into columns of ``column_bits(depth)`` bits,
each column is one block RAM in a narrow mode (8192 x 2 for 6250 words) and its output needs no
multiplexer. The block RAM count grows a little (a 6250 x 40 memory: 20 instead of 17).

Same behaviour as one :class:`amaranth.lib.memory.Memory` with one synchronous, non-transparent
read port and one write port (no granularity), which is all the EXODUS engine uses.
"""

from __future__ import annotations

from amaranth import Cat, Elaboratable, Module, Shape, Signal, Value
from amaranth.lib.memory import Memory

__all__ = ["ColumnMemory", "column_bits", "BLOCK_RAM_WIDTHS"]

#: The ECP5 DP16KD's (depth, data width) modes: 16 kbit of data (the 9/18/36 modes add parity bits).
BLOCK_RAM_WIDTHS = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


def column_bits(depth: int) -> int | None:
    """Widest column that fits ``depth`` words in one block RAM; None when no mode holds that many."""
    for words, width in BLOCK_RAM_WIDTHS:
        if depth <= words:
            return width
    return None


class _Port:
    """The signals of one port: ``addr``, ``data``, ``en`` (like Amaranth's memory ports)."""

    def __init__(self, addr, data, en):
        self.addr, self.data, self.en = addr, data, en


class ColumnMemory(Elaboratable):
    """``shape`` x ``depth`` words as columns of :func:`column_bits` bits, one Amaranth memory each.

    A memory that fits one column (or is too deep for any single block RAM) stays one memory.
    Call :meth:`write_port` and :meth:`read_port` once each, before elaboration.
    """

    def __init__(self, *, shape, depth: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int, not {depth!r}")
        self._shape, self._depth = shape, depth
        self._width = Shape.cast(shape).width
        cw = column_bits(depth)
        self._columns = ([(lo, min(lo + cw, self._width)) for lo in range(0, self._width, cw)]
                         if cw is not None and cw < self._width else [(0, self._width)])
        abits = (depth - 1).bit_length()
        self._w = _Port(Signal(abits, name="w_addr"), Signal(shape, name="w_data"), Signal(name="w_en"))
        self._r = _Port(Signal(abits, name="r_addr"), Signal(shape, name="r_data"), Signal(init=1, name="r_en"))
        self._ports = set()

    @property
    def columns(self) -> list[tuple[int, int]]:
        """The bit ranges ``(lo, hi)`` of the columns."""
        return list(self._columns)

    def write_port(self):
        return self._port("write", self._w)

    def read_port(self):
        return self._port("read", self._r)

    def _port(self, kind, port):
        if kind in self._ports:
            raise ValueError(f"a ColumnMemory has one {kind} port")
        self._ports.add(kind)
        return port

    def elaborate(self, platform):
        m = Module()
        wdata, rdata = Value.cast(self._w.data), Value.cast(self._r.data)
        outs = []
        for k, (lo, hi) in enumerate(self._columns):
            col = Memory(shape=hi - lo, depth=self._depth, init=[])
            m.submodules[f"col{k}"] = col
            wp, rp = col.write_port(), col.read_port()
            m.d.comb += [wp.addr.eq(self._w.addr), wp.data.eq(wdata[lo:hi]), wp.en.eq(self._w.en),
                         rp.addr.eq(self._r.addr), rp.en.eq(self._r.en)]
            outs.append(rp.data)
        m.d.comb += rdata.eq(Cat(*outs))
        return m
