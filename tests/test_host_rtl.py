"""Amaranth-simulator tests of the host interface: CRC, UART, and the bridge (with a stand-in core)
driven over its UART pins and compared, response by response, with the reference model."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from rtl.host import CRC16, UARTRx, UARTTx
from rtl.host.standin import StandInCore, standin_model
from rtl.host.top import SpikeGradSystem
from spikecore.config import ExodusConfig, SpikeGradConfig
from spikecore.host import protocol as P
from spikecore.host.model import BridgeModel
from spikecore.host.protocol import Cmd, Kind, Reg, Status

SMALL = SpikeGradConfig(layer_sizes=(6, 5, 3), weight_bits=12, theta_ff=1000, theta_bp=1000, membrane_bits=16,
                        error_bits=16, error_shift=12, prob_bits=8, softmax_shift=2, exp_lut_size=64, exp_bits=8,
                        input_bits=4)
DIVISOR = 4
TIMEOUT = 200
PERIOD = 1e-6


def test_crc_matches_python():
    dut = CRC16()
    data = bytes(random.Random(1).randrange(256) for _ in range(40)) + b"123456789"
    sim = Simulator(dut)
    sim.add_clock(PERIOD)

    async def tb(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        crc = P.CRC_INIT
        for b in data:
            ctx.set(dut.en, 1)
            ctx.set(dut.data, b)
            await ctx.tick()
            crc = P.crc16_update(crc, b)
            assert ctx.get(dut.crc) == crc
    sim.add_testbench(tb)
    sim.run()
    assert P.crc16(b"123456789") == 0x29B1     # the CRC-16/CCITT-FALSE check value


def _bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def uart_write(ctx, pin, data, divisor=DIVISOR, *, stop=1):
    for b in data:
        for bit in _bits(b, stop):
            ctx.set(pin, bit)
            await ctx.tick().repeat(divisor)


@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_loopback_and_errors(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    line = Signal(init=1)                  # the test's own driver, ANDed onto the line
    m.d.comb += rx.rx.eq(tx.tx & line)
    data = [0x00, 0xFF, 0x55, 0xA5] + [random.Random(divisor).randrange(256) for _ in range(12)]
    got, errors = [], []
    sim = Simulator(m)
    sim.add_clock(PERIOD)

    async def send(ctx):
        for b in data:
            ctx.set(tx.data.payload, b)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)
        # a byte with a low stop bit: framing error, dropped; a break (all zeros, stop low) too
        await uart_write(ctx, line, [0x3C], divisor, stop=0)
        ctx.set(line, 1)                   # the receiver waits for the line to return high
        await ctx.tick().repeat(2 * divisor)
        await uart_write(ctx, line, [0x00], divisor, stop=0)
        ctx.set(line, 1)
        await ctx.tick().repeat(3 * divisor)
        # a glitch shorter than half a bit is not a start bit
        ctx.set(line, 0)
        await ctx.tick()
        ctx.set(line, 1)
        await ctx.tick().repeat(12 * divisor)
        await uart_write(ctx, line, [0x81], divisor)
        await ctx.tick().repeat(3 * divisor)

    async def recv(ctx):
        ctx.set(rx.data.ready, 1)
        async for _, _, valid, payload, fe, brk in ctx.tick().sample(rx.data.valid, rx.data.payload,
                                                                      rx.framing_error, rx.break_detected):
            if valid:
                got.append(payload)
            if fe:
                errors.append("break" if brk else "framing")
    sim.add_testbench(recv, background=True)
    sim.add_testbench(send)
    sim.run()
    assert got == data + [0x81]
    assert errors == ["framing", "break"]


# ------------------------------------------------------------------ the bridge
def system(cfg=SMALL, registered_walk_end=False):
    return SpikeGradSystem(cfg, clk_freq=DIVISOR * 1_000_000, baud=1_000_000, timeout_cycles=TIMEOUT,
                           core=StandInCore, registered_walk_end=registered_walk_end)


def run_units(units, cfg=SMALL, registered_walk_end=False):
    """Send each unit (bytes), then an idle gap; return (responses got, responses the model expects, model)."""
    dut = system(cfg, registered_walk_end)
    model = BridgeModel(cfg, core=standin_model)
    expected = []
    for u in units:
        expected.append(model.feed(u) + model.gap())
    got = []
    sim = Simulator(dut)
    sim.add_clock(PERIOD)

    rx_bytes = []

    async def monitor(ctx):
        """Decode the tx line: find the start bit's falling edge, sample each bit in its middle."""
        count, bits = None, []
        async for _, _, line in ctx.tick().sample(dut.uart_tx):
            if count is None:
                if not line:
                    count, bits = DIVISOR // 2, []
                continue
            count += 1
            if count % DIVISOR == 0:
                bits.append(line)
                if len(bits) == 10:
                    assert bits[0] == 0 and bits[9] == 1, f"bad start/stop bit {bits}"
                    rx_bytes.append(sum(b << i for i, b in enumerate(bits[1:9])))
                    count = None

    async def tb(ctx):
        ctx.set(dut.uart_rx, 1)
        await ctx.tick().repeat(4)
        for u, exp in zip(units, expected):
            dec = P.ResponseDecoder()
            rx_bytes.clear()
            await uart_write(ctx, dut.uart_rx, u)
            frames = []
            for _ in range(2 * TIMEOUT + 200 * DIVISOR * 10):
                await ctx.tick()
                if rx_bytes:
                    frames += dec.feed(bytes(rx_bytes))
                    rx_bytes.clear()
                if len(frames) == len(exp) and not ctx.get(dut.leds) & 3:
                    break
            # nothing more may come: idle for longer than the timeout
            for _ in range(TIMEOUT + 40):
                await ctx.tick()
            assert not rx_bytes, "an unexpected response"
            got.append(frames)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(tb)
    sim.run()
    return got, expected, model


