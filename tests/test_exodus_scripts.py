"""Each EXODUS experiment script runs in quick mode and writes its JSON and PNG."""

import importlib.util
import json
from pathlib import Path

import pytest

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
    ("exodus_speed", lambda r: r["ratio_bptt_over_exodus"] > 0),
])
def test_script_quick(tmp_path, name, check):
    result = load(name).main(["--out", str(tmp_path), "--quick"])
    assert check(result)
    assert check(json.loads((tmp_path / f"{name}.json").read_text()))
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
