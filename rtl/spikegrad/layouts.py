"""Packed layouts of the SpikeGrad core's interfaces, derived from the config.

The host (cocotb benches, the UART bridge, drivers) packs and unpacks these
same layouts, so software and hardware share one definition.
"""

from __future__ import annotations

import enum

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from spikecore.config import SpikeGradConfig

COUNTER_BITS = 32


def index_bits(n: int) -> int:
    """Bits to index ``n`` items (at least 1)."""
    return max(1, (n - 1).bit_length())


class Op(enum.IntEnum):
    """What a command asks the core to do."""
    INFER = 0         # forward pass only, then a result
    TRAIN = 1         # forward, backward with ``label``, weight update, then a result
    RESET = 2         # clear neuron state, counters and sticky flags; no result


def command_layout(cfg: SpikeGradConfig) -> data.StructLayout:
    return data.StructLayout({
        "op": unsigned(2),
        "label": unsigned(index_bits(cfg.num_classes)),
    })


def spike_layout(cfg: SpikeGradConfig) -> data.StructLayout:
    """One input event ``(index, sign)``; ``last`` closes the sample, ``nop`` marks a beat without an event
    (so a sample may have no events at all)."""
    return data.StructLayout({
        "index": unsigned(index_bits(cfg.layer_sizes[0])),
        "negative": unsigned(1),
        "last": unsigned(1),
        "nop": unsigned(1),
    })


def result_layout(cfg: SpikeGradConfig) -> data.StructLayout:
    """One beat per class, in class order: ``V^L_i``; ``prediction`` repeats on every beat."""
    return data.StructLayout({
        "index": unsigned(index_bits(cfg.num_classes)),
        "value": signed(cfg.membrane_bits),
        "prediction": unsigned(index_bits(cfg.num_classes)),
        "last": unsigned(1),
    })


def weight_access_layout(cfg: SpikeGradConfig) -> data.StructLayout:
    """A read or write of one weight ``W[layer][row][col]`` or bias ``b[layer][row]`` (``bias=1``)."""
    return data.StructLayout({
        "write": unsigned(1),
        "bias": unsigned(1),
        "layer": unsigned(index_bits(cfg.num_layers)),
        "row": unsigned(index_bits(max(cfg.layer_sizes[1:]))),
        "col": unsigned(index_bits(max(cfg.layer_sizes[:-1]))),
        "data": signed(cfg.weight_bits),
    })


def flags_layout() -> data.StructLayout:
    """Sticky status flags; the first five mirror the golden simulator's flags."""
    return data.StructLayout({
        "membrane_saturated": unsigned(1),
        "error_saturated": unsigned(1),
        "trace_saturated": unsigned(1),
        "count_saturated": unsigned(1),
        "weight_clamped": unsigned(1),
        "queue_overflow": unsigned(1),
        "protocol_error": unsigned(1),
    })


COUNTER_NAMES = ("cycles", "forward_ops", "backward_ops", "update_ops",
                 "forward_cycles", "backward_cycles", "update_cycles")


def counters_layout(bits: int = COUNTER_BITS) -> data.StructLayout:
    """Per-command performance counters (cleared when a command starts), ``bits`` wide each
    (they wrap; the wire format carries ``COUNTER_BITS``, a narrower counter is zero-extended)."""
    if not isinstance(bits, int) or not 1 <= bits <= COUNTER_BITS:
        raise ValueError(f"counter bits must be an int in [1, {COUNTER_BITS}], got {bits!r}")
    return data.StructLayout({name: unsigned(bits) for name in COUNTER_NAMES})
