"""Float64: EXODUS equals autograd BPTT, SLAYER equals BPTT with the reset detached.

The reference is the unrolled loop under autograd (``lif_bptt``), which
shares no backward code with the chi scan; a second, independent reference
is the paper's closed form of ds[n]/dz[m] (eq. 15) evaluated by brute force.
"""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.exodus import LIF, NeuronParams, SpikingMLP, Surrogate, cbuild, kernels, lif, lif_bptt

TOL = 1e-10
RANDOM_ALPHA = random.Random(3).uniform(0.5, 1.0)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max()
    return float((a - b).abs().max() / scale) if scale > 0 else float((a - b).abs().max())


def layer_grads(z, u0, g, p, backward, detach_reset=False):
    z = z.clone().requires_grad_()
    u0 = u0.clone().requires_grad_()
    s = lif_bptt(z, u0, p, detach_reset=detach_reset) if backward == "bptt" else lif(z, u0, p, backward)
    gz, gu0 = torch.autograd.grad((s * g).sum(), [z, u0])
    return s.detach(), gz, gu0


def random_case(T, seed, shape=(3, 5), bias=0.15):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(T, *shape, generator=gen, dtype=torch.float64) * 0.6 + bias
    u0 = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.5
    g = torch.randn(T, *shape, generator=gen, dtype=torch.float64)
    return z, u0, g


@pytest.fixture(params=["c", "torch"])
def backend(request, monkeypatch):
    """Run a test with the C loops and again with the torch loops."""
    monkeypatch.setattr(kernels, "default_backend", request.param)
    return request.param


def test_c_backend_builds():
    assert cbuild.library() is not None, cbuild.build_error


@pytest.mark.parametrize("backward", ["bptt", "exodus", "slayer"])
def test_kernels_keep_non_cpu_tensors_on_their_device(backward, monkeypatch):
    """Tensors off the CPU (``meta`` here: like CUDA, it refuses to mix with CPU tensors) take the
    torch loops, never the C library, and nothing on the way is created on the CPU."""
    monkeypatch.setattr(kernels, "default_backend", "auto")
    monkeypatch.setattr(cbuild, "library", lambda: pytest.fail("C library asked for non-CPU tensors"))
    dev = torch.device("meta")
    for p in (NeuronParams(), NeuronParams(0.9, 1.0, "before_decay", -0.5)):
        for u0 in (None, torch.zeros(5, dtype=torch.float64, device=dev, requires_grad=True)):
            z = torch.randn(12, 3, 5, dtype=torch.float64, device=dev, requires_grad=True)
            s = lif(z, u0, p, backward)
            grads = torch.autograd.grad(s.sum(), [z] if u0 is None else [z, u0])
            assert s.device == dev and all(g.device == dev for g in grads)


@pytest.mark.parametrize("T", [1, 2, 300])
@pytest.mark.parametrize("u_min", [None, -0.5])
@pytest.mark.parametrize("order", ["after_decay", "before_decay"])
@pytest.mark.parametrize("alpha", [1.0, 0.9, RANDOM_ALPHA])
def test_exodus_equals_bptt_and_slayer_equals_detached_bptt(alpha, order, u_min, T, backend):
    p = NeuronParams(alpha, 1.0, order, u_min, Surrogate("exponential", 1.0, 0.5))
    z, u0, g = random_case(T, seed=T)
    s_ref, gz_ref, gu_ref = layer_grads(z, u0, g, p, "bptt")
    s, gz, gu = layer_grads(z, u0, g, p, "exodus")
    assert torch.equal(s, s_ref)
    assert rel_err(gz, gz_ref) <= TOL and rel_err(gu, gu_ref) <= TOL
    s_det, gz_det, gu_det = layer_grads(z, u0, g, p, "bptt", detach_reset=True)
    _, gz_sl, gu_sl = layer_grads(z, u0, g, p, "slayer")
    assert rel_err(gz_sl, gz_det) <= TOL and rel_err(gu_sl, gu_det) <= TOL
    if T == 300:  # the cases are not vacuous: spikes, clamps, and SLAYER really differs
        assert 0.02 < float(s.mean()) < 0.5
        assert rel_err(gz_sl, gz_ref) > 1e-2
        if u_min is not None:
            assert float((gz == 0).double().mean()) > 0.01  # clamped steps pass no gradient


@pytest.mark.parametrize("kind", ["exponential", "fast_sigmoid", "piecewise_linear"])
def test_every_surrogate(kind, backend):
    p = NeuronParams(0.95, 0.75, "after_decay", None, Surrogate(kind, 0.7, 0.3))
    z, u0, g = random_case(120, seed=7)
    s_ref, gz_ref, gu_ref = layer_grads(z, u0, g, p, "bptt")
    s, gz, gu = layer_grads(z, u0, g, p, "exodus")
    assert torch.equal(s, s_ref) and rel_err(gz, gz_ref) <= TOL and rel_err(gu, gu_ref) <= TOL


