"""cocotb bench: the fitting task trained on two Verilated TemporalLayerEngines (``cocotb_tests/exodus_engine/dut.py``).

Arguments: ``task`` (a :class:`FitTask` as a dict), ``backward``, ``epochs``, ``check_weights_epochs``,
``golden`` (per epoch: hidden and output spike trains, loss; weights after each checked epoch),
optional ``result_file``. The host loop per epoch: FORWARD both layers (hidden spikes copied into the
output layer's input), loss and ``g`` in Python from the output spikes, BACKWARD of the output layer with
the gradient to the layer below, copied into the hidden layer's ``g``, BACKWARD of the hidden layer,
UPDATE both. Every spike train and loss is compared with the golden model each epoch, every weight
after the checked epochs.
"""

import json
import time

import cocotb
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

from rtl.exodus.engine import Op, Target, cmd_layout, host_layout
from sim.runner import bench_args
from sim.stream import CLOCK_PERIOD_NS, StreamDriver, StreamSink, reset_dut, start_clock, wait_for

from .fit import FitTask, loss_and_grad
from .model import from_bits, pack_word, spikes_to_word, unpack_word, word_to_spikes


class EngineHost:
    def __init__(self, dut, prefix, cfg, fan_in, fan_out, max_steps, backprop):
        self.dut, self.p = dut, prefix
        self.cfg, self.fan_in, self.fan_out = cfg, fan_in, fan_out
        self.busy = getattr(dut, f"{prefix}_busy")
        self.host = StreamDriver(dut, f"{prefix}_host", layout=host_layout(cfg, fan_in, fan_out, max_steps, backprop))
        self.rdata = StreamSink(dut, f"{prefix}_rdata")
        self.cmd = StreamDriver(dut, f"{prefix}_cmd", layout=cmd_layout(max_steps))

    async def write_all(self, target, values):
        await self.host.send_all([{"write": 1, "target": target, "addr": a, "data": v} for a, v in enumerate(values)])

    async def read_all(self, target, count):
        for a in range(count):
            self.host.send_nowait({"write": 0, "target": target, "addr": a, "data": 0})
        return await self.rdata.recv_n(count)

    async def command(self, op, **kw):
        await self.cmd.send({"op": op, "steps": 0, "slayer": 0, "grad_prev": 0, **kw})
        await RisingEdge(self.dut.clk)
        await wait_for(self.busy, 0, timeout_cycles=10_000_000)

    async def weights(self):
        raw = await self.read_all(Target.W, self.fan_in * self.fan_out)
        return [from_bits(r, self.cfg.weight_bits) for r in raw]


@cocotb.test(timeout_time=100_000, timeout_unit="ms")
async def fit_task(dut):
    args = bench_args()
    task = FitTask(**args["task"])
    backward = args["backward"]
    cfg = task.config(backward)
    T, GB = task.steps, cfg.grad_bits
    x, target, ws = task.data()
    start_clock(dut)
    await reset_dut(dut)
    hid = EngineHost(dut, "hid", cfg, task.n_in, task.n_hidden, cfg.max_steps, False)
    out = EngineHost(dut, "out", cfg, task.n_hidden, 1, cfg.max_steps, True)
    await hid.write_all(Target.W, [int(v) & 0xFFFF_FFFF for v in ws[0].flatten().tolist()])
    await out.write_all(Target.W, [int(v) & 0xFFFF_FFFF for v in ws[1].flatten().tolist()])
    await hid.write_all(Target.X, [spikes_to_word(row) for row in x.tolist()])
    slayer = int(backward == "slayer")
    losses, epochs_checked, engine_cycles = [], 0, []
    wall0 = time.perf_counter()
    for e in range(args["epochs"]):
        gold = args["golden"][e]
        c0 = get_sim_time("ns")
        await hid.command(Op.FORWARD, steps=T)
        h_words = await hid.read_all(Target.S, T)
        assert [word_to_spikes(w, task.n_hidden) for w in h_words] == gold["hidden_spikes"], f"epoch {e}: hidden spikes"
        await out.write_all(Target.X, h_words)
        await out.command(Op.FORWARD, steps=T)
        o = [word_to_spikes(w, 1)[0] for w in await out.read_all(Target.S, T)]
        assert o == gold["out_spikes"], f"epoch {e}: output spikes"
        loss, g = loss_and_grad(o, target, task.filter_beta, cfg)
        assert loss == gold["loss"]
        losses.append(loss)
        await out.write_all(Target.G, [pack_word([v], GB) for v in g.tolist()])
        await out.command(Op.BACKWARD, slayer=slayer, grad_prev=1)
        gp_words = await out.read_all(Target.GP, T)
        await hid.write_all(Target.G, gp_words)  # the same packing: fan_in(out) == fan_out(hid)
        await hid.command(Op.BACKWARD, slayer=slayer, grad_prev=0)
        await out.command(Op.UPDATE)
        await hid.command(Op.UPDATE)
        engine_cycles.append(round((get_sim_time("ns") - c0) / CLOCK_PERIOD_NS))
        if e < len(args["golden_weights"]):
            gw = args["golden_weights"][e]
            assert await hid.weights() == gw["hidden"], f"epoch {e}: hidden weights differ"
            assert await out.weights() == gw["out"], f"epoch {e}: output weights differ"
            epochs_checked += 1
    flags = {k: int(getattr(dut, f"{p}_flags").value) for p, k in (("hid", "hid"), ("out", "out"))}
    result = {"backward": backward, "epochs": args["epochs"], "losses": losses,
              "weights_bit_exact_epochs": epochs_checked, "spikes_and_loss_bit_exact_epochs": len(losses),
              "sim_cycles_per_epoch": engine_cycles, "wall_s": time.perf_counter() - wall0,
              "flags": flags,
              "counters": {p: {k: int(getattr(dut, f"{p}_{k}").value)
                               for k in ("cycles", "fwd_steps", "bwd_steps", "syn_events", "sat_count",
                                         "chi_sat_count")} for p in ("hid", "out")}}
    dut._log.info("fit: %s", {k: v for k, v in result.items() if k != "sim_cycles_per_epoch"})
    if args.get("result_file"):
        with open(args["result_file"], "w") as f:
            json.dump(result, f)
