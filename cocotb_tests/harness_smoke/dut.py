"""A tiny design that exercises the cosimulation harness end to end.

:class:`SaturatingAccumulator` sums signed values from a stream with a
struct payload and emits the saturated sum on an output stream at each
``last`` beat; :func:`model` is its transaction-level Python reference.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SaturatingAccumulator", "input_layout", "model"]


def input_layout(input_width):
    """Payload of the input stream: one signed ``value`` and a ``last`` flag."""
    return data.StructLayout({"value": signed(input_width), "last": 1})


class SaturatingAccumulator(wiring.Component):
    """Saturating accumulator with stream ports.

    Parameters
    ----------
    input_width : int
        Width of the signed input values.
    acc_width : int, keyword-only
        Width of the signed accumulator and of the output values.

    Members
    -------
    i : ``In(stream.Signature(input_layout(input_width)))``
        Values to add. A beat with ``last`` set closes a group: the sum of the
        group (including that beat) is sent on ``o`` and the accumulator
        restarts from zero. ``i.ready`` is low while a sum waits on ``o``.
    o : ``Out(stream.Signature(signed(acc_width)))``
        One saturated sum per group.
    overflow : ``Out(1)``
        Sticky: set when any addition saturated, cleared only by reset.
    """

    def __init__(self, input_width=8, *, acc_width=12):
        for name, value in (("input_width", input_width), ("acc_width", acc_width)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if value < 2:
                raise ValueError(f"{name} must be at least 2, not {value}")
        if acc_width < input_width:
            raise ValueError(f"acc_width ({acc_width}) must be >= input_width ({input_width})")
        self._input_width = input_width
        self._acc_width = acc_width
        super().__init__({
            "i": In(stream.Signature(input_layout(input_width))),
            "o": Out(stream.Signature(signed(acc_width))),
            "overflow": Out(1),
        })

    @property
    def input_width(self):
        return self._input_width

    @property
    def acc_width(self):
        return self._acc_width

    def elaborate(self, platform):
        m = Module()
        hi = (1 << (self.acc_width - 1)) - 1
        lo = -(1 << (self.acc_width - 1))

        acc = Signal(signed(self.acc_width))
        total = Signal(signed(self.acc_width + 1))
        saturated = Signal(signed(self.acc_width))
        m.d.comb += [
            total.eq(acc + self.i.payload.value),
            saturated.eq(Mux(total > hi, hi, Mux(total < lo, lo, total))),
            self.i.ready.eq(~self.o.valid),
        ]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If((total > hi) | (total < lo)):
                m.d.sync += self.overflow.eq(1)
            with m.If(self.i.payload.last):
                m.d.sync += [
                    self.o.payload.eq(saturated),
                    self.o.valid.eq(1),
                    acc.eq(0),
                ]
            with m.Else():
                m.d.sync += acc.eq(saturated)
        return m


def model(beats, *, acc_width):
    """Reference: ``(sums, overflow)`` for a list of ``{"value", "last"}`` beats."""
    hi = (1 << (acc_width - 1)) - 1
    lo = -(1 << (acc_width - 1))
    sums, acc, overflow = [], 0, False
    for beat in beats:
        total = acc + beat["value"]
        overflow |= not lo <= total <= hi
        acc = min(hi, max(lo, total))
        if beat["last"]:
            sums.append(acc)
            acc = 0
    return sums, overflow
