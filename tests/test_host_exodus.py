"""The EXODUS network behind the host protocol (EX_WRITE / EX_READ / EX_RUN / EX_STATUS).

The same checks run against the reference device (golden model behind a pty, fast) and against the
Verilated ``SpikeGradSystem(exodus=...)`` through its UART pins: training steps of a 16 -> 8 -> 2 LIF
network (T = 20) driven by :func:`exodus_train_step`, every memory read back and compared bit-exactly
with an independent golden chain of :class:`GoldenLayer` s; malformed EXODUS frames answered with
errors, changing nothing; BUSY while an engine runs; a protocol fuzz mixing SpikeGrad and EXODUS frames
compared response by response with :class:`BridgeModel`.
"""

from __future__ import annotations

import random
import time

import pytest
import torch

from cocotb_tests.exodus_engine.fit import filter_matrix
from cocotb_tests.exodus_engine.model import GoldenLayer
from golden.exodus.fixedpoint import quantize
from spikecore.config import ExodusConfig, SpikeGradConfig
from spikecore.config.exodus import ExodusOp, ExodusTarget
from spikecore.host import protocol as P
from spikecore.host.client import SpikecoreClient, exodus_train_step
from spikecore.host.model import BridgeModel, golden_core
from spikecore.host.protocol import Cmd, RunFlag, Status
from spikecore.host.transports import SerialTransport, SimulatedSystem, VirtualDevice

SG = SpikeGradConfig(layer_sizes=(6, 5, 3))
EX = ExodusConfig(layer_sizes=(16, 8, 2), max_steps=24, alpha=0.9, lut_size=64, lut_shift=9, lr_shift=2)
STEPS = 20
FUZZ_FRAMES = 500
Tg = ExodusTarget


