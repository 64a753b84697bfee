"""Transaction-level cocotb driver for :class:`rtl.spikegrad.SpikeGradCore`.

One object per DUT. Every method is one transaction (load the weights, run a
sample, read the counters...): Python wakes only at stream handshakes and lets
Verilator run freely in between.

Parameters travel as plain lists (``weights[l][i][j]``, ``bias[l][i]``) so the
simulator process never imports torch (a multi-second start-up cost per bench).
"""

from __future__ import annotations

from amaranth.hdl import signed
from cocotb.triggers import ClockCycles, RisingEdge

from rtl.spikegrad.layouts import (Op, command_layout, counters_layout, flags_layout, result_layout,
                                   spike_layout, weight_access_layout)
from spikecore.config import SpikeGradConfig

from .stream import StreamDriver, StreamSink, start_clock, reset_dut, unpack


class SpikeGradCoreDriver:
    """Drive a Verilated ``SpikeGradCore`` built from ``cfg``.

    Members
    -------
    cfg : the configuration the DUT was elaborated from.
    dut : the cocotb handle.
    """

    def __init__(self, dut, cfg: SpikeGradConfig, *, result_gaps=None, spike_gaps=None):
        self.dut, self.cfg = dut, cfg
        self.cmd = StreamDriver(dut, "cmd", layout=command_layout(cfg))
        self.spikes = StreamDriver(dut, "spikes", layout=spike_layout(cfg), gaps=spike_gaps)
        self.weights = StreamDriver(dut, "weights", layout=weight_access_layout(cfg))
        self.rdata = StreamSink(dut, "weights_rdata", layout=signed(cfg.weight_bits))
        self.result = StreamSink(dut, "result", layout=result_layout(cfg), gaps=result_gaps)

    async def start(self, error_shift: int | None = None) -> None:
        start_clock(self.dut)
        self.dut.clear_flags.value = 0
        self.set_error_shift(self.cfg.error_shift if error_shift is None else error_shift)
        await reset_dut(self.dut)

    def set_error_shift(self, shift: int) -> None:
        self.dut.error_shift.value = shift

    # ------------------------------------------------------------ weights
    def _access(self, *, write, bias, layer, row, col=0, value=0):
        return {"write": int(write), "bias": int(bias), "layer": layer, "row": row, "col": col, "data": int(value)}

    async def load_params(self, weights, bias) -> None:
        """Write ``weights[l][i][j]`` and ``bias[l][i]`` through the weight port."""
        beats = []
        for l, (w, b) in enumerate(zip(weights, bias)):
            for i, row in enumerate(w):
                beats += [self._access(write=1, bias=0, layer=l, row=i, col=j, value=v) for j, v in enumerate(row)]
            if self.cfg.bias:
                beats += [self._access(write=1, bias=1, layer=l, row=i, value=v) for i, v in enumerate(b)]
        await self.weights.send_all(beats)

    async def read_params(self):
        """Read every weight and bias back; returns ``(weights, bias)`` as lists."""
        cfg = self.cfg
        ws, bs = [], []
        for l in range(cfg.num_layers):
            fan_out, fan_in = cfg.weight_shape(l)
            for i in range(fan_out):
                for j in range(fan_in):
                    self.weights.send_nowait(self._access(write=0, bias=0, layer=l, row=i, col=j))
            flat = [await self.rdata.recv() for _ in range(fan_out * fan_in)]
            ws.append([flat[i * fan_in:(i + 1) * fan_in] for i in range(fan_out)])
            if cfg.bias:
                for i in range(fan_out):
                    self.weights.send_nowait(self._access(write=0, bias=1, layer=l, row=i))
                bs.append([await self.rdata.recv() for _ in range(fan_out)])
            else:
                bs.append([0] * fan_out)
        return ws, bs

    async def read_raw(self, *, layer: int, row: int, col: int = 0, bias: bool = False) -> int:
        self.weights.send_nowait(self._access(write=0, bias=bias, layer=layer, row=row, col=col))
        return await self.rdata.recv()

    # ------------------------------------------------------------- samples
    async def run_sample(self, events, label: int | None = None) -> dict:
        """INFER (``label is None``) or TRAIN one sample given as input events; returns the result."""
        op = Op.INFER if label is None else Op.TRAIN
        self.cmd.send_nowait({"op": int(op), "label": 0 if label is None else label})
        beats = [{"index": j, "negative": int(s < 0), "last": 0, "nop": 0} for j, s in events]
        if beats:
            beats[-1]["last"] = 1
        else:
            beats = [{"index": 0, "negative": 0, "last": 1, "nop": 1}]
        for b in beats:
            self.spikes.send_nowait(b)
        res = [await self.result.recv() for _ in range(self.cfg.num_classes)]
        await RisingEdge(self.dut.clk)
        return {
            "v_top": [r["value"] for r in res],
            "prediction": res[0]["prediction"],
            "indices": [r["index"] for r in res],
            "lasts": [r["last"] for r in res],
            "predictions": [r["prediction"] for r in res],
        }

    async def reset_state(self) -> None:
        self.cmd.send_nowait({"op": int(Op.RESET), "label": 0})
        await self.cmd.wait_idle()
        await ClockCycles(self.dut.clk, 2)
        while int(self.dut.busy.value):
            await RisingEdge(self.dut.clk)

    # --------------------------------------------------------- status
    def flags(self) -> dict:
        return unpack(flags_layout(), self.dut.flags.value.to_unsigned())

    def counters(self) -> dict:
        return unpack(counters_layout(), self.dut.counters.value.to_unsigned())

    async def clear_flags(self) -> None:
        self.dut.clear_flags.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.clear_flags.value = 0
