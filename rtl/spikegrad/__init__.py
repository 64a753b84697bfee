"""The SpikeGrad learning core (Amaranth RTL), bit-exact with :mod:`golden.spikegrad.event_sim`.

* :class:`SpikeGradCore` -- the top level (``rtl/spikegrad/core.py``);
* :func:`generate_core_verilog` -- its Verilog, for Verilator and the CLI.
"""

from spikecore.config import SpikeGradConfig

from .core import SpikeGradCore

__all__ = ["SpikeGradCore", "generate_core_verilog"]


def generate_core_verilog(cfg: SpikeGradConfig, *, name: str = "core") -> str:
    """Verilog text of ``SpikeGradCore(cfg)`` with top module ``name``."""
    from sim.verilog import generate_verilog
    return generate_verilog(SpikeGradCore(cfg), name=name)
