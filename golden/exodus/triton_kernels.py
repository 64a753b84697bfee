"""Triton backend of :mod:`golden.exodus.kernels` (CUDA tensors; optional).

Imported lazily by :func:`golden.exodus.kernels.resolve_backend`, only when
the ``"triton"`` backend is asked for or ``"auto"`` meets CUDA tensors, so
nothing else in the package needs triton. Two kernels, each launched once per
call over the whole ``(T, batch, neurons)`` tensor:

* ``_lif_forward_kernel``: each program owns a block of the ``batch *
  neurons`` columns and walks ``t = 0 .. T-1`` inside the kernel, keeping
  ``u`` and ``s`` in registers. Same floating-point operations in the same
  order as the torch loops and ``lif_bptt`` (``(alpha * u) + z`` then
  ``- theta * s``, or ``(u - theta * s) * alpha + z``), launched with
  ``enable_fp_fusion=False`` so that no multiply-add is contracted into an
  FMA: spikes, membrane and clamp mask are bit-identical to the torch backend.
  ``alpha``, ``theta`` and ``u_min`` are read from a small tensor of the
  data's dtype (Triton passes Python floats as fp32), i.e. rounded to that
  dtype exactly as torch rounds a Python scalar.
* ``_chi_scan_kernel``: the reverse scan ``lambda[n] = a[n] + c[n] *
  lambda[n+1]`` given ``a`` and ``c`` (computed by torch,
  :func:`golden.exodus.kernels.chi_coefficients`); equal to
  :func:`golden.exodus.kernels.chi_scan` up to rounding (FMA allowed here).

Testing without a GPU: with ``TRITON_INTERPRET=1`` in the environment when
this module is imported, ``@triton.jit`` gives Triton's interpreter, which
runs the kernels with numpy on the host; only then do the launch wrappers
accept CPU tensors (``INTERPRET``). It is meant for the tests, not for speed.
"""

from __future__ import annotations

import contextlib
import os

import torch
import triton
import triton.language as tl

from .kernels import FLOAT_DTYPES

# Triton's interpreter mode, decided when ``@triton.jit`` runs (module import).
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
BLOCK = 128  # columns per program: one per thread with 4 warps
NUM_WARPS = 4


@triton.jit
def _lif_forward_kernel(z_ptr, u0_ptr, par_ptr, u_ptr, s_ptr, m_ptr, T, N,
                        AFTER_DECAY: tl.constexpr, CLAMP: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    inb = offs < N
    alpha = tl.load(par_ptr)
    theta = tl.load(par_ptr + 1)
    u_min = tl.load(par_ptr + 2)
    u = tl.load(u0_ptr + offs, mask=inb, other=0.0)
    s = tl.zeros_like(u)  # s[-1] = 0, in the data's dtype: theta * s is exact
    zp = z_ptr + offs
    up = u_ptr + offs
    sp = s_ptr + offs
    mp = m_ptr + offs
    # Pointers advance by N per step (64-bit pointer arithmetic: no int32
    # overflow of t * N for large tensors).
    for _ in range(T):
        z = tl.load(zp, mask=inb, other=0.0)
        if AFTER_DECAY:  # u = alpha u + z - theta s
            u = (u * alpha + z) - s * theta
        else:  # u = alpha (u - theta s) + z
            u = (u - s * theta) * alpha + z
        if CLAMP:
            tl.store(mp, (u >= u_min).to(tl.uint8), mask=inb)
            u = tl.where(u < u_min, u_min, u)  # keeps NaN, like torch.clamp
        s = (u >= theta).to(u.dtype)
        tl.store(up, u, mask=inb)
        tl.store(sp, s, mask=inb)
        zp += N
        up += N
        sp += N
        mp += N


@triton.jit
def _chi_scan_kernel(a_ptr, c_ptr, lam_ptr, T, N, last, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    inb = offs < N
    ap = a_ptr + last + offs  # last = (T - 1) * N: start at the final step
    cp = c_ptr + last + offs
    lp = lam_ptr + last + offs
    lam = tl.load(ap, mask=inb, other=0.0)  # lambda[T-1] = a[T-1]
    tl.store(lp, lam, mask=inb)
    for _ in range(1, T):
        ap -= N
        cp -= N
        lp -= N
        lam = tl.load(ap, mask=inb, other=0.0) + tl.load(cp, mask=inb, other=0.0) * lam
        tl.store(lp, lam, mask=inb)


def check_tensors(*tensors: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every tensor suits this backend: float32/float64 on CUDA
    (or on the CPU in Triton's interpreter mode, for the tests)."""
    for t in tensors:
        if t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"the triton backend takes float32/float64 tensors, got {t.dtype}")
        if not (t.device.type == "cuda" or (INTERPRET and t.device.type == "cpu")):
            raise ValueError("the triton backend takes CUDA tensors"
                             + ("" if INTERPRET else " (CPU tensors only with TRITON_INTERPRET=1, "
                                                     "Triton's interpreter, set before import)")
                             + f", got a tensor on {t.device}")


def _grid(n: int):
    if n >= 2**31:
        raise ValueError(f"the triton backend takes fewer than 2**31 columns, got {n}")
    return (triton.cdiv(n, BLOCK),)


def _device_guard(t: torch.Tensor):
    """Launch on the tensor's own GPU (Triton uses the current device)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def lif_forward(z: torch.Tensor, u0: torch.Tensor, p):
    """Triton version of :func:`golden.exodus.kernels.lif_forward` (same results, bit for bit)."""
    check_tensors(z)
    z = z.contiguous()
    u0 = u0.to(device=z.device, dtype=z.dtype).expand(z.shape[1:]).contiguous()
    u, s = torch.empty_like(z), torch.empty_like(z)
    clamp = p.u_min is not None
    mask = torch.empty(z.shape, dtype=torch.bool, device=z.device) if clamp else None
    T, n = z.shape[0], u0.numel()
    if T == 0 or n == 0:
        return s, u, mask
    par = torch.tensor([p.alpha, p.threshold, p.u_min if clamp else 0.0], dtype=z.dtype, device=z.device)
    m = mask.view(torch.uint8) if clamp else s  # dummy pointer when there is no clamp: never written
    with _device_guard(z):
        _lif_forward_kernel[_grid(n)](z, u0, par, u, s, m, T, n, AFTER_DECAY=p.after_decay, CLAMP=clamp,
                                      BLOCK=BLOCK, num_warps=NUM_WARPS, enable_fp_fusion=False)
    return s, u, mask


def chi_scan(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Triton version of :func:`golden.exodus.kernels.chi_scan` with ``lambda[T] = 0``."""
    check_tensors(a, c)
    a = a.contiguous()
    c = c.to(a.dtype).contiguous()
    lam = torch.empty_like(a)
    T = a.shape[0]
    n = a[0].numel() if T else 0
    if T == 0 or n == 0:
        return lam
    with _device_guard(a):
        _chi_scan_kernel[_grid(n)](a, c, lam, T, n, (T - 1) * n, BLOCK=BLOCK, num_warps=NUM_WARPS)
    return lam
