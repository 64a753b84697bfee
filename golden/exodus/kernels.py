"""Fast path of EXODUS: the forward loop and the reverse chi scan.

Neither builds an autograd graph. Three backends compute the same numbers:

* ``"c"``: fused loops in C (``csrc/exodus_kernels.c``, built on first use by
  :mod:`golden.exodus.cbuild` and called through ctypes): one pass over the
  ``(T, batch, neurons)`` tensors for the forward and one for the scan;
* ``"torch"``: vectorised torch loops under ``torch.no_grad`` on
  preallocated time-major tensors with in-place, out= operations (a time step
  costs a handful of kernels over ``batch * neurons`` elements);
* ``"triton"``: CUDA tensors only, optional (needs the ``triton`` package,
  imported lazily): one Triton kernel for the whole forward loop (each
  program walks all T steps for a block of columns) and one for the scan
  (:mod:`golden.exodus.triton_kernels`). On a GPU the torch loops are bound
  by kernel launches (a few per time step), which this avoids.

``"auto"`` (the default) uses C for CPU tensors when it could be built,
triton for CUDA tensors when triton imports, torch otherwise. The
surrogate derivative (an ``exp`` for the default surrogate) is always
evaluated by torch for all steps at once, where it is vectorised; the scan
itself is one multiply-add per neuron and time step, as in the paper.

The forward uses the same floating-point operations in the same order as the
autograd reference (:func:`golden.exodus.layers.lif_bptt`) so that spikes are
identical bit for bit: ``(alpha * u) + z`` is two roundings, never a fused
multiply-add, and ``theta * s`` is exact because ``s`` is 0 or 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import cbuild
from .surrogates import Surrogate

BACKENDS = ("auto", "c", "torch", "triton")
# The backend used when a call names none; SPIKECORE_EXODUS_BACKEND=torch forces the torch loops.
default_backend = os.environ.get("SPIKECORE_EXODUS_BACKEND", "auto")
#: The float dtypes every backend takes (the triton backend checks the same).
FLOAT_DTYPES = (torch.float32, torch.float64)
# Outcome of the one attempt to import the triton backend: {"module": ...} or {"error": "..."}.
_triton_cache: dict = {}


@dataclass(frozen=True)
class NeuronParams:
    """Parameters of an IF/LIF layer (shared by every backward)."""

    alpha: float = 1.0
    threshold: float = 1.0
    reset_order: str = "after_decay"
    u_min: float | None = None
    surrogate: Surrogate = Surrogate()

    def __post_init__(self):
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be positive, got {self.threshold}")
        if self.reset_order not in ("after_decay", "before_decay"):
            raise ValueError(f"reset_order must be 'after_decay' or 'before_decay', got {self.reset_order!r}")

    @property
    def after_decay(self) -> bool:
        return self.reset_order == "after_decay"


def triton_kernels():
    """The triton backend module (:mod:`golden.exodus.triton_kernels`), or ``None`` when triton
    cannot be imported (see ``triton_error()``). Imported on first use only."""
    if not _triton_cache:
        try:
            from . import triton_kernels as module
        except Exception as e:  # ImportError, or a broken triton install
            _triton_cache["error"] = f"triton backend unavailable: {type(e).__name__}: {e}"
        else:
            _triton_cache["module"] = module
    return _triton_cache.get("module")


def triton_error() -> str | None:
    return _triton_cache.get("error")


def resolve_backend(backend: str | None, *tensors: torch.Tensor) -> str:
    """The backend (``"c"``, ``"torch"`` or ``"triton"``) that runs for these tensors."""
    backend = backend or default_backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if backend == "triton":
        module = triton_kernels()
        if module is None:
            raise RuntimeError(f"backend 'triton' needs the triton package (optional, CUDA only); "
                               f"{triton_error()}")
        module.check_tensors(*tensors)  # ValueError for CPU tensors or other dtypes
        return "triton"
    # CUDA (any non-CPU) tensors never reach the C library: ``"auto"`` falls
    # back to triton (CUDA) or the torch loops before anything is built, ``"c"`` refuses.
    floats = all(t.dtype in FLOAT_DTYPES for t in tensors)
    ok = floats and all(t.device.type == "cpu" for t in tensors)
    if backend == "c":
        if cbuild.library() is None:
            raise RuntimeError(cbuild.build_error)
        if not ok:
            raise ValueError("the C backend takes float32/float64 CPU tensors")
        return "c"
    if ok and cbuild.library() is not None:
        return "c"
    if floats and tensors and all(t.device.type == "cuda" for t in tensors) and triton_kernels() is not None:
        return "triton"
    return "torch"


def _ptr(t: torch.Tensor | None):
    return None if t is None else t.data_ptr()


@torch.no_grad()
def lif_forward(z: torch.Tensor, u0: torch.Tensor, p: NeuronParams, backend: str | None = None):
    """Run the layer over ``T = z.shape[0]`` steps.

    Returns ``(s, u, mask)``: spikes and membrane (after the clamp) shaped like
    ``z``, and the clamp mask (``True`` where the gradient passes, i.e. the
    unclamped value was ``>= u_min``), or ``None`` without a clamp.
    """
    chosen = resolve_backend(backend, z)
    if chosen == "torch":
        return _lif_forward_torch(z, u0, p)
    if chosen == "triton":
        return triton_kernels().lif_forward(z, u0, p)
    z = z.contiguous()
    u0 = u0.to(z.dtype).expand(z.shape[1:]).contiguous()
    u, s = torch.empty_like(z), torch.empty_like(z)
    mask = torch.empty(z.shape, dtype=torch.bool) if p.u_min is not None else None
    fn = getattr(cbuild.library(), "lif_forward_f32" if z.dtype == torch.float32 else "lif_forward_f64")
    fn(z.data_ptr(), u0.data_ptr(), u.data_ptr(), s.data_ptr(), _ptr(mask), z.shape[0], u0.numel(),
       p.alpha, p.threshold, int(p.after_decay), int(mask is not None), p.u_min if mask is not None else 0.0)
    return s, u, mask


def _lif_forward_torch(z: torch.Tensor, u0: torch.Tensor, p: NeuronParams):
    T = z.shape[0]
    u = torch.empty_like(z)
    # Spikes are kept as bool during the loop (one comparison, no copy) and
    # converted once at the end; subtracting theta * bool is exact.
    # Every buffer lives on z's device (CPU or CUDA); so does u0.
    spiked = torch.empty(z.shape, dtype=torch.bool, device=z.device)
    mask = torch.empty(z.shape, dtype=torch.bool, device=z.device) if p.u_min is not None else None
    u_prev = u0.to(z.device).expand(z.shape[1:])
    s_prev = torch.zeros(z.shape[1:], dtype=torch.bool, device=z.device)
    for t in range(T):
        ut = u[t]
        if p.after_decay:  # u = alpha u + z - theta s
            if p.alpha == 1.0:  # 1 * u == u exactly: skip the multiply
                torch.add(u_prev, z[t], out=ut)
            else:
                torch.mul(u_prev, p.alpha, out=ut)
                ut.add_(z[t])
            ut.add_(s_prev, alpha=-p.threshold)
        else:  # u = alpha (u - theta s) + z
            torch.add(u_prev, s_prev, alpha=-p.threshold, out=ut)
            ut.mul_(p.alpha).add_(z[t])
        if mask is not None:
            torch.ge(ut, p.u_min, out=mask[t])
            ut.clamp_(min=p.u_min)
        torch.ge(ut, p.threshold, out=spiked[t])
        u_prev, s_prev = ut, spiked[t]
    s = spiked.to(z.dtype)
    return s, u, mask


@torch.no_grad()
def chi_coefficients(u: torch.Tensor, grad_s: torch.Tensor, mask, p: NeuronParams, slayer: bool):
    """The two per-step factors of the chi recurrence, for all steps at once.

    ``lambda[n] = a[n] + c[n] * lambda[n+1]`` with ``a = m f' g`` and
    ``c = m (alpha - theta f')`` (reset after decay), ``m alpha (1 - theta f')``
    (reset before decay) or ``m alpha`` (SLAYER); ``m`` is the clamp mask.
    """
    fprime = p.surrogate(u, p.threshold)
    a = fprime * grad_s
    if slayer:
        c = torch.full_like(u, p.alpha)
    elif p.after_decay:
        c = fprime.mul_(-p.threshold).add_(p.alpha)
    else:
        c = fprime.mul_(-p.threshold).add_(1.0).mul_(p.alpha)
    if mask is not None:
        a.mul_(mask)
        c.mul_(mask)
    return a, c


@torch.no_grad()
def chi_scan(a: torch.Tensor, c: torch.Tensor, lam_next: torch.Tensor | None = None,
             out: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse scan ``lambda[n] = a[n] + c[n] * lambda[n+1]``, with ``lambda[T] = lam_next`` (default 0)."""
    lam = torch.empty_like(a) if out is None else out
    T = a.shape[0]
    if lam_next is None:
        lam[T - 1] = a[T - 1]
    else:
        torch.addcmul(a[T - 1], c[T - 1], lam_next, out=lam[T - 1])
    for t in range(T - 2, -1, -1):
        torch.addcmul(a[t], c[t], lam[t + 1], out=lam[t])
    return lam


