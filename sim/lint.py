"""Verilator lint of Amaranth-generated Verilog, with a named waiver list.

Amaranth's Verilog back end (Yosys ``write_verilog``) emits a few patterns
that Verilator warns about although the design is correct. They are waived
by name, each for one reason; every other warning is reported.
"""

import re
import subprocess
import tempfile
from pathlib import Path

from .toolchain import ensure_verilator, verilator_env

__all__ = ["BUILD_WAIVERS", "LINT_WAIVERS", "LintError", "waiver_args", "lint_verilog"]

#: Warnings Verilator enables by default (fatal in a build) that Amaranth
#: output triggers. Passed to every cocotb build.
BUILD_WAIVERS = {
    "WIDTHEXPAND":
        "Yosys writes operands at their own width (`cnt < 4'h8`, `$signed(a) + $signed(b[7:0])`) "
        "and relies on Verilog's implicit extension to the result width.",
    "WIDTHTRUNC":
        "Yosys narrows implicitly, e.g. `!fsm_state` on a multi-bit FSM state or a wide "
        "intermediate assigned to a narrower signal.",
    "CASEINCOMPLETE":
        "`casez` over an FSM state or Switch without a default arm; the `always @*` block "
        "assigns the default value before the case, so no latch results.",
}

#: Extra warnings of ``-Wall`` (style/lint class) that Amaranth output triggers.
LINT_WAIVERS = {
    **BUILD_WAIVERS,
    "PROCASSINIT":
        "every register is declared with its `init=` value (`reg [15:0] acc = 16'h0000;`) "
        "and then assigned in an `always @(posedge clk)` block.",
    "UNUSEDSIGNAL":
        "the back end keeps named wires for struct fields (`\\i__payload.value`), "
        "unused bits of intermediates (`$3[15:12]`) and unused ports of library blocks.",
    "DECLFILENAME":
        "submodules are emitted as `module \\top.child` in the same file as the top module.",
}


def waiver_args(waivers):
    """``-Wno-<NAME>`` arguments for an iterable of warning names."""
    return [f"-Wno-{name}" for name in waivers]


class LintError(RuntimeError):
    """Verilator reported errors (not warnings) for the design."""


_MESSAGE = re.compile(r"^%(Warning|Error)(?:-([A-Z0-9_]+))?: (.*)$")


def lint_verilog(verilog_text, *, waivers=LINT_WAIVERS, top=None):
    """Run ``verilator --lint-only -Wall`` on ``verilog_text``.

    ``waivers`` names the warnings to suppress (default :data:`LINT_WAIVERS`).
    Returns the remaining warnings as ``"NAME: message"`` strings, one per
    warning (source lines and hints dropped), empty for a clean design.
    ``-Wno-fatal`` is used here only so that every warning is collected:
    the caller decides what to do with them. Raises :class:`LintError` if
    Verilator reports an error.
    """
    ensure_verilator()
    with tempfile.TemporaryDirectory(prefix="spikecore-lint-") as tmp:
        source = Path(tmp) / "design.v"
        source.write_text(verilog_text)
        cmd = ["verilator", "--lint-only", "-Wall", "-Wno-fatal", *waiver_args(waivers)]
        if top is not None:
            cmd += ["--top-module", top]
        proc = subprocess.run(cmd + [source.name], cwd=tmp, env=verilator_env(),
                              capture_output=True, text=True, timeout=300)
    warnings, errors = [], []
    for line in (proc.stdout + proc.stderr).splitlines():
        match = _MESSAGE.match(line)
        if match is None:
            continue
        kind, name, text = match.groups()
        if kind == "Error":
            errors.append(line)
        else:
            warnings.append(f"{name or 'WARNING'}: {text}")
    if errors or proc.returncode != 0:
        detail = "\n".join(errors) or (proc.stdout + proc.stderr)[-4000:]
        raise LintError(f"verilator --lint-only failed (exit {proc.returncode}):\n{detail}")
    return warnings
