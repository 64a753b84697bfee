"""Drive a SpikeGradCore in Amaranth's simulator: load weights, run commands, read back (shared by tests)."""

from __future__ import annotations

from amaranth.sim import Simulator

from rtl.spikegrad import SpikeGradCore
from rtl.spikegrad.layouts import Op

FLAG_NAMES = ("membrane_saturated", "error_saturated", "trace_saturated", "count_saturated", "weight_clamped")


async def weight_access(ctx, dut, write, bias, layer, row, col, value=0):
    """One transfer on the core's weight port; a read returns the answered value."""
    ctx.set(dut.weights.payload, {"write": write, "bias": bias, "layer": layer, "row": row, "col": col,
                                  "data": value})
    ctx.set(dut.weights.valid, 1)
    await ctx.tick().until(dut.weights.ready)
    ctx.set(dut.weights.valid, 0)
    if not write:
        ctx.set(dut.weights_rdata.ready, 1)
        (d,) = await ctx.tick().sample(dut.weights_rdata.payload).until(dut.weights_rdata.valid)
        ctx.set(dut.weights_rdata.ready, 0)
        return d


def run_core(params, items, *, result_ready=None, readback=True, core=None):
    """Run ``items`` (``(events, label_or_None, error_shift)``) in order on one core.

    Returns ``(samples, final)``: per sample ``v_top``, ``prediction``, ``counters`` (dict) and
    ``flags`` (dict incl. queue_overflow / protocol_error); ``final`` = ``{"weights", "bias"}`` read back.
    ``result_ready`` : optional function ``cycle -> bool`` applying back-pressure on ``result``.
    """
    cfg = params.config
    dut = core or SpikeGradCore(cfg)
    L, C = cfg.num_layers, cfg.num_classes
    out = {"samples": [], "final": None}

    async def access(ctx, write, bias, layer, row, col, value=0):
        return await weight_access(ctx, dut, write, bias, layer, row, col, value)

    async def tb(ctx):
        for l in range(L):
            w, b = params.weights[l].tolist(), params.biases[l].tolist()
            for i, row in enumerate(w):
                for j, v in enumerate(row):
                    await access(ctx, 1, 0, l, i, j, v)
                if cfg.bias:
                    await access(ctx, 1, 1, l, i, 0, b[i])
        for events, label, shift in items:
            ctx.set(dut.error_shift, shift)
            ctx.set(dut.clear_flags, 1)
            await ctx.tick()
            ctx.set(dut.clear_flags, 0)
            ctx.set(dut.cmd.payload, {"op": Op.INFER if label is None else Op.TRAIN, "label": label or 0})
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            beats = [(j, s, 0) for j, s in events] or [(0, 1, 1)]
            for n, (j, s, nop) in enumerate(beats):
                ctx.set(dut.spikes.payload, {"index": j, "negative": int(s < 0), "last": int(n == len(beats) - 1),
                                             "nop": nop})
                ctx.set(dut.spikes.valid, 1)
                await ctx.tick().until(dut.spikes.ready)
            ctx.set(dut.spikes.valid, 0)
            res = []
            cycle = 0
            while len(res) < C:
                rdy = 1 if result_ready is None else int(bool(result_ready(cycle)))
                cycle += 1
                ctx.set(dut.result.ready, rdy)
                _, _, valid, pl = await ctx.tick().sample(dut.result.valid, dut.result.payload)
                if valid and rdy:
                    res.append((pl.index, pl.value, pl.prediction, pl.last))
            ctx.set(dut.result.ready, 0)
            await ctx.tick()
            assert [r[0] for r in res] == list(range(C))
            assert [r[3] for r in res] == [0] * (C - 1) + [1]
            ctrs = ctx.get(dut.counters)
            fl = ctx.get(dut.flags)
            out["samples"].append({
                "v_top": [r[1] for r in res], "prediction": res[0][2],
                "predictions": [r[2] for r in res],
                "counters": {k: getattr(ctrs, k) for k in ("cycles", "forward_ops", "backward_ops", "update_ops",
                                                          "forward_cycles", "backward_cycles", "update_cycles")},
                "flags": {k: bool(getattr(fl, k)) for k in FLAG_NAMES + ("queue_overflow", "protocol_error")},
                "busy_after": ctx.get(dut.busy),
            })
        if readback:
            ws, bs = [], []
            for l in range(L):
                fo, fi = cfg.weight_shape(l)
                ws.append([[await access(ctx, 0, 0, l, i, j) for j in range(fi)] for i in range(fo)])
                bs.append([await access(ctx, 0, 1, l, i, 0) for i in range(fo)])
            out["final"] = {"weights": ws, "bias": bs}

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out["samples"], out["final"]
