"""The optional Triton backend of the EXODUS kernels (CUDA).

Runs where triton is installed and either a CUDA device is present (tensors
on the GPU, compared with the torch loops and ``lif_bptt`` on the same GPU)
or ``TRITON_INTERPRET=1`` is set (Triton's CPU interpreter: the same kernels
run with numpy on CPU tensors). Without triton these tests skip -- it is an
optional accelerator backend -- except the ones checking that everything
works, and fails clearly, without it.

On a CUDA machine, from the repository root::

    PYTHONPATH=. python3 -m pytest -q tests/test_exodus_triton.py

Without a GPU, with triton installed (triton 3.6's interpreter needs
numpy < 2.4 first on the path)::

    TRITON_INTERPRET=1 python -m pytest -q tests/test_exodus_triton.py
"""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import golden.exodus
from golden.exodus import NeuronParams, Surrogate, kernels, lif, lif_bptt

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# The interpreter runs on the host: CPU tensors. Otherwise the kernels need the GPU.
DEVICE = torch.device("cpu") if INTERPRET else torch.device("cuda")
SHAPE = (3, 67)  # 201 columns: not a multiple of the block, the last program is partial


@pytest.fixture(scope="module")
def tk():
    pytest.importorskip("triton", reason="triton not installed (optional GPU backend)")
    if not (INTERPRET or torch.cuda.is_available()):
        pytest.skip("triton backend: needs a CUDA device, or TRITON_INTERPRET=1 (Triton's CPU interpreter)")
    module = kernels.triton_kernels()
    assert module is not None, kernels.triton_error()
    assert module.INTERPRET == INTERPRET
    if INTERPRET:
        try:
            module.chi_scan(torch.zeros(2, 1), torch.zeros(2, 1))
        except Exception as e:  # triton.runtime.errors.InterpreterError
            if "0-dimensional" not in str(e):
                raise
            # The interpreter calls int() on 1-element arrays (its loop bounds), an error since
            # NumPy 2.4; fixed upstream after triton 3.6 (triton-lang/triton#9171, #9172).
            pytest.skip("Triton's interpreter in this triton release needs numpy < 2.4 "
                        "(triton-lang/triton#9171): put an older numpy first on PYTHONPATH")
    return module


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max()
    return float((a - b).abs().max() / scale) if scale > 0 else float((a - b).abs().max())


def random_case(T, dtype, seed, shape=SHAPE):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(T, *shape, generator=gen, dtype=torch.float64) * 0.6 + 0.15
    u0 = torch.randn(shape[-1:], generator=gen, dtype=torch.float64) * 0.5  # per neuron, broadcast
    g = torch.randn(T, *shape, generator=gen, dtype=torch.float64)
    return (t.to(dtype=dtype, device=DEVICE) for t in (z, u0, g))


def fake_tensor(device: str, dtype=torch.float32):
    """What backend selection looks at (dtype, device), without needing that device."""
    return SimpleNamespace(dtype=dtype, device=torch.device(device))