def _same(got, exp):
    assert len(got) == len(exp), (got, exp)
    for g, e in zip(got, exp):
        assert (g.status, g.cmd) == (e.status, e.cmd), (g, e)
        if e.payload is not None:
            assert g.payload == e.payload, (g, e)


def req(cmd, payload=b""):
    return P.encode_request(cmd, payload)


@pytest.mark.parametrize("registered_walk_end", [False, True])
def test_every_command_and_error_path(registered_walk_end):
    cfg = SMALL
    fmt = P.WireFormat.of(cfg)
    wb, cb = fmt.weight_bytes, fmt.count_bytes
    row = [5, -7, 0, 999, -999, 3]
    good_w = req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(0, Kind.WEIGHTS, 2, 0, row, wb))
    units = [
        req(Cmd.IDENTIFY),
        good_w,
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(1, Kind.BIAS, 0, 1, [-12, 34], wb)),
        req(Cmd.READ_WEIGHTS, P.read_weights_payload(0, Kind.WEIGHTS, 2, 0, 6)),
        req(Cmd.READ_WEIGHTS, P.read_weights_payload(1, Kind.BIAS, 0, 0, 3)),
        req(Cmd.WRITE_REG, P.write_reg_payload(Reg.ERROR_SHIFT, 9)),
        req(Cmd.READ_REG, bytes([Reg.ERROR_SHIFT])),
        req(Cmd.LOAD_SAMPLE, P.load_sample_payload(0, [3, 0, -2, 1, 15, -15], cb)),
        req(Cmd.INFER),
        req(Cmd.TRAIN, bytes([1])),
        req(Cmd.READ_WEIGHTS, P.read_weights_payload(0, Kind.WEIGHTS, 1, 0, 1)),
        req(Cmd.LOAD_SAMPLE, P.load_sample_payload(0, [0] * 6, cb)),    # no events at all: one nop beat
        req(Cmd.INFER),
        req(Cmd.READ_STATUS),
        req(Cmd.CLEAR_FLAGS),
        req(Cmd.RESET),
        # ---- errors: none of these may change anything
        good_w[:-1] + bytes([good_w[-1] ^ 1]),                                        # BAD_CRC
        good_w[:9],                                                                   # TIMEOUT (truncated)
        bytes([P.SYNC_REQUEST]),                                                      # TIMEOUT after the sync byte
        req(0x42, b"\x01\x02"),                                                       # UNKNOWN_COMMAND
        req(Cmd.IDENTIFY, b"\x00"),                                                   # BAD_LENGTH
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(0, 0, 0, 0, [1], wb) + b"\x00"),  # BAD_LENGTH (odd)
        req(Cmd.WRITE_WEIGHTS, bytes(fmt.max_payload + 1)),                            # BAD_LENGTH (too long)
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(2, 0, 0, 0, [1], wb)),          # OUT_OF_RANGE layer
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(0, 0, 5, 0, [1], wb)),          # row
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(0, 2, 0, 0, [1], wb)),          # kind
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(0, 1, 1, 0, [1], wb)),          # bias row != 0
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(0, 0, 2, 4, [1, 2, 3], wb)),    # past the row end
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(0, 0, 2, 0, [1, 2, cfg.weight_limit + 1], wb)),  # value
        req(Cmd.WRITE_WEIGHTS, P.write_weights_payload(1, 1, 0, 0, [-cfg.bias_limit - 1], wb)),
        req(Cmd.READ_WEIGHTS, P.read_weights_payload(0, 0, 0, 4, 3)),                  # past the end
        req(Cmd.READ_WEIGHTS, P.read_weights_payload(0, 0, 0, 0, 0)),                  # count 0
        req(Cmd.WRITE_REG, P.write_reg_payload(Reg.ERROR_SHIFT, cfg.error_bits - 1)),   # value
        req(Cmd.WRITE_REG, P.write_reg_payload(7, 1)),                                  # register
        req(Cmd.READ_REG, b"\x03"),
        req(Cmd.LOAD_SAMPLE, P.load_sample_payload(4, [1, 2, 3], cb)),                 # past the end
        req(Cmd.LOAD_SAMPLE, P.load_sample_payload(0, [16], cb)),                      # count > input_max
        req(Cmd.TRAIN, bytes([3])),                                                    # label
        b"\x00\x13\x37" + req(Cmd.READ_REG, bytes([Reg.ERROR_SHIFT])),                 # garbage, then a frame
        bytes([P.SYNC_REQUEST, Cmd.WRITE_WEIGHTS, 1]) + req(Cmd.IDENTIFY),             # a frame eaten by a bad one
        req(Cmd.READ_WEIGHTS, P.read_weights_payload(0, Kind.WEIGHTS, 2, 0, 6)),
        req(Cmd.READ_STATUS),
    ]
    got, expected, model = run_units(units, registered_walk_end=registered_walk_end)
    statuses = [[r.status for r in e] for e in expected]
    assert {Status(s) for ss in statuses for s in ss} == set(Status) - {Status.BUSY}   # BUSY: EXODUS only
    for g, e in zip(got, expected):
        _same(g, e)
    # the status frame: counters of frames and flags; the model agrees on the frame counts
    st = P.decode_status(got[-1][0].payload)
    assert st["counters"]["frames_ok"] == model.frames_ok - 1 and st["counters"]["frames_error"] == model.frames_error
    assert P.decode_identify(got[0][0].payload).config == SMALL
    assert P.unpack_values(got[-2][0].payload, wb) == row
    assert model.weights[0][1][0] == 1   # the TRAIN step of the stand-in


