"""cocotb bench for :class:`rtl.exodus.ChiRecurrence` (writable tables, so one build serves every configuration).

Driven from ``tests/test_rtl_exodus_chi_cocotb.py`` and ``scripts/exodus_rtl_bench.py``. Arguments
(:func:`sim.runner.bench_args`), all payloads pre-packed to ints with the RTL's own layouts:
``segments`` (each: ``table_beats``, ``slayer``, ``beats``, ``expected``, ``saturations``),
``gaps`` (random valid gaps and back-pressure), ``seed``, optional ``result_file`` (JSON with the
throughput measurement of test ``throughput``).
"""

import json
import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from sim.runner import bench_args
from sim.stream import CLOCK_PERIOD_NS, StreamDriver, StreamSink, random_gaps, reset_dut, start_clock


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def golden_segments(dut):
    """Every segment: load its tables, stream its beats, compare every lambda in order."""
    args = bench_args()
    rng = random.Random(args.get("seed", 0))
    start_clock(dut)
    await reset_dut(dut)
    tables = StreamDriver(dut, "table")
    gaps_on = [False]  # one driver and one sink for the whole run (each owns its port); gaps switch per segment
    in_gaps, out_gaps = random_gaps(rng), random_gaps(rng, max_gap=4)
    source = StreamDriver(dut, "i", gaps=(next(in_gaps) if gaps_on[0] else 0 for _ in iter(int, 1)))
    sink = StreamSink(dut, "o", gaps=(next(out_gaps) if gaps_on[0] else 0 for _ in iter(int, 1)))
    total_steps = total_sat = 0
    for k, seg in enumerate(args["segments"]):
        await tables.send_all(seg["table_beats"])
        await tables.wait_idle()
        dut.slayer.value = seg["slayer"]
        gaps_on[0] = bool(args.get("gaps")) and k % 2 == 1
        dut._log.info("segment %d: %d beats, gaps %s", k, len(seg["beats"]), gaps_on[0])
        for b in seg["beats"]:
            source.send_nowait(b)
        got = await sink.recv_n(len(seg["expected"]))
        assert got == seg["expected"], (
            f"segment {k}: first mismatch at beat {next(i for i, (a, b) in enumerate(zip(got, seg['expected'])) if a != b)}")
        await ClockCycles(dut.clk, 2)
        total_steps += seg["neuron_steps"]
        total_sat += seg["saturations"]
        assert int(dut.steps.value) == total_steps
        assert int(dut.sat_count.value) == total_sat, f"segment {k}: saturation count"
    assert int(dut.sat.value) == int(total_sat > 0)


@cocotb.test(timeout_time=500, timeout_unit="ms")
async def throughput(dut):
    """Back-to-back beats with the sink always ready: output beats per cycle in steady state."""
    args = bench_args()
    seg = args["segments"][0]
    start_clock(dut)
    await reset_dut(dut)
    dut.clear.value = 1
    await RisingEdge(dut.clk)
    dut.clear.value = 0
    await StreamDriver(dut, "table").send_all(seg["table_beats"])  # memories survive the reset
    dut.slayer.value = seg["slayer"]
    source = StreamDriver(dut, "i")
    sink = StreamSink(dut, "o")
    for b in seg["beats"]:
        source.send_nowait(b)
    first = await sink.recv()
    t0 = get_sim_time("ns")
    got = [first] + await sink.recv_n(len(seg["beats"]) - 1)
    t1 = get_sim_time("ns")
    assert got == seg["expected"]
    cycles = round((t1 - t0) / CLOCK_PERIOD_NS) + 1  # first output beat to last, inclusive
    lanes = args["lanes"]
    result = {"beats": len(seg["beats"]), "lanes": lanes, "neuron_steps": len(seg["beats"]) * lanes,
              "cycles_first_to_last_output": cycles,
              "neuron_steps_per_cycle": len(seg["beats"]) * lanes / cycles,
              "steps_counter": int(dut.steps.value)}
    dut._log.info("throughput: %s", result)
    if args.get("result_file"):
        with open(args["result_file"], "w") as f:
            json.dump(result, f)
    assert cycles == len(seg["beats"]), "not one beat per cycle in steady state"
