"""Gradient fidelity of EXODUS, SLAYER and the fixed-point model (paper appendix, Fig. S2).

A 100-128-128-35 IF network (two spiking hidden layers, non-spiking readout),
T = 250, batch 128, random Poisson input, max-over-time cross entropy
(summed over the batch, so the loss gradient is O(1) per sample). The weights
are put on the fixed-point grid first, so that the fixed-point forward is the
float forward bit for bit (IF: every membrane value is a sum of grid values)
and the fixed-point comparison measures the backward alone.

Per weight layer: cosine similarity and norm ratio of the EXODUS and SLAYER
weight gradients against autograd BPTT (float64), and of the fixed-point
model against float EXODUS, with two ablations that split its error into the
gradient rounding (``grad_frac``) and the surrogate table (LUT).

    python scripts/exodus_fidelity.py --out runs/exodus_fidelity [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from golden.exodus import LIF, SpikingMLP  # noqa: E402
from golden.exodus import fixedpoint as fx  # noqa: E402
from spikecore.config import ExodusConfig  # noqa: E402


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(a @ b / (a.norm() * b.norm()))


def norm_ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a.norm() / b.norm())


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out.amax(0), y, reduction="sum")


def weight_grads(net: SpikingMLP, x, y, backward: str):
    net.set_backward(backward)
    net.zero_grad()
    out = net(x)
    loss_fn(out, y).backward()
    return [lin.weight.grad.clone() for lin in net.linears], out.detach()


def fixed_point_grads(cfg: ExodusConfig, weights_q, x, dl_dout):
    """Weight gradients of the fixed-point engine (as floats) and its forward output."""
    records, out_q, sat_fwd = fx.mlp_forward_fixed(weights_q, x.to(torch.int64), cfg)
    g_out = fx.quantize(dl_dout, cfg.grad_frac, cfg.grad_bits)
    accs, _, sat_bwd = fx.mlp_backward_fixed(weights_q, records, g_out, cfg)
    return [fx.dequantize(a, cfg.grad_frac) for a in accs], out_q, sat_fwd + sat_bwd


def compare(grads, ref):
    return {"cosine": [cosine(g, r) for g, r in zip(grads, ref)],
            "norm_ratio": [norm_ratio(g, r) for g, r in zip(grads, ref)]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="T=30, batch 8 (smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.1, help="input Poisson spike probability per step")
    ap.add_argument("--surrogate-scale", type=float, default=1.0,
                    help="f' = scale/width exp(-|u-theta|/width), width 0.5 (scale 0.5: peak f' = alpha/theta)")
    args = ap.parse_args(argv)
    T, B = (30, 8) if args.quick else (250, 128)
    sizes = [100, 128, 128, 35]
    cfg = ExodusConfig(layer_sizes=tuple(sizes), surrogate_scale=args.surrogate_scale)
    torch.manual_seed(args.seed)
    net = SpikingMLP(sizes, LIF.from_config(cfg), dtype=torch.float64)
    weights_q = []
    with torch.no_grad():
        for lin in net.linears:  # put the weights on the fixed-point grid
            weights_q.append(fx.quantize(lin.weight, cfg.u_frac, cfg.weight_bits))
            lin.weight.copy_(fx.dequantize(weights_q[-1], cfg.u_frac))
    x = (torch.rand(T, B, sizes[0], dtype=torch.float64) < args.rate).double()
    y = torch.randint(0, sizes[-1], (B,))

    t0 = time.perf_counter()
    g_bptt, out = weight_grads(net, x, y, "bptt")
    t_bptt = time.perf_counter() - t0
    g_exo, out_exo = weight_grads(net, x, y, "exodus")
    g_sl, _ = weight_grads(net, x, y, "slayer")
    assert torch.equal(out, out_exo), "EXODUS and BPTT forwards differ"

    out_r = out.clone().requires_grad_()
    (dl_dout,) = torch.autograd.grad(loss_fn(out_r, y), out_r)
    fixed = {}
    # Ablations: 8 more gradient bits (rounding error / 256), a 16x finer table
    # with 4 more bits (table error / 16), and both; the rest is the default.
    finer_grad = dict(grad_bits=cfg.grad_bits + 8, grad_frac=cfg.grad_frac + 8, acc_bits=cfg.acc_bits + 8)
    finer_lut = dict(lut_size=cfg.lut_size * 16, lut_shift=cfg.lut_shift - 4, fprime_frac=cfg.fprime_frac + 4,
                     fprime_bits=cfg.fprime_bits + 4, coef_bits=cfg.coef_bits + 4)
    variants = {"default": cfg, "grad_frac+8": cfg.replace(**finer_grad), "lut_x16": cfg.replace(**finer_lut),
                "grad_frac+8,lut_x16": cfg.replace(**finer_grad, **finer_lut)}
    for name, c in variants.items():
        g_fx, out_q, n_sat = fixed_point_grads(c, weights_q, x, dl_dout)
        fixed[name] = {**compare(g_fx, g_exo), "saturations": n_sat,
                       "forward_equal": bool(torch.equal(fx.dequantize(out_q, c.u_frac), out))}

    with torch.no_grad():
        rates, h = [], x
        for i, lin in enumerate(net.linears[:-1]):
            h = net.neuron(lin(h))
            rates.append(float(h.mean()))
    result = {
        "T": T, "batch": B, "sizes": sizes, "input_rate": args.rate, "surrogate_scale": args.surrogate_scale,
        "hidden_spike_rates": rates,
        "layers": [f"W{i} ({sizes[i]}->{sizes[i + 1]})" for i in range(len(sizes) - 1)],
        "exodus_vs_bptt": compare(g_exo, g_bptt), "slayer_vs_bptt": compare(g_sl, g_bptt),
        "exodus_max_rel_err": [float((a - b).abs().max() / b.abs().max()) for a, b in zip(g_exo, g_bptt)],
        "fixed_vs_float_exodus": fixed, "bptt_seconds_float64": t_bptt, "config": cfg.to_dict(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exodus_fidelity.json").write_text(json.dumps(result, indent=2))

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    layers = range(len(sizes) - 1)
    for label, res, style in (("EXODUS", result["exodus_vs_bptt"], "o-"), ("SLAYER", result["slayer_vs_bptt"], "s--"),
                              ("fixed point vs EXODUS", fixed["default"], "^:")):
        axes[0].plot(layers, res["cosine"], style, label=label)
        axes[1].semilogy(layers, res["norm_ratio"], style, label=label)
    axes[0].set_ylabel("cosine similarity to BPTT")
    axes[1].set_ylabel("norm / BPTT norm")
    for ax in axes:
        ax.set_xlabel("weight layer (0 = input)")
        ax.set_xticks(list(layers))
    axes[0].legend()
    fig.suptitle(f"Gradient fidelity, IF {'-'.join(map(str, sizes))}, T={T}, batch {B}")
    fig.tight_layout()
    fig.savefig(args.out / "exodus_fidelity.png", dpi=120)
    print(json.dumps({k: result[k] for k in ("hidden_spike_rates", "exodus_vs_bptt", "slayer_vs_bptt",
                                              "exodus_max_rel_err", "fixed_vs_float_exodus")}, indent=1))
    return result


if __name__ == "__main__":
    main()
