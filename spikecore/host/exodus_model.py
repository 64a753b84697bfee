"""Reference model of the EXODUS network behind the host protocol (what ``rtl.exodus.network`` does).

The state is the engines' memories, element by element, as raw bit patterns
(the values EX_READ returns); the commands run the fixed-point golden model
(:mod:`golden.exodus.fixedpoint`) on those memories, so a host may change
``X`` or ``G`` between commands exactly as on the device. Commands run at
once: the model is never busy, and its ``cycles`` counter reads 0.
"""

from __future__ import annotations

import torch

from golden.exodus.fixedpoint import (backprop_fixed, build_tables, chi_scan_fixed, lif_forward_fixed,
                                      saturate, synaptic_current_fixed, weight_update_fixed)
from spikecore.config import ExodusConfig
from spikecore.config.exodus import ExodusOp, ExodusTarget

from .protocol import EX_COUNTERS, EX_FLAGS, exodus_backprop, exodus_target, pack_int

T_ = ExodusTarget


class ExodusLayerModel:
    """The memories, flags and counters of one temporal layer engine."""

    def __init__(self, ex: ExodusConfig, layer: int):
        self.ex, self.layer = ex, layer
        self.fan_out, self.fan_in = ex.weight_shape(layer)
        self.mem = {t: [0] * f.depth for t in T_ if (f := exodus_target(ex, layer, t)) is not None}
        self.steps = 0          # T of the last FORWARD (0: none yet)
        self.flags = {k: 0 for k in EX_FLAGS}
        self.counters = {k: 0 for k in EX_COUNTERS}

    def fmt(self, target):
        return exodus_target(self.ex, self.layer, target)

    # ------------------------------------------------------------ memories as tensors
    def _tensor(self, target, steps: int | None = None) -> torch.Tensor:
        """A memory (the first ``steps`` time steps of a timed one) as the host library reads it."""
        f = self.fmt(target)
        return torch.tensor(f.decode(self.mem[target][:f.elements(steps)]), dtype=torch.int64)

    def _store(self, target, rows) -> None:
        """Rows of values from address 0, encoded as the memory holds them."""
        raw = self.fmt(target).encode(rows.tolist() if hasattr(rows, "tolist") else rows)
        self.mem[target][:len(raw)] = raw

    def _count(self, flag, n):
        self.counters["sat_count"] += int(n)
        if n:
            self.flags[flag] = 1

    # ------------------------------------------------------------ commands
    def run(self, op: ExodusOp, steps: int, slayer: bool, grad_prev: bool) -> None:
        ex, NO, NI = self.ex, self.fan_out, self.fan_in
        if op == ExodusOp.FORWARD:
            self.steps = T = steps
            x = self._tensor(T_.X, T)
            z, n_z = synaptic_current_fixed(self._tensor(T_.W), x[:, None, :], ex)
            s, u, mask, n_v = lif_forward_fixed(z, torch.zeros((), dtype=torch.int64), ex)
            self._count("fwd", n_z + n_v)
            self._store(T_.S, s[:, 0])
            self._store(T_.U, torch.stack([u[:, 0], mask[:, 0].to(torch.int64)], dim=-1))
            self.counters["fwd_steps"] += T * NO
            self.counters["syn_events"] += int(x.sum()) * NO
        elif op == ExodusOp.BACKWARD:
            T = self.steps
            cfg = ex.replace(backward="slayer" if slayer else "exodus")
            rec = self._tensor(T_.U, T)
            u, mask = rec[..., 0], rec[..., 1] == 1
            g = self._tensor(T_.G, T)
            lam, n_chi = chi_scan_fixed(u, g, mask, build_tables(cfg), cfg)
            self.counters["chi_sat_count"] += n_chi
            if n_chi:
                self.flags["chi"] = 1
            self.counters["bwd_steps"] += T * NO
            self._store(T_.LAM, lam)
            if grad_prev and exodus_backprop(self.layer):
                gp, n_gp = backprop_fixed(self._tensor(T_.W), lam, ex)
                self._count("grad", n_gp)
                self._store(T_.GP, gp)
            self._accumulate(self._tensor(T_.X, T), lam)
        elif op == ExodusOp.UPDATE:
            w, n_w = weight_update_fixed(self._tensor(T_.W), self._tensor(T_.ACC), ex)
            self._count("weight", n_w)
            self._store(T_.W, w)
            self.mem[T_.ACC] = [0] * (NO * NI)
        else:
            self.flags = {k: 0 for k in EX_FLAGS}
            self.counters = {k: 0 for k in EX_COUNTERS}

    def _accumulate(self, x, lam):
        """``ACC[i][j] += lambda_i[n]`` for every input spike ``x_j[n]``, saturating each addition (the
        engine's order: time, input, neuron); vectorised when no partial sum can saturate."""
        ex, NO, NI = self.ex, self.fan_out, self.fan_in
        acc = self._tensor(T_.ACC)
        bound = int(acc.abs().max()) + int(lam.abs().sum(dim=0).max()) if lam.numel() else 0
        adds = int(x.sum()) * NO
        if bound < 1 << (ex.acc_bits - 1):
            acc = acc + lam.t() @ x
        else:
            a = acc.tolist()
            n_sat = 0
            for n in range(x.shape[0]):
                for j in range(NI):
                    if x[n, j]:
                        for i in range(NO):
                            a[i][j], hit = saturate(a[i][j] + int(lam[n, i]), ex.acc_bits)
                            n_sat += hit
            acc = torch.tensor(a, dtype=torch.int64)
            self._count("acc", n_sat)
        self.counters["syn_events"] += adds
        self._store(T_.ACC, acc)

    def status_payload(self) -> bytes:
        flags = sum(self.flags[k] << b for b, k in enumerate(EX_FLAGS))
        return bytes([flags]) + b"".join(pack_int(self.counters[k] & 0xFFFFFFFF, 4) for k in EX_COUNTERS)


class ExodusNetworkModel:
    """Every layer of an EXODUS network (``layers[k]`` is a :class:`ExodusLayerModel`)."""

    def __init__(self, ex: ExodusConfig):
        self.ex = ex
        self.layers = [ExodusLayerModel(ex, k) for k in range(ex.num_layers)]
