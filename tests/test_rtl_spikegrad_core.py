"""The full SpikeGradCore in Amaranth's simulator against the golden event-driven simulator."""

from __future__ import annotations

import random

import pytest
import torch

from golden.data import encode_counts
from golden.spikegrad.params import SpikeGradParams
from golden.spikegrad.vectors import sequence_vectors
from spikecore.config import SpikeGradConfig

from rtl_spikegrad_harness import FLAG_NAMES, run_core, weight_access


def small_cfg(**kw):
    base = dict(layer_sizes=(5, 6, 3), activations=("relu", "linear"), theta_ff=40, theta_bp=40, weight_bits=8,
                membrane_bits=16, error_bits=16, error_shift=8, prob_bits=8, softmax_shift=2, exp_lut_size=16,
                exp_bits=8, queue_depth=8)
    base.update(kw)
    return SpikeGradConfig(**base)


def random_params(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    ws, bs = [], []
    for l in range(cfg.num_layers):
        shape = cfg.weight_shape(l)
        ws.append(torch.randint(-cfg.weight_limit, cfg.weight_limit + 1, shape, generator=g))
        bs.append(torch.randint(-cfg.bias_limit, cfg.bias_limit + 1, (shape[0],), generator=g) if cfg.bias
                  else torch.zeros(shape[0], dtype=torch.int64))
    return SpikeGradParams(cfg, ws, bs)


def random_items(cfg, rng, n, *, max_count=5, train=True):
    items = []
    for _ in range(n):
        counts = [rng.randint(-max_count // 2, max_count) for _ in range(cfg.layer_sizes[0])]
        label = rng.randrange(cfg.num_classes) if train else None
        items.append((encode_counts(counts), label, rng.randint(max(0, cfg.error_shift - 2), cfg.error_shift)))
    return items


def check(cfg, params, items, **kw):
    vec = sequence_vectors(params, items)
    got, final = run_core(params, items, **kw)
    for n, (g, e) in enumerate(zip(got, vec["samples"])):
        assert g["v_top"] == e["v_top"], f"sample {n}: V^L"
        assert g["predictions"] == [e["prediction"]] * cfg.num_classes, f"sample {n}: prediction"
        for k in ("forward_ops", "backward_ops", "update_ops"):
            assert g["counters"][k] == e["counters"][k], f"sample {n}: {k}"
        assert {k: g["flags"][k] for k in FLAG_NAMES} == e["flags"], f"sample {n}: flags"
        assert not g["flags"]["queue_overflow"] and not g["flags"]["protocol_error"]
        c = g["counters"]
        assert c["cycles"] >= c["forward_cycles"] + c["backward_cycles"] + c["update_cycles"]
    assert final["weights"] == vec["final"]["weights"]
    assert final["bias"] == vec["final"]["bias"]
    return got, vec


@pytest.mark.parametrize("lanes", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_two_layer_training_sequence(lanes, bias):
    cfg = small_cfg(lanes=lanes, bias=bias)
    rng = random.Random(lanes * 10 + bias)
    params = random_params(cfg, seed=lanes + 7 * bias)
    items = random_items(cfg, rng, 3) + random_items(cfg, rng, 1, train=False)
    check(cfg, params, items)


@pytest.mark.parametrize("lanes", [1, 2])
def test_engines_without_stage1_registers_give_the_same_results(lanes):
    """``register_ram_outputs=False`` (the iCEBreaker's engines): one pipeline stage less, same results."""
    from rtl.spikegrad import SpikeGradCore
    cfg = small_cfg(lanes=lanes, queue_depth=4)
    rng = random.Random(40 + lanes)
    params = random_params(cfg, seed=40 + lanes)
    items = random_items(cfg, rng, 3) + random_items(cfg, rng, 1, train=False)
    check(cfg, params, items, core=SpikeGradCore(cfg, register_ram_outputs=False))


@pytest.mark.parametrize("lanes,acts", [(1, ("relu", "relu", "linear")), (2, ("linear", "relu", "linear")),
                                        (4, ("relu", "linear", "linear"))])
def test_three_layer_network(lanes, acts):
    cfg = small_cfg(layer_sizes=(6, 5, 7, 3), activations=acts, lanes=lanes, theta_ff=30, theta_bp=24)
    rng = random.Random(lanes)
    params = random_params(cfg, seed=3 * lanes)
    check(cfg, params, random_items(cfg, rng, 3))


@pytest.mark.parametrize("lanes", [1, 4])
def test_narrow_widths_saturate_like_golden(lanes):
    """Narrow V/U/x/E widths: every saturation flag the golden model raises, the core raises too."""
    cfg = small_cfg(layer_sizes=(7, 5, 3), lanes=lanes, theta_ff=6, theta_bp=4, weight_bits=4, membrane_bits=5,
                    error_bits=5, trace_bits=3, count_bits=2, eta=2, error_shift=3, prob_bits=5, softmax_shift=0,
                    exp_lut_size=4, exp_bits=5, queue_depth=4)
    rng = random.Random(5)
    params = random_params(cfg, seed=11)
    items = random_items(cfg, rng, 4, max_count=8)
    got, vec = check(cfg, params, items)
    hit = {k for s in vec["samples"] for k, v in s["flags"].items() if v}
    assert {"membrane_saturated", "trace_saturated", "count_saturated", "weight_clamped"} <= hit


def test_result_back_pressure_and_small_queues():
    cfg = small_cfg(lanes=2, queue_depth=2)
    rng = random.Random(9)
    params = random_params(cfg, seed=9)
    check(cfg, params, random_items(cfg, rng, 2), result_ready=lambda c: c % 3 == 2)


def test_empty_sample_uses_nop_beat():
    cfg = small_cfg(lanes=2)
    params = random_params(cfg, seed=2)
    check(cfg, params, [([], 1, cfg.error_shift), ([], None, cfg.error_shift)])


def test_default_core_verilog_lints_clean_without_arithmetic_cells():
    from rtl.spikegrad import SpikeGradCore, generate_core_verilog
    from sim.lint import lint_verilog
    synthcheck = pytest.importorskip("rtl.synthcheck")
    cfg = SpikeGradConfig()
    assert lint_verilog(generate_core_verilog(cfg)) == []
    cells = synthcheck.arithmetic_cells(SpikeGradCore(cfg.replace(lanes=4)))
    assert not any(cells.values()), cells


def test_protocol_errors_weight_access_while_busy_and_out_of_range():
    from amaranth.sim import Simulator
    from rtl.spikegrad import SpikeGradCore
    from rtl.spikegrad.layouts import Op
    cfg = small_cfg(lanes=2)
    dut = SpikeGradCore(cfg)
    seen = {}

    async def access(ctx, write, layer, row, col, value=0, bias=0):
        return await weight_access(ctx, dut, write, bias, layer, row, col, value)

    async def tb(ctx):
        await access(ctx, 1, 1, 2, 4, 17)
        seen["read"] = await access(ctx, 0, 1, 2, 4)
        seen["flag0"] = ctx.get(dut.flags.protocol_error)
        await access(ctx, 1, 0, 6, 0, 5)          # row out of range
        seen["flag1"] = ctx.get(dut.flags.protocol_error)
        ctx.set(dut.clear_flags, 1)
        await ctx.tick()
        ctx.set(dut.clear_flags, 0)
        ctx.set(dut.cmd.payload, {"op": Op.INFER, "label": 0})
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        seen["busy_read"] = await access(ctx, 0, 1, 2, 4)    # while busy: answered 0
        await access(ctx, 1, 1, 2, 4, -3)                    # while busy: ignored
        seen["flag2"] = ctx.get(dut.flags.protocol_error)
        ctx.set(dut.spikes.payload, {"index": 0, "negative": 0, "last": 1, "nop": 1})
        ctx.set(dut.spikes.valid, 1)
        await ctx.tick().until(dut.spikes.ready)
        ctx.set(dut.spikes.valid, 0)
        ctx.set(dut.result.ready, 1)
        await ctx.tick().until(dut.result.valid & dut.result.payload.last)
        await ctx.tick()
        seen["after"] = await access(ctx, 0, 1, 2, 4)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen == {"read": 17, "flag0": 0, "flag1": 1, "busy_read": 0, "flag2": 1, "after": 17}
