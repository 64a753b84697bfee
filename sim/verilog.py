"""Amaranth components to Verilog text, the input of every Verilator run."""

from pathlib import Path

from amaranth.back import verilog

__all__ = ["generate_verilog", "write_verilog"]


def generate_verilog(component, name="core"):
    """Return the Verilog for ``component`` with top module ``name``.

    Ports of the component become top-level ports; nested members are joined
    with ``__`` (``i__valid``, ``i__payload``). A payload with a
    :mod:`amaranth.lib.data` layout stays *one* packed port (``i__payload``);
    its fields only appear as internal wires (``\\i__payload.value``).
    Source locations are left out so the text (and the build cache key) does
    not change when unrelated Python lines move.
    """
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, path, name="core"):
    """Write :func:`generate_verilog` output to ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate_verilog(component, name=name))
    return path
