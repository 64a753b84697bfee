"""Configuration of the SpikeGrad engine.

Number formats (all integers, two's complement, saturating):

* weights ``w`` and biases ``b``: ``weight_bits`` wide, but *clamped* to
  ``[-weight_limit, weight_limit]`` where ``weight_limit = min(2**(weight_bits-1)-1,
  theta_ff-1, theta_bp-1)``. Keeping ``|w| < theta`` guarantees that one spike per
  incoming event is enough to bring a compartment back into ``(-theta, theta)``,
  which is what makes the residual phase round exactly (|SDE| < 1).
* forward compartment ``V``: ``membrane_bits``; threshold ``theta_ff``.
* error compartment ``U``: ``error_bits``; threshold ``theta_bp``.
* trace ``x = eta * S``: ``trace_bits`` (``eta`` is the learning rate in weight
  LSBs; one spike adds ``eta`` to the trace, so the update needs no multiply).
* per-neuron error-spike count ``E``: ``count_bits``.
* top-layer error ``U^L = round((p - onehot) * 2**error_shift)`` where ``p`` is the
  fixed-point softmax with ``prob_bits`` fractional bits, computed from an
  exponential lookup table of ``exp_lut_size`` entries of ``exp_bits`` fractional
  bits indexed by ``(max(V^L) - V^L_i) >> softmax_shift``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ._json import JsonConfig, need_int as _need_int
from .errors import ConfigError

ACTIVATIONS = ("relu", "linear")
FORMAT_NAME = "spikecore-spikegrad-config"
FORMAT_VERSION = 1


def _signed_max(bits: int) -> int:
    return (1 << (bits - 1)) - 1


@dataclass(frozen=True)
class SpikeGradConfig(JsonConfig):
    """Every parameter of a SpikeGrad network and of the core that runs it.

    Members
    -------
    layer_sizes : input size followed by the size of each neuron layer.
    activations : one per neuron layer, ``"relu"`` or ``"linear"``; the top layer
        must be ``"linear"``: it accumulates ``V^L`` and never spikes.
    weight_bits, membrane_bits, error_bits, trace_bits, count_bits : widths.
    theta_ff, theta_bp : forward and backward thresholds.
    eta : learning rate, in weight LSBs per (error spike x input spike).
    error_shift : ``U^L`` for a unit error is ``2**error_shift``; the paper's error
        scale alpha is ``2**error_shift / theta_bp``. A power of two makes the
        scaling a shift, so the host may change it at run time (a schedule).
    softmax_shift, exp_lut_size, exp_bits, prob_bits : fixed-point softmax.
    bias : whether layers have a bias (the initial value of ``V``).
    lanes : neurons the core updates per cycle.
    queue_depth : depth of each inter-layer event queue in the core.
    input_bits : width of an input event count (pixel values 0..2**input_bits-1).
    """

    layer_sizes: tuple[int, ...] = (64, 32, 10)
    activations: tuple[str, ...] = ("relu", "linear")
    weight_bits: int = 16
    membrane_bits: int = 28
    error_bits: int = 24
    trace_bits: int = 16
    count_bits: int = 12
    theta_ff: int = 1 << 15
    theta_bp: int = 1 << 15
    eta: int = 1
    error_shift: int = 21
    softmax_shift: int = 9
    exp_lut_size: int = 1024
    exp_bits: int = 16
    prob_bits: int = 12
    bias: bool = True
    lanes: int = 1
    queue_depth: int = 64
    input_bits: int = 5

    FORMAT_NAME: ClassVar[str] = FORMAT_NAME
    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("layer_sizes", "activations")

    def __post_init__(self):
        object.__setattr__(self, "layer_sizes", tuple(self.layer_sizes))
        object.__setattr__(self, "activations", tuple(self.activations))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        sizes = self.layer_sizes
        if len(sizes) < 2:
            raise ConfigError(f"field 'layer_sizes': need an input size and at least one layer, got {list(sizes)}")
        for i, n in enumerate(sizes):
            _need_int(f"layer_sizes[{i}]", n, 1, 4096)
        if len(self.activations) != len(sizes) - 1:
            raise ConfigError(
                f"field 'activations': expected {len(sizes) - 1} entries (one per neuron layer), "
                f"got {len(self.activations)}")
        for i, a in enumerate(self.activations):
            if a not in ACTIVATIONS:
                raise ConfigError(f"field 'activations[{i}]': {a!r} is not one of {list(ACTIVATIONS)}")
        if self.activations[-1] != "linear":
            raise ConfigError("field 'activations': the top layer must be 'linear' (it accumulates V^L and never spikes)")
        _need_int("weight_bits", self.weight_bits, 2, 32)
        _need_int("theta_ff", self.theta_ff, 2, 1 << 30)
        _need_int("theta_bp", self.theta_bp, 2, 1 << 30)
        # V swings to +-2*theta_ff before the spike that brings it back.
        lo_m = (2 * self.theta_ff).bit_length() + 1
        _need_int("membrane_bits", self.membrane_bits, lo_m, 48)
        _need_int("error_bits", self.error_bits, (2 * self.theta_bp).bit_length() + 1, 48)
        _need_int("error_shift", self.error_shift, 0, self.error_bits - 2)
        _need_int("trace_bits", self.trace_bits, 2, 32)
        _need_int("count_bits", self.count_bits, 2, 24)
        _need_int("eta", self.eta, 1, _signed_max(self.trace_bits))
        _need_int("softmax_shift", self.softmax_shift, 0, 40)
        _need_int("exp_lut_size", self.exp_lut_size, 2, 1 << 14)
        if self.exp_lut_size & (self.exp_lut_size - 1):
            raise ConfigError(f"field 'exp_lut_size': {self.exp_lut_size} is not a power of two")
        _need_int("exp_bits", self.exp_bits, 4, 24)
        _need_int("prob_bits", self.prob_bits, 2, 24)
        if not isinstance(self.bias, bool):
            raise ConfigError(f"field 'bias': expected true or false, got {self.bias!r}")
        _need_int("lanes", self.lanes, 1, 64)
        if self.lanes & (self.lanes - 1):
            raise ConfigError(f"field 'lanes': {self.lanes} is not a power of two in [1, 64]")
        _need_int("queue_depth", self.queue_depth, 2, 1 << 16)
        _need_int("input_bits", self.input_bits, 1, 16)

    # ------------------------------------------------------------ derived values
    @property
    def num_layers(self) -> int:
        """Number of neuron layers (weight matrices)."""
        return len(self.layer_sizes) - 1

    @property
    def num_classes(self) -> int:
        return self.layer_sizes[-1]

    @property
    def weight_limit(self) -> int:
        """Largest weight magnitude.

        ``|w| < theta`` keeps every compartment inside ``(-theta, theta)`` with at
        most one spike per incoming event, so the residual phase rounds exactly
        and the spike discretisation error stays below one spike (|SDE| < 1).
        """
        return min(_signed_max(self.weight_bits), self.theta_ff - 1, self.theta_bp - 1)

    @property
    def bias_limit(self) -> int:
        """Largest bias magnitude (a bias is the initial ``V``: ``|b| < theta_ff``)."""
        return min(_signed_max(self.weight_bits), self.theta_ff - 1)

    def weight_shape(self, layer: int) -> tuple[int, int]:
        """``(fan_out, fan_in)`` of weight matrix ``layer`` (0-based)."""
        return (self.layer_sizes[layer + 1], self.layer_sizes[layer])

    @property
    def prob_one(self) -> int:
        """1.0 in the softmax probability format."""
        return 1 << self.prob_bits

    @property
    def exp_sum_bits(self) -> int:
        """Width of the sum of exponentials (one LUT entry is at most ``2**exp_bits``)."""
        return self.exp_bits + 1 + max(1, (self.num_classes - 1).bit_length())

    @property
    def input_max(self) -> int:
        return (1 << self.input_bits) - 1

    @staticmethod
    def signed_range(bits: int) -> tuple[int, int]:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
