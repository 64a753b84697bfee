"""The event-driven simulator against the integer ANN and against a literal,
recursive transcription of the paper's Algorithms 1-3."""

from __future__ import annotations

from fractions import Fraction

import torch
from hypothesis import HealthCheck, given, settings

from golden.data import encode_counts
from golden.spikegrad import int_ann
from golden.spikegrad.event_sim import EventDrivenSimulator
from golden.spikegrad.fixedpoint import top_error

from spikegrad_strategies import networks

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(networks())
def test_event_simulator_with_residual_equals_integer_ann(net):
    params, counts, label = net
    cfg = params.config
    sim = EventDrivenSimulator(params)
    res = sim.train_step(encode_counts(counts), label)
    assert not any(res.flags[k] for k in res.flags if k != "weight_clamped")

    fwd = int_ann.forward(params, torch.tensor([counts]))
    bwd = int_ann.backward(params, fwd, torch.tensor([label]))
    new, _ = int_ann.apply_updates(params, fwd, bwd)
    assert not fwd.overflow and not bwd.overflow
    for l in range(cfg.num_layers - 1):
        assert res.counts[l] == fwd.counts[l + 1][0].tolist(), f"S differs in layer {l}"
    for l in range(cfg.num_layers):
        assert res.surrogate[l] == fwd.surrogate[l][0].tolist(), f"S' differs in layer {l}"
        assert res.error_counts[l] == bwd.error_counts[l][0].tolist(), f"E differs in layer {l}"
    assert res.v_top == fwd.v_top[0].tolist()
    assert res.prediction == int(fwd.prediction[0])
    assert res.u_top == bwd.u_top[0].tolist()
    assert sim.params.equal(new), "updated weights differ"


def _act(q: Fraction, relu: bool) -> Fraction:
    return max(q, Fraction(0)) if relu else q


@SETTINGS
@given(networks())
def test_without_residual_every_neuron_is_within_one_spike(net):
    """|SDE| < 1 (eqs. 10-13): without the residual phase each neuron's count
    differs from the ANN output computed on the spikes it actually received by
    less than one spike, forward and backward."""
    params, counts, label = net
    cfg = params.config
    sim = EventDrivenSimulator(params)
    res = sim.forward(encode_counts(counts), residual=False)
    _, E = sim.backward(label, residual=False)
    prev = list(counts)
    for l in range(cfg.num_layers - 1):
        relu = cfg.activations[l] == "relu"
        w, b = params.weights[l].tolist(), params.biases[l].tolist()
        for i, s in enumerate(res.counts[l]):
            ann = Fraction(sum(wi * p for wi, p in zip(w[i], prev)) + b[i], cfg.theta_ff)
            assert abs(_act(ann, relu) - s) < 1
        prev = res.counts[l]
    u_top = top_error(cfg, res.v_top, label)
    for i, e in enumerate(E[-1]):
        assert abs(Fraction(u_top[i], cfg.theta_bp) - e) < 1
    for l in range(cfg.num_layers - 2, -1, -1):
        w_up = params.weights[l + 1].tolist()
        for i, e in enumerate(E[l]):
            if res.surrogate[l][i]:
                z = Fraction(sum(w_up[k][i] * E[l + 1][k] for k in range(len(E[l + 1]))), cfg.theta_bp)
                assert abs(z - e) < 1
            else:
                assert e == 0


