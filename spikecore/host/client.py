"""SpikecoreClient: one synchronous API over any transport, and the operations behind
``spikecore load / eval / train --on-device``.

Every file is validated before anything is sent: a weight file with
:func:`golden.spikegrad.weights.load` (:class:`WeightFileError`), a
configuration file with :meth:`SpikeGradConfig.load` (:class:`ConfigError`),
and both against the device's configuration (read with IDENTIFY, which
changes nothing) -- a refused file sends no write at all.
"""

from __future__ import annotations

import torch

from golden.data import encode_counts
from spikecore.config import ConfigError, SpikeGradConfig
from spikecore.config.exodus import ExodusOp, ExodusTarget

from . import protocol as P
from .protocol import Cmd, Kind, ProtocolError, Reg, Status, WireFormat

#: Configuration fields that are run-time registers (may differ between a file and the device).
RUNTIME_FIELDS = ("error_shift",)


class DeviceError(ProtocolError):
    """The device answered a request with an error status."""


def fixed_config(cfg: SpikeGradConfig) -> dict:
    """The configuration without the run-time registers (what must match the device)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}


def check_matches_device(cfg: SpikeGradConfig, device: SpikeGradConfig, source: str = "file") -> None:
    a, b = fixed_config(cfg), fixed_config(device)
    diff = [f"{k}: {source} {a[k]!r}, device {b[k]!r}" for k in a if a[k] != b[k]]
    if diff:
        raise ConfigError(f"{source} does not match the device's configuration: " + "; ".join(diff))


class SpikecoreClient:
    """The device, one method per protocol operation.

    Parameters
    ----------
    transport : anything with ``transact(frame) -> Response`` (see :mod:`spikecore.host.transports`).

    Members
    -------
    config : the device's configuration (from IDENTIFY, read on construction).
    wire : the :class:`WireFormat` (field sizes, the device's buffer size).
    version : the device's protocol version.
    exodus : the device's :class:`ExodusConfig`, or None when it has no EXODUS network.
    """

    def __init__(self, transport):
        self.transport = transport
        ident = self.identify()
        self.version, self.config, self.exodus = ident.version, ident.config, ident.exodus
        self.wire = WireFormat.of(self.config, ident.max_payload)

    # ------------------------------------------------------------ plumbing
    def request(self, cmd: Cmd, payload: bytes = b"") -> bytes:
        """Send one request; return the payload of its OK response, raise :class:`DeviceError` otherwise."""
        resp = self.transport.transact(P.encode_request(cmd, payload))
        if resp.cmd != cmd:
            raise ProtocolError(f"response to command 0x{resp.cmd:02x}, expected {cmd.name}")
        if not resp.ok:
            raise DeviceError(f"{cmd.name}: device answered {resp.status_name()}", Status(resp.status))
        return resp.payload

    def identify(self):
        """IDENTIFY: the device's protocol version, configurations and payload limit (``P.decode_identify``);
        :class:`ProtocolError` when it speaks another protocol version."""
        ident = P.decode_identify(self.request(Cmd.IDENTIFY))
        if ident.version != P.PROTOCOL_VERSION:
            raise ProtocolError(f"device speaks protocol version {ident.version}, this host {P.PROTOCOL_VERSION}")
        return ident

    # ------------------------------------------------------------ weights
    def _segments(self):
        """(layer, kind, row, length) of every weight row and bias vector."""
        cfg = self.config
        for l in range(cfg.num_layers):
            fan_out, fan_in = cfg.weight_shape(l)
            for i in range(fan_out):
                yield l, Kind.WEIGHTS, i, fan_in
            if cfg.bias:
                yield l, Kind.BIAS, 0, fan_out

    def write_weights(self, params, progress=None) -> None:
        """Write every weight and bias (frames of at most ``wire.max_write`` values)."""
        check_matches_device(params.config, self.config, "weights")
        params.validate()
        for l, kind, row, n in self._segments():
            vec = (params.weights[l][row] if kind == Kind.WEIGHTS else params.biases[l]).tolist()
            for start in range(0, n, self.wire.max_write):
                chunk = vec[start:start + self.wire.max_write]
                self.request(Cmd.WRITE_WEIGHTS, P.write_weights_payload(l, kind, row, start, chunk,
                                                                         self.wire.weight_bytes))
            if progress is not None:
                progress(1)

    def read_vector(self, layer: int, kind: Kind, row: int, start: int, count: int) -> list[int]:
        data = self.request(Cmd.READ_WEIGHTS, P.read_weights_payload(layer, kind, row, start, count))
        return P.unpack_values(data, self.wire.weight_bytes)

    def read_weights(self, progress=None):
        """All weights and biases, as :class:`golden.spikegrad.params.SpikeGradParams`."""
        from golden.spikegrad.params import SpikeGradParams
        cfg = self.config
        ws = [[None] * cfg.layer_sizes[l + 1] for l in range(cfg.num_layers)]
        bs = [[0] * cfg.layer_sizes[l + 1] for l in range(cfg.num_layers)]
        for l, kind, row, n in self._segments():
            vec = []
            for start in range(0, n, self.wire.max_read):
                vec += self.read_vector(l, kind, row, start, min(self.wire.max_read, n - start))
            if kind == Kind.WEIGHTS:
                ws[l][row] = vec
            else:
                bs[l] = vec
            if progress is not None:
                progress(1)
        return SpikeGradParams(cfg.replace(error_shift=self.read_register(Reg.ERROR_SHIFT)),
                               [torch.tensor(w, dtype=torch.int64) for w in ws],
                               [torch.tensor(b, dtype=torch.int64) for b in bs])

    def num_segments(self) -> int:
        return sum(1 for _ in self._segments())

    # ------------------------------------------------------------ registers
    def write_register(self, reg: Reg, value: int) -> None:
        self.request(Cmd.WRITE_REG, P.write_reg_payload(Reg(reg), value))

    def read_register(self, reg: Reg) -> int:
        return P.unpack_int(self.request(Cmd.READ_REG, bytes([Reg(reg)])), signed=False)

    # ------------------------------------------------------------ samples
    def load_sample(self, counts) -> None:
        c = [int(v) for v in (counts.tolist() if hasattr(counts, "tolist") else counts)]
        n = self.config.layer_sizes[0]
        if len(c) != n:
            raise ValueError(f"a sample has {n} input counts, got {len(c)}")
        bad = [v for v in c if abs(v) > self.config.input_max]
        if bad:
            raise ValueError(f"input counts must be within +-{self.config.input_max}, got {bad[:5]}")
        for start in range(0, n, self.wire.max_counts):
            self.request(Cmd.LOAD_SAMPLE, P.load_sample_payload(start, c[start:start + self.wire.max_counts],
                                                                self.wire.count_bytes))

    def _counts_of(self, sample) -> list[int]:
        """Counts, or an event list in the canonical order of :func:`golden.data.encode_counts`."""
        s = list(sample.tolist() if hasattr(sample, "tolist") else sample)
        if s and isinstance(s[0], (tuple, list)):
            counts = [0] * self.config.layer_sizes[0]
            for j, sign in s:
                counts[j] += 1 if sign > 0 else -1
            if encode_counts(counts) != [tuple(e) for e in s]:
                raise ValueError("the device expands input counts in the canonical round-robin order; "
                                 "this event list is in another order and cannot be sent")
            return counts
        return s

    def infer(self, sample) -> dict:
        """INFER one sample (counts, or canonical events): ``{"prediction", "v_top"}``."""
        self.load_sample(self._counts_of(sample))
        return P.decode_result(self.request(Cmd.INFER), self.config, self.wire)

    def train(self, sample, label: int) -> dict:
        """One on-chip training step; returns the forward result before the update."""
        if not 0 <= int(label) < self.config.num_classes:
            raise ValueError(f"label {label} is out of range [0, {self.config.num_classes})")
        self.load_sample(self._counts_of(sample))
        return P.decode_result(self.request(Cmd.TRAIN, bytes([int(label)])), self.config, self.wire)

    # ------------------------------------------------------------ status
    def read_status(self) -> dict:
        return P.decode_status(self.request(Cmd.READ_STATUS))

    def read_counters(self) -> dict:
        return self.read_status()["counters"]

    def read_flags(self) -> dict:
        st = self.read_status()
        return {**st["flags"], **st["bridge_flags"]}

    def clear_flags(self) -> None:
        self.request(Cmd.CLEAR_FLAGS)

    def reset(self) -> None:
        self.request(Cmd.RESET)

    # ------------------------------------------------------------ EXODUS network
    def _ex_format(self, layer: int, target: ExodusTarget) -> P.ExodusTargetFormat:
        if self.exodus is None:
            raise ProtocolError("the device has no EXODUS network")
        f = P.exodus_target(self.exodus, layer, target)
        if f is None:
            raise ValueError(f"EXODUS layer {layer} has no memory {target!r}")
        return f

    def ex_write_raw(self, layer: int, target: ExodusTarget, addr: int, raw) -> None:
        """Write raw element bit patterns from ``addr`` (as many frames as needed)."""
        f = self._ex_format(layer, target)
        raw = [int(v) for v in raw]
        step = P.exodus_max_elements(f, self.wire.max_payload, write=True)
        for k in range(0, len(raw), step):
            self.request(Cmd.EX_WRITE, P.ex_write_payload(layer, target, addr + k, raw[k:k + step], f.nbytes))

    def ex_read_raw(self, layer: int, target: ExodusTarget, addr: int, count: int) -> list[int]:
        """``count`` raw element bit patterns from ``addr``."""
        f = self._ex_format(layer, target)
        step = P.exodus_max_elements(f, self.wire.max_payload, write=False)
        out = []
        for k in range(0, count, step):
            n = min(step, count - k)
            out += P.decode_ex_elements(self.request(Cmd.EX_READ, P.ex_access_payload(layer, target, addr + k, n)),
                                        f.nbytes)
        return out

    def ex_write(self, layer: int, target: ExodusTarget, values) -> None:
        """Write a whole tensor from address 0: ``W`` as ``(fan_out, fan_in)`` signed ints; ``X`` as ``(T, fan_in)``
        spikes; ``G`` as ``(T, fan_out)`` gradients (grad format)."""
        t = ExodusTarget(target)
        f = self._ex_format(layer, t)
        if not f.writable:
            raise ValueError(f"{t.name} is read-only")
        rows = values.tolist() if hasattr(values, "tolist") else [list(r) for r in values]
        self.ex_write_raw(layer, t, 0, f.encode(rows))

    def ex_read(self, layer: int, target: ExodusTarget, steps: int | None = None) -> torch.Tensor:
        """A memory as a tensor of signed values: ``W``/``ACC`` ``(fan_out, fan_in)``; ``X``/``S`` spikes and
        ``G``/``GP``/``LAM`` gradients ``(steps, width)``; ``U`` ``(steps, fan_out, 2)`` (u, mask)."""
        f = self._ex_format(layer, target)
        count = f.elements(self.exodus.max_steps if steps is None else steps)
        return torch.tensor(f.decode(self.ex_read_raw(layer, target, 0, count)), dtype=torch.int64)

    def ex_run(self, layer: int, op: ExodusOp, steps: int = 0, *, slayer: bool = False, grad_prev: bool = False,
               wait: bool = True) -> None:
        """One engine command; with ``wait`` the device answers when it has finished."""
        flags = ((P.RunFlag.SLAYER if slayer else 0) | (P.RunFlag.GRAD_PREV if grad_prev else 0) |
                 (0 if wait else P.RunFlag.NOWAIT))
        self.request(Cmd.EX_RUN, P.ex_run_payload(layer, ExodusOp(op), steps, flags))

    def ex_status(self, layer: int) -> dict:
        return P.decode_ex_status(self.request(Cmd.EX_STATUS, bytes([layer])))

    def ex_copy(self, src_layer: int, src: ExodusTarget, dst_layer: int, dst: ExodusTarget, steps: int) -> list[int]:
        """Copy ``steps`` words between engines (``S`` of layer k to ``X`` of layer k+1, ``GP`` to ``G``)."""
        raw = self.ex_read_raw(src_layer, src, 0, steps)
        self.ex_write_raw(dst_layer, dst, 0, raw)
        return raw


# ====================================================================== CLI operations
def _bar(total, desc, progress):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="frame" if "weights" in desc else "sample",
                disable=not progress, leave=False)


def apply_config(config_path, transport, *, client: SpikecoreClient | None = None) -> SpikeGradConfig:
    """Validate a configuration file, check it against the device, set its run-time registers."""
    cfg = SpikeGradConfig.load(config_path)          # ConfigError before anything is sent
    client = client or SpikecoreClient(transport)
    check_matches_device(cfg, client.config, str(config_path))
    client.write_register(Reg.ERROR_SHIFT, cfg.error_shift)
    return cfg


def load(weights_path, transport, *, verify: bool = True, progress: bool = True):
    """Load a weight file onto the device (and read it back when ``verify``); returns the parameters.

    Raises :class:`WeightFileError` (bad file) or :class:`ConfigError` (another configuration than the
    device's) before any write; :class:`ProtocolError` if the read-back differs.
    """
    from golden.spikegrad.weights import load as load_weights
    params = load_weights(weights_path)
    client = SpikecoreClient(transport)
    check_matches_device(params.config, client.config, str(weights_path))
    n = client.num_segments()
    with _bar(n * (2 if verify else 1), "weights", progress) as bar:
        client.write_weights(params, progress=bar.update)
        client.write_register(Reg.ERROR_SHIFT, params.config.error_shift)
        if verify:
            back = client.read_weights(progress=bar.update)
            if not back.equal(params):
                raise ProtocolError("weights read back differ from the file")
    return params


def _split(split, seed=None):
    from golden.data import DEFAULT_SPLIT_SEED, load_digits_split
    d = load_digits_split(DEFAULT_SPLIT_SEED if seed is None else seed)
    if split == "test":
        return d.test_x, d.test_y
    if split == "train":
        return d.train_x, d.train_y
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def evaluate(transport, split: str = "test", *, limit: int | None = None, progress: bool = True,
             compare_golden: bool = True) -> dict:
    """Accuracy of the weights on the device over a digits split (first ``limit`` samples).

    With ``compare_golden`` the weights are read back through the protocol and every prediction and
    ``V^L`` is compared with the golden integer model.
    """
    from golden.spikegrad import int_ann
    client = SpikecoreClient(transport)
    x, y = _split(split)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    preds, v_tops = [], []
    with _bar(len(y), f"eval {split}", progress) as bar:
        for n in range(len(y)):
            r = client.infer(x[n])
            preds.append(r["prediction"])
            v_tops.append(r["v_top"])
            bar.update(1)
    correct = sum(int(p == int(t)) for p, t in zip(preds, y))
    out = {"split": split, "samples": len(y), "correct": correct, "accuracy": correct / max(1, len(y)),
           "predictions": preds}
    if compare_golden:
        fwd = int_ann.forward(client.read_weights(), x)
        gold = fwd.v_top.argmax(dim=1).tolist()
        out["golden_accuracy"] = sum(int(p == int(t)) for p, t in zip(gold, y)) / max(1, len(y))
        out["identical_to_golden"] = v_tops == fwd.v_top.tolist() and preds == gold
    return out


def train_on_device(transport, samples: int, epochs: int = 1, *, shift_schedule=None, progress: bool = True,
                    compare_golden: bool = True) -> dict:
    """On-chip training on the first ``samples`` digits training samples, in order, for ``epochs`` epochs.

    ``shift_schedule`` (default: none) adds ``shift_schedule[epoch]`` to the device's ``error_shift`` at
    the start of each epoch. With ``compare_golden`` the same steps run on the golden event-driven
    simulator from the weights read back before training, and the weights read back after training are
    compared with it.
    """
    from golden.spikegrad.event_sim import EventDrivenSimulator
    from golden.spikegrad.params import SpikeGradParams
    client = SpikecoreClient(transport)
    x, y = _split("train")
    x, y = x[:samples], y[:samples]
    base_shift = client.read_register(Reg.ERROR_SHIFT)
    sim = EventDrivenSimulator(client.read_weights()) if compare_golden else None
    hits = 0
    with _bar(samples * epochs, "train", progress) as bar:
        for ep in range(epochs):
            rel = shift_schedule[min(ep, len(shift_schedule) - 1)] if shift_schedule else 0
            shift = max(0, base_shift + rel)
            client.write_register(Reg.ERROR_SHIFT, shift)
            if sim is not None:
                sim.config = client.config.replace(error_shift=shift)
                sim.params = SpikeGradParams(sim.config, sim.params.weights, sim.params.biases)
            for n in range(len(y)):
                r = client.train(x[n], int(y[n]))
                hits += int(r["prediction"] == int(y[n]))
                if sim is not None:
                    sim.train_step(encode_counts(x[n]), int(y[n]))
                bar.update(1)
    client.write_register(Reg.ERROR_SHIFT, base_shift)
    params = client.read_weights()
    out = {"samples": samples, "epochs": epochs, "steps": samples * epochs,
           "online_accuracy": hits / max(1, samples * epochs), "params": params}
    if sim is not None:
        out["identical_to_golden"] = params.equal(sim.params)
    return out


def exodus_train_step(client: SpikecoreClient, x, loss_grad, *, slayer: bool = False, update: bool = True) -> dict:
    """One EXODUS training step of the device's network through the protocol.

    ``x``: input spikes ``(T, layer_sizes[0])``; ``loss_grad(out_spikes) -> (loss, g)``: the host's loss of
    the output spike train ``(T, layer_sizes[-1])`` and ``g = dL/ds`` in the grad format ``(T, layer_sizes[-1])``.
    Forward layer by layer (``S`` of layer k copied to ``X`` of layer k+1), ``g`` written into the output
    layer, backward from the top (``GP`` of layer k copied to ``G`` of layer k-1), then, with ``update``, UPDATE
    on every layer (without it the gradients stay in ``ACC``: a batch). Returns ``loss`` and the ``spikes``
    of every layer.
    """
    ex = client.exodus
    if ex is None:
        raise ProtocolError("the device has no EXODUS network")
    steps = len(x)
    if not 1 <= steps <= ex.max_steps:
        raise ValueError(f"a sequence of {steps} steps; the device stores 1 ... {ex.max_steps}")
    L = ex.num_layers
    client.ex_write(0, ExodusTarget.X, x)
    for k in range(L):
        client.ex_run(k, ExodusOp.FORWARD, steps)
        if k + 1 < L:
            client.ex_copy(k, ExodusTarget.S, k + 1, ExodusTarget.X, steps)
    spikes = [client.ex_read(k, ExodusTarget.S, steps) for k in range(L)]
    loss, g = loss_grad(spikes[-1])
    client.ex_write(L - 1, ExodusTarget.G, g)
    for k in reversed(range(L)):
        client.ex_run(k, ExodusOp.BACKWARD, slayer=slayer, grad_prev=k > 0)
        if k > 0:
            client.ex_copy(k, ExodusTarget.GP, k - 1, ExodusTarget.G, steps)
    if update:
        for k in range(L):
            client.ex_run(k, ExodusOp.UPDATE)
    return {"loss": loss, "spikes": spikes}


__all__ = ["SpikecoreClient", "DeviceError", "apply_config", "load", "evaluate", "train_on_device",
           "check_matches_device", "exodus_train_step"]
