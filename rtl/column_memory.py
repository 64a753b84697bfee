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

With ``output_register`` each column's read data goes through a register of its own (enabled by the
read port's ``oen``, 1 by default) before the columns are joined, so the block RAM's 5.8 ns
clock-to-output no longer shares a cycle with the route to the consumer (on the dual ULX3S build
these routes were 5-6.5 ns: the columns of one memory lie across the chip). On an ECP5 that
register is the block RAM's own output register (a DP16KD instance with ``REGMODE_B = "OUTREG"``:
0.9 ns clock-to-output in nextpnr's timing model); a register in the fabric beside the block RAM
was not placed close enough. Columns are then at most 18 bits wide (the true dual-port modes), and
everywhere else, simulation included, the register is an ordinary one with the same behaviour.
"""

from __future__ import annotations

from amaranth import C, Cat, ClockSignal, Elaboratable, Instance, Module, Shape, Signal, Value
from amaranth.lib.memory import Memory

from .platform import is_ecp5

__all__ = ["ColumnMemory", "column_bits", "BLOCK_RAM_WIDTHS", "TRUE_DUAL_PORT_BITS"]

#: The ECP5 DP16KD's (depth, data width) modes: 16 kbit of data (the 9/18/36 modes add parity bits).
BLOCK_RAM_WIDTHS = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))

#: Address bits below the word address in each true dual-port mode (the DP16KD's ``AD`` pins
#: address bits; a wider word leaves the low pins out, as Yosys's own DP16KD mapping does).
_ADDR_SHIFT = {1: 0, 2: 1, 4: 2, 9: 3, 18: 4}
#: Widest DP16KD mode with two independent ports (the 36-bit mode is pseudo dual-port).
TRUE_DUAL_PORT_BITS = max(_ADDR_SHIFT)


def column_bits(depth: int, *, max_bits: int = 36) -> int | None:
    """Widest column (at most ``max_bits``) that fits ``depth`` words in one block RAM; None when no
    mode holds that many."""
    for words, width in BLOCK_RAM_WIDTHS:
        if depth <= words and width <= max_bits:
            return width
    return None


class _Port:
    """The signals of one port: ``addr``, ``data``, ``en`` (like Amaranth's memory ports), and for a
    read port with an output register ``oen``, that register's enable."""

    def __init__(self, addr, data, en, oen=None):
        self.addr, self.data, self.en = addr, data, en
        if oen is not None:
            self.oen = oen


class ColumnMemory(Elaboratable):
    """``shape`` x ``depth`` words as columns of :func:`column_bits` bits, one Amaranth memory each.

    A memory that fits one column (or is too deep for any single block RAM) stays one memory.
    Call :meth:`write_port` and :meth:`read_port` once each, before elaboration.

    With ``output_register`` the read data appears a cycle later than from a plain memory: the
    word read with ``en`` high at clock edge ``k`` is on ``data`` after edge ``k + 1`` if ``oen``
    was high at that edge (``oen`` low holds the register, as ``en`` low holds the memory output).
    """

    def __init__(self, *, shape, depth: int, output_register: bool = False):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int, not {depth!r}")
        if not isinstance(output_register, bool):
            raise TypeError(f"output_register must be a bool, not {output_register!r}")
        self._out_reg = output_register
        self._shape, self._depth = shape, depth
        self._width = Shape.cast(shape).width
        cw = column_bits(depth, max_bits=TRUE_DUAL_PORT_BITS if output_register else 36)
        self._mode = cw
        self._columns = ([(lo, min(lo + cw, self._width)) for lo in range(0, self._width, cw)]
                         if cw is not None and cw < self._width else [(0, self._width)])
        abits = (depth - 1).bit_length()
        self._w = _Port(Signal(abits, name="w_addr"), Signal(shape, name="w_data"), Signal(name="w_en"))
        self._r = _Port(Signal(abits, name="r_addr"), Signal(shape, name="r_data"), Signal(init=1, name="r_en"),
                        Signal(init=1, name="r_oen") if output_register else None)
        self._ports = set()

    @property
    def output_register(self) -> bool:
        return self._out_reg

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

    def _block_ram(self, m, k, lo, hi, wdata):
        """Column ``k`` as a DP16KD with its output register: port A writes, port B reads.
        The mode is the narrowest that holds the column (as Yosys picks it: a narrow last column
        gets a narrow mode)."""
        mode = min(w for words, w in BLOCK_RAM_WIDTHS if w in _ADDR_SHIFT and w >= hi - lo and words >= self._depth)
        shift = _ADDR_SHIFT[mode]
        q = Signal(18, name=f"col{k}_dob")
        di = Cat(wdata[lo:hi], C(0, 18 - (hi - lo)))
        waddr, raddr = self._w.addr, self._r.addr
        pins = {}
        for a in range(14):
            bit = a - shift
            pins[f"i_ADA{a}"] = waddr[bit] if 0 <= bit < len(waddr) else C(0, 1)
            pins[f"i_ADB{a}"] = raddr[bit] if 0 <= bit < len(raddr) else C(0, 1)
        if mode == 18:   # the two low A pins are byte enables in the 18-bit mode: both bytes
            pins["i_ADA0"], pins["i_ADA1"] = C(1, 1), C(1, 1)
        for d in range(18):
            pins[f"i_DIA{d}"] = di[d]
            pins[f"i_DIB{d}"] = C(0, 1)
            pins[f"o_DOB{d}"] = q[d]
        for cs in range(3):
            pins[f"i_CSA{cs}"] = pins[f"i_CSB{cs}"] = C(0, 1)
        m.submodules[f"col{k}"] = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=mode, p_DATA_WIDTH_B=mode, p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
            p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
            p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="AUTO",
            i_CLKA=ClockSignal(), i_WEA=self._w.en, i_CEA=C(1, 1), i_OCEA=C(1, 1), i_RSTA=C(0, 1),
            i_CLKB=ClockSignal(), i_WEB=C(0, 1), i_CEB=self._r.en, i_OCEB=self._r.oen, i_RSTB=C(0, 1),
            **pins)
        return q[:hi - lo]

    def elaborate(self, platform):
        m = Module()
        wdata, rdata = Value.cast(self._w.data), Value.cast(self._r.data)
        outs = []
        ecp5_outreg = self._out_reg and is_ecp5(platform) and self._mode in _ADDR_SHIFT
        for k, (lo, hi) in enumerate(self._columns):
            if ecp5_outreg:
                outs.append(self._block_ram(m, k, lo, hi, wdata))
                continue
            col = Memory(shape=hi - lo, depth=self._depth, init=[])
            m.submodules[f"col{k}"] = col
            wp, rp = col.write_port(), col.read_port()
            m.d.comb += [wp.addr.eq(self._w.addr), wp.data.eq(wdata[lo:hi]), wp.en.eq(self._w.en),
                         rp.addr.eq(self._r.addr), rp.en.eq(self._r.en)]
            if self._out_reg:
                # one register per column, fed by that column's block RAM alone
                q = Signal(hi - lo, name=f"col{k}_q", reset_less=True)
                with m.If(self._r.oen):
                    m.d.sync += q.eq(rp.data)
                outs.append(q)
            else:
                outs.append(rp.data)
        m.d.comb += rdata.eq(Cat(*outs))
        return m