@torch.no_grad()
def chi_backward(u, grad_s, mask, p: NeuronParams, slayer: bool = False,
                 backend: str | None = None) -> torch.Tensor:
    """``dL/dz`` of a layer from its stored membrane and ``dL/ds`` (EXODUS or SLAYER)."""
    chosen = resolve_backend(backend, u, grad_s)
    if chosen == "torch":
        return _chi_backward_torch(u, grad_s, mask, p, slayer)
    if chosen == "triton":
        # Coefficients by torch, vectorised over all steps at once; the scan in one kernel.
        a, c = chi_coefficients(u, grad_s.to(u.dtype), mask, p, slayer)
        return triton_kernels().chi_scan(a, c)
    u = u.contiguous()
    grad_s = grad_s.to(u.dtype).contiguous()
    fprime = p.surrogate(u, p.threshold)
    lam = torch.empty_like(u)
    mode = 2 if slayer else (0 if p.after_decay else 1)
    fn = getattr(cbuild.library(), "chi_scan_f32" if u.dtype == torch.float32 else "chi_scan_f64")
    n = u[0].numel() if u.shape[0] else 0
    fn(fprime.data_ptr(), grad_s.data_ptr(), _ptr(mask), lam.data_ptr(), u.shape[0], n,
       p.alpha, p.threshold, mode)
    return lam


def _chi_backward_torch(u, grad_s, mask, p: NeuronParams, slayer: bool = False, chunk: int = 16) -> torch.Tensor:
    """Torch backend of :func:`chi_backward`.

    The coefficients are computed ``chunk`` time steps at a time, just before
    the scan reaches them, so that they are still in cache when it reads them.
    """
    T = u.shape[0]
    lam = torch.empty_like(u)
    lam_next = None
    for t1 in range(T, 0, -chunk):
        t0 = max(0, t1 - chunk)
        m = None if mask is None else mask[t0:t1]
        a, c = chi_coefficients(u[t0:t1], grad_s[t0:t1], m, p, slayer)
        chi_scan(a, c, lam_next, out=lam[t0:t1])
        lam_next = lam[t0]
    return lam