@pytest.mark.parametrize("T", [1, 2, 37])
@pytest.mark.parametrize("alpha", [1.0, 0.9])
@pytest.mark.parametrize("u_min", [None, -0.5])
@pytest.mark.parametrize("order", ["after_decay", "before_decay"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_bit_identical(tk, dtype, order, u_min, alpha, T):
    """Spikes, membrane and clamp mask equal the torch loops bit for bit; spikes equal ``lif_bptt``."""
    p = NeuronParams(alpha, 1.0, order, u_min)
    z, u0, _ = random_case(T, dtype, seed=T)
    ref = kernels.lif_forward(z, u0, p, backend="torch")
    out = kernels.lif_forward(z, u0, p, backend="triton")
    for a, b in zip(out, ref):
        assert (a is None and b is None) or (a.dtype == b.dtype and a.device == b.device and torch.equal(a, b))
    assert torch.equal(out[0], lif_bptt(z, u0, p))
    if T == 37:  # the case exercises spikes, resets and the clamp
        assert 0 < out[0].sum() < out[0].numel()
        assert u_min is None or not out[2].all()


@pytest.mark.parametrize("T", [1, 2, 37])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scan_equals_chi_scan(tk, dtype, T):
    gen = torch.Generator().manual_seed(T)
    a = torch.randn(T, *SHAPE, generator=gen, dtype=torch.float64).to(dtype=dtype, device=DEVICE)
    c = (torch.rand(T, *SHAPE, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype=dtype, device=DEVICE)
    lam = tk.chi_scan(a, c)
    assert lam.dtype == dtype and lam.device.type == DEVICE.type
    assert rel_err(lam, kernels.chi_scan(a, c)) <= (1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("u_min", [None, -0.5])
@pytest.mark.parametrize("order", ["after_decay", "before_decay"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chi_backward_equals_torch_backend(tk, dtype, order, u_min):
    p = NeuronParams(0.9, 1.0, order, u_min, Surrogate())
    z, u0, g = random_case(37, dtype, seed=5)
    _, u, mask = kernels.lif_forward(z, u0, p, backend="triton")
    for slayer in (False, True):
        lam_ref = kernels.chi_backward(u, g, mask, p, slayer, backend="torch")
        lam = kernels.chi_backward(u, g, mask, p, slayer, backend="triton")
        assert rel_err(lam, lam_ref) <= (1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("u_min", [None, -0.5])
@pytest.mark.parametrize("order", ["after_decay", "before_decay"])
def test_exodus_gradients_equal_bptt(tk, order, u_min, monkeypatch):
    """Float64 gradients of ``exodus`` through triton equal autograd BPTT (``slayer``: with the
    reset detached); on CUDA the triton backend is what ``"auto"`` picks."""
    monkeypatch.setattr(kernels, "default_backend", "triton" if INTERPRET else "auto")
    p = NeuronParams(0.9, 1.0, order, u_min, Surrogate("exponential", 1.0, 0.5))
    z, u0, g = random_case(37, torch.float64, seed=7)
    assert kernels.resolve_backend(None, z) == "triton"

    def grads(backward, detach_reset=False):
        zz, uu = z.clone().requires_grad_(), u0.clone().requires_grad_()
        s = lif_bptt(zz, uu, p, detach_reset=detach_reset) if backward == "bptt" else lif(zz, uu, p, backward)
        return (s.detach(), *torch.autograd.grad((s * g).sum(), [zz, uu]))

    for mine, ref in ((grads("exodus"), grads("bptt")), (grads("slayer"), grads("bptt", detach_reset=True))):
        assert torch.equal(mine[0], ref[0])
        for a, b in zip(mine[1:], ref[1:]):
            assert a.device.type == DEVICE.type and torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_backend_selection(tk, monkeypatch):
    """``auto``: triton for CUDA tensors, never for CPU ones; ``triton`` refuses what it cannot run."""
    assert kernels.resolve_backend("auto", fake_tensor("cuda")) == "triton"
    assert kernels.resolve_backend("auto", fake_tensor("cuda", torch.float16)) == "torch"
    assert kernels.resolve_backend("auto", torch.zeros(2)) in ("c", "torch")
    assert kernels.resolve_backend("auto", torch.zeros(2, device="meta")) == "torch"
    with pytest.raises(ValueError, match="float32/float64"):
        kernels.resolve_backend("triton", fake_tensor("cuda", torch.float16))
    monkeypatch.setattr(tk, "INTERPRET", False)  # as outside the interpreter
    with pytest.raises(ValueError, match="CUDA tensors"):
        kernels.lif_forward(torch.zeros(3, 2), torch.zeros(()), NeuronParams(), backend="triton")


def test_without_triton(monkeypatch):
    """Where triton cannot be imported, ``auto`` takes the torch loops for CUDA tensors and a
    forced ``triton`` fails with a clear error (runs with or without triton installed)."""
    monkeypatch.setitem(sys.modules, "triton", None)  # makes ``import triton`` fail
    monkeypatch.delitem(sys.modules, "golden.exodus.triton_kernels", raising=False)
    monkeypatch.delattr(golden.exodus, "triton_kernels", raising=False)
    monkeypatch.setattr(kernels, "_triton_cache", {})
    assert kernels.resolve_backend("auto", fake_tensor("cuda")) == "torch"
    assert kernels.triton_kernels() is None and "triton" in kernels.triton_error()
    with pytest.raises(RuntimeError, match="needs the triton package"):
        kernels.resolve_backend("triton", fake_tensor("cuda"))
    assert "triton" in kernels.BACKENDS


def test_package_does_not_import_triton():
    """Importing the package and running the CPU path leave triton unimported."""
    code = ("import sys, torch\n"
            "from golden.exodus import NeuronParams, lif\n"
            "z = torch.randn(5, 2, 3, requires_grad=True)\n"
            "lif(z, None, NeuronParams(0.9), 'exodus').sum().backward()\n"
            "assert 'triton' not in sys.modules, 'triton imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
