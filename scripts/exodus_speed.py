"""Speed of a full EXODUS training step against autograd BPTT (issue 3, experiment c).

The 100-128-128-35 IF network (readout layer non-spiking), batch 128,
T = 250, Poisson input, max-over-time cross entropy, Adam. One training step
= forward, backward and optimiser update. The two backwards are timed side by
side in one run (interleaved repetitions, same weights and data) and the
ratio of the medians is reported, together with a breakdown of where the
time goes (the linear layers are shared by both and bound the ratio).

Two autograd baselines: ``bptt`` (the reference ``lif_bptt``, which walks
time with ``z.unbind(0)``) and ``bptt_indexed`` (the same loop written with
``z[t]``, as sinabs' BPTT layers do; the backward of each index op allocates
a whole ``(T, batch, neurons)`` gradient, so its backward is O(T^2)). The
headline ratio is against ``bptt``, the stronger baseline.

Every step allocates and frees activations of ``T * batch * neurons`` floats
(16 MB here). With glibc's default settings the freed blocks go back to the
operating system at the end of a step, and the next step page-faults them in
again, which costs more than the EXODUS kernels themselves. The timings are
therefore taken twice in the same run: under the default allocator, then with
glibc told to keep freed memory (``mallopt``; both methods under the same
setting, which is restored afterwards). The headline is the second.

``--device cuda`` runs the same measurement on a GPU (network, data and
optimiser on the device, the EXODUS kernels in Triton when triton is
installed, else the torch loops, instead of the C ones -- the JSON's
``exodus_one_layer_kernels.backend`` says which; every timed region bracketed
by ``torch.cuda.synchronize()``, no glibc part: CUDA memory comes from torch's
caching allocator).

    python scripts/exodus_speed.py --out runs/exodus_speed [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from golden.exodus import IF, SpikingMLP  # noqa: E402
from golden.exodus.surrogates import spike  # noqa: E402


class IndexedBPTT(torch.nn.Module):
    """IF layer under autograd, looping with ``z[t]`` (sinabs style)."""

    def __init__(self, params):
        super().__init__()
        self.params = params

    def forward(self, z, u0=None):
        p = self.params
        u = torch.zeros_like(z[0])
        s = torch.zeros_like(u)
        out = []
        for t in range(z.shape[0]):
            u = u * p.alpha + z[t] - s * p.threshold
            s = spike(u, p.threshold, p.surrogate)
            out.append(s)
        return torch.stack(out)


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device is idle.

    On CUDA, kernels run asynchronously: waiting for the queued ones before
    reading the clock, at both ends of a timed region, makes the difference the
    real wall-clock time. On the CPU there is nothing to wait for.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def training_step(net, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x).amax(0), y)
    loss.backward()
    opt.step()


def time_linear_only(net, x, y) -> float:
    """Seconds for the step with the neurons replaced by a cheap pointwise map:
    what both methods pay for the matmuls alone."""
    h = x
    t0 = clock(x.device)
    for i, lin in enumerate(net.linears):
        h = lin(h)
        if i < net.num_spiking:
            h = torch.relu(h)
    F.cross_entropy(h.amax(0), y).backward()
    return clock(x.device) - t0


def time_exodus_kernels(net, x, reps: int) -> dict:
    """Median seconds of the no-graph forward and of the chi backward for the first hidden layer."""
    from golden.exodus import kernels

    with torch.no_grad():
        z = net.linears[0](x)
    p = net.neuron.params
    u0 = torch.zeros((), dtype=z.dtype, device=z.device)
    fwd, bwd = [], []
    for _ in range(max(1, reps)):
        t0 = clock(z.device)
        _, u, mask = kernels.lif_forward(z, u0, p)
        t1 = clock(z.device)
        kernels.chi_backward(u, z, mask, p)
        fwd.append(t1 - t0)
        bwd.append(clock(z.device) - t1)
    return {"forward_s": statistics.median(fwd), "backward_s": statistics.median(bwd),
            "backend": kernels.resolve_backend(None, z)}


def cpu_name() -> str:
    """The CPU's model name (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
GLIBC_DEFAULT = 128 * 1024  # both thresholds' defaults


