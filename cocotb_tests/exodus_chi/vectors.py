"""Golden vectors for :class:`rtl.exodus.ChiRecurrence`, shared by the Amaranth tests and the cocotb bench.

A *segment* is one configuration (tables, SLAYER bit) and one sequence of ``T``
steps for ``groups * lanes`` neurons, streamed in reverse time order, time
major (all groups of step ``T-1``, then of ``T-2``, ...). Expected outputs come
from the scalar golden model :func:`golden.exodus.fixedpoint.chi_step`.
"""

from __future__ import annotations

import random

from golden.exodus.fixedpoint import ChiTables, build_tables, chi_step
from spikecore.config import ExodusConfig


def random_tables(cfg: ExodusConfig, rng: random.Random) -> ChiTables:
    """Arbitrary table contents over the full ranges (reaches every saturation corner)."""
    fmax = (1 << cfg.fprime_bits) - 1
    clo, chi = ExodusConfig.signed_range(cfg.coef_bits)
    pick = lambda lo, hi: rng.choice((lo, hi, rng.randint(lo, hi), rng.randint(lo, hi)))  # noqa: E731
    return ChiTables(tuple(pick(0, fmax) for _ in range(cfg.lut_size)),
                     tuple(pick(clo, chi) for _ in range(cfg.lut_size)), pick(clo, chi))


def _u(cfg: ExodusConfig, rng: random.Random) -> int:
    lo, hi = ExodusConfig.signed_range(cfg.u_bits)
    span = (cfg.lut_size // 2) << cfg.lut_shift
    r = rng.random()
    if r < 0.05:
        return rng.choice((lo, hi))
    if r < 0.15:
        return rng.randint(lo, hi)
    return max(lo, min(hi, cfg.theta_q + rng.randint(-span - 64, span + 64)))


def _g(cfg: ExodusConfig, rng: random.Random, big: bool) -> int:
    lo, hi = ExodusConfig.signed_range(cfg.grad_bits)
    r = rng.random()
    if r < 0.2:
        return 0
    if big and r < 0.35:
        return rng.choice((lo, hi))
    if big and r < 0.6:
        return rng.randint(lo, hi)
    return rng.randint(-(1 << cfg.grad_frac), 1 << cfg.grad_frac) >> rng.randint(0, 6)


def segment(cfg: ExodusConfig, *, steps: int, groups: int, lanes: int, seed: int, slayer: bool = False,
            tables: ChiTables | None = None, big_g: bool = False, p_mask: float = 0.0) -> dict:
    """One configuration and sequence: ``tables`` (lists), ``slayer``, ``beats`` and ``expected`` outputs."""
    rng = random.Random(seed)
    tables = tables or build_tables(cfg)
    gcfg = cfg.replace(backward="slayer" if slayer else "exodus")
    n = groups * lanes
    us = [[_u(cfg, rng) for _ in range(n)] for _ in range(steps)]
    gs = [[_g(cfg, rng, big_g) for _ in range(n)] for _ in range(steps)]
    ms = [[int(rng.random() >= p_mask) for _ in range(n)] for _ in range(steps)]
    lam_next = [0] * n
    beats, expected, n_sat = [], [], 0
    for t in range(steps - 1, -1, -1):
        for grp in range(groups):
            lanes_in, lam_out = [], []
            for l in range(lanes):
                k = grp * lanes + l
                lam_next[k], sat = chi_step(lam_next[k], us[t][k], gs[t][k], ms[t][k], tables, gcfg)
                n_sat += sat
                lanes_in.append({"u": us[t][k], "g": gs[t][k], "m": ms[t][k]})
                lam_out.append(lam_next[k])
            beats.append({"index": grp, "first": int(t == steps - 1), "lanes": lanes_in})
            expected.append({"index": grp, "lam": lam_out})
    return {"tables": {"fprime": list(tables.fprime), "coef": list(tables.coef), "slayer_coef": tables.slayer_coef},
            "slayer": int(slayer), "beats": beats, "expected": expected, "saturations": n_sat,
            "steps": steps, "groups": groups}


def standard_segments(cfg: ExodusConfig, *, lanes: int, groups: int, seed: int = 0, long_steps: int = 300,
                      short: bool = False) -> list[dict]:
    """The acceptance mix: IF and LIF, both orderings, SLAYER, T = 1 and T = ``long_steps``, saturation corners.

    ``cfg``'s widths are kept; ``alpha``/``reset_order`` vary (they only change the table contents).
    ``short`` trims the step counts for the Amaranth simulator.
    """
    lif = ExodusConfig.alpha_from_tau(20.0)
    T = 12 if short else long_steps
    t_mid = 6 if short else 40
    segs = []
    plan = [  # (alpha, order, slayer, steps, big_g, p_mask, random tables)
        (1.0, "after_decay", False, T, False, 0.0, False),
        (lif, "after_decay", False, T, False, 0.1, False),
        (lif, "before_decay", False, t_mid, False, 0.0, False),
        (1.0, "before_decay", True, t_mid, False, 0.0, False),
        (lif, "after_decay", True, t_mid, True, 0.0, False),
        (lif, "after_decay", False, 1, True, 0.2, False),
        (1.0, "after_decay", False, 1, False, 0.0, False),
        (lif, "after_decay", False, t_mid, True, 0.1, True),
        (1.0, "before_decay", True, t_mid, True, 0.1, True),
    ]
    for k, (alpha, order, slayer, steps, big, p_mask, rnd) in enumerate(plan):
        c = cfg.replace(alpha=alpha, reset_order=order)
        tables = random_tables(c, random.Random(seed * 1000 + k)) if rnd else None
        segs.append(segment(c, steps=steps, groups=groups, lanes=lanes, seed=seed * 1000 + k, slayer=slayer,
                            tables=tables, big_g=big, p_mask=p_mask))
    return segs


def packed_bench_args(cfg: ExodusConfig, segments: list[dict], *, lanes: int, groups: int) -> dict:
    """Arguments of ``bench_chi``: every payload packed with the RTL's layouts (the bench compares ints)."""
    from rtl.exodus.chi import LATENCY, input_layout, output_layout, table_write_layout
    from sim.stream import pack

    il = input_layout(cfg, neurons=groups * lanes, lanes=lanes)
    ol = output_layout(cfg, neurons=groups * lanes, lanes=lanes)
    tl = table_write_layout(cfg)
    out = []
    for seg in segments:
        t = seg["tables"]
        table_beats = [pack(tl, {"addr": a, "fprime": f, "coef": c, "slayer": 0})
                       for a, (f, c) in enumerate(zip(t["fprime"], t["coef"]))]
        table_beats.append(pack(tl, {"addr": 0, "fprime": 0, "coef": t["slayer_coef"], "slayer": 1}))
        out.append({"table_beats": table_beats, "slayer": seg["slayer"],
                    "beats": [pack(il, b) for b in seg["beats"]],
                    "expected": [pack(ol, e) for e in seg["expected"]],
                    "saturations": seg["saturations"], "neuron_steps": len(seg["beats"]) * lanes})
    return {"segments": out, "lanes": lanes, "latency": LATENCY}
