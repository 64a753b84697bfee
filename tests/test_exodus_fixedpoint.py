"""Fixed-point EXODUS: hand-derived integer cases, scalar == vectorised, fidelity.

The tiny configuration ``TINY`` keeps every number small enough to derive by
hand: membrane LSB 1/16, theta = 16 LSBs, alpha = 0.5, an 8-entry
piecewise-linear table with 4 LSBs per bin, f' and c with 4 fractional bits.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.exodus import LIF, SpikingMLP
from golden.exodus import fixedpoint as fx
from spikecore.config import ExodusConfig

TINY = ExodusConfig(
    layer_sizes=(2, 1), max_steps=16, alpha=0.5, threshold=1.0, surrogate="piecewise_linear",
    surrogate_scale=1.0, surrogate_width=1.0, u_bits=12, u_frac=4, weight_bits=8, alpha_frac=8,
    fprime_bits=8, fprime_frac=4, coef_bits=8, lut_size=8, lut_shift=2, grad_bits=12, grad_frac=4,
    acc_bits=20, lr_shift=3)


def test_round_shift_and_saturate_by_hand():
    assert fx.round_shift(5, 1) == 3      # 2.5 -> 3
    assert fx.round_shift(-5, 1) == -2    # -2.5 -> -2 (half up, towards +inf)
    assert fx.round_shift(-6, 2) == -1    # -1.5 -> -1
    assert fx.round_shift(-7, 2) == -2    # -1.75 -> -2
    assert fx.round_shift(7, 0) == 7
    assert fx.saturate(200, 8) == (127, True)
    assert fx.saturate(-129, 8) == (-128, True)
    assert fx.saturate(-128, 8) == (-128, False)
    x = torch.tensor([5, -5, -6, -7, 300, -300])
    assert fx.round_shift_t(x, 1).tolist() == [fx.round_shift(int(v), 1) for v in x]
    clamped, n = fx.saturate_t(x, 8)
    assert clamped.tolist() == [5, -5, -6, -7, 127, -128] and n == 2


def test_tables_by_hand():
    # bin i holds d = u - theta in [(i-4)*4, (i-3)*4) LSBs; midpoint x = (i - 3.5) / 4;
    # f' = 1 - |x| -> 16 * f' = 2, 6, 10, 14, 14, 10, 6, 2
    t = fx.build_tables(TINY)
    assert t.fprime == (2, 6, 10, 14, 14, 10, 6, 2)
    assert t.coef == (6, 2, -2, -6, -6, -2, 2, 6)            # 16 * (0.5 - f'/16) = 8 - f'
    assert t.slayer_coef == 8                                  # 16 * alpha
    before = fx.build_tables(TINY.replace(reset_order="before_decay"))
    assert before.coef == (7, 5, 3, 1, 1, 3, 5, 7)            # 0.5 * (16 - f')
    assert fx.lut_index(17, TINY) == 4 and fx.lut_index(15, TINY) == 3
    assert fx.lut_index(0, TINY) == 0 and fx.lut_index(31, TINY) == 7
    assert fx.lut_index(-1, TINY) is None and fx.lut_index(32, TINY) is None
    # beyond the table: f' = 0 and c = alpha (16 * 0.5 = 8)
    assert fx.lut_lookup(1000, t, TINY) == (0, 8) and fx.lut_lookup(17, t, TINY) == (14, -6)


def test_chi_step_by_hand():
    t = fx.build_tables(TINY)
    # u = 17 -> bin 4: f' = 14, c = -6; 14*50 - 6*100 = 100; (100 + 8) >> 4 = 6
    assert fx.chi_step(100, 17, 50, 1, t, TINY) == (6, False)
    assert fx.chi_step(100, 17, 50, 0, t, TINY) == (0, False)  # clamped step
    # SLAYER: c = 8; 14*50 + 8*100 = 1500; (1500 + 8) >> 4 = 94
    assert fx.chi_step(100, 17, 50, 1, t, TINY.replace(backward="slayer")) == (94, False)
    # saturation: u beyond the table, 0*2000 + 8*2000 = 16000 -> 1000 -> a 10-bit lambda saturates at 511
    narrow = TINY.replace(grad_bits=10)
    assert fx.chi_step(2000, 1000, 2000, 1, t, narrow) == (511, True)


def test_chi_sequence_pinned():
    t = fx.build_tables(TINY)
    # t=3: u=-20 -> beyond the table (f' = 0, c = 8): 0*40 + 8*0 = 0 -> 0
    # t=2: u=31 -> bin 7: 2*30 + 6*0 = 60 -> (60 + 8) >> 4 = 4
    # t=1: u=0 -> bin 0: 2*20 + 6*4 = 64 -> 4
    # t=0: u=17 -> bin 4: 14*10 - 6*4 = 116 -> 7
    assert fx.chi_sequence([17, 0, 31, -20], [10, 20, 30, 40], [1, 1, 1, 1], t, TINY) == ([7, 4, 4, 0], 0)
    # t=1: u=17 -> bin 4: 14*64 = 896 -> 904 >> 4 = 56
    # t=0: beyond the table lambda only decays by alpha: 8*56 = 448 -> 456 >> 4 = 28
    assert fx.chi_sequence([100, 17], [0, 64], [1, 1], t, TINY) == ([28, 56], 0)


def test_lif_step_by_hand():
    # after decay: round_shift(128 * 10, 8) = 5; 5 + 3 - 0 = 8, no spike
    assert fx.lif_step(10, 0, 3, TINY) == (8, 0, 1, False)
    # 0.5 * 7 = 3.5 -> 4; 4 + 12 = 16 >= theta: spike
    assert fx.lif_step(7, 0, 12, TINY) == (16, 1, 1, False)
    # reset: 0.5 * 16 = 8; 8 + 4 - 16 = -4
    assert fx.lif_step(16, 1, 4, TINY) == (-4, 0, 1, False)
    # reset before decay: 0.5 * (16 - 16) + 4 = 4
    assert fx.lif_step(16, 1, 4, TINY.replace(reset_order="before_decay")) == (4, 0, 1, False)
    # clamp at -1.0 = -16 LSBs: -3 - 20 = -23 -> -16, mask 0
    assert fx.lif_step(-6, 0, -20, TINY.replace(u_min=-1.0)) == (-16, 0, 0, False)
    # saturation at 12 bits
    assert fx.lif_step(0, 0, 5000, TINY) == (2047, 1, 1, True)


def test_engine_steps_by_hand():
    w = torch.tensor([[16, -8]])                         # 1.0, -0.5
    lam = torch.tensor([[[3]]])                          # (T=1, B=1, out=1)
    g, n = fx.backprop_fixed(w, lam, TINY)
    assert g.tolist() == [[[3, -1]]] and n == 0          # 48/16 = 3; -24/16 = -1.5 -> -1
    x = torch.tensor([[[1, 0]], [[1, 1]]])               # spikes (T=2, B=1, in=2)
    lam2 = torch.tensor([[[5]], [[-7]]])
    acc, _ = fx.weight_grad_fixed(lam2, x, TINY)
    assert acc.tolist() == [[-2, -7]]                    # gated sums of lambda
    # update shift = grad_frac - u_frac + lr_shift = 3: 20/8 = 2.5 -> 3; -20/8 = -2.5 -> -2
    w2, _ = fx.weight_update_fixed(torch.tensor([10, 10]), torch.tensor([20, -20]), TINY)
    assert w2.tolist() == [7, 12]
    z, _ = fx.synaptic_current_fixed(w, x, TINY)
    assert z.tolist() == [[[16]], [[8]]]


CONFIGS = [TINY, TINY.replace(backward="slayer"), TINY.replace(reset_order="before_decay", u_min=-2.0),
           TINY.replace(grad_bits=8)]  # narrow: saturates


@settings(max_examples=30, deadline=None)
@given(cfg=st.sampled_from(CONFIGS), seed=st.integers(0, 10_000), T=st.integers(1, 12))
def test_scalar_and_vectorised_agree(cfg, seed, T):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randint(-30, 40, (T, 2, 3), generator=gen)
    u0 = torch.randint(-20, 20, (2, 3), generator=gen)
    s, u, mask, _ = fx.lif_forward_fixed(z, u0, cfg)
    g = torch.randint(-300, 300, (T, 2, 3), generator=gen)
    tables = fx.build_tables(cfg)
    lam, n_sat = fx.chi_scan_fixed(u, g, mask, tables, cfg)
    total_sat = 0
    for b in range(2):
        for i in range(3):
            up, sp = int(u0[b, i]), 0
            for t in range(T):
                up, sp, m, _ = fx.lif_step(up, sp, int(z[t, b, i]), cfg)
                assert (up, sp, m) == (int(u[t, b, i]), int(s[t, b, i]), int(mask[t, b, i]))
            ref, sat = fx.chi_sequence(u[:, b, i].tolist(), g[:, b, i].tolist(), mask[:, b, i].int().tolist(),
                                       tables, cfg)
            assert ref == lam[:, b, i].tolist()
            total_sat += sat
    assert total_sat == n_sat


def test_if_forward_is_exact_on_the_grid():
    """IF with weights on the grid: the float forward and the fixed forward are the same numbers."""
    cfg = ExodusConfig(layer_sizes=(12, 10, 4))
    torch.manual_seed(1)
    net = SpikingMLP(cfg.layer_sizes, LIF.from_config(cfg), readout=False, dtype=torch.float64, init_gain=3.0)
    wq = [fx.quantize(lin.weight.detach(), cfg.u_frac, cfg.weight_bits) for lin in net.linears]
    with torch.no_grad():
        for lin, q in zip(net.linears, wq):
            lin.weight.copy_(fx.dequantize(q, cfg.u_frac))
        x = (torch.rand(50, 3, 12, dtype=torch.float64) < 0.3).double()
        out = net(x)
    _, out_q, n_sat = fx.mlp_forward_fixed(wq, x.long(), cfg, readout=False)
    assert n_sat == 0 and float(out.mean()) > 0.01
    assert torch.equal(out_q, out.long())


def test_fixed_point_gradients_match_float_exodus():
    """A small fidelity network: cosine >= 0.999 per layer against float EXODUS."""
    cfg = ExodusConfig(layer_sizes=(40, 32, 32, 10))
    torch.manual_seed(2)
    T, B = 80, 8
    net = SpikingMLP(cfg.layer_sizes, LIF.from_config(cfg), dtype=torch.float64, init_gain=1.5)
    wq = [fx.quantize(lin.weight.detach(), cfg.u_frac, cfg.weight_bits) for lin in net.linears]
    with torch.no_grad():
        for lin, q in zip(net.linears, wq):
            lin.weight.copy_(fx.dequantize(q, cfg.u_frac))
    x = (torch.rand(T, B, 40, dtype=torch.float64) < 0.15).double()
    y = torch.randint(0, 10, (B,))
    out = net(x)
    F.cross_entropy(out.amax(0), y, reduction="sum").backward()
    out_r = out.detach().requires_grad_()
    (dy,) = torch.autograd.grad(F.cross_entropy(out_r.amax(0), y, reduction="sum"), out_r)
    records, out_q, _ = fx.mlp_forward_fixed(wq, x.long(), cfg)
    assert torch.equal(fx.dequantize(out_q, cfg.u_frac), out.detach())
    accs, _, n_sat = fx.mlp_backward_fixed(wq, records, fx.quantize(dy, cfg.grad_frac, cfg.grad_bits), cfg)
    assert n_sat == 0
    for acc, lin in zip(accs, net.linears):
        g = fx.dequantize(acc, cfg.grad_frac)
        cos = float(g.flatten() @ lin.weight.grad.flatten() / (g.norm() * lin.weight.grad.norm()))
        assert cos >= 0.999