def test_closed_form_sigma():
    """The paper's closed form, eq. (15), composed with the LIF response kernel.

    In the paper's SRM, ``z`` is the *filtered* current ``(eps * W s_in)``; with
    ``eps_n = alpha**n`` the gradient with respect to our raw current is
    ``dL/dz[m] = sum_{j>=m} alpha**(j-m) sum_n g[n] sigma_j[n]`` with
    ``sigma_j[j] = f'[j]`` and ``sigma_j[n] = -theta f'[n] f'[j] prod_{k=j+1}^{n-1} (alpha - theta f'[k])``.
    """
    T, alpha, theta = 7, 0.8, 1.0
    sur = Surrogate("fast_sigmoid", 1.0, 0.4)
    p = NeuronParams(alpha, theta, "after_decay", None, sur)
    z, u0, g = random_case(T, seed=11, shape=(1,), bias=0.5)
    s, gz, _ = layer_grads(z, u0, g, p, "exodus")
    assert 0 < float(s.sum()) < T
    u, up, sp = [], u0[0].item(), 0.0
    for t in range(T):  # membrane trace of the forward
        up = alpha * up + z[t, 0].item() - theta * sp
        sp = float(up >= theta)
        u.append(up)
    f = [sur.scalar(v, theta) for v in u]
    gn = [g[t, 0].item() for t in range(T)]

    def sigma(j, n):
        if n == j:
            return f[j]
        chi = 1.0
        for k in range(j + 1, n):
            chi *= alpha - theta * f[k]
        return -theta * f[n] * f[j] * chi

    d_filtered = [sum(gn[n] * sigma(j, n) for n in range(j, T)) for j in range(T)]
    for m in range(T):
        expected = sum(alpha ** (j - m) * d_filtered[j] for j in range(m, T))
        assert gz[m, 0].item() == pytest.approx(expected, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("order", ["after_decay", "before_decay"])
@pytest.mark.parametrize("u_min", [None, -1.0])
def test_chained_network_inputs_weights_initial_states(order, u_min, backend):
    torch.manual_seed(5)
    T, B, sizes = 60, 4, [6, 9, 8, 5]
    neuron = LIF(0.93, threshold=1.0, reset_order=order, u_min=u_min)
    net = SpikingMLP(sizes, neuron, readout=False, dtype=torch.float64, init_gain=3.0)
    x = torch.rand(T, B, sizes[0], dtype=torch.float64) * 1.5
    u0s = [torch.randn(B, n, dtype=torch.float64) * 0.3 for n in sizes[1:]]
    target = torch.rand(T, B, sizes[-1], dtype=torch.float64)
    grads = {}
    for backward in ("bptt", "exodus"):
        net.set_backward(backward)
        xs = x.clone().requires_grad_()
        us = [u.clone().requires_grad_() for u in u0s]
        out = net(xs, us)
        loss = ((out.cumsum(0) * 0.1 - target) ** 2).sum()
        params = [xs, *us, *(lin.weight for lin in net.linears)]
        grads[backward] = (out.detach(), torch.autograd.grad(loss, params))
    assert torch.equal(grads["bptt"][0], grads["exodus"][0])
    assert float(grads["bptt"][0].mean()) > 0.02
    for a, b in zip(grads["exodus"][1], grads["bptt"][1]):
        assert rel_err(a, b) <= TOL


def test_shared_initial_state_broadcasts(backend):
    p = NeuronParams(0.9, 1.0, "after_decay", None, Surrogate())
    z, _, g = random_case(40, seed=2)
    u0 = torch.full((5,), 0.3, dtype=torch.float64)  # one initial state per neuron, shared by the batch
    _, gz_ref, gu_ref = layer_grads(z, u0, g, p, "bptt")
    _, gz, gu = layer_grads(z, u0, g, p, "exodus")
    assert gu.shape == (5,) and rel_err(gu, gu_ref) <= TOL and rel_err(gz, gz_ref) <= TOL


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0.3, 1.0), theta=st.floats(0.25, 2.0), T=st.integers(1, 40),
       kind=st.sampled_from(["exponential", "fast_sigmoid", "piecewise_linear"]),
       width=st.floats(0.1, 1.0), order=st.sampled_from(["after_decay", "before_decay"]),
       clamp=st.booleans(), seed=st.integers(0, 1000))
def test_random_parameters(alpha, theta, T, kind, width, order, clamp, seed):
    p = NeuronParams(alpha, theta, order, -theta if clamp else None, Surrogate(kind, 1.0, width))
    z, u0, g = random_case(T, seed, bias=0.2 * theta)
    s_ref, gz_ref, gu_ref = layer_grads(z, u0, g, p, "bptt")
    s, gz, gu = layer_grads(z, u0, g, p, "exodus")
    assert torch.equal(s, s_ref)
    assert rel_err(gz, gz_ref) <= TOL and rel_err(gu, gu_ref) <= TOL


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("u_min", [None, -0.5])
@pytest.mark.parametrize("order", ["after_decay", "before_decay"])
def test_c_and_torch_backends_agree(dtype, order, u_min):
    """Forward bit for bit (same roundings in the same order), scan to rounding."""
    p = NeuronParams(0.9, 1.0, order, u_min, Surrogate())
    z, u0, g = (t.to(dtype) for t in random_case(64, seed=4, shape=(8, 16)))
    ref = kernels.lif_forward(z, u0, p, backend="torch")
    out = kernels.lif_forward(z, u0, p, backend="c")
    for a, b in zip(out, ref):
        assert (a is None and b is None) or torch.equal(a, b)
    for slayer in (False, True):
        lam_ref = kernels.chi_backward(ref[1], g, ref[2], p, slayer, backend="torch")
        lam = kernels.chi_backward(ref[1], g, ref[2], p, slayer, backend="c")
        assert rel_err(lam, lam_ref) <= (1e-5 if dtype == torch.float32 else 1e-12)
