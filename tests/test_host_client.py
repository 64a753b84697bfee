"""The host library: frame codec, the client over a real pyserial port (a pseudo-terminal with the
reference device model behind it), file validation before anything is sent, and the CLI operations."""

from __future__ import annotations

import json

import pytest

from golden.data import encode_counts, load_digits_split
from golden.spikegrad.event_sim import EventDrivenSimulator
from golden.spikegrad.params import SpikeGradParams
from golden.spikegrad.weights import WeightFileError, dumps, save
from spikecore.config import ConfigError, SpikeGradConfig
from spikecore.host import protocol as P
from spikecore.host.client import SpikecoreClient, apply_config, evaluate, load, train_on_device
from spikecore.host.protocol import Cmd, Status
from spikecore.host.transports import SerialTransport, VirtualDevice

DIGITS = SpikeGradConfig()


def test_codec_round_trips():
    frame = P.encode_request(Cmd.READ_REG, b"\x00")
    assert frame[0] == P.SYNC_REQUEST and P.crc16(frame[1:]) == 0
    resp = P.encode_response(Status.OK, Cmd.READ_REG, b"\x01\x02\x03\x04")
    dec = P.ResponseDecoder()
    garbage = b"\x00\x11" + resp + b"\xff" + resp
    got = []
    for k in range(len(garbage)):            # byte by byte, with garbage in front and between
        got += dec.feed(garbage[k:k + 1])
    assert got == [P.Response(0, Cmd.READ_REG, b"\x01\x02\x03\x04")] * 2
    with pytest.raises(P.ProtocolError):
        P.ResponseDecoder().feed(resp[:-1] + bytes([resp[-1] ^ 0x40]))
    for cfg in (DIGITS, SpikeGradConfig(layer_sizes=(20, 12, 9, 5), activations=("relu", "linear", "linear"),
                                        bias=False, lanes=4)):
        assert P.decode_config(P.encode_config(cfg)) == cfg
    assert P.unpack_values(P.pack_values([-1, 0, 32767, -32768], 2), 2) == [-1, 0, 32767, -32768]
    fmt = P.WireFormat.of(DIGITS)
    assert (fmt.weight_bytes, fmt.count_bytes, fmt.value_bytes, fmt.max_write) == (2, 1, 4, 64)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def random_params(cfg, seed=0):
    return SpikeGradParams.random(cfg, seed=seed, input_scale=7 / 4, fraction=0.5)


def requests_of(raw: bytes) -> list[int]:
    """Command codes of the well-formed request frames in ``raw``."""
    from spikecore.host.model import BridgeModel
    m = BridgeModel(DIGITS)
    return [r.cmd for r in m.feed(raw)]


def test_client_over_a_serial_port(tmp_path, digits):
    """Load, read back, infer and train through pyserial on a pty; everything equals the golden model."""
    params = random_params(DIGITS)
    path = tmp_path / "w.json"
    save(params, path)
    with VirtualDevice(DIGITS) as dev, SerialTransport(dev.port, 115200, timeout=5) as tr:
        assert load(path, tr, progress=False).equal(params)
        c = SpikecoreClient(tr)
        assert c.config == DIGITS and c.version == P.PROTOCOL_VERSION
        sim = EventDrivenSimulator(params)
        for n in range(3):
            r = c.infer(digits.test_x[n])
            g = sim.forward(encode_counts(digits.test_x[n]))
            assert (r["prediction"], r["v_top"]) == (g.prediction, g.v_top)
        r = c.infer(encode_counts(digits.test_x[0]))          # the same sample as canonical events
        assert r["v_top"] == sim.forward(encode_counts(digits.test_x[0])).v_top
        with pytest.raises(ValueError, match="canonical"):
            c.infer(list(reversed(encode_counts(digits.test_x[0]))))
        c.write_register(P.Reg.ERROR_SHIFT, 19)
        assert c.read_register(P.Reg.ERROR_SHIFT) == 19
        sim.config = DIGITS.replace(error_shift=19)
        sim.params = SpikeGradParams(sim.config, sim.params.weights, sim.params.biases)
        for n in range(3):
            c.train(digits.train_x[n], int(digits.train_y[n]))
            sim.train_step(encode_counts(digits.train_x[n]), int(digits.train_y[n]))
        assert c.read_weights().equal(sim.params)
        st = c.read_status()
        assert st["counters"]["frames_error"] == 0 and st["counters"]["frames_ok"] > 100
        c.clear_flags()
        c.reset()
        with pytest.raises(P.ProtocolError, match="OUT_OF_RANGE"):
            c.request(Cmd.TRAIN, bytes([10]))
        # a truncated frame times out, and the link goes on
        tr.write(P.encode_request(Cmd.IDENTIFY)[:3])
        assert tr.read_response().status == Status.TIMEOUT
        assert c.read_register(P.Reg.ERROR_SHIFT) == 19


