"""Tests of the cosimulation harness in ``sim/`` (toolchain, Verilog, lint,
cached cocotb runs, failure reporting) around a tiny smoke design."""

import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
from amaranth import Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cocotb_tests.harness_smoke.dut import SaturatingAccumulator, model
from sim import runner as sim_runner
from sim import toolchain
from sim.lint import LINT_WAIVERS, LintError, lint_verilog
from sim.runner import CocotbFailure, run_cocotb
from sim.verilog import generate_verilog, write_verilog

BENCH = "cocotb_tests.harness_smoke.bench_smoke"


# -- toolchain ---------------------------------------------------------------

def test_ensure_verilator_sets_env_idempotently():
    root = toolchain.ensure_verilator()
    path_before = os.environ["PATH"]
    assert toolchain.ensure_verilator() == root
    assert os.environ["PATH"] == path_before, "a second call must not grow PATH"
    assert os.environ["VERILATOR_ROOT"] == str(root)
    assert os.environ["PATH"].split(os.pathsep)[0] == str(root / "bin")
    assert toolchain.verilator_version() >= toolchain.MIN_VERILATOR_VERSION


def test_verilator_env_leaves_base_alone():
    base = {"PATH": os.pathsep.join(["/usr/bin", "/bin"])}
    env = toolchain.verilator_env(base)
    assert base == {"PATH": os.pathsep.join(["/usr/bin", "/bin"])}
    assert env["PATH"].split(os.pathsep) == [str(toolchain.verilator_root() / "bin"), "/usr/bin", "/bin"]
    assert toolchain.verilator_env(env)["PATH"] == env["PATH"]


def test_old_verilator_is_refused(monkeypatch):
    monkeypatch.setattr(toolchain, "verilator_version", lambda root=None: (5, 6))
    with pytest.raises(toolchain.ToolchainError, match=r"5\.006.*5\.036"):
        toolchain.ensure_verilator()


@pytest.mark.parametrize("text, version", [
    ("Verilator 5.036 2025-04-27 rev v5.036", (5, 36)),
    ("5.49", (5, 49)),
    ("5.48.0", (5, 48)),
    (" rev vUNKNOWN-built20260516-4e853d8", None),
])
def test_version_parsing(text, version):
    assert toolchain._parse_version(text) == version


# -- Verilog and lint --------------------------------------------------------

def test_struct_payload_is_one_packed_port(tmp_path):
    text = generate_verilog(SaturatingAccumulator(8, acc_width=10), name="smoke")
    assert "module smoke(" in text
    assert "input [8:0] i__payload;" in text
    assert "output [9:0] o__payload;" in text
    for port in ("i__valid", "i__ready", "o__valid", "o__ready", "overflow", "clk", "rst"):
        assert f" {port};" in text
    assert "i__payload__value" not in text
    path = write_verilog(SaturatingAccumulator(8, acc_width=10), tmp_path / "v" / "smoke.v", name="smoke")
    assert path.read_text() == text


def test_lint_clean_with_waivers():
    text = generate_verilog(SaturatingAccumulator(8, acc_width=10), name="smoke")
    assert lint_verilog(text) == []
    raw = lint_verilog(text, waivers=())
    assert {w.split(":")[0] for w in raw} <= set(LINT_WAIVERS)
    assert any(w.startswith("WIDTHEXPAND") for w in raw)


class _AbsOfUnsigned(wiring.Component):
    a: In(4)
    y: Out(signed(5))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(Mux(self.a >= 0, self.a, -self.a))  # always true: a smell
        return m


def test_lint_reports_unwaived_warnings():
    warnings = lint_verilog(generate_verilog(_AbsOfUnsigned(), name="absu"))
    assert warnings and all(w.split(":")[0] not in LINT_WAIVERS for w in warnings)
    assert any(w.startswith("UNSIGNED:") for w in warnings)


def test_lint_raises_on_errors():
    with pytest.raises(LintError, match="Error"):
        lint_verilog("module broken(input a;\nendmodule\n")


# -- cocotb runs -------------------------------------------------------------

CONFIGS = {"saturating": (8, 10), "wide": (5, 12)}


def _vectors(input_width, acc_width, *, seed, count=160):
    """Constrained-random beats plus a directed burst that saturates both ways."""
    rng = random.Random(seed)
    lo, hi = -(1 << (input_width - 1)), (1 << (input_width - 1)) - 1
    beats = [{"value": rng.choice([lo, hi, rng.randint(lo, hi)]), "last": int(rng.random() < 0.2)}
             for _ in range(count)]
    burst = 2 * (1 << (acc_width - input_width)) + 2
    beats += [{"value": hi, "last": 0}] * burst + [{"value": lo, "last": 1}]
    beats += [{"value": lo, "last": 0}] * burst + [{"value": 0, "last": 1}]
    sums, overflow = model(beats, acc_width=acc_width)
    return dict(input_width=input_width, acc_width=acc_width, beats=beats,
                expected=sums, overflow=overflow, seed=seed)


def _smoke(config="saturating", **kwargs):
    input_width, acc_width = CONFIGS[config]
    text = generate_verilog(SaturatingAccumulator(input_width, acc_width=acc_width), name="smoke")
    args = kwargs.pop("args", None) or _vectors(input_width, acc_width, seed=kwargs.pop("seed", 1))
    return run_cocotb(text, "smoke", BENCH, args=args, timeout=300, **kwargs)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_smoke_bench_matches_model(config):
    run = _smoke(config, seed=hash(config) & 0xFFFF)
    assert [t.name for t in run.tests] == ["random_with_gaps", "back_to_back"]
    assert all(t.passed for t in run.tests)


def test_second_run_is_a_cache_hit():
    first = _smoke()
    binary = first.build_dir / "smoke"
    stamp = (first.build_dir / ".built").stat().st_mtime_ns, binary.stat().st_mtime_ns
    second = _smoke(testcase="back_to_back")
    assert second.build_dir == first.build_dir
    assert not second.built and second.build_seconds == 0
    assert ((second.build_dir / ".built").stat().st_mtime_ns, binary.stat().st_mtime_ns) == stamp
    assert [t.name for t in second.tests] == ["back_to_back"]


def test_failing_cocotb_test_raises():
    args = _vectors(*CONFIGS["saturating"], seed=7)
    args["expected"][0] += 1  # a deliberately wrong expectation
    with pytest.raises(CocotbFailure, match=r"1 of 1 cocotb tests failed.*\n  back_to_back: .*sums differ") as info:
        _smoke(args=args, testcase="back_to_back")
    run = info.value.run
    assert [t.name for t in run.failed] == ["back_to_back"]
    assert (run.run_dir / "sim.log").is_file(), "a failing run keeps its directory"
    shutil.rmtree(run.run_dir)


def test_unknown_testcase_is_an_error():
    with pytest.raises(sim_runner.SimulationError, match="no cocotb test ran"):
        _smoke(testcase="no_such_test")


def test_concurrent_builds_share_one_directory(tmp_path, monkeypatch):
    """Two builders of one configuration: one builds, the other waits and reuses."""
    calls = []

    class FakeRunner:
        def build(self, **kwargs):
            calls.append(kwargs["build_dir"])
            time.sleep(0.3)

    monkeypatch.setattr(sim_runner, "_runner", lambda timeout=None: FakeRunner())
    build_dir = tmp_path / "top-0123"
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        sim_runner._build("module top; endmodule\n", "top", build_dir, [], False, 10)))
        for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [build_dir]
    assert len(results) == 2 and results.count(None) == 1
    assert (build_dir / ".built").is_file() and Path(str(build_dir) + ".lock").is_file()
