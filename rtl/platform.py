"""What the RTL asks of the platform it is elaborated for."""

from __future__ import annotations

__all__ = ["is_ecp5"]


def is_ecp5(platform) -> bool:
    """True when elaborating for an ECP5 (an Amaranth platform whose ``family`` is ``"ecp5"``).

    Blocks that instantiate ECP5 primitives directly (block RAM output registers, multiplier
    output registers) ask this; under simulation (``platform`` None) and on other FPGAs they
    build the same behaviour from flip-flops."""
    return getattr(platform, "family", None) == "ecp5"
