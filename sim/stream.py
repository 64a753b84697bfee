"""cocotb 2 helpers shared by the benches: clock, reset, waits and streams.

Port names follow what ``amaranth.back.verilog`` emits for an
``amaranth.lib.stream`` port called ``<prefix>``: ``<prefix>__valid``,
``<prefix>__ready`` and **one** packed ``<prefix>__payload`` vector, also for
a :mod:`amaranth.lib.data` layout (its fields exist only as internal wires).
Give the driver/sink the payload's shape (``layout=``) and they pack and
unpack dicts/lists/enums with Amaranth's own layout, so a bench and the RTL
share one definition.

Timing model. Verilator is cycle based: after ``await RisingEdge(clk)`` a
bench sees the values *after* the edge. The handshake is therefore sampled
on the falling edge (mid-cycle, everything settled) and the transfer is
taken to happen on the next rising edge; inputs are written right after a
rising edge. Python wakes at transaction boundaries only: twice per beat
(falling edge to sample, rising edge to complete). While a handshake is
stalled the helpers sleep on an edge of ``ready``/``valid`` instead of
polling every cycle, and :func:`wait_for` uses a single timer for its
timeout. Gap patterns (``gaps=``) cost one wake per idle cycle requested.
"""

import itertools
import random

import cocotb
from amaranth.hdl import Const, Shape, ShapeCastable
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, Event, FallingEdge, RisingEdge, ValueChange, with_timeout

__all__ = [
    "CLOCK_PERIOD_NS", "start_clock", "reset_dut", "wait_for",
    "pack", "unpack", "random_gaps",
    "StreamDriver", "StreamSink", "StreamMonitor",
]

#: Default clock period of the benches, in ns.
CLOCK_PERIOD_NS = 10


def start_clock(dut, *, clk="clk", period_ns=CLOCK_PERIOD_NS):
    """Start a free-running clock on ``dut.<clk>``; return the :class:`Clock`."""
    clock = Clock(getattr(dut, clk), period_ns, unit="ns")
    clock.start()
    return clock


async def reset_dut(dut, *, clk="clk", rst="rst", cycles=2):
    """Hold Amaranth's synchronous ``rst`` high for ``cycles`` rising edges.

    Returns right after a rising edge with reset low: the next edge is the
    first working cycle.
    """
    reset = getattr(dut, rst)
    reset.value = 1
    await ClockCycles(getattr(dut, clk), cycles)
    reset.value = 0


async def wait_for(signal, value, *, timeout_cycles, period_ns=CLOCK_PERIOD_NS):
    """Wait until ``signal`` equals ``value``; fail after ``timeout_cycles``.

    Sleeps on value changes of ``signal`` only, with one timer for the
    timeout (raises :class:`cocotb.triggers.SimTimeoutError`).
    """
    async def until():
        while int(signal.value) != value:
            await ValueChange(signal)

    if int(signal.value) != value:
        await with_timeout(until(), timeout_cycles * period_ns, "ns")


def pack(shape, value):
    """Bits (a non-negative int) of ``value`` in Amaranth ``shape``.

    ``shape`` may be ``None`` (``value`` is taken as raw bits), a plain shape
    (``signed(8)``), an enum, or a :class:`amaranth.lib.data.Layout`, for which
    ``value`` is a dict (struct), list (array) or raw int.
    """
    if shape is None:
        return int(value)
    if isinstance(shape, data.Layout) and isinstance(value, int):
        return value
    if isinstance(shape, ShapeCastable):
        const = Const.cast(shape.const(value))
    else:
        const = Const(value, Shape.cast(shape))
    return const.value & ((1 << len(const)) - 1)


def _python(value):
    if isinstance(value, data.Const):
        layout = data.Layout.cast(value.shape())
        if isinstance(layout, data.ArrayLayout):
            return [_python(value[i]) for i in range(layout.length)]
        return {name: _python(value[name]) for name, _ in layout}
    return value


def unpack(shape, bits):
    """Inverse of :func:`pack`: a dict/list for layouts, an enum member for
    enums, a (signed where the shape is) int otherwise."""
    bits = int(bits)
    if shape is None:
        return bits
    if isinstance(shape, ShapeCastable):
        return _python(shape.from_bits(bits))
    shape = Shape.cast(shape)
    if shape.signed and bits >> (shape.width - 1) & 1:
        return bits - (1 << shape.width)
    return bits


def random_gaps(rng=None, *, max_gap=3, p_gap=0.3):
    """Endless gap pattern: with probability ``p_gap`` 1..``max_gap`` idle cycles."""
    rng = rng or random.Random()
    while True:
        yield rng.randint(1, max_gap) if rng.random() < p_gap else 0


