"""The Verilated SpikeGradSystem (bridge + the real core) through its UART pins, from the host library.

* a smoke test with the bench driving/decoding the pin bits itself (``phy="python"``);
* protocol fuzzing: >= 10,000 random and malformed frames against a small core, every response
  equal to the reference model's (:class:`spikecore.host.model.BridgeModel` with the golden core),
  weights read back through the protocol equal to the last valid load;
* the acceptance flow on the default configuration, reduced (the full run is
  ``scripts/uart_acceptance.py``): digits inference identical to the golden integer model, and
  on-device training leaving weights identical to the golden model.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from golden.data import encode_counts, load_digits_split
from golden.spikegrad.event_sim import EventDrivenSimulator
from golden.spikegrad.params import SpikeGradParams
from golden.spikegrad.weights import save
from spikecore.config import SpikeGradConfig
from spikecore.host import protocol as P
from spikecore.host.client import SpikecoreClient, evaluate, load, train_on_device
from spikecore.host.model import BridgeModel, golden_core
from spikecore.host.protocol import Cmd, Kind, Reg, Status
from spikecore.host.transports import SimulatedSystem

SMALL = SpikeGradConfig(layer_sizes=(6, 5, 3))
FUZZ_FRAMES = 10_000
TIMEOUT_CYCLES = 2000


def small_system(phy):
    return SimulatedSystem(SMALL, divisor=8, timeout_cycles=TIMEOUT_CYCLES, phy=phy, response_timeout=60)


def test_pin_level_smoke():
    """The bench drives and decodes the 8N1 bits itself: identify, weights, a sample, a truncated frame."""
    params = SpikeGradParams.random(SMALL, seed=1, fraction=0.5)
    x = [3, 0, 7, 1, 0, 12]
    with small_system("python") as tr:
        c = SpikecoreClient(tr)
        assert c.config == SMALL
        c.write_weights(params)
        assert c.read_weights().equal(params)
        r = c.infer(x)
        g = EventDrivenSimulator(params).forward(encode_counts(x))
        assert (r["prediction"], r["v_top"]) == (g.prediction, g.v_top)
        tr.write(P.encode_request(Cmd.WRITE_WEIGHTS, P.write_weights_payload(0, 0, 0, 0, [1, 2], 2))[:-1])
        assert tr.read_response().status == Status.TIMEOUT
        assert c.read_weights().equal(params)


# ====================================================================== fuzzing
class FrameFuzzer:
    """Random valid and malformed units (bytes sent without a pause) for one configuration."""

    def __init__(self, cfg: SpikeGradConfig, rng: random.Random):
        self.cfg, self.rng = cfg, rng
        self.fmt = P.WireFormat.of(cfg)

    # ------------------------------------------------------------- valid requests
    def _vector(self):
        cfg, r = self.cfg, self.rng
        layer = r.randrange(cfg.num_layers)
        fan_out, fan_in = cfg.weight_shape(layer)
        if cfg.bias and r.random() < 0.3:
            return layer, Kind.BIAS, 0, fan_out, cfg.bias_limit
        return layer, Kind.WEIGHTS, r.randrange(fan_out), fan_in, cfg.weight_limit

    def valid(self):
        cfg, fmt, r = self.cfg, self.fmt, self.rng
        what = r.choices(["write", "read", "wreg", "rreg", "sample", "infer", "train", "identify", "status",
                          "clear", "reset"], [30, 20, 6, 4, 10, 5, 4, 3, 3, 2, 2])[0]
        if what in ("write", "read"):
            layer, kind, row, n, lim = self._vector()
            start = r.randrange(n)
            count = r.randint(1, n - start)
            if what == "read":
                return Cmd.READ_WEIGHTS, P.read_weights_payload(layer, kind, row, start, count)
            vals = [r.randint(-lim, lim) if r.random() < 0.8 else r.choice([-lim, lim]) for _ in range(count)]
            return Cmd.WRITE_WEIGHTS, P.write_weights_payload(layer, kind, row, start, vals, fmt.weight_bytes)
        if what == "wreg":
            return Cmd.WRITE_REG, P.write_reg_payload(Reg.ERROR_SHIFT, r.randint(cfg.error_shift - 4, cfg.error_bits - 2))
        if what == "rreg":
            return Cmd.READ_REG, bytes([Reg.ERROR_SHIFT])
        if what == "sample":
            n = cfg.layer_sizes[0]
            start = r.randrange(n)
            counts = [r.randint(-3, 12) for _ in range(r.randint(1, n - start))]
            return Cmd.LOAD_SAMPLE, P.load_sample_payload(start, counts, fmt.count_bytes)
        if what == "train":
            return Cmd.TRAIN, bytes([r.randrange(cfg.num_classes)])
        return {"infer": Cmd.INFER, "identify": Cmd.IDENTIFY, "status": Cmd.READ_STATUS,
                "clear": Cmd.CLEAR_FLAGS, "reset": Cmd.RESET}[what], b""

    # ------------------------------------------------------------- malformed requests
    def out_of_range(self):
        cfg, fmt, r = self.cfg, self.fmt, self.rng
        layer, kind, row, n, lim = self._vector()
        wb = fmt.weight_bytes
        case = r.randrange(12)
        if case == 0:
            return Cmd.WRITE_WEIGHTS, P.write_weights_payload(r.randint(cfg.num_layers, 255), kind, row, 0, [1], wb)
        if case == 1:
            return Cmd.WRITE_WEIGHTS, P.write_weights_payload(layer, r.randint(2, 255), row, 0, [1], wb)
        if case == 2:
            bad_row = r.randint(cfg.layer_sizes[layer + 1], 0xFFFF) if kind == Kind.WEIGHTS else r.randint(1, 0xFFFF)
            return Cmd.WRITE_WEIGHTS, P.write_weights_payload(layer, kind, bad_row, 0, [1], wb)
        if case == 3:
            start = r.randrange(n)
            return Cmd.WRITE_WEIGHTS, P.write_weights_payload(layer, kind, row, start, [0] * (n - start + r.randint(1, 3)), wb)
        if case == 4:
            return Cmd.WRITE_WEIGHTS, P.write_weights_payload(layer, kind, row, r.randint(n, 0xFFFF), [0], wb)
        if case == 5:   # one value out of range, the others fine
            vals = [0] * r.randint(1, n)
            vals[r.randrange(len(vals))] = r.choice([lim + 1, -lim - 1])   # lim + 1 may wrap to -2^15: still out
            return Cmd.WRITE_WEIGHTS, P.write_weights_payload(layer, kind, row, 0, vals, wb)
        if case == 6:
            start = r.randrange(n)
            return Cmd.READ_WEIGHTS, P.read_weights_payload(layer, kind, row, start, r.choice([0, n - start + 1, 0xFFFF]))
        if case == 7:
            return Cmd.READ_WEIGHTS, P.read_weights_payload(r.randint(cfg.num_layers, 255), kind, row, 0, 1)
        if case == 8:
            return Cmd.WRITE_REG, r.choice([P.write_reg_payload(Reg.ERROR_SHIFT, r.randint(cfg.error_bits - 1, 2**32 - 1)),
                                            P.write_reg_payload(r.randint(1, 255), 1)])
        if case == 9:
            return Cmd.READ_REG, bytes([r.randint(1, 255)])
        if case == 10:
            n_in = cfg.layer_sizes[0]
            if r.random() < 0.5:
                return Cmd.LOAD_SAMPLE, P.load_sample_payload(r.randint(n_in, 0xFFFF), [1], fmt.count_bytes)
            vals = [0] * r.randint(1, n_in)
            vals[r.randrange(len(vals))] = r.choice([cfg.input_max + 1, -cfg.input_max - 1, 127, -128])
            return Cmd.LOAD_SAMPLE, P.load_sample_payload(0, vals, fmt.count_bytes)
        return Cmd.TRAIN, bytes([r.randint(cfg.num_classes, 255)])

    def bad_length(self):
        cmd, payload = self.valid()
        r = self.rng
        if cmd in (Cmd.WRITE_WEIGHTS, Cmd.LOAD_SAMPLE):   # shorter than one value, or not whole values
            base, eb = ((P.WRITE_HEADER, self.fmt.weight_bytes) if cmd == Cmd.WRITE_WEIGHTS
                        else (P.SAMPLE_HEADER, self.fmt.count_bytes))
            payload = payload + b"\x00" if eb > 1 and r.random() < 0.5 else payload[:r.randrange(base + eb)]
        else:
            payload = payload[:-1] if payload and r.random() < 0.5 else payload + bytes(r.randint(1, 3))
        return cmd, payload

    def garbage(self, n=None):
        r = self.rng
        return bytes(r.randrange(256) for _ in range(r.randint(1, 12) if n is None else n))

    def unit(self):
        """``(category, bytes, malformed)``: one unit, sent without pauses."""
        r = self.rng
        cat = r.choices(["valid", "bad_crc", "truncated", "unknown", "bad_length", "out_of_range", "too_long",
                         "garbage_then_valid", "garbage"], [34, 12, 9, 6, 10, 17, 2, 7, 3])[0]
        if cat == "garbage":
            return cat, self.garbage(), True
        if cat == "unknown":
            known = {int(c) for c in Cmd}
            cmd = r.choice([c for c in range(256) if c not in known])
            return cat, P.encode_request(cmd, self.garbage(r.randint(0, 10)) if r.random() < 0.7 else b""), True
        if cat == "too_long":
            return cat, P.encode_request(r.choice(list(Cmd)), self.garbage(r.randint(self.fmt.max_payload + 1, 255))), True
        if cat == "out_of_range":
            return cat, P.encode_request(*self.out_of_range()), True
        if cat == "bad_length":
            return cat, P.encode_request(*self.bad_length()), True
        frame = P.encode_request(*self.valid())
        if cat == "bad_crc":
            k = r.randrange(1, len(frame))
            frame = frame[:k] + bytes([frame[k] ^ (1 << r.randrange(8))]) + frame[k + 1:]
            return cat, frame, True
        if cat == "truncated":
            return cat, frame[:r.randrange(1, len(frame))], True
        if cat == "garbage_then_valid":
            return cat, self.garbage() + frame, False
        return cat, frame, False


def readback_units(cfg):
    """READ_WEIGHTS frames covering every weight and bias."""
    fmt = P.WireFormat.of(cfg)
    out = []
    for l in range(cfg.num_layers):
        fan_out, fan_in = cfg.weight_shape(l)
        vecs = [(Kind.WEIGHTS, i, fan_in) for i in range(fan_out)] + ([(Kind.BIAS, 0, fan_out)] if cfg.bias else [])
        for kind, row, n in vecs:
            for s in range(0, n, fmt.max_read):
                out.append(P.encode_request(Cmd.READ_WEIGHTS, P.read_weights_payload(l, kind, row, s, min(fmt.max_read, n - s))))
    return out


def _check(got, want, model, where):
    assert (got.status, got.cmd) == (want.status, want.cmd), f"{where}: got {got}, expected {want}"
    if want.payload is not None:
        assert got.payload == want.payload, f"{where}: got {got}, expected {want}"
    elif want.cmd == Cmd.READ_STATUS and want.ok:
        snap = P.decode_status(model.status_snapshots.pop(0))["counters"]
        st = P.decode_status(got.payload)["counters"]
        assert (st["frames_ok"], st["frames_error"]) == (snap["frames_ok"], snap["frames_error"]), where


@pytest.mark.slow
def test_protocol_fuzz_10000_frames():
    """>= 10,000 random and malformed frames, in batches (the harness paces bytes as a waiting host
    would); every response equals the model's, every malformed frame gets an error response, and the
    weights read back through the protocol equal the last valid load (and the golden training steps)."""
    rng = random.Random(2024)
    fz = FrameFuzzer(SMALL, rng)
    model = BridgeModel(SMALL, core=golden_core)
    cats, statuses = Counter(), Counter()
    malformed_with_error = malformed = readbacks = 0
    t0 = time.monotonic()
    with small_system("hdl") as tr:
        batch, expect = bytearray(), []

        def flush():
            tr.write(bytes(batch))
            for want, where in expect:
                _check(tr.read_response(), want, model, where)
            batch.clear()
            expect.clear()

        for n in range(FUZZ_FRAMES):
            cat, unit, bad = fz.unit()
            if n % 1000 == 999:
                for f in readback_units(SMALL):
                    resp = model.feed(f)
                    assert [r.status for r in resp] == [Status.OK]
                    batch += f
                    expect += [(r, f"readback after unit {n}") for r in resp]
                    readbacks += 1
            resp = model.feed(unit) + model.gap()
            cats[cat] += 1
            statuses.update(Status(r.status).name for r in resp)
            if bad and cat != "garbage":
                malformed += 1
                assert resp and all(not r.ok for r in resp), (cat, unit.hex(), resp)
                malformed_with_error += 1
            batch += unit
            expect += [(r, f"unit {n} ({cat}: {unit.hex()})") for r in resp]
            if resp and resp[-1].status == Status.TIMEOUT or len(batch) > 600:   # a gap must follow
                flush()
        for f in readback_units(SMALL):
            batch += f
            expect += [(r, "final readback") for r in model.feed(f)]
        flush()
    wall = time.monotonic() - t0
    print(f"\nfuzz: {FUZZ_FRAMES} units {dict(cats)}; responses {dict(statuses)}; {readbacks} readback frames; "
          f"{wall:.1f} s")
    assert sum(cats.values()) >= 10_000 and malformed_with_error == malformed > 4000
    assert all(statuses[s.name] > 50 for s in Status if s != Status.BUSY)   # BUSY: EXODUS only


# ====================================================================== acceptance (reduced)
@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.mark.slow
def test_acceptance_reduced(tmp_path, digits):
    """Default configuration: 40 test samples of inference identical to the golden integer model,
    20 on-device training steps leaving weights identical to the golden model (read back)."""
    from scripts.uart_acceptance import acceptance_weights
    cfg = SpikeGradConfig()
    params = acceptance_weights(cfg, digits)
    path = tmp_path / "weights.json"
    save(params, path)
    with SimulatedSystem(cfg, divisor=8, timeout_cycles=TIMEOUT_CYCLES) as tr:
        assert load(path, tr, progress=False).equal(params)
        ev = evaluate(tr, "test", limit=40, progress=False)
        assert ev["identical_to_golden"], ev
        out = train_on_device(tr, 20, epochs=1, progress=False)
        assert out["identical_to_golden"] and not out["params"].equal(params)
