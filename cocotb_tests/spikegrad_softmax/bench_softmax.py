"""cocotb bench for :class:`rtl.spikegrad.softmax_error.SoftmaxError`.

Driven from ``tests/test_rtl_softmax_error.py`` through :func:`sim.runner.run_cocotb`.
Arguments (:func:`sim.runner.bench_args`): ``config`` (``SpikeGradConfig.to_dict()``),
``u_fields`` (``[name, width, signed]`` per field of ``error_layout(cfg)``), ``cases`` (list of ``{"v", "label", "error_shift"}``), ``expected`` (``U^L`` per
case from :func:`golden.spikegrad.fixedpoint.top_error`) and ``seed``.

All samples are queued back to back on ``v``; a control coroutine moves
``label``/``error_shift`` to the next sample when ``busy`` falls (after the
last ``u`` beat of a sample and before the first ``v`` beat of the next one
can transfer), and everything is compared at the end.

The bench imports nothing from ``rtl.spikegrad`` or ``golden``: they pull in
torch, whose import takes some 20 s inside the simulator process. The
payload layout therefore arrives as ``u_fields``, serialised by the pytest
side from the RTL's own ``error_layout(cfg)``.
"""

import random

import cocotb
from amaranth import signed, unsigned
from amaranth.lib import data

from sim.runner import bench_args
from sim.stream import StreamDriver, StreamSink, random_gaps, reset_dut, start_clock, wait_for
from spikecore.config import SpikeGradConfig

# A sample takes at most a few hundred cycles even with the bench's back-pressure.
SAMPLE_TIMEOUT_CYCLES = 5000


def _layout(fields):
    return data.StructLayout({name: signed(width) if is_signed else unsigned(width)
                              for name, width, is_signed in fields})


async def _control(dut, cases):
    for case in cases:
        dut.label.value = case["label"]
        dut.error_shift.value = case["error_shift"]
        await wait_for(dut.busy, 1, timeout_cycles=SAMPLE_TIMEOUT_CYCLES)
        await wait_for(dut.busy, 0, timeout_cycles=SAMPLE_TIMEOUT_CYCLES)


async def _run(dut, *, gaps):
    args = bench_args()
    cfg = SpikeGradConfig.from_dict(args["config"])
    cases, expected = args["cases"], args["expected"]
    rng = random.Random(args.get("seed", 0))
    start_clock(dut)
    source = StreamDriver(dut, "v", layout=signed(cfg.membrane_bits),
                          gaps=random_gaps(rng) if gaps else None)
    sink = StreamSink(dut, "u", layout=_layout(args["u_fields"]),
                      gaps=random_gaps(rng, max_gap=3, p_gap=0.2) if gaps else None)
    dut.label.value = 0
    dut.error_shift.value = 0
    await reset_dut(dut)

    control = cocotb.start_soon(_control(dut, cases))
    await source.send_all([x for case in cases for x in case["v"]])
    beats = await sink.recv_n(len(cases) * cfg.num_classes)
    await control

    c = cfg.num_classes
    for n, (case, want) in enumerate(zip(cases, expected)):
        got = beats[n * c:(n + 1) * c]
        assert [b["index"] for b in got] == list(range(c)), f"case {n}: class order {got}"
        assert [b["last"] for b in got] == [0] * (c - 1) + [1], f"case {n}: last flags {got}"
        values = [b["value"] for b in got]
        assert values == want, f"case {n} {case}: U = {values}, golden {want}"
    assert sink.empty(), "the DUT produced more beats than expected"


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def back_to_back(dut):
    """All samples at full rate, ``u`` always ready."""
    await _run(dut, gaps=False)


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def random_stalls(dut):
    """Random gaps on ``v`` and random back-pressure on ``u``."""
    await _run(dut, gaps=True)