def test_cli_operations_match_golden(tmp_path, digits):
    params = random_params(DIGITS, seed=3)
    path = tmp_path / "w.json"
    save(params, path)
    with VirtualDevice(DIGITS) as dev, SerialTransport(dev.port, timeout=5) as tr:
        load(path, tr, progress=False)
        ev = evaluate(tr, "test", limit=30, progress=False)
        assert ev["samples"] == 30 and ev["identical_to_golden"]
        tr_out = train_on_device(tr, 8, epochs=2, shift_schedule=(0, -1), progress=False)
        assert tr_out["steps"] == 16 and tr_out["identical_to_golden"]
        assert not tr_out["params"].equal(params)


def _bad_weight_files(tmp_path, params):
    good = json.loads(dumps(params))
    files = {}
    files["truncated"] = dumps(params)[:-40]
    d = json.loads(json.dumps(good)); d["layers"][0]["weights"][0][0] += 1
    files["checksum"] = json.dumps(d)
    d = json.loads(json.dumps(good)); d["version"] = 2
    files["version"] = json.dumps(d)
    d = json.loads(json.dumps(good)); d["layers"][1]["bias"] = d["layers"][1]["bias"][:-1]
    files["shape"] = json.dumps(d)
    d = json.loads(json.dumps(good)); d["layers"][0]["weights"][0][0] = 10 ** 9
    from golden.spikegrad.weights import _checksum
    d["checksum"] = _checksum(d["layers"])
    files["range"] = json.dumps(d)
    out = {}
    for name, text in files.items():
        out[name] = tmp_path / f"{name}.json"
        out[name].write_text(text)
    return out


def test_bad_files_are_refused_before_anything_is_sent(tmp_path):
    params = random_params(DIGITS)
    with VirtualDevice(DIGITS) as dev, SerialTransport(dev.port, timeout=5) as tr:
        for name, path in _bad_weight_files(tmp_path, params).items():
            with pytest.raises(WeightFileError):
                load(path, tr, progress=False)
            assert tr.bytes_written == 0, name           # not a single byte went out
        other = SpikeGradConfig(layer_sizes=(64, 16, 10))
        path = tmp_path / "other.json"
        save(random_params(other), path)
        with pytest.raises(ConfigError, match="layer_sizes"):
            load(path, tr, progress=False)
        # config files: syntax, fields, ranges -- refused before anything is sent
        for k, text in enumerate(['{"layer_sizes": [64, 32', '{"nonsense": 1}', '{"weight_bits": 99}']):
            p = tmp_path / f"cfg{k}.json"
            p.write_text(text)
            before = tr.bytes_written
            with pytest.raises(ConfigError):
                apply_config(p, tr)
            assert tr.bytes_written == before
        p = tmp_path / "cfg_other.json"
        other.save(p)
        with pytest.raises(ConfigError, match="does not match"):
            apply_config(p, tr)
        p = tmp_path / "cfg_ok.json"
        DIGITS.replace(error_shift=17).save(p)
        apply_config(p, tr)
        assert SpikecoreClient(tr).read_register(P.Reg.ERROR_SHIFT) == 17
        sent = requests_of(bytes(dev.received))
    # only IDENTIFY (read-only) went out for the mismatching files; one WRITE_REG for the good config
    assert Cmd.WRITE_WEIGHTS not in sent and sent.count(Cmd.WRITE_REG) == 1
