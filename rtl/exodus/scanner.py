"""Walk the set bits of a wide spike word, lowest first, one index per cycle."""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SetBitScanner"]


def _onehot_lowest(word):
    """The lowest set bit of ``word`` as a one-hot word (``x & -x``: one short carry chain)."""
    return word & (~word + 1)[:len(word)]


def _at_most_one(word):
    """Whether ``word`` has at most one set bit, as a shallow tree (no carry chain): per group
    of four bits "any" and "two or more", then the same over the groups."""
    bits = list(word)
    while len(bits) % 4:
        bits.append(C(0, 1))
    groups = [Cat(*bits[k:k + 4]) for k in range(0, len(bits), 4)]
    anys = [g.any() for g in groups]
    many = [Cat(*(g[a] & g[b] for a in range(4) for b in range(a + 1, 4))).any() for g in groups]
    if len(groups) == 1:
        return ~many[0]
    two_groups = Cat(*(anys[a] & anys[b] for a in range(len(anys)) for b in range(a + 1, len(anys)))).any()
    return ~(Cat(*many).any() | two_groups)


def _onehot_index(onehot, width):
    """Index of the set bit of a one-hot word (an OR tree per index bit)."""
    return Cat(*[Cat(onehot[k] for k in range(len(onehot)) if (k >> b) & 1).any() for b in range(width)])


class SetBitScanner(wiring.Component):
    """Indices of the set bits of ``word``, lowest first, as a stream.

    Finding the lowest set bit of a 250-bit word and clearing it in one cycle is
    a priority tree and a 250-bit carry (``w & (w - 1)``) in series, far too deep
    for a 100 MHz ECP5. The word is cut into ``chunk``-bit chunks instead:

    * a registered one-hot ``nsel`` marks the lowest non-empty chunk not yet taken;
    * the current chunk ``cw`` gives up its lowest bit each cycle (a ``chunk``-bit
      priority and carry);
    * when ``cw`` gives up its last bit, the chunk under ``nsel`` (a multiplexer
      selected by the registered one-hot) takes its place in the same cycle, so the stream runs at one
      index per cycle across chunk boundaries; empty chunks cost nothing.

    Members
    -------
    load : ``In(1)``
        Take ``word`` this cycle; restarts the scan (anything pending is dropped).
    word : ``In(width)``
    o : ``Out(stream.Signature(range(width)))``
        Registered indices; the first is valid three cycles after ``load``.
    empty : ``Out(1)``
        Nothing left to emit and ``o`` not valid (low from the cycle after a ``load``
        of a non-zero word until its last index has been taken).
    """

    def __init__(self, width: int, *, chunk: int = 16):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, not {width!r}")
        if not isinstance(chunk, int) or chunk < 2 or chunk & (chunk - 1):
            raise ValueError(f"chunk must be a power of two >= 2, not {chunk!r}")
        self._width = width
        self._chunk = min(chunk, 1 << max(1, (width - 1).bit_length()))
        super().__init__({
            "load": In(1),
            "word": In(width),
            "o": Out(stream.Signature(range(max(2, width)))),
            "empty": Out(1),
        })

    width = property(lambda self: self._width)
    chunk = property(lambda self: self._chunk)

    def elaborate(self, platform):
        m = Module()
        W, K = self._width, self._chunk
        C = -(-W // K)                      # chunks
        cbits = max(1, (C - 1).bit_length())
        kbits = (K - 1).bit_length()

        chunks = Signal(C * K)              # the loaded word, zero-padded
        cnz = Signal(C)                     # non-empty chunks not yet taken
        nsel = Signal(C)                    # one-hot: the lowest of them
        cw = Signal(K)                      # bits of the current chunk not yet emitted
        cbase = Signal(cbits)               # its chunk index

        def chunk_of(word, c):
            return word[c * K:(c + 1) * K]

        # the chunk under nsel (written as an If chain, i.e. a priority multiplexer;
        # nsel is one-hot, so an AND-OR would give the same value with less depth)
        take = Signal(K)
        m.d.comb += take.eq(0)
        for c in range(C):
            with m.If(nsel[c]):
                m.d.comb += take.eq(chunk_of(chunks, c))
        take_idx = _onehot_index(nsel, cbits)

        low = Signal(kbits)
        lowhot = _onehot_lowest(cw)
        m.d.comb += low.eq(_onehot_index(lowhot, kbits))
        advance = ~self.o.valid | self.o.ready
        rest = Signal(K)                    # cw after this cycle's emission
        m.d.comb += rest.eq(Mux(advance, cw & ~lowhot, cw))
        # rest == 0, without the carry of lowhot: the test enables the chunk registers
        exhausted = Signal()
        m.d.comb += exhausted.eq(Mux(advance, _at_most_one(cw), cw == 0))
        m.d.comb += self.empty.eq(~self.o.valid & (cw == 0) & (nsel == 0))

        with m.If(advance):
            m.d.sync += [self.o.valid.eq(cw != 0), self.o.payload.eq(Cat(low, cbase))]

        with m.If(self.load):
            nz = Cat(chunk_of(self.word, c).any() for c in range(C))     # the last chunk may be short
            m.d.sync += [chunks.eq(self.word), cnz.eq(nz), nsel.eq(_onehot_lowest(nz)), cw.eq(0),
                         self.o.valid.eq(0)]
        with m.Elif(exhausted & (nsel != 0)):
            left = cnz & ~nsel
            m.d.sync += [cw.eq(take), cbase.eq(take_idx), cnz.eq(left), nsel.eq(_onehot_lowest(left))]
        with m.Else():
            m.d.sync += cw.eq(rest)
        return m