def _gaps(pattern):
    if pattern is None:
        return itertools.repeat(0)
    if isinstance(pattern, int):
        return itertools.repeat(pattern)
    return iter(pattern)


class _StreamPort:
    def __init__(self, dut, prefix, *, clk, layout):
        self.clk = getattr(dut, clk)
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload", None)
        self.layout = layout
        self.name = prefix
        if layout is not None and self.payload is not None:
            width = (layout.size if isinstance(layout, data.Layout)
                     else Shape.cast(layout).width)
            if width != len(self.payload):
                raise ValueError(f"{prefix}__payload is {len(self.payload)} bits wide, "
                                 f"the layout given is {width} bits")

    def _beat(self):
        if self.payload is None:
            return None
        return unpack(self.layout, self.payload.value.to_unsigned())

    async def _handshake(self):
        """From a point after a rising edge: return at the falling edge of the
        cycle in which both ``valid`` and ``ready`` are high."""
        await FallingEdge(self.clk)
        while not (self.valid.value and self.ready.value):
            waiting_on = self.ready if self.valid.value else self.valid
            await RisingEdge(waiting_on)
            await FallingEdge(self.clk)


class StreamDriver(_StreamPort):
    """Producer for an ``In(stream.Signature(...))`` port named ``prefix``.

    ``await send(p)`` queues one beat and returns after its transfer;
    ``send_nowait(p)`` only queues (``await wait_idle()`` to drain).
    ``gaps``: idle cycles with ``valid`` low before each beat (an int or an
    iterable of ints, e.g. :func:`random_gaps`).
    """

    def __init__(self, dut, prefix, *, clk="clk", layout=None, gaps=None):
        super().__init__(dut, prefix, clk=clk, layout=layout)
        self.valid.value = 0
        self._gaps = _gaps(gaps)
        self._queue = Queue()
        self._idle = Event()
        self._idle.set()
        self.sent = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, payload):
        self._idle.clear()
        done = Event()
        self._queue.put_nowait((pack(self.layout, payload), done))
        return done

    async def send(self, payload):
        await self.send_nowait(payload).wait()

    async def send_all(self, payloads):
        for payload in payloads:
            self.send_nowait(payload)
        await self.wait_idle()

    async def wait_idle(self):
        await self._idle.wait()

    async def _run(self):
        while True:
            if self._queue.empty():
                self.valid.value = 0
                self._idle.set()
            bits, done = await self._queue.get()
            gap = next(self._gaps)
            if gap:
                self.valid.value = 0
                await ClockCycles(self.clk, gap)
            if self.payload is not None:
                self.payload.value = bits
            self.valid.value = 1
            await self._handshake()
            await RisingEdge(self.clk)
            self.sent += 1
            done.set()


class StreamSink(_StreamPort):
    """Consumer for an ``Out(stream.Signature(...))`` port named ``prefix``.

    Accepts every beat into a queue; ``await recv()`` returns the next one
    (unpacked with ``layout``). ``gaps``: cycles with ``ready`` low before
    each beat (back-pressure), an int or an iterable of ints.
    """

    def __init__(self, dut, prefix, *, clk="clk", layout=None, gaps=None):
        super().__init__(dut, prefix, clk=clk, layout=layout)
        self.ready.value = 0
        self._gaps = _gaps(gaps)
        self._queue = Queue()
        self.received = 0
        self._task = cocotb.start_soon(self._run())

    async def recv(self):
        return await self._queue.get()

    async def recv_n(self, count):
        return [await self.recv() for _ in range(count)]

    def empty(self):
        return self._queue.empty()

    async def _run(self):
        while True:
            gap = next(self._gaps)
            if gap:
                self.ready.value = 0
                await ClockCycles(self.clk, gap)
            self.ready.value = 1
            await self._handshake()
            beat = self._beat()
            await RisingEdge(self.clk)
            self.received += 1
            self._queue.put_nowait(beat)


class StreamMonitor(_StreamPort):
    """Passive observer of the transfers on stream ``prefix`` (drives nothing)."""

    def __init__(self, dut, prefix, *, clk="clk", layout=None):
        super().__init__(dut, prefix, clk=clk, layout=layout)
        self._queue = Queue()
        self._task = cocotb.start_soon(self._run())

    async def recv(self):
        return await self._queue.get()

    async def _run(self):
        while True:
            await self._handshake()
            beat = self._beat()
            await RisingEdge(self.clk)
            self._queue.put_nowait(beat)