class LiteralSpikeGrad:
    """Algorithms 1-3 transcribed literally: depth-first recursion, the error
    compartment integrating even when gated (its delta is then zero), and an
    omega accumulator updated on every error spike. Wide integers, no widths."""

    def __init__(self, params):
        self.cfg = params.config
        self.w = [w.tolist() for w in params.weights]
        self.b = [b.tolist() for b in params.biases]

    def s_act(self, l, i):
        V, x, th = self.V[l][i], self.x[l][i], self.cfg.theta_ff
        if V >= th:
            return 1
        if V <= -th and (self.cfg.activations[l] == "linear" or x > 0):
            return -1
        return 0

    def propagate(self, l, i, j, s):
        self.V[l][i] += s * self.w[l][i][j]
        if l == self.cfg.num_layers - 1:
            return
        sp = self.s_act(l, i)
        if sp:
            self.fire(l, i, sp)

    def fire(self, l, i, sp):
        self.V[l][i] -= sp * self.cfg.theta_ff
        self.x[l][i] += self.cfg.eta * sp
        self.S[l][i] += sp
        for k in range(self.cfg.layer_sizes[l + 2]):
            self.propagate(l + 1, k, i, sp)

    def backpropagate(self, l, i, k, d):
        cfg = self.cfg
        if l < cfg.num_layers - 1:
            self.U[l][i] += d * self.w[l + 1][k][i]
        u, th = self.U[l][i], cfg.theta_bp
        z = 1 if u >= th else -1 if u <= -th else 0
        if z:
            self.error_spike(l, i, z)

    def error_spike(self, l, i, z):
        cfg = self.cfg
        self.U[l][i] -= z * cfg.theta_bp
        self.Z[l][i] += z
        delta = z * self.Sp[l][i]
        x_prev = self.x_in if l == 0 else self.x[l - 1]
        for j in range(cfg.layer_sizes[l]):
            if l > 0:
                self.backpropagate(l - 1, j, i, delta)
            self.omega[l][i][j] -= delta * x_prev[j]
        self.omega_b[l][i] -= delta * cfg.eta

    def run(self, counts, label):
        cfg = self.cfg
        L = cfg.num_layers
        n = cfg.layer_sizes
        self.V = [list(self.b[l]) for l in range(L)]
        self.x = [[0] * n[l + 1] for l in range(L)]
        self.S = [[0] * n[l + 1] for l in range(L)]
        self.x_in = [cfg.eta * c for c in counts]
        for j, s in encode_counts(counts):
            for i in range(n[1]):
                self.propagate(0, i, j, s)
        for l in range(L - 1):   # residual phase, bottom layer first (eq. 16)
            relu = cfg.activations[l] == "relu"
            for i in range(n[l + 1]):
                V, S, th = self.V[l][i], self.S[l][i], cfg.theta_ff
                r = 1 if (2 * V > th or (2 * V == th and S >= 0)) else \
                    -1 if ((2 * V < -th or (2 * V == -th and S <= 0)) and (not relu or S > 0)) else 0
                if r:
                    self.fire(l, i, r)
        self.Sp = [[int(v > 0 or x > 0) if cfg.activations[l] == "relu" else 1
                    for v, x in zip(self.V[l], self.x[l])] for l in range(L)]
        self.U = [[0] * n[l + 1] for l in range(L)]
        self.Z = [[0] * n[l + 1] for l in range(L)]
        self.omega = [[[0] * n[l] for _ in range(n[l + 1])] for l in range(L)]
        self.omega_b = [[0] * n[l + 1] for l in range(L)]
        self.U[L - 1] = top_error(cfg, self.V[L - 1], label)
        for i in range(n[L]):
            while abs(self.U[L - 1][i]) >= cfg.theta_bp:
                self.backpropagate(L - 1, i, None, 0)
        for l in range(L - 1, -1, -1):   # residual error phase (eq. 19)
            for i in range(n[l + 1]):
                U, Z, th = self.U[l][i], self.Z[l][i], cfg.theta_bp
                r = 1 if (2 * U > th or (2 * U == th and Z >= 0)) else \
                    -1 if (2 * U < -th or (2 * U == -th and Z <= 0)) else 0
                if r:
                    self.error_spike(l, i, r)
        lim, blim = cfg.weight_limit, cfg.bias_limit
        w = [[[max(-lim, min(lim, self.w[l][i][j] + self.omega[l][i][j])) for j in range(n[l])]
              for i in range(n[l + 1])] for l in range(L)]
        b = [[max(-blim, min(blim, self.b[l][i] + self.omega_b[l][i])) if cfg.bias else 0
              for i in range(n[l + 1])] for l in range(L)]
        return w, b


@SETTINGS
@given(networks())
def test_fifo_event_order_equals_the_papers_depth_first_recursion(net):
    """The core's layer-FIFO order gives every neuron the same input sequence as
    Algorithm 1's depth-first recursion, so every state and weight agrees."""
    params, counts, label = net
    lit = LiteralSpikeGrad(params)
    w, b = lit.run(counts, label)
    sim = EventDrivenSimulator(params)
    res = sim.train_step(encode_counts(counts), label)
    assert res.counts == lit.S
    assert sim.V == lit.V
    assert sim.params.weights[0].tolist() == w[0]
    assert [t.tolist() for t in sim.params.weights] == w
    assert [t.tolist() for t in sim.params.biases] == b
