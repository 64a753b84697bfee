"""Configuration of the EXODUS engine (temporal IF/LIF layers, exact BPTT gradients).

The float golden model (:mod:`golden.exodus.layers`) reads the neuron
parameters from here; the fixed-point model (:mod:`golden.exodus.fixedpoint`)
and the future RTL additionally read every width from here. Nothing else may
state an EXODUS bit width on its own.

Number formats (two's complement unless said otherwise; ``Qi.f`` means
``i`` integer bits including the sign and ``f`` fractional bits, a value is
``int * 2**-f``):

* membrane ``u``, input current ``z`` and weights ``w`` share one LSB,
  ``2**-u_frac``: ``u`` is ``u_bits`` wide, ``w`` is ``weight_bits`` wide.
  The threshold ``threshold`` and the clamp ``u_min`` must lie on that grid.
* decay ``alpha``: unsigned, ``alpha_frac`` fractional bits, ``alpha_frac + 1``
  bits wide so that ``alpha = 1`` (IF) is exact.
* surrogate derivative ``f'``: unsigned, ``fprime_bits`` wide, ``fprime_frac``
  fractional bits, read from a ``lut_size``-entry table indexed by
  ``(u - theta) >> lut_shift`` (offset to the table centre, clamped).
* recurrence coefficient ``c = alpha - theta f'`` (or ``alpha (1 - theta f')``
  with reset before decay): signed, ``coef_bits`` wide, ``fprime_frac``
  fractional bits (the same as ``f'``, so both products of the chi step share
  one scale and need one rounding), read from a second table of the same index.
* spike gradient ``g`` and ``lambda = dL/dz``: signed, ``grad_bits`` wide,
  ``grad_frac`` fractional bits.
* weight-gradient accumulator: signed, ``acc_bits`` wide, ``grad_frac``
  fractional bits; the update shifts it right by
  ``grad_frac - u_frac + lr_shift`` (learning rate ``2**-lr_shift``).

Every product is followed by an arithmetic right shift with round-half-up
(add ``2**(k-1)``, then shift) and saturation to the destination width.
``docs/exodus.md`` is the bit-level specification.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ._json import JsonConfig, need_int as _need_int
from .errors import ConfigError

RESET_ORDERS = ("after_decay", "before_decay")
BACKWARDS = ("exodus", "slayer", "bptt")
SURROGATES = ("exponential", "fast_sigmoid", "piecewise_linear")
FORMAT_NAME = "spikecore-exodus-config"
FORMAT_VERSION = 1


class ExodusOp(enum.IntEnum):
    """Commands of a temporal layer engine (``rtl.exodus.engine``; also their codes on the host protocol)."""
    FORWARD = 0
    BACKWARD = 1
    UPDATE = 2
    CLEAR = 3


class ExodusTarget(enum.IntEnum):
    """Memory of a temporal layer engine that a host access goes to (engine port and host protocol)."""
    W = 0      # element i*fan_in + j: weight_bits
    ACC = 1    # element i*fan_in + j: acc_bits (read only)
    X = 2      # word n: fan_in spike bits, bit j = x_j[n]
    S = 3      # word n: fan_out spike bits (read only)
    U = 4      # element n*fan_out + i: u (u_bits) and the clamp mask bit above it (read only)
    G = 5      # word n: fan_out x grad_bits, neuron 0 in the low bits
    LAM = 6    # element n*fan_out + i: grad_bits (read only)
    GP = 7     # word n: fan_in x grad_bits (read only; only with backprop)


def _need_real(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"field '{name}': expected a finite number in {'(' if lo_open else '['}{lo}, {hi}], got {value!r}")
    if value > hi or value < lo or (lo_open and value == lo):
        raise ConfigError(f"field '{name}': {value} is out of range {'(' if lo_open else '['}{lo}, {hi}]")
    return float(value)


def _need_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"field '{name}': {value!r} is not one of {list(choices)}")
    return value


def _need_pow2(name: str, value: int, lo: int, hi: int) -> int:
    _need_int(name, value, lo, hi)
    if value & (value - 1):
        raise ConfigError(f"field '{name}': {value} is not a power of two in [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class ExodusConfig(JsonConfig):
    """Every parameter of an EXODUS network and of the core that trains it.

    Members
    -------
    layer_sizes : input size followed by the size of each neuron layer.
    max_steps : longest sequence ``T`` the core stores (sizes the accumulator).
    alpha : membrane decay per step, in ``(0, 1]`` (1 is IF).
    threshold : firing threshold ``theta`` (spike when ``u >= theta``).
    u_min : lower clamp of ``u`` (``None``: no clamp); its gradient is masked.
    reset_order : ``"after_decay"`` (paper: ``u = alpha u + z - theta s``) or
        ``"before_decay"`` (sinabs-exodus: ``u = alpha (u - theta s) + z``).
    backward : ``"exodus"`` (exact), ``"slayer"`` (reset dropped) or ``"bptt"``
        (autograd, float model only; the fixed-point unit runs exodus for it).
    surrogate, surrogate_scale, surrogate_width : ``f'(u) = scale/width *
        k((u - theta)/width)`` with ``k`` one of :data:`SURROGATES`.
    u_bits, u_frac, weight_bits, input_bits : forward formats.
    alpha_frac : fractional bits of ``alpha``.
    fprime_bits, fprime_frac, coef_bits : surrogate and coefficient tables.
    lut_size, lut_shift : table entries and the index shift.
    grad_bits, grad_frac, acc_bits : gradient formats.
    lr_shift : learning rate ``2**-lr_shift``.
    lanes : neurons the chi unit processes per cycle.
    """

    layer_sizes: tuple[int, ...] = (100, 128, 128, 35)
    max_steps: int = 1024
    alpha: float = 1.0
    threshold: float = 1.0
    u_min: float | None = None
    reset_order: str = "after_decay"
    backward: str = "exodus"
    surrogate: str = "exponential"
    surrogate_scale: float = 1.0
    surrogate_width: float = 0.5
    u_bits: int = 24
    u_frac: int = 12
    weight_bits: int = 16
    input_bits: int = 1
    alpha_frac: int = 16
    fprime_bits: int = 16
    fprime_frac: int = 12
    coef_bits: int = 16
    lut_size: int = 1024
    lut_shift: int = 5
    grad_bits: int = 24
    grad_frac: int = 20
    acc_bits: int = 40
    lr_shift: int = 10
    lanes: int = 1

    FORMAT_NAME: ClassVar[str] = FORMAT_NAME
    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("layer_sizes",)

    def __post_init__(self):
        object.__setattr__(self, "layer_sizes", tuple(self.layer_sizes))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        sizes = self.layer_sizes
        if len(sizes) < 2:
            raise ConfigError(f"field 'layer_sizes': need an input size and at least one layer, got {list(sizes)}")
        for i, n in enumerate(sizes):
            _need_int(f"layer_sizes[{i}]", n, 1, 4096)
        _need_int("max_steps", self.max_steps, 1, 1 << 16)
        _need_real("alpha", self.alpha, 0.0, 1.0, lo_open=True)
        _need_choice("reset_order", self.reset_order, RESET_ORDERS)
        _need_choice("backward", self.backward, BACKWARDS)
        _need_choice("surrogate", self.surrogate, SURROGATES)
        _need_real("surrogate_scale", self.surrogate_scale, 0.0, 1e3, lo_open=True)
        _need_real("surrogate_width", self.surrogate_width, 0.0, 1e3, lo_open=True)
        _need_int("u_bits", self.u_bits, 4, 48)
        _need_int("u_frac", self.u_frac, 0, self.u_bits - 2)
        _need_int("weight_bits", self.weight_bits, 2, self.u_bits)
        _need_int("input_bits", self.input_bits, 1, 16)
        _need_int("alpha_frac", self.alpha_frac, 1, 30)
        u_max = ((1 << (self.u_bits - 1)) - 1) / (1 << self.u_frac)
        _need_real("threshold", self.threshold, 0.0, u_max, lo_open=True)
        self._need_on_grid("threshold", self.threshold)
        if self.u_min is not None:
            _need_real("u_min", self.u_min, -(1 << (self.u_bits - 1)) / (1 << self.u_frac), self.threshold)
            self._need_on_grid("u_min", self.u_min)
        _need_int("fprime_bits", self.fprime_bits, 2, 32)
        _need_int("fprime_frac", self.fprime_frac, 1, self.fprime_bits)
        _need_int("coef_bits", self.coef_bits, self.fprime_frac + 2, 40)
        _need_pow2("lut_size", self.lut_size, 2, 1 << 16)
        _need_int("lut_shift", self.lut_shift, 0, self.u_bits)
        _need_int("grad_bits", self.grad_bits, 4, 48)
        _need_int("grad_frac", self.grad_frac, 0, self.grad_bits - 2)
        lo_acc = self.grad_bits + (self.max_steps - 1).bit_length()
        _need_int("acc_bits", self.acc_bits, lo_acc, 64)
        # The update shift grad_frac - u_frac + lr_shift must not be negative.
        _need_int("lr_shift", self.lr_shift, max(0, self.u_frac - self.grad_frac), 40)
        _need_pow2("lanes", self.lanes, 1, 64)
        # The golden model computes in int64: every product and sum must fit.
        chi_bits = max(self.fprime_bits + 1, self.coef_bits) + self.grad_bits + 1
        if chi_bits > 63:
            raise ConfigError(f"field 'grad_bits': chi products need {chi_bits} bits; "
                              f"max(fprime_bits + 1, coef_bits) + grad_bits must be at most 62")
        if self.alpha_bits + self.u_bits + 1 > 63:
            raise ConfigError(f"field 'u_bits': alpha * u needs {self.alpha_bits + self.u_bits + 1} bits; "
                              f"alpha_frac + u_bits must be at most 61")

    def _need_on_grid(self, name: str, value: float) -> None:
        scaled = value * (1 << self.u_frac)
        if scaled != round(scaled):
            raise ConfigError(f"field '{name}': {value} is not a multiple of the membrane LSB 2**-{self.u_frac}")

    # ------------------------------------------------------------ derived values
    @property
    def num_layers(self) -> int:
        """Number of neuron layers (weight matrices)."""
        return len(self.layer_sizes) - 1

    @property
    def tau(self) -> float:
        """Membrane time constant in steps, ``alpha = exp(-1/tau)`` (``inf`` for IF)."""
        return math.inf if self.alpha == 1.0 else -1.0 / math.log(self.alpha)

    @staticmethod
    def alpha_from_tau(tau: float) -> float:
        """Decay per step of a membrane time constant ``tau`` (in steps)."""
        return math.exp(-1.0 / tau)

    @property
    def theta_q(self) -> int:
        """The threshold in membrane LSBs."""
        return round(self.threshold * (1 << self.u_frac))

    @property
    def u_min_q(self) -> int | None:
        """The lower clamp in membrane LSBs (``None``: no clamp)."""
        return None if self.u_min is None else round(self.u_min * (1 << self.u_frac))

    @property
    def alpha_q(self) -> int:
        """``alpha`` as an unsigned integer with ``alpha_frac`` fractional bits."""
        return round(self.alpha * (1 << self.alpha_frac))

    @property
    def alpha_bits(self) -> int:
        return self.alpha_frac + 1

    @property
    def slayer_mode(self) -> bool:
        """The chi unit's SLAYER mode bit: use ``alpha`` instead of the coefficient table."""
        return self.backward == "slayer"

    @property
    def update_shift(self) -> int:
        """Right shift from accumulator LSBs to weight LSBs, learning rate included."""
        return self.grad_frac - self.u_frac + self.lr_shift

    @staticmethod
    def signed_range(bits: int) -> tuple[int, int]:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def weight_shape(self, layer: int) -> tuple[int, int]:
        """``(fan_out, fan_in)`` of weight matrix ``layer`` (0-based)."""
        return (self.layer_sizes[layer + 1], self.layer_sizes[layer])
