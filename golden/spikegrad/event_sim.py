"""Event-driven SpikeGrad simulator: the paper's Algorithms 1-3, in integers.

This is the bit-level specification of the core, including saturation and the
order of events (documented in ``docs/architecture.md``):

* **Event order.** Every neuron layer consumes its incoming events in FIFO
  order. An event from presynaptic neuron ``j`` visits the neurons of the layer
  in index order; each neuron emits at most one spike per incoming event, and
  the spikes a layer emits are queued, in the order emitted, for the layer
  above (forward) or below (backward). Because each neuron sees its inputs in
  the same order whether the layers run one after another, pipelined, or as
  the depth-first recursion of Algorithm 1, the result does not depend on
  timing -- this is what lets the hardware pipeline layers and still match.
* **Input.** A sample is a list of input events ``(j, s)`` with ``s = +-1``;
  :func:`golden.data.encode_counts` turns pixel counts into the canonical
  round-robin order (all pixels with count >= 1, then >= 2, ...).
* **Residual phase** (eqs. 16, 19): after the input is exhausted, layer by
  layer from the bottom, every neuron fires one residual spike if its
  compartment is past half threshold; these propagate (standard activation
  above). Afterwards ``S' = [V > 0 or x > 0]`` for ReLU layers, 1 for linear.
* **Backward.** ``U^L`` is set from the fixed-point softmax error; top neurons,
  in index order, each emit all their error spikes (``|U| >= theta_bp``), then
  the top residual. Hidden neurons with ``S' = 0`` are gated: they neither
  integrate nor emit. Layer 0's error spikes only feed its update count.
* **Update.** Each neuron keeps its net error-spike count ``E_i`` (the sum of
  its ``delta`` spikes). After the whole backward pass, ``w_ij -= E_i * x_j``
  with ``x_j = eta * S_j`` (eq. 8 summed: ``omega_ij = -x_j * sum delta_i``),
  clamped to ``+-weight_limit``; the core replays ``|E_i|`` additions of
  ``-sign(E_i) * x_j`` per weight, which clamps identically.

Operation counters: ``forward_ops`` (one per (spike event, target neuron)),
``backward_ops`` (one per (error event, target neuron), gated ones included,
none below layer 0), ``update_ops`` (``|E_i| * fan_in`` additions, plus
``|E_i|`` bias additions when biases are on).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch

from spikecore.config import SpikeGradConfig

from .fixedpoint import clamp, residual_spike, saturate, ternary, top_error
from .params import SpikeGradParams

FLAG_NAMES = ("membrane_saturated", "error_saturated", "trace_saturated", "count_saturated", "weight_clamped")


@dataclass
class Counters:
    forward_ops: int = 0
    backward_ops: int = 0
    update_ops: int = 0
    spikes: list[int] = field(default_factory=list)        # forward spike events per neuron layer
    error_spikes: list[int] = field(default_factory=list)  # nonzero error events per neuron layer


@dataclass
class SampleResult:
    """What one inference or training step produced (ints and lists of ints)."""

    v_top: list[int]
    prediction: int
    counts: list[list[int]]          # S per neuron layer (net spike count; top layer: zeros)
    surrogate: list[list[int]]       # S' per neuron layer
    u_top: list[int] | None          # initial top error (training only)
    error_counts: list[list[int]] | None  # E per neuron layer (training only)
    counters: Counters
    flags: dict[str, bool]


class EventDrivenSimulator:
    """Integer, event-by-event SpikeGrad network; keeps its own copy of the parameters.

    Members
    -------
    config : the configuration.
    params : current parameters (updated in place by :meth:`train_step`).
    """

    def __init__(self, params: SpikeGradParams):
        self.config = params.config
        self.params = params.clone()
        self._load_lists()

    def _load_lists(self):
        self._w = [w.tolist() for w in self.params.weights]
        self._b = [b.tolist() for b in self.params.biases]

    def _store_lists(self):
        self.params.weights = [torch.tensor(w, dtype=torch.int64) for w in self._w]
        self.params.biases = [torch.tensor(b, dtype=torch.int64) for b in self._b]

    # ---------------------------------------------------------------- forward
    def _reset_state(self):
        cfg = self.config
        L = cfg.num_layers
        self.V = [list(self._b[l]) for l in range(L)]
        self.x = [[0] * cfg.layer_sizes[l + 1] for l in range(L)]
        self.S = [[0] * cfg.layer_sizes[l + 1] for l in range(L)]
        self.x_in = [0] * cfg.layer_sizes[0]
        self.flags = {k: False for k in FLAG_NAMES}
        self.ctr = Counters(spikes=[0] * L, error_spikes=[0] * L)

    def _deliver_forward(self, l: int, j: int, s: int, out: deque | None) -> None:
        """Algorithm 1 for one event (j, s) arriving at neuron layer ``l``."""
        cfg = self.config
        w = self._w[l]
        V, x, S = self.V[l], self.x[l], self.S[l]
        top = l == cfg.num_layers - 1
        relu = cfg.activations[l] == "relu"
        theta, eta = cfg.theta_ff, cfg.eta
        for i in range(cfg.layer_sizes[l + 1]):
            self.ctr.forward_ops += 1
            v, sat = saturate(V[i] + s * w[i][j], cfg.membrane_bits)
            self.flags["membrane_saturated"] |= sat
            if not top:
                sp = ternary(v, theta)
                if sp < 0 and relu and x[i] <= 0:
                    sp = 0   # eq. 4: a ReLU neuron only fires negative spikes it can take back
                if sp:
                    v -= sp * theta
                    self._fire(l, i, sp, out)
            V[i] = v

    def _fire(self, l: int, i: int, sp: int, out: deque | None) -> None:
        cfg = self.config
        xi, sat = saturate(self.x[l][i] + sp * cfg.eta, cfg.trace_bits)
        self.flags["trace_saturated"] |= sat
        self.x[l][i] = xi
        self.S[l][i] += sp
        self.ctr.spikes[l] += 1
        out.append((i, sp))

    def _cascade_forward(self, l: int, events: deque) -> None:
        """Drain ``events`` into layer ``l`` and everything above it, FIFO per layer."""
        L = self.config.num_layers
        while l < L and events:
            nxt: deque = deque()
            while events:
                j, s = events.popleft()
                self._deliver_forward(l, j, s, nxt)
            events, l = nxt, l + 1

    def _propagate_input(self, events) -> None:
        cfg = self.config
        for j, s in events:
            if not 0 <= j < cfg.layer_sizes[0]:
                raise ValueError(f"input event index {j} out of range [0, {cfg.layer_sizes[0] - 1}]")
            if s not in (1, -1):
                raise ValueError(f"input event sign {s} is not +1 or -1")
            xi, sat = saturate(self.x_in[j] + s * cfg.eta, cfg.trace_bits)
            self.flags["trace_saturated"] |= sat
            self.x_in[j] = xi
            self._cascade_forward(0, deque([(j, s)]))

    def _residual_forward(self) -> None:
        cfg = self.config
        for l in range(cfg.num_layers - 1):
            relu = cfg.activations[l] == "relu"
            out: deque = deque()
            for i in range(cfg.layer_sizes[l + 1]):
                r = residual_spike(self.V[l][i], self.S[l][i], cfg.theta_ff, relu=relu)
                if r:
                    self.V[l][i] -= r * cfg.theta_ff
                    self._fire(l, i, r, out)
            self._cascade_forward(l + 1, out)

    def _surrogates(self) -> list[list[int]]:
        cfg = self.config
        sp = []
        for l in range(cfg.num_layers):
            if cfg.activations[l] == "relu":
                sp.append([int(v > 0 or x > 0) for v, x in zip(self.V[l], self.x[l])])
            else:
                sp.append([1] * cfg.layer_sizes[l + 1])
        return sp

    def forward(self, events, *, residual: bool = True) -> SampleResult:
        """Inference on one sample given as input events; does not change weights."""
        self._reset_state()
        self._propagate_input(events)
        if residual:
            self._residual_forward()
        self.Sp = self._surrogates()
        v_top = list(self.V[-1])
        pred = max(range(len(v_top)), key=lambda i: (v_top[i], -i))
        return SampleResult(v_top=v_top, prediction=pred, counts=[list(s) for s in self.S],
                            surrogate=[list(s) for s in self.Sp], u_top=None, error_counts=None,
                            counters=self.ctr, flags=self.flags)

    # --------------------------------------------------------------- backward
    def _emit_error(self, l: int, i: int, z: int, out: deque | None) -> None:
        cfg = self.config
        e, sat = saturate(self.E[l][i] + z, cfg.count_bits)
        self.flags["count_saturated"] |= sat
        self.E[l][i] = e
        self.ctr.error_spikes[l] += 1
        if out is not None:
            out.append((i, z))

    def _deliver_backward(self, l: int, k: int, d: int, out: deque | None) -> None:
        """Algorithm 2 for error event ``(k, d)`` from layer ``l + 1`` arriving at layer ``l``."""
        cfg = self.config
        w = self._w[l + 1][k]
        U, Sp = self.U[l], self.Sp[l]
        for i in range(cfg.layer_sizes[l + 1]):
            self.ctr.backward_ops += 1
            if not Sp[i]:
                continue   # gated neuron: delta = z * S' = 0, it neither integrates nor emits
            u, sat = saturate(U[i] + d * w[i], cfg.error_bits)
            self.flags["error_saturated"] |= sat
            z = ternary(u, cfg.theta_bp)
            if z:
                u -= z * cfg.theta_bp
                self._emit_error(l, i, z, out)
            U[i] = u

    def _cascade_backward(self, l: int, events: deque) -> None:
        """Drain error ``events`` (from layer ``l + 1``) into layer ``l`` and below."""
        while l >= 0 and events:
            nxt: deque | None = deque() if l > 0 else None
            while events:
                k, d = events.popleft()
                self._deliver_backward(l, k, d, nxt)
            events, l = nxt, l - 1

    def backward(self, label: int, *, residual: bool = True) -> tuple[list[int], list[list[int]]]:
        """Algorithm 3's error phase after :meth:`forward`; returns ``(U^L, E)``."""
        cfg = self.config
        L = cfg.num_layers
        top = L - 1
        u_top = top_error(cfg, list(self.V[top]), label)
        self.U = [[0] * cfg.layer_sizes[l + 1] for l in range(L)]
        self.E = [[0] * cfg.layer_sizes[l + 1] for l in range(L)]
        for i, u in enumerate(u_top):
            self.U[top][i], sat = saturate(u, cfg.error_bits)
            self.flags["error_saturated"] |= sat
        theta = cfg.theta_bp
        # Top layer: each neuron in turn emits all its error spikes (S' = 1, linear).
        for i in range(cfg.layer_sizes[L]):
            while abs(self.U[top][i]) >= theta:
                z = 1 if self.U[top][i] > 0 else -1
                self.U[top][i] -= z * theta
                out: deque = deque()
                self._emit_error(top, i, z, out if L > 1 else None)
                self._cascade_backward(top - 1, out)
        # Residual error phase, top layer first, then downwards.
        if residual:
            for l in range(top, -1, -1):
                out = deque()
                for i in range(cfg.layer_sizes[l + 1]):
                    if not self.Sp[l][i]:
                        continue
                    r = residual_spike(self.U[l][i], self.E[l][i], theta)
                    if r:
                        self.U[l][i] -= r * theta
                        self._emit_error(l, i, r, out if l > 0 else None)
                self._cascade_backward(l - 1, out)
        return u_top, [list(e) for e in self.E]

    def apply_updates(self) -> None:
        """``w_ij -= E_i * x_j`` (and ``b_i -= E_i * eta``), clamped; after propagation ends."""
        cfg = self.config
        for l in range(cfg.num_layers):
            x_prev = self.x_in if l == 0 else self.x[l - 1]
            fan_in = len(x_prev)
            for i, e in enumerate(self.E[l]):
                if e == 0:
                    continue
                self.ctr.update_ops += abs(e) * fan_in
                row = self._w[l][i]
                for j in range(fan_in):
                    row[j], c = clamp(row[j] - e * x_prev[j], cfg.weight_limit)
                    self.flags["weight_clamped"] |= c
                if cfg.bias:
                    self.ctr.update_ops += abs(e)
                    self._b[l][i], c = clamp(self._b[l][i] - e * cfg.eta, cfg.bias_limit)
                    self.flags["weight_clamped"] |= c
        self._store_lists()

    def train_step(self, events, label: int, *, residual: bool = True) -> SampleResult:
        """Forward, backward and weight update for one sample (Algorithm 3)."""
        res = self.forward(events, residual=residual)
        u_top, E = self.backward(label, residual=residual)
        self.apply_updates()
        res.u_top = u_top
        res.error_counts = E
        return res