def set_malloc_retention(on: bool) -> bool:
    """Keep (or stop keeping) freed memory of up to 32 MB blocks in the heap.

    Returns False where the C library has no ``mallopt`` (not glibc).
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallopt"):
        return False
    # glibc refuses an mmap threshold above 32 MB on 64-bit machines.
    mmap, trim = (32 << 20, 1 << 30) if on else (GLIBC_DEFAULT, GLIBC_DEFAULT)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))


def time_steps(net, opt, state, x, y, reps: int) -> dict:
    """Interleaved repetitions of one training step per method; seconds per repetition."""
    neuron = net.neuron
    times = {"exodus": [], "bptt": [], "bptt_indexed": []}
    for rep in range(reps + 1):  # repetition 0 is a warm-up
        for mode in times:
            net.load_state_dict(state)
            if mode == "bptt_indexed":
                net.neuron = IndexedBPTT(neuron.params)
            else:
                net.neuron = neuron
                net.set_backward(mode)
            t0 = clock(x.device)
            training_step(net, opt, x, y)
            if rep:
                times[mode].append(clock(x.device) - t0)
    net.neuron = neuron
    return times


def summarise(net, x, y, times, reps) -> dict:
    linear = statistics.median(time_linear_only(net, x, y) for _ in range(max(1, reps)))
    med = {m: statistics.median(v) for m, v in times.items()}
    return {
        "seconds": times, "median_s": med, "ratio_bptt_over_exodus": med["bptt"] / med["exodus"],
        "ratio_bptt_indexed_over_exodus": med["bptt_indexed"] / med["exodus"],
        "linear_layers_only_s": linear,
        "exodus_one_layer_kernels": time_exodus_kernels(net, x, reps),
        "ratio_excluding_linear": (med["bptt"] - linear) / max(med["exodus"] - linear, 1e-9),
        # Amdahl: what BPTT would be over EXODUS if EXODUS's neurons cost nothing.
        "ratio_bound_free_neurons": med["bptt"] / linear,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="small batch and T, 1 repetition (smoke test)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu",
                    help="torch device: cpu (default) or cuda[:N]; on CUDA the glibc part is skipped")
    args = ap.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        ap.error(str(e))
    if device.type not in ("cpu", "cuda"):
        ap.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    T, B, reps = (20, 8, 1) if args.quick else (250, 128, args.reps)
    sizes = [100, 128, 128, 35]
    torch.manual_seed(0)
    # Weights and data are drawn on the CPU (the same on every device), then moved.
    net = SpikingMLP(sizes, IF(backward="exodus"))
    x = (torch.rand(T, B, sizes[0]) < 0.1).float()
    y = torch.randint(0, sizes[-1], (B,))
    net, x, y = net.to(device), x.to(device), y.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    state = {k: v.clone() for k, v in net.state_dict().items()}

    by_allocator = {"default": summarise(net, x, y, time_steps(net, opt, state, x, y, reps), reps)}
    # glibc's malloc only serves CPU tensors; CUDA memory comes from torch's caching allocator.
    retained = device.type == "cpu" and set_malloc_retention(True)
    try:
        if retained:
            by_allocator["retain_freed"] = summarise(
                net, x, y, time_steps(net, opt, state, x, y, reps), reps)
    finally:
        if retained:
            set_malloc_retention(False)
    head = by_allocator.get("retain_freed", by_allocator["default"])
    if device.type == "cuda":
        allocator = "cuda caching allocator"
        device_name = torch.cuda.get_device_name(device)
    else:
        allocator = "retain_freed" if retained else "default"
        device_name = cpu_name()
    result = {
        "T": T, "batch": B, "sizes": sizes, "threads": torch.get_num_threads(), "reps": reps,
        "device": str(device), "device_name": device_name, "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if device.type == "cuda" else None,
        "allocator": allocator,
        **head,
        "by_allocator": by_allocator,
        "load_average_1min_after": os.getloadavg()[0],
    }
    med, linear = result["median_s"], result["linear_layers_only_s"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exodus_speed.json").write_text(json.dumps(result, indent=2))
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["EXODUS", "BPTT", "BPTT z[t]"], [med["exodus"], med["bptt"], med["bptt_indexed"]],
           color=["C0", "C1", "C2"])
    ax.axhline(linear, color="k", ls="--", lw=1, label="linear layers only")
    ax.set_ylabel("training step [s]")
    where = "" if device.type == "cpu" else f"{device.type}, "
    ax.set_title(f"{where}T={T}, batch={B}: BPTT/EXODUS = {result['ratio_bptt_over_exodus']:.2f}x")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "exodus_speed.png", dpi=120)
    print(json.dumps({name: {k: r[k] for k in ("median_s", "ratio_bptt_over_exodus", "ratio_bptt_indexed_over_exodus",
                                                "linear_layers_only_s", "exodus_one_layer_kernels",
                                                "ratio_excluding_linear", "ratio_bound_free_neurons")}
                      for name, r in by_allocator.items()}, indent=2))
    return result


if __name__ == "__main__":
    main()
