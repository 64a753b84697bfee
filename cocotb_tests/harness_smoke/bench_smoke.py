"""cocotb bench for :class:`~cocotb_tests.harness_smoke.dut.SaturatingAccumulator`.

Driven from ``tests/test_sim_harness.py`` through :func:`sim.runner.run_cocotb`.
Arguments (:func:`sim.runner.bench_args`): ``input_width``, ``acc_width``,
``beats`` (list of ``{"value", "last"}``), ``expected`` (sums from the Python
model), ``overflow`` (expected sticky flag), ``seed`` (gap patterns).
"""

import random

import cocotb
from amaranth import signed
from cocotb.triggers import ClockCycles

from sim.runner import bench_args
from sim.stream import (StreamDriver, StreamMonitor, StreamSink, random_gaps, reset_dut,
                        start_clock, wait_for)

from .dut import input_layout


async def _run(dut, *, gaps):
    args = bench_args()
    beats, expected = args["beats"], args["expected"]
    rng = random.Random(args.get("seed", 0))
    start_clock(dut)
    source = StreamDriver(dut, "i", layout=input_layout(args["input_width"]),
                          gaps=random_gaps(rng) if gaps else None)
    sink = StreamSink(dut, "o", layout=signed(args["acc_width"]),
                      gaps=random_gaps(rng, max_gap=4) if gaps else None)
    accepted = StreamMonitor(dut, "i", layout=input_layout(args["input_width"]))
    await reset_dut(dut)

    await source.send_all(beats)
    sums = await sink.recv_n(len(expected))
    assert sums == expected, f"sums differ from the model: {sums} != {expected}"

    seen = [await accepted.recv() for _ in beats]
    assert seen == beats, "the monitor saw other beats than the driver sent"
    if args["overflow"]:
        await wait_for(dut.overflow, 1, timeout_cycles=4)
    await ClockCycles(dut.clk, 2)
    assert int(dut.overflow.value) == args["overflow"]
    assert sink.empty(), "the DUT produced more sums than expected"


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def random_with_gaps(dut):
    """Constrained-random beats, random valid gaps and back-pressure."""
    await _run(dut, gaps=True)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def back_to_back(dut):
    """Same stimulus at full rate: valid and ready never drop on the bench side."""
    await _run(dut, gaps=False)
