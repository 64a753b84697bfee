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

from .protocol import (EX_COUNTERS, EX_FLAGS, exodus_backprop, exodus_target, from_bits, pack_int, pack_word,
                       to_bits, unpack_word, word_to_spikes)

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

    def bits(self, target) -> int:
        return exodus_target(self.ex, self.layer, target).bits

    # ------------------------------------------------------------ memories as tensors
    def _signed(self, target, shape):
        b = self.bits(target)
        return torch.tensor([from_bits(v, b) for v in self.mem[target]], dtype=torch.int64).reshape(shape)

    def _weights(self):
        return self._signed(T_.W, (self.fan_out, self.fan_in))

    def _words(self, target, T, width, count):
        """Word memory -> (T, count) signed elements of ``width`` bits (1 bit: spikes)."""
        rows = self.mem[target][:T]
        if width == 1:
            return torch.tensor([word_to_spikes(w, count) for w in rows], dtype=torch.int64)
        return torch.tensor([unpack_word(w, width, count) for w in rows], dtype=torch.int64)

    def _count(self, flag, n):
        self.counters["sat_count"] += int(n)
        if n:
            self.flags[flag] = 1

    # ------------------------------------------------------------ commands
    def run(self, op: ExodusOp, steps: int, slayer: bool, grad_prev: bool) -> None:
        ex, NO, NI = self.ex, self.fan_out, self.fan_in
        if op == ExodusOp.FORWARD:
            self.steps = T = steps
            x = self._words(T_.X, T, 1, NI)
            z, n_z = synaptic_current_fixed(self._weights(), x[:, None, :], ex)
            s, u, mask, n_v = lif_forward_fixed(z, torch.zeros((), dtype=torch.int64), ex)
            self._count("fwd", n_z + n_v)
            for n in range(T):
                self.mem[T_.S][n] = pack_word(s[n, 0].tolist(), 1)
                for i in range(NO):
                    self.mem[T_.U][n * NO + i] = to_bits(int(u[n, 0, i]), ex.u_bits) | int(mask[n, 0, i]) << ex.u_bits
            self.counters["fwd_steps"] += T * NO
            self.counters["syn_events"] += int(x.sum()) * NO
        elif op == ExodusOp.BACKWARD:
            T = self.steps
            cfg = ex.replace(backward="slayer" if slayer else "exodus")
            rec = torch.tensor(self.mem[T_.U][:T * NO], dtype=torch.int64).reshape(T, NO)
            u = torch.tensor([[from_bits(int(v), ex.u_bits) for v in row] for row in rec.tolist()], dtype=torch.int64)
            mask = (rec >> ex.u_bits) & 1 == 1
            g = self._words(T_.G, T, ex.grad_bits, NO)
            lam, n_chi = chi_scan_fixed(u, g, mask, build_tables(cfg), cfg)
            self.counters["chi_sat_count"] += n_chi
            if n_chi:
                self.flags["chi"] = 1
            self.counters["bwd_steps"] += T * NO
            self.mem[T_.LAM][:T * NO] = [to_bits(v, ex.grad_bits) for v in lam.flatten().tolist()]
            if grad_prev and exodus_backprop(self.layer):
                gp, n_gp = backprop_fixed(self._weights(), lam, ex)
                self._count("grad", n_gp)
                self.mem[T_.GP][:T] = [pack_word(row, ex.grad_bits) for row in gp.tolist()]
            self._accumulate(self._words(T_.X, T, 1, NI), lam)
        elif op == ExodusOp.UPDATE:
            acc = self._signed(T_.ACC, (NO, NI))
            w, n_w = weight_update_fixed(self._weights(), acc, ex)
            self._count("weight", n_w)
            self.mem[T_.W] = [to_bits(v, ex.weight_bits) for v in w.flatten().tolist()]
            self.mem[T_.ACC] = [0] * (NO * NI)
        else:
            self.flags = {k: 0 for k in EX_FLAGS}
            self.counters = {k: 0 for k in EX_COUNTERS}

    def _accumulate(self, x, lam):
        """``ACC[i][j] += lambda_i[n]`` for every input spike ``x_j[n]``, saturating each addition (the
        engine's order: time, input, neuron); vectorised when no partial sum can saturate."""
        ex, NO, NI = self.ex, self.fan_out, self.fan_in
        acc = self._signed(T_.ACC, (NO, NI))
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
        self.mem[T_.ACC] = [to_bits(v, ex.acc_bits) for v in acc.flatten().tolist()]

    def status_payload(self) -> bytes:
        flags = sum(self.flags[k] << b for b, k in enumerate(EX_FLAGS))
        return bytes([flags]) + b"".join(pack_int(self.counters[k] & 0xFFFFFFFF, 4) for k in EX_COUNTERS)


class ExodusNetworkModel:
    """Every layer of an EXODUS network (``layers[k]`` is a :class:`ExodusLayerModel`)."""

    def __init__(self, ex: ExodusConfig):
        self.ex = ex
        self.layers = [ExodusLayerModel(ex, k) for k in range(ex.num_layers)]
