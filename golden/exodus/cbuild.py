"""Build and load the fused C loops (``csrc/exodus_kernels.c``) through ctypes.

The source is plain C (no Python or torch headers), so it compiles in about
a second with the system C compiler (``$CC``, default ``cc``) and needs no
build tool. The shared library is cached under the project's ignored
``build/exodus_kernels/`` folder, keyed by a hash of the source and the
flags, and written atomically so that parallel test workers can race.

:func:`library` returns ``None`` (and says why in :data:`build_error`) when no
compiler is available; :mod:`golden.exodus.kernels` then uses its vectorised
torch loops, which compute the same numbers.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("csrc") / "exodus_kernels.c"
# No -ffast-math and no FMA contraction: results must round like torch's.
FLAGS = ["-O3", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-std=c99"]

build_error: str | None = None
_lib = None
_loaded = False


def _cache_dir() -> Path:
    project = Path(__file__).resolve().parents[2]
    d = project / "build" / "exodus_kernels"
    try:
        d.mkdir(parents=True, exist_ok=True)
        return d
    except OSError:  # e.g. installed read-only: fall back to a per-user temp folder
        d = Path(tempfile.gettempdir()) / "spikecore_exodus_kernels"
        d.mkdir(parents=True, exist_ok=True)
        return d


def _compile() -> Path:
    cc = os.environ.get("CC", "cc")
    src = SOURCE.read_bytes()
    key = hashlib.sha256(src + " ".join([cc, *FLAGS]).encode()).hexdigest()[:16]
    out = _cache_dir() / f"exodus_kernels_{key}.so"
    if not out.exists():
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        try:
            subprocess.run([cc, *FLAGS, str(SOURCE), "-o", tmp], check=True, capture_output=True, text=True)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


def _declare(lib) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fwd = getattr(lib, f"lif_forward_{suffix}")
        fwd.argtypes = [p, p, p, p, p, i64, i64, real, real, i32, i32, real]
        fwd.restype = None
        scan = getattr(lib, f"chi_scan_{suffix}")
        scan.argtypes = [p, p, p, p, i64, i64, real, real, i32]
        scan.restype = None


def library():
    """The loaded C library, or ``None`` if it could not be built (see :data:`build_error`)."""
    global _lib, _loaded, build_error
    if not _loaded:
        _loaded = True
        try:
            lib = ctypes.CDLL(str(_compile()))
            _declare(lib)
            _lib = lib
        except (OSError, subprocess.CalledProcessError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            build_error = f"could not build {SOURCE.name}: {detail.strip()[:500]}"
    return _lib