@pytest.mark.parametrize("exodus", [None, ExodusConfig(layer_sizes=(16, 8, 2), max_steps=24)])
def test_bridge_verilog_is_lint_clean(exodus):
    from rtl.host.bridge import HostBridge
    from sim.lint import lint_verilog
    from sim.verilog import generate_verilog
    assert lint_verilog(generate_verilog(HostBridge(SpikeGradConfig(), divisor=8, timeout_cycles=2000,
                                                    exodus=exodus), name="host_bridge")) == []


@pytest.mark.parametrize("registered_walk_end", [False, True])
def test_ex_status_is_a_snapshot_of_the_accept_cycle(registered_walk_end):
    """EX_STATUS while an engine runs (after a NOWAIT EX_RUN): every counter byte comes from the one
    cycle the frame was accepted, although the engine keeps counting while the bytes go out (in both
    bridge forms: the registered one takes its snapshot a cycle after the checks)."""
    from spikecore.config.exodus import ExodusOp
    from spikecore.host.protocol import RunFlag
    ex = ExodusConfig(layer_sizes=(16, 8, 2), max_steps=64)
    dut = SpikeGradSystem(SMALL, clk_freq=DIVISOR * 1_000_000, baud=1_000_000, timeout_cycles=TIMEOUT,
                          core=StandInCore, exodus=ex, registered_walk_end=registered_walk_end)
    engine = dut.exodus._engines[0]
    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    trace = {}               # tick -> the engine's cycle counter
    marks = {}
    rx_bytes = []

    async def monitor(ctx):
        count, bits, tick = None, [], 0
        async for _, _, line, cycles in ctx.tick().sample(dut.uart_tx, engine.cycles):
            tick += 1
            trace[tick] = cycles
            if count is None:
                if not line:
                    count, bits = DIVISOR // 2, []
                    marks.setdefault("first_start", tick)
                continue
            count += 1
            if count % DIVISOR == 0:
                bits.append(line)
                if len(bits) == 10:
                    rx_bytes.append(sum(b << i for i, b in enumerate(bits[1:9])))
                    count = None

    async def transact(ctx, frame):
        dec = P.ResponseDecoder()
        rx_bytes.clear()
        marks.clear()
        await uart_write(ctx, dut.uart_rx, frame)
        marks["sent"] = max(trace)
        for _ in range(200 * DIVISOR * 10):
            await ctx.tick()
            frames = dec.feed(bytes(rx_bytes))
            rx_bytes.clear()
            if frames:
                return frames[0]
        raise AssertionError("no response")

    result = {}

    async def tb(ctx):
        ctx.set(dut.uart_rx, 1)
        await ctx.tick().repeat(4)
        run = await transact(ctx, req(Cmd.EX_RUN, P.ex_run_payload(0, ExodusOp.FORWARD, ex.max_steps,
                                                                      RunFlag.NOWAIT)))
        assert run.status == Status.OK
        resp = await transact(ctx, req(Cmd.EX_STATUS, bytes([0])))
        result.update(resp=resp, window=(marks["sent"], marks["first_start"]), end=max(trace))

    sim.add_testbench(monitor, background=True)
    sim.add_testbench(tb)
    sim.run()
    resp = result["resp"]
    assert resp.status == Status.OK
    st = P.decode_ex_status(resp.payload)
    assert st["flags"]["busy"] == 1, "the engine finished before the status was read: nothing tested"
    lo, hi = result["window"]
    accepted = {trace[t] for t in range(lo, hi + 1)}
    got = st["counters"]["cycles"]
    assert got in accepted, (got, sorted(accepted))
    # the counter moved on by more than a byte's range while the payload was sent, so a live copy
    # would have sent bytes of different cycles
    assert trace[result["end"]] - got > 256
