"""Each EXODUS experiment script runs in quick mode and writes its JSON and PNG."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from golden.exodus import IF, SpikingMLP, cbuild

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, check", [
    ("exodus_fidelity", lambda r: max(r["exodus_max_rel_err"]) < 1e-10
        and min(r["fixed_vs_float_exodus"]["default"]["cosine"]) > 0.99),
    ("exodus_fit", lambda r: len(r["per_seed"]) == 2 and len(r["runs"][0]["losses"]) == 20),
    ("exodus_speed", lambda r: r["ratio_bptt_over_exodus"] > 0 and r["device"] == "cpu"),
])
def test_script_quick(tmp_path, name, check):
    result = load(name).main(["--out", str(tmp_path), "--quick"])
    assert check(result)
    assert check(json.loads((tmp_path / f"{name}.json").read_text()))
    assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_speed_device_option(tmp_path, monkeypatch):
    """``exodus_speed --device``: the clock waits for CUDA and only for CUDA, and every timed path
    runs on a non-CPU device -- ``meta`` tensors, which like CUDA ones refuse to mix with CPU
    tensors -- through the torch loops, never the C library."""
    speed = load("exodus_speed")
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    speed.clock(torch.device("cpu"))
    assert synced == []
    speed.clock(torch.device("cuda"))
    assert synced == [torch.device("cuda")]

    monkeypatch.setattr(cbuild, "library", lambda: pytest.fail("C library asked for non-CPU tensors"))
    dev = torch.device("meta")
    net = SpikingMLP([6, 5, 4, 3], IF(backward="exodus")).to(dev)
    x, y = torch.rand(10, 4, 6, device=dev), torch.randint(0, 3, (4,), device=dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    result = speed.summarise(net, x, y, speed.time_steps(net, opt, state, x, y, 1), 1)
    assert result["exodus_one_layer_kernels"]["backend"] == "torch"
    assert all(p.grad.device == dev for p in net.parameters())

    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            speed.main(["--out", str(tmp_path), "--quick", "--device", "cuda"])
