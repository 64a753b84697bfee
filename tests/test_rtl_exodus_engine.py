"""TemporalLayerEngine in the Amaranth simulator: small layers, every memory against the golden model."""

from __future__ import annotations

import warnings

import pytest
import torch
from amaranth.sim import Simulator

from cocotb_tests.exodus_engine.model import (GoldenLayer, from_bits, pack_word, spikes_to_word, to_bits,
                                              unpack_word, word_to_spikes)
from rtl.exodus.engine import Op, Target, TemporalLayerEngine
from spikecore.config import ExodusConfig


class Host:
    """Host accesses and commands through the engine's ports (Amaranth async testbench)."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut

    async def _send(self, port, payload):
        self.ctx.set(port.payload, payload)
        self.ctx.set(port.valid, 1)
        while True:
            _, _, rdy = await self.ctx.tick().sample(port.ready)
            if rdy:
                break
        self.ctx.set(port.valid, 0)

    async def write(self, target, addr, value):
        await self._send(self.dut.host, {"write": 1, "target": target, "addr": addr, "data": value})

    async def read(self, target, addr):
        await self._send(self.dut.host, {"write": 0, "target": target, "addr": addr, "data": 0})
        self.ctx.set(self.dut.rdata.ready, 1)
        while True:
            _, _, vld, val = await self.ctx.tick().sample(self.dut.rdata.valid, self.dut.rdata.payload)
            if vld:
                break
        self.ctx.set(self.dut.rdata.ready, 0)
        return val

    async def load(self, cfg, w, x):
        """Weights ``w`` (fan_out x fan_in) and input spikes ``x`` (T x fan_in) into W and X."""
        for k, v in enumerate(w.flatten().tolist()):
            await self.write(Target.W, k, to_bits(int(v), cfg.weight_bits))
        for n in range(x.shape[0]):
            await self.write(Target.X, n, spikes_to_word(x[n]))

    async def command(self, op, steps=0, slayer=0, grad_prev=0):
        await self._send(self.dut.cmd, {"op": op, "steps": steps, "slayer": slayer, "grad_prev": grad_prev})
        await self.ctx.tick()
        while self.ctx.get(self.dut.busy):
            await self.ctx.tick()


def run_layer(cfg, *, fan_in, fan_out, T, seed, slayer=False, w_scale=1.0, g_scale=1.0, rounds=2):
    gen = torch.Generator().manual_seed(seed)
    lo, hi = ExodusConfig.signed_range(cfg.weight_bits)
    w = (torch.randn(fan_out, fan_in, generator=gen) * w_scale * cfg.theta_q).round().clamp(lo, hi).to(torch.int64)
    x = (torch.rand(T, fan_in, generator=gen) < 0.4).to(torch.int64)
    golden = GoldenLayer(cfg, w)
    dut = TemporalLayerEngine(cfg, fan_in=fan_in, fan_out=fan_out, max_steps=T + 2)
    GB = cfg.grad_bits
    checks = []

    async def bench(ctx):
        h = Host(ctx, dut)
        await h.load(cfg, w, x)
        for r in range(rounds):
            s, u, mask = golden.forward(x)
            await h.command(Op.FORWARD, steps=T)
            got_s = [word_to_spikes(await h.read(Target.S, n), fan_out) for n in range(T)]
            got_u = [[from_bits(await h.read(Target.U, n * fan_out + i), cfg.u_bits) for i in range(fan_out)]
                     for n in range(T)]
            checks.append(("s", r, got_s, s.tolist()))
            checks.append(("u", r, got_u, u.tolist()))
            lim = 1 << (cfg.grad_frac - 2)
            g = (torch.randint(-lim, lim, (T, fan_out), generator=gen) * g_scale).to(torch.int64)
            g = g.clamp(*ExodusConfig.signed_range(GB))
            for n in range(T):
                await h.write(Target.G, n, pack_word(g[n].tolist(), GB))
            lam, gp = golden.backward(g, slayer=slayer)
            await h.command(Op.BACKWARD, slayer=int(slayer), grad_prev=1)
            got_lam = [[from_bits(await h.read(Target.LAM, n * fan_out + i), GB) for i in range(fan_out)]
                       for n in range(T)]
            got_gp = [unpack_word(await h.read(Target.GP, n), GB, fan_in) for n in range(T)]
            got_acc = [from_bits(await h.read(Target.ACC, k), cfg.acc_bits) for k in range(fan_in * fan_out)]
            checks.append(("lam", r, got_lam, lam.tolist()))
            checks.append(("gp", r, got_gp, gp.tolist()))
            checks.append(("acc", r, got_acc, golden.acc.flatten().tolist()))
            golden.update()
            await h.command(Op.UPDATE)
            got_w = [from_bits(await h.read(Target.W, k), cfg.weight_bits) for k in range(fan_in * fan_out)]
            checks.append(("w", r, got_w, golden.w.flatten().tolist()))
        flags = ctx.get(dut.flags)
        checks.append(("flags", 0, {k: int(flags[k]) for k in golden.sat},
                       {k: int(v > 0) for k, v in golden.sat.items()}))
        checks.append(("fwd_steps", 0, ctx.get(dut.fwd_steps), rounds * T * fan_out))
        checks.append(("bwd_steps", 0, ctx.get(dut.bwd_steps), rounds * T * fan_out))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        sim.run()
    for name, r, got, exp in checks:
        assert got == exp, f"{name} differs in round {r}"
    return golden


LIF = ExodusConfig(alpha=0.9, lut_size=64, lut_shift=9, lr_shift=2)


@pytest.mark.parametrize("case", ["lif_after", "if_before_clamp_slayer", "single_neuron", "wide_input"])
def test_small_layer_matches_golden(case):
    if case == "lif_after":
        g = run_layer(LIF, fan_in=7, fan_out=3, T=6, seed=1)
    elif case == "if_before_clamp_slayer":
        cfg = LIF.replace(alpha=1.0, reset_order="before_decay", u_min=-1.0)
        g = run_layer(cfg, fan_in=5, fan_out=2, T=7, seed=2, slayer=True)
    elif case == "single_neuron":
        g = run_layer(LIF, fan_in=4, fan_out=1, T=5, seed=3)
    else:   # input spikes spread over several of the scanner's 16-bit chunks
        g = run_layer(LIF, fan_in=40, fan_out=3, T=4, seed=4)
    assert not any(g.sat.values())


def test_saturation_flags():
    """Narrow formats and large weights: the forward saturates; flags equal the golden counts being non-zero."""
    cfg = ExodusConfig(alpha=0.9, lut_size=64, lut_shift=9, u_bits=16, u_frac=8, weight_bits=16, grad_bits=14,
                       grad_frac=10, fprime_frac=10, fprime_bits=12, coef_bits=12, acc_bits=18, max_steps=8,
                       lr_shift=0, threshold=1.0)
    g = run_layer(cfg, fan_in=6, fan_out=2, T=6, seed=4, w_scale=60.0, g_scale=8.0, rounds=1)
    assert g.sat["fwd"]


def test_access_taken_while_running_waits_for_the_command():
    """``cmd`` and ``host`` end in registers: a host read offered right after a FORWARD is taken
    while the engine runs and performed once it is idle, so it returns the command's result;
    a command offered while an access is held waits for it. Against the golden layer."""
    fan_in, fan_out, T = 6, 2, 5
    gen = torch.Generator().manual_seed(11)
    w = (torch.randn(fan_out, fan_in, generator=gen) * LIF.theta_q).round().to(torch.int64)
    x = (torch.rand(T, fan_in, generator=gen) < 0.5).to(torch.int64)
    s_exp, _, _ = GoldenLayer(LIF, w).forward(x)
    dut = TemporalLayerEngine(LIF, fan_in=fan_in, fan_out=fan_out, max_steps=T)
    got = {}

    async def bench(ctx):
        h = Host(ctx, dut)
        await h.load(LIF, w, x)
        await h._send(dut.cmd, {"op": Op.FORWARD, "steps": T, "slayer": 0, "grad_prev": 0})
        got["busy_after_cmd"] = ctx.get(dut.busy)
        got["s_last"] = word_to_spikes(await h.read(Target.S, T - 1), fan_out)   # taken while running
        got["busy_after_read"] = ctx.get(dut.busy)
        got["s_all"] = [word_to_spikes(await h.read(Target.S, n), fan_out) for n in range(T)]
        # a CLEAR right behind a held write: the write is performed first, then the clear
        await h._send(dut.host, {"write": 1, "target": Target.X, "addr": 0, "data": 0})
        await h._send(dut.cmd, {"op": Op.CLEAR, "steps": 0, "slayer": 0, "grad_prev": 0})
        while ctx.get(dut.busy):
            await ctx.tick()
        got["fwd_steps_after_clear"] = ctx.get(dut.fwd_steps)
        got["x0"] = await h.read(Target.X, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got["busy_after_cmd"] == 1 and got["busy_after_read"] == 0
    assert got["s_last"] == s_exp[T - 1].tolist()
    assert got["s_all"] == s_exp.tolist()
    assert got["fwd_steps_after_clear"] == 0 and got["x0"] == 0
