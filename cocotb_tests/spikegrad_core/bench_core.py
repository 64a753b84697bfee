"""cocotb bench: the Verilated SpikeGradCore against golden vectors.

Driven from ``tests/test_cocotb_spikegrad_core.py`` via :func:`sim.runner.run_cocotb`.
Arguments (:func:`sim.runner.bench_args`):

* ``config`` -- the SpikeGradConfig dict the DUT was built from;
* ``params`` -- ``{"weights", "bias"}`` loaded through the weight port first;
* ``samples`` -- list of ``{"events", "label" (None: INFER), "error_shift",
  "v_top", "prediction", "counters", "flags"}`` expected from the golden
  event-driven simulator, run in order on the same core;
* ``final`` -- ``{"weights", "bias"}`` expected after all samples (read back);
* ``result_gaps`` / ``spike_gaps`` -- seeds for random back-pressure (optional).

The bench compares everything and reports all mismatches at once.
"""

from __future__ import annotations

import random
import time

import cocotb

from sim.runner import bench_args
from sim.spikegrad_driver import SpikeGradCoreDriver
from sim.stream import random_gaps
from spikecore.config import SpikeGradConfig

OP_COUNTERS = ("forward_ops", "backward_ops", "update_ops")
GOLDEN_FLAGS = ("membrane_saturated", "error_saturated", "trace_saturated", "count_saturated", "weight_clamped")


def _compare_sample(n, got, want, counters, flags, problems):
    if got["v_top"] != want["v_top"]:
        problems.append(f"sample {n}: V^L {got['v_top']} != golden {want['v_top']}")
    if got["prediction"] != want["prediction"]:
        problems.append(f"sample {n}: prediction {got['prediction']} != golden {want['prediction']}")
    if len(set(got["predictions"])) != 1 or got["indices"] != list(range(len(want["v_top"]))):
        problems.append(f"sample {n}: malformed result beats {got}")
    if got["lasts"][-1] != 1 or any(got["lasts"][:-1]):
        problems.append(f"sample {n}: 'last' flags {got['lasts']}")
    for k in OP_COUNTERS:
        if counters[k] != want["counters"][k]:
            problems.append(f"sample {n}: counter {k} = {counters[k]}, golden {want['counters'][k]}")
    for k in GOLDEN_FLAGS:
        if flags[k] != int(want["flags"][k]):
            problems.append(f"sample {n}: flag {k} = {flags[k]}, golden {int(want['flags'][k])}")


@cocotb.test(timeout_time=600, timeout_unit="sec")
async def golden_samples(dut):
    """Load weights, run every sample (INFER or TRAIN), compare with golden, read weights back."""
    args = bench_args()
    cfg = SpikeGradConfig.from_dict(args["config"])
    rng = random.Random(args.get("seed", 0))
    drv = SpikeGradCoreDriver(dut, cfg,
                              result_gaps=random_gaps(rng, max_gap=3) if args.get("result_gaps") else None,
                              spike_gaps=random_gaps(rng, max_gap=2) if args.get("spike_gaps") else None)
    await drv.start()
    await drv.load_params(args["params"]["weights"], args["params"]["bias"])
    problems, cycles, stats = [], [], []
    t0 = time.monotonic()
    for n, s in enumerate(args["samples"]):
        drv.set_error_shift(s.get("error_shift", cfg.error_shift))
        await drv.clear_flags()
        got = await drv.run_sample([tuple(e) for e in s["events"]], s["label"])
        counters, flags = drv.counters(), drv.flags()
        _compare_sample(n, got, s, counters, flags, problems)
        stats.append(counters)
        if len(problems) > 20:
            break
    wall = time.monotonic() - t0
    if args.get("final") is not None and not problems:
        ws, bs = await drv.read_params()
        want_w, want_b = args["final"]["weights"], args["final"]["bias"]
        for l in range(cfg.num_layers):
            diff = [(i, j) for i, row in enumerate(ws[l]) for j, v in enumerate(row) if v != want_w[l][i][j]]
            if diff:
                i, j = diff[0]
                problems.append(f"layer {l}: {len(diff)} weights differ after training, first w[{i}][{j}] = "
                                f"{ws[l][i][j]}, golden {want_w[l][i][j]}")
            if bs[l] != want_b[l]:
                problems.append(f"layer {l}: biases differ after training: {bs[l]} != golden {want_b[l]}")
    flags = drv.flags()
    if flags["queue_overflow"] or flags["protocol_error"]:
        problems.append(f"unexpected flags {flags}")
    dut._log.info("ran %d samples in %.2f s wall", len(args["samples"]), wall)
    if args.get("stats_file"):
        import json
        with open(args["stats_file"], "w") as f:
            json.dump({"wall_seconds": wall, "counters": stats}, f)
    assert not problems, "\n".join(problems[:20])


@cocotb.test(timeout_time=10, timeout_unit="sec")
async def weight_port_and_protocol_errors(dut):
    """Weights read back as written; bad accesses set protocol_error and change nothing; RESET clears flags."""
    args = bench_args()
    cfg = SpikeGradConfig.from_dict(args["config"])
    drv = SpikeGradCoreDriver(dut, cfg)
    await drv.start()
    params = (args["params"]["weights"], args["params"]["bias"])
    await drv.load_params(*params)
    back = await drv.read_params()
    assert back == params, "weights read back differ from the weights written"
    assert not drv.flags()["protocol_error"]
    # Out-of-range coordinates (a row past the top layer): ignored, flagged, nothing written.
    top = cfg.num_layers - 1
    row_bits = max(1, (max(cfg.layer_sizes[1:]) - 1).bit_length())
    if cfg.num_classes < (1 << row_bits):
        drv.weights.send_nowait({"write": 1, "bias": 0, "layer": top, "row": cfg.num_classes, "col": 0, "data": 1})
        await drv.weights.wait_idle()
        for _ in range(4):
            await cocotb.triggers.RisingEdge(dut.clk)
        assert drv.flags()["protocol_error"], "out-of-range write did not set protocol_error"
    assert (await drv.read_params()) == params, "a refused access changed the weights"
    await drv.reset_state()
    assert not any(drv.flags().values()), "RESET did not clear the flags"
