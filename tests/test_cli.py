"""The command line: device commands against the virtual device, Verilog output, refusals."""

from __future__ import annotations

import json

import pytest

from golden.spikegrad import weights as wf
from golden.spikegrad.params import SpikeGradParams
from spikecore.cli import main
from spikecore.config import SpikeGradConfig


@pytest.fixture
def weights_file(tmp_path):
    p = SpikeGradParams.random(SpikeGradConfig(), seed=2, input_scale=7 / 4, fraction=0.5)
    path = tmp_path / "w.json"
    wf.save(p, path)
    return path


def test_eval_on_virtual_device_matches_golden(weights_file, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", "--virtual", "--weights", str(weights_file), "--limit", "12", "--quiet",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["samples"] == 12 and res["identical_to_golden"] is True
    assert "identical to the golden integer model: True" in capsys.readouterr().out


def test_train_on_virtual_device_matches_golden(weights_file, tmp_path):
    assert main(["train", "--on-device", "--virtual", "--weights", str(weights_file), "--samples", "6",
                 "--epochs", "1", "--quiet", "--out", str(tmp_path / "t")]) == 0
    after = wf.load(tmp_path / "t" / "weights_device.json")
    assert not after.equal(wf.load(weights_file))


def test_bad_weight_file_is_refused_before_any_device_is_opened(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "spikecore-weights", "version": 1, "config": {}, "lay')
    import spikecore.device_cli as dc

    def no_device(*a, **k):
        raise AssertionError("a device was opened for a bad file")
    monkeypatch.setattr(dc, "open_device", no_device)
    assert main(["load", str(bad), "--virtual"]) == 2
    assert "truncated" in capsys.readouterr().err


def test_train_on_device_needs_a_device(weights_file, capsys):
    assert main(["train", "--on-device", "--weights", str(weights_file)]) == 2
    assert "--port" in capsys.readouterr().err


def test_verilog_command_writes_a_module(tmp_path):
    cfg = SpikeGradConfig(layer_sizes=(6, 5, 3), lanes=2)
    cfg.save(tmp_path / "c.json")
    assert main(["verilog", "--config", str(tmp_path / "c.json"), "-o", str(tmp_path / "core.v")]) == 0
    text = (tmp_path / "core.v").read_text()
    assert "module spikegrad_core" in text and "weights__payload" in text


def test_check_refuses_bad_config(tmp_path, capsys):
    d = SpikeGradConfig().to_dict()
    d["lanes"] = 3
    (tmp_path / "c.json").write_text(json.dumps(d))
    assert main(["check", str(tmp_path / "c.json")]) == 2
    assert "lanes" in capsys.readouterr().err
