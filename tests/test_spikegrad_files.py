"""Configuration and weight files: round trips and every kind of bad file."""

from __future__ import annotations

import json

import pytest
import torch

from spikecore.config import ConfigError, SpikeGradConfig
from golden.spikegrad import weights as wf
from golden.spikegrad.params import ParamsError, SpikeGradParams


def test_config_json_round_trip(tmp_path):
    cfg = SpikeGradConfig(layer_sizes=(16, 8, 4, 3), activations=("relu", "linear", "linear"), lanes=4)
    cfg.save(tmp_path / "c.json")
    assert SpikeGradConfig.load(tmp_path / "c.json") == cfg


@pytest.mark.parametrize("change, words", [
    ({"theta_ff": 1}, ["theta_ff", "[2,"]),
    ({"lanes": 3}, ["lanes", "power of two"]),
    ({"activations": ["relu", "relu"]}, ["activations", "top layer"]),
    ({"activations": ["relu"]}, ["activations", "expected 2"]),
    ({"weight_bits": 40}, ["weight_bits", "[2, 32]"]),
    ({"membrane_bits": 8}, ["membrane_bits", "out of range"]),
    ({"error_shift": 30}, ["error_shift", "out of range"]),
    ({"layer_sizes": [64]}, ["layer_sizes"]),
    ({"eta": 1.5}, ["eta", "integer"]),
    ({"bias": "yes"}, ["bias"]),
    ({"nonsense": 1}, ["unknown field", "nonsense"]),
])
def test_bad_config_is_refused_naming_the_field(tmp_path, change, words):
    d = SpikeGradConfig().to_dict()
    d.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ConfigError) as e:
        SpikeGradConfig.load(path)
    msg = str(e.value)
    assert str(path) in msg
    for w in words:
        assert w in msg


def test_truncated_config_is_refused(tmp_path):
    text = SpikeGradConfig().to_json()
    (tmp_path / "t.json").write_text(text[: len(text) // 2])
    with pytest.raises(ConfigError, match="truncated"):
        SpikeGradConfig.load(tmp_path / "t.json")


@pytest.fixture
def params():
    return SpikeGradParams.random(SpikeGradConfig(layer_sizes=(6, 5, 3)), seed=3)


def test_weight_file_round_trip(tmp_path, params):
    wf.save(params, tmp_path / "w.json")
    back = wf.load(tmp_path / "w.json")
    assert back.config == params.config and back.equal(params)


def _write(tmp_path, doc):
    p = tmp_path / "w.json"
    p.write_text(json.dumps(doc))
    return p


def _doc(params):
    return json.loads(wf.dumps(params))


def _reseal(doc):
    doc["checksum"] = wf._checksum(doc["layers"])
    return doc


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(version=2), ["version", "unsupported"]),
    (lambda d: d.update(format="other"), ["format"]),
    (lambda d: d.pop("checksum"), ["checksum", "missing"]),
    (lambda d: _reseal(d) if d["layers"][0]["weights"].pop() else None, ["layers[0].weights", "expected 5 rows"]),
    (lambda d: _reseal(d) if d["layers"][1]["weights"][2].append(0) is None else None, ["layers[1].weights[2]", "expected 5 columns"]),
    (lambda d: _reseal(d) if d["layers"][0]["weights"][1].__setitem__(4, 10**6) is None else None, ["layers[0].weights", "out of range"]),
    (lambda d: _reseal(d) if d["layers"][0]["bias"].__setitem__(0, 2.5) is None else None, ["layers[0].bias[0]", "integer"]),
    (lambda d: d["layers"][0]["weights"][0].__setitem__(0, d["layers"][0]["weights"][0][0] ^ 1), ["checksum", "corrupted"]),
    (lambda d: d["config"].update(theta_ff=0), ["config", "theta_ff"]),
    (lambda d: d.update(layers=d["layers"][:1]), ["layers", "expected 2 layers"]),
])
def test_bad_weight_file_is_refused_naming_the_problem(tmp_path, params, mutate, words):
    doc = _doc(params)
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(wf.WeightFileError) as e:
        wf.load(path)
    msg = str(e.value)
    assert str(path) in msg
    for w in words:
        assert w in msg, msg


def test_truncated_weight_file_is_refused(tmp_path, params):
    text = wf.dumps(params)
    (tmp_path / "w.json").write_text(text[:-40])
    with pytest.raises(wf.WeightFileError, match="truncated"):
        wf.load(tmp_path / "w.json")


def test_params_refuse_bias_when_config_has_none():
    cfg = SpikeGradConfig(layer_sizes=(3, 2), activations=("linear",), bias=False)
    with pytest.raises(ParamsError, match="bias"):
        SpikeGradParams(cfg, [torch.zeros(2, 3, dtype=torch.int64)], [torch.tensor([1, 0])])


def test_hex_export_is_twos_complement(tmp_path, params):
    files = wf.export_hex(params, tmp_path)
    lines = (tmp_path / "layer0_weights.hex").read_text().split()
    flat = params.weights[0].reshape(-1).tolist()
    assert len(lines) == len(flat) and len(files) == 4
    bits = params.config.weight_bits
    for word, v in zip(lines, flat):
        x = int(word, 16)
        assert (x - (1 << bits) if x >> (bits - 1) else x) == v