def initial_weights(seed: int, gain: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    return [quantize(torch.randn(EX.weight_shape(k), generator=g, dtype=torch.float64) * gain
                     / EX.layer_sizes[k] ** 0.5, EX.u_frac, EX.weight_bits) for k in range(EX.num_layers)]


def inputs(kind: str, seed: int) -> torch.Tensor:
    """Fixed patterns and constrained-random trains (rate drawn per sample) of ``(STEPS, 16)`` spikes."""
    n = torch.arange(STEPS)[:, None]
    j = torch.arange(EX.layer_sizes[0])[None, :]
    if kind == "diagonal":
        return ((n + j) % 3 == 0).to(torch.int64)
    if kind == "burst":
        return ((n < 6) | (j % 5 == 0)).to(torch.int64)
    g = torch.Generator().manual_seed(seed)
    rate = 0.1 + 0.4 * float(torch.rand(1, generator=g))
    return (torch.rand(STEPS, EX.layer_sizes[0], generator=g) < rate).to(torch.int64)


def target_train(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    return (torch.rand(STEPS, EX.layer_sizes[-1], generator=g) < 0.15).to(torch.float64)


def filtered_mse(target: torch.Tensor, beta: float = 0.9):
    """Host loss ``sum (K s - K s*)^2`` over both outputs; ``g = 2 K^T (K s - K s*)`` in the grad format."""
    K = filter_matrix(len(target), beta)

    def loss_grad(spikes):
        err = K @ torch.as_tensor(spikes, dtype=torch.float64) - K @ target
        return float((err ** 2).sum()), quantize(2.0 * (K.t() @ err), EX.grad_frac, EX.grad_bits)
    return loss_grad


def check_training(client: SpikecoreClient, samples, seed: int) -> list[float]:
    """Load weights, run training steps through the protocol; every memory equals the golden chain."""
    assert client.exodus == EX
    ws = initial_weights(seed)
    for k, w in enumerate(ws):
        client.ex_write(k, Tg.W, w)
        assert torch.equal(client.ex_read(k, Tg.W), w)
    gold = [GoldenLayer(EX, w) for w in ws]
    losses = []
    for kind, s in samples:
        x, target = inputs(kind, s), target_train(s)
        loss_grad = filtered_mse(target)
        out = exodus_train_step(client, x, loss_grad, update=False)
        # the golden chain, independent of the device model
        h = x
        spikes = []
        for layer in gold:
            h, _, _ = layer.forward(h)
            spikes.append(h)
        loss, g = loss_grad(spikes[-1])
        lam = [None, None]
        lam[1], gp = gold[1].backward(g, grad_prev=True)
        lam[0], _ = gold[0].backward(gp, grad_prev=False)
        where = f"sample {kind}/{s}"
        assert out["loss"] == loss, where
        for k in range(EX.num_layers):
            assert torch.equal(out["spikes"][k], spikes[k]), where
            assert torch.equal(client.ex_read(k, Tg.LAM, STEPS), lam[k]), where
            assert torch.equal(client.ex_read(k, Tg.ACC), gold[k].acc), where
            assert torch.equal(client.ex_read(k, Tg.U, STEPS)[:, :, 0], gold[k].u), where
        assert torch.equal(client.ex_read(1, Tg.GP, STEPS), gp), where
        assert torch.equal(client.ex_read(0, Tg.G, STEPS), gp), where
        for k in range(EX.num_layers):
            client.ex_run(k, ExodusOp.UPDATE)
            gold[k].update()
            assert torch.equal(client.ex_read(k, Tg.W), gold[k].w), where
            assert not client.ex_read(k, Tg.ACC).any()
        losses.append(loss)
    for k in range(EX.num_layers):
        st = client.ex_status(k)
        assert st["flags"] == {"busy": 0, **{f: int(v > 0) for f, v in gold[k].sat.items()}}
        assert st["counters"]["fwd_steps"] == st["counters"]["bwd_steps"] == len(samples) * STEPS * EX.layer_sizes[k + 1]
    assert any(s.any() for s in spikes), "the network never spiked: the test would not test much"
    return losses


def malformed_frames(fmt: P.WireFormat):
    """EX_* frames the device must refuse, with the status it must answer."""
    w = P.exodus_target(EX, 0, Tg.W)
    acc = P.exodus_target(EX, 0, Tg.ACC)
    ok_w = P.ex_write_payload(0, Tg.W, 0, [1, 2], w.nbytes)
    return [
        (P.ex_write_payload(2, Tg.W, 0, [1], w.nbytes), Status.OUT_OF_RANGE),             # layer
        (P.ex_write_payload(0, 8, 0, [1], w.nbytes), Status.OUT_OF_RANGE),                # target
        (P.ex_write_payload(0, Tg.GP, 0, [1], 48), Status.OUT_OF_RANGE),                  # no GP on layer 0
        (P.ex_write_payload(0, Tg.ACC, 0, [1], acc.nbytes), Status.OUT_OF_RANGE),         # read-only
        (P.ex_write_payload(1, Tg.LAM, 0, [1], 3), Status.OUT_OF_RANGE),                  # read-only
        (P.ex_write_payload(0, Tg.W, w.depth - 1, [1, 2], w.nbytes), Status.OUT_OF_RANGE),  # past the end
        (P.ex_write_payload(0, Tg.W, 0xFFFF, [1], w.nbytes), Status.OUT_OF_RANGE),
        (ok_w[:4] + bytes([3, 0]) + ok_w[6:], Status.BAD_LENGTH),                         # count 3, 2 values
        (ok_w + b"\x00", Status.BAD_LENGTH),                                              # half a value
        (ok_w[:5], Status.BAD_LENGTH),                                                    # no count
        (P.ex_access_payload(0, Tg.W, 0, 0) , Status.OUT_OF_RANGE),                       # count 0 (EX_WRITE)
        (P.ex_access_payload(0, Tg.ACC, 0, 52), Status.OUT_OF_RANGE, Cmd.EX_READ),         # 260 bytes > 255
        (P.ex_access_payload(0, Tg.X, EX.max_steps - 1, 2), Status.OUT_OF_RANGE, Cmd.EX_READ),
        (P.ex_access_payload(0, Tg.X, 0, 1) + b"\x00", Status.BAD_LENGTH, Cmd.EX_READ),
        (P.ex_run_payload(2, ExodusOp.FORWARD, 5), Status.OUT_OF_RANGE, Cmd.EX_RUN),
        (P.ex_run_payload(0, 4, 5), Status.OUT_OF_RANGE, Cmd.EX_RUN),
        (P.ex_run_payload(0, ExodusOp.FORWARD, 0), Status.OUT_OF_RANGE, Cmd.EX_RUN),
        (P.ex_run_payload(0, ExodusOp.FORWARD, EX.max_steps + 1), Status.OUT_OF_RANGE, Cmd.EX_RUN),
        (P.ex_run_payload(0, ExodusOp.BACKWARD, 0, RunFlag.GRAD_PREV), Status.OUT_OF_RANGE, Cmd.EX_RUN),
        (P.ex_run_payload(0, ExodusOp.UPDATE, 0, 8), Status.OUT_OF_RANGE, Cmd.EX_RUN),
        (P.ex_run_payload(0, ExodusOp.UPDATE)[:4], Status.BAD_LENGTH, Cmd.EX_RUN),
        (bytes([2]), Status.OUT_OF_RANGE, Cmd.EX_STATUS),
        (b"", Status.BAD_LENGTH, Cmd.EX_STATUS),
    ]


def all_memories(client: SpikecoreClient) -> dict:
    return {(k, t.name): client.ex_read_raw(k, t, 0, f.depth) for k, t, f in P.exodus_targets(EX)}


def check_malformed(client: SpikecoreClient, tr) -> None:
    """Every malformed EXODUS frame gets the documented error, and no memory changes."""
    before = all_memories(client)
    model = BridgeModel(SG, exodus=EX)
    for entry in malformed_frames(client.wire):
        payload, status = entry[:2]
        cmd = entry[2] if len(entry) > 2 else Cmd.EX_WRITE
        frame = P.encode_request(cmd, payload)
        (want,) = model.feed(frame)
        assert want.status == status, (cmd, payload.hex(), want)     # the model agrees with the table
        resp = tr.transact(frame)
        assert (resp.status, resp.cmd, resp.payload) == (status, cmd, b""), (cmd, payload.hex(), resp)
    assert all_memories(client) == before


# ====================================================================== reference device (pty)
def test_identify_codec_round_trip():
    for ex in (EX, ExodusConfig(), EX.replace(u_min=-1.0, reset_order="before_decay", backward="slayer",
                                              surrogate="fast_sigmoid", surrogate_scale=0.3)):
        assert P.decode_exodus_config(P.encode_exodus_config(ex)) == ex
        ident = P.decode_identify(P.identify_payload(SG, P.WireFormat.of(SG), ex))
        assert (ident.version, ident.config, ident.exodus) == (P.PROTOCOL_VERSION, SG, ex)
    assert P.decode_identify(P.identify_payload(SG, P.WireFormat.of(SG))).exodus is None


def test_exodus_on_the_reference_device():
    with VirtualDevice(SG, exodus=EX) as dev, SerialTransport(dev.port, timeout=5) as tr:
        c = SpikecoreClient(tr)
        assert (c.config, c.exodus) == (SG, EX)
        check_training(c, [("diagonal", 0), ("random", 1), ("random", 2)], seed=0)
        check_malformed(c, tr)
    with VirtualDevice(SG) as dev, SerialTransport(dev.port, timeout=5) as tr:
        c = SpikecoreClient(tr)
        assert c.exodus is None
        assert tr.transact(P.encode_request(Cmd.EX_STATUS, b"\x00")).status == Status.UNKNOWN_COMMAND


# ====================================================================== the Verilated system
@pytest.fixture(scope="module")
def dual_system():
    # the dual system as the ULX3S builds it: with the bridge's registered walk end
    with SimulatedSystem(SG, divisor=8, timeout_cycles=2000, exodus=EX, response_timeout=60,
                         registered_walk_end=True) as tr:
        yield tr


def test_cosim_identify_and_training(dual_system):
    """IDENTIFY, then training steps of fixed and constrained-random samples, bit-exact with golden."""
    t0 = time.monotonic()
    c = SpikecoreClient(dual_system)
    assert (c.version, c.config, c.exodus) == (P.PROTOCOL_VERSION, SG, EX)
    losses = check_training(c, [("burst", 0), ("random", 3), ("random", 4)], seed=1)
    print(f"\ncosim training: losses {losses}, {time.monotonic() - t0:.1f} s")


def test_cosim_malformed_and_busy(dual_system):
    c = SpikecoreClient(dual_system)
    for k, w in enumerate(initial_weights(5)):
        c.ex_write(k, Tg.W, w)
    c.ex_write(0, Tg.X, torch.ones(EX.max_steps, EX.layer_sizes[0], dtype=torch.int64))
    check_malformed(c, dual_system)
    # a FORWARD that does not wait: while it runs, accesses and commands to that engine are BUSY
    # (sent in one batch: the harness paces them, so they reach the bridge while the forward runs,
    # about 3,600 cycles; the probes are answered after about 1,600 and 3,000)
    before = all_memories(c)
    batch = [P.encode_request(Cmd.EX_RUN, P.ex_run_payload(0, ExodusOp.FORWARD, EX.max_steps, RunFlag.NOWAIT)),
             P.encode_request(Cmd.EX_WRITE, P.ex_write_payload(0, Tg.W, 0, [7], 2)),
             P.encode_request(Cmd.EX_RUN, P.ex_run_payload(0, ExodusOp.UPDATE))]
    dual_system.write(b"".join(batch))
    assert [dual_system.read_response().status for _ in batch] == [Status.OK, Status.BUSY, Status.BUSY]
    assert c.ex_status(1)["flags"]["busy"] == 0
    while c.ex_status(0)["flags"]["busy"]:
        pass
    after = all_memories(c)
    assert after[(0, "W")] == before[(0, "W")]
    # the forward ran to completion: compare with the golden layer
    s, _, _ = GoldenLayer(EX, initial_weights(5)[0]).forward(torch.ones(EX.max_steps, EX.layer_sizes[0],
                                                                        dtype=torch.int64))
    assert torch.equal(c.ex_read(0, Tg.S), s)


class ExodusFuzzer:
    """Random valid and malformed EXODUS frames for :data:`EX` (and a few SpikeGrad ones)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.targets = list(P.exodus_targets(EX))

    def frame(self):
        r = self.rng
        k, t, f = r.choice(self.targets)
        what = r.choices(["write", "read", "run", "status", "bad", "sg"], [25, 25, 15, 5, 25, 5])[0]
        if what == "write":
            t = r.choice([Tg.W, Tg.X, Tg.G])
            f = P.exodus_target(EX, k, t)
            n = r.randint(1, min(f.depth, P.exodus_max_elements(f, P.WireFormat.of(SG).max_payload, True), 6))
            addr = r.randrange(f.depth - n + 1)
            if t == Tg.W:
                vals = [r.randint(-4096, 4096) for _ in range(n)]
            else:
                vals = [r.getrandbits(f.bits) for _ in range(n)]
            return P.encode_request(Cmd.EX_WRITE, P.ex_write_payload(k, t, addr, [P.to_bits(v, f.bits) for v in vals],
                                                                      f.nbytes))
        if what == "read":
            n = r.randint(1, min(f.depth, P.MAX_LEN // f.nbytes, 8))
            return P.encode_request(Cmd.EX_READ, P.ex_access_payload(k, t, r.randrange(f.depth - n + 1), n))
        if what == "run":
            op = r.choice(list(ExodusOp))
            flags = (RunFlag.SLAYER if r.random() < 0.3 else 0) | (RunFlag.GRAD_PREV if k and r.random() < 0.7 else 0)
            return P.encode_request(Cmd.EX_RUN, P.ex_run_payload(k, op, r.randint(1, EX.max_steps), flags))
        if what == "status":
            return P.encode_request(Cmd.EX_STATUS, bytes([k]))
        if what == "sg":
            return P.encode_request(Cmd.READ_WEIGHTS, P.read_weights_payload(0, 0, 0, 0, 2))
        cmd = r.choice([Cmd.EX_WRITE, Cmd.EX_READ, Cmd.EX_RUN, Cmd.EX_STATUS])
        payload = bytes([r.choice([0, 1, 2, 255]), r.randrange(10)]) + bytes(r.randrange(256) for _ in range(r.randint(0, 8)))
        return P.encode_request(cmd, payload)


def test_cosim_fuzz_against_the_model(dual_system):
    """500 random EXODUS (and a few SpikeGrad) frames: every response equals the model's, byte by byte
    (EX_STATUS without its ``cycles`` counter); then every memory equals the model's."""
    rng = random.Random(7)
    fz = ExodusFuzzer(rng)
    c = SpikecoreClient(dual_system)
    model = BridgeModel(SG, core=golden_core, exodus=EX)
    # start from the device's present state: copy it into the model
    for k, t, f in P.exodus_targets(EX):
        model.exodus.layers[k].mem[t] = c.ex_read_raw(k, t, 0, f.depth)
    sync = [P.encode_request(Cmd.EX_RUN, P.ex_run_payload(k, op, STEPS)) for k in range(EX.num_layers)
            for op in (ExodusOp.CLEAR, ExodusOp.FORWARD)]
    statuses = {}
    sent = 0
    for n in range(FUZZ_FRAMES + len(sync)):
        frame = sync[n] if n < len(sync) else fz.frame()
        (want,) = model.feed(frame)
        got = dual_system.transact(frame)
        statuses[Status(want.status).name] = statuses.get(Status(want.status).name, 0) + 1
        assert (got.status, got.cmd) == (want.status, want.cmd), (n, frame.hex(), got, want)
        if want.payload is not None:
            assert got.payload == want.payload, (n, frame.hex(), got, want)
        elif want.cmd == Cmd.EX_STATUS:
            snap = model.ex_status_snapshots.pop(0)
            assert got.payload[:-4] == snap[:-4], (n, P.decode_ex_status(got.payload), P.decode_ex_status(snap))
        sent += 1
    for k, t, f in P.exodus_targets(EX):
        assert c.ex_read_raw(k, t, 0, f.depth) == model.exodus.layers[k].mem[t], (k, t)
    print(f"\nEXODUS fuzz: {sent} frames, responses {statuses}")
    assert statuses.get("OK", 0) > 200 and statuses.get("OUT_OF_RANGE", 0) > 25
