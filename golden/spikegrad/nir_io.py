"""NIR (Neuromorphic Intermediate Representation) export and import.

Export (:func:`export_nir`, :func:`save_nir`) writes a SpikeGrad network as the
chain ``Input -> fc0 -> if0 -> fc1 -> if1 -> ... -> fc{L-1} -> Output``:

* ``fc{l}``: :class:`nir.Affine` (``nir.Linear`` when the configuration has no
  bias) with ``weight = w / theta_ff`` and ``bias = b / theta_ff`` in float
  units (float32 when that recovers every integer exactly, else float64);
* ``if{l}`` (hidden layers only): :class:`nir.IF` with ``r = 1``,
  ``v_threshold = 1`` and ``v_reset = 0`` -- the SpikeGrad neuron in float
  units. NIR has no subtractive reset, no ternary spikes and no residual
  phase, so the exact behaviour is recorded in metadata;
* the top layer has **no neuron node**: it never spikes, it accumulates
  ``V^L``; the ``Output`` carries the top layer's input current, whose sum over
  a sample is ``V^L / theta_ff`` (the logits). ``Affine -> Output`` is the most
  portable readout (snnTorch and Norse import it; neither imports ``nir.I``).

Metadata (``nir.write``/``nir.read`` keep node and graph metadata: nested dicts
become HDF5 groups; numbers come back as numpy scalars, lists as arrays and
strings as ``bytes`` inside arrays, which :func:`_plain` undoes):

* graph: ``{"spikecore": {"format_version": 1, "reset": "subtractive",
  "spike_values": "ternary", "residual_rounding": "half_away_from_zero",
  "integer_weights": True, "weight_scale": theta_ff, "theta_ff", "theta_bp",
  "bias_semantics": "initial_membrane", "readout": "accumulate",
  "activations": [...], "config": cfg.to_dict(), "checksum": sha256}}``;
* ``fc{l}``: ``{"spikecore": {"layer": l, "weight_scale": theta_ff,
  "integer_weight": int64 (fan_out, fan_in), "integer_bias": int64 (fan_out,)}}``;
* ``if{l}``: ``{"spikecore": {"layer": l, "activation", "reset", "spike_values",
  "theta_ff", "residual_rounding"}}``.

Import (:func:`import_nir`) reads either kind of graph:

* a graph with ``spikecore`` graph metadata is restored exactly (the integer
  weights, the configuration and the checksum; the float weights must agree
  with the integers, so an edited file is refused);
* any other graph must be a feed-forward chain ``Input -> (Affine|Linear) ->
  (IF|LIF) -> ... -> (Affine|Linear) -> [IF|LIF|I|LI] -> Output``, as snnTorch
  (``nn.Linear`` -> Affine, ``snn.Leaky`` -> LIF) and Norse (``Linear`` ->
  Affine, ``IAFCell`` -> IF, ``LIFBoxCell`` -> LIF) write it. Each synapse is
  quantised as ``round_half_away(W * gain / v_threshold * theta_ff)`` with the
  following neuron node's per-neuron ``gain`` (``r`` for IF/I,
  ``r * dt / tau`` for LIF/LI) and ``v_threshold`` (1 for I/LI or no neuron
  node). A membrane leak cannot be represented by the SpikeGrad
  integrate-and-fire neurons: an LIF with finite ``tau`` is refused, naming the
  node and its leak, unless ``allow_leak=True`` (then the leak is dropped with
  an :class:`NIRImportWarning`). Everything else (convolutions, pooling,
  Flatten, Delay, Threshold, Scale, CubaLIF, subgraphs, branches, recurrence,
  multi-dimensional inputs, mismatched shapes, values out of range after
  quantisation) raises :class:`NIRImportError` naming the node and the problem.

See ``docs/nir.md``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from spikecore.config import ConfigError, SpikeGradConfig

from .params import ParamsError, SpikeGradParams
from .weights import _checksum as _layers_checksum

try:  # nir is a project dependency; keep the import error readable anyway
    import nir
except ImportError as _e:  # pragma: no cover
    raise ImportError("NIR support needs the 'nir' package (pip install nir==1.0.8)") from _e

META_KEY = "spikecore"
FORMAT_VERSION = 1
GAIN_SNAP = 1e-5   # gains within this of 1 are exactly 1 (float32 noise of r = tau/dt)
SNNTORCH_DT = 1e-4  # the time step snnTorch's exporter assumes (Norse uses 1e-3)

_SYNAPSES = (nir.Affine, nir.Linear)
_SPIKING = (nir.IF, nir.LIF)
_READOUTS = (nir.IF, nir.LIF, nir.I, nir.LI)


class NIRImportError(ValueError):
    """A NIR file or graph cannot be imported; the message names the node and the problem."""


class NIRImportWarning(UserWarning):
    """An import changed the network's dynamics (e.g. dropped a membrane leak)."""


# ---------------------------------------------------------------------- export
def _float_units(values: torch.Tensor, theta: int) -> np.ndarray:
    """``values / theta`` as float32 if that recovers every integer, else float64."""
    v = values.to(torch.int64).numpy()
    f64 = v.astype(np.float64) / theta
    f32 = f64.astype(np.float32)
    if np.array_equal(_round_half_away(f32.astype(np.float64) * theta), v):
        return f32
    return f64


def _checksum(weights, biases) -> str:
    """The weight file's checksum of the same layers (``golden.spikegrad.weights``)."""
    return _layers_checksum([{"weights": w.tolist(), "bias": b.tolist()} for w, b in zip(weights, biases)])


def export_nir(params: SpikeGradParams) -> "nir.NIRGraph":
    """The network as a NIR graph (see the module docstring for the layout)."""
    params.validate()
    cfg = params.config
    theta = cfg.theta_ff
    nodes = {"input": nir.Input(input_type={"input": np.array([cfg.layer_sizes[0]])})}
    order = ["input"]
    for l in range(cfg.num_layers):
        w, b = params.weights[l], params.biases[l]
        meta = {META_KEY: {"layer": l, "weight_scale": theta,
                           "integer_weight": w.numpy().astype(np.int64),
                           "integer_bias": b.numpy().astype(np.int64)}}
        wf, bf = _float_units(w, theta), _float_units(b, theta)
        if cfg.bias:
            dtype = np.promote_types(wf.dtype, bf.dtype)   # float64 if either needs it
            nodes[f"fc{l}"] = nir.Affine(weight=wf.astype(dtype), bias=bf.astype(dtype), metadata=meta)
        else:
            nodes[f"fc{l}"] = nir.Linear(weight=wf, metadata=meta)
        order.append(f"fc{l}")
        if l < cfg.num_layers - 1:
            n = cfg.layer_sizes[l + 1]
            nodes[f"if{l}"] = nir.IF(
                r=np.ones(n, dtype=np.float32), v_threshold=np.ones(n, dtype=np.float32),
                v_reset=np.zeros(n, dtype=np.float32),
                metadata={META_KEY: {"layer": l, "activation": cfg.activations[l], "reset": "subtractive",
                                     "spike_values": "ternary", "theta_ff": theta,
                                     "residual_rounding": "half_away_from_zero"}})
            order.append(f"if{l}")
    nodes["output"] = nir.Output(output_type={"output": np.array([cfg.num_classes])})
    order.append("output")
    meta = {META_KEY: {
        "format_version": FORMAT_VERSION, "reset": "subtractive", "spike_values": "ternary",
        "residual_rounding": "half_away_from_zero", "integer_weights": True, "weight_scale": theta,
        "theta_ff": theta, "theta_bp": cfg.theta_bp, "bias_semantics": "initial_membrane",
        "readout": "accumulate", "activations": list(cfg.activations), "config": cfg.to_dict(),
        "checksum": _checksum(params.weights, params.biases)}}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata=meta)


def save_nir(params: SpikeGradParams, path) -> None:
    """Write :func:`export_nir` of ``params`` to ``path`` (HDF5, via ``nir.write``)."""
    nir.write(str(path), export_nir(params))


# ---------------------------------------------------------------------- reading
def load_nir(path) -> "nir.NIRGraph":
    """``nir.read`` with every failure (missing, truncated, not HDF5, not NIR) as :class:`NIRImportError`.

    Types are checked by :func:`import_nir` itself (with messages naming both
    nodes), so graphs that nir's own type check rejects still get a clear reason.
    """
    p = Path(path)
    if not p.is_file():
        raise NIRImportError(f"{p}: no such NIR file")
    try:
        return nir.read(str(p), type_check=False)
    except Exception as e:  # h5py OSError, KeyError, ValueError, AssertionError, ...
        raise NIRImportError(f"{p}: not a readable NIR file ({type(e).__name__}: {e}); "
                             "the file may be truncated or not NIR/HDF5") from None


def _plain(v):
    """Undo what the HDF5 round trip does to metadata (numpy scalars, arrays, bytes)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray) and (v.dtype.kind in "OSU" or v.ndim <= 1):
        return _plain(v.tolist())   # lists and strings; 2-D integer weights stay arrays
    return v


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _shape(a) -> tuple:
    return tuple(np.shape(a))


# ------------------------------------------------------------------- the chain
def _describe(nid: str, node) -> str:
    return f"node {nid!r} ({type(node).__name__})"


def _chain(graph) -> list[tuple[str, object]]:
    """The nodes from the single Input to the single Output, refusing anything else."""
    if not isinstance(graph, nir.NIRGraph):
        raise NIRImportError(f"expected a nir.NIRGraph or a path, got {type(graph).__name__}")
    nodes, edges = graph.nodes, [tuple(e) for e in graph.edges]
    for a, b in edges:
        for x in (a, b):
            if x not in nodes:
                raise NIRImportError(f"edge ({a!r}, {b!r}) names node {x!r}, which is not in the graph")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRImportError(f"expected exactly one Input and one Output node, got inputs {inputs} "
                             f"and outputs {outputs}")
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    for k in nodes:
        if len(succ[k]) > 1:
            raise NIRImportError(f"{_describe(k, nodes[k])} feeds {sorted(succ[k])}: branching graphs are "
                                 "not supported (only a feed-forward chain)")
        if len(pred[k]) > 1:
            raise NIRImportError(f"{_describe(k, nodes[k])} has inputs {sorted(pred[k])}: merging or recurrent "
                                 "graphs are not supported (only a feed-forward chain)")
    order, seen, k = [], set(), inputs[0]
    if pred[k]:
        raise NIRImportError(f"Input node {k!r} has an incoming edge from {pred[k][0]!r} (recurrence)")
    while True:
        if k in seen:
            raise NIRImportError(f"{_describe(k, nodes[k])} is reached twice: recurrent graphs are not supported")
        seen.add(k)
        order.append((k, nodes[k]))
        if k == outputs[0]:
            break
        if not succ[k]:
            raise NIRImportError(f"{_describe(k, nodes[k])} has no outgoing edge: the chain from "
                                 f"{inputs[0]!r} does not reach the Output {outputs[0]!r}")
        k = succ[k][0]
    rest = sorted(set(nodes) - seen)
    if rest:
        raise NIRImportError(f"node(s) {rest} are not on the chain from {inputs[0]!r} to {outputs[0]!r} "
                             "(recurrent or disconnected parts are not supported)")
    return order


def _io_shape(node, key: str) -> tuple:
    t = node.input_type if key == "input" else node.output_type
    if not isinstance(t, dict) or key not in t or t[key] is None:
        return ()
    shape = tuple(int(x) for x in np.asarray(t[key]).reshape(-1))
    while len(shape) > 1 and shape[0] == 1:   # a batch dimension of 1 (Norse, nirtorch with batched samples)
        shape = shape[1:]
    return shape


def _layers(graph) -> tuple[int, list[dict]]:
    """Input size and, per layer, ``{"syn": (id, node), "neuron": (id, node) | None}``."""
    order = _chain(graph)
    (in_id, in_node), (out_id, out_node) = order[0], order[-1]
    shape = _io_shape(in_node, "input")
    if len(shape) != 1:
        raise NIRImportError(f"{_describe(in_id, in_node)}: input shape {shape} is multi-dimensional; only flat "
                             "vectors are supported (flatten the input in the source network)")
    size, prev = shape[0], (in_id, in_node)
    layers: list[dict] = []
    for nid, node in order[1:-1]:
        if isinstance(node, nir.NIRGraph):
            raise NIRImportError(f"{_describe(nid, node)}: nested subgraphs (e.g. recurrent RLeaky/RSynaptic "
                                 "layers) are not supported")
        if isinstance(node, _SYNAPSES):
            if layers and layers[-1]["neuron"] is None:
                raise NIRImportError(f"{_describe(nid, node)} follows synapse node {layers[-1]['syn'][0]!r} "
                                     "directly: each hidden synapse must feed an IF or LIF node")
            w = np.asarray(node.weight)
            if w.ndim != 2:
                raise NIRImportError(f"{_describe(nid, node)}: weight shape {w.shape} is not 2-D (fan_out, fan_in)")
            if w.shape[1] != size:
                raise NIRImportError(f"shape mismatch: {_describe(prev[0], prev[1])} gives {size} values but "
                                     f"{_describe(nid, node)} has weight shape {w.shape}, expecting {w.shape[1]}")
            if isinstance(node, nir.Affine) and _shape(node.bias) != (w.shape[0],):
                raise NIRImportError(f"{_describe(nid, node)}: bias shape {_shape(node.bias)} does not match "
                                     f"weight shape {w.shape} (expected ({w.shape[0]},))")
            layers.append({"syn": (nid, node), "neuron": None})
            size = w.shape[0]
        elif isinstance(node, _READOUTS):
            if not layers or layers[-1]["neuron"] is not None:
                raise NIRImportError(f"{_describe(nid, node)} follows {_describe(prev[0], prev[1])}: a neuron node "
                                     "must follow a synapse (Affine or Linear) node")
            layers[-1]["neuron"] = (nid, node)
        elif isinstance(node, nir.CubaLIF):
            raise NIRImportError(f"{_describe(nid, node)}: current-based LIF (synaptic time constant tau_syn "
                                 f"{_summary(node.tau_syn)}) cannot be represented by SpikeGrad "
                                 "integrate-and-fire neurons; use IF (or LIF without leak) layers")
        else:
            raise NIRImportError(f"{_describe(nid, node)} is not supported; supported node types are Input, "
                                 "Affine, Linear, IF, LIF (and I, LI as the readout), Output")
        prev = (nid, node)
    if not layers:
        raise NIRImportError("the graph has no synapse (Affine or Linear) node")
    for k, layer in enumerate(layers[:-1]):
        nid, node = layer["neuron"]
        if not isinstance(node, _SPIKING):
            raise NIRImportError(f"{_describe(nid, node)} is a non-spiking neuron in a hidden layer; hidden "
                                 "layers need IF or LIF neurons")
    out_shape = _io_shape(out_node, "output")
    if out_shape and out_shape != (size,):
        raise NIRImportError(f"shape mismatch: {_describe(prev[0], prev[1])} gives {size} values but "
                             f"{_describe(out_id, out_node)} has shape {out_shape}")
    return shape[0], layers


def _summary(a) -> str:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return "[]"
    lo, hi = float(a.min()), float(a.max())
    return f"{lo:g}" if lo == hi else f"in [{lo:g}, {hi:g}]"


# ---------------------------------------------------------------- exact import
def _import_exact(graph, meta: dict, overrides: dict) -> SpikeGradParams:
    meta = _plain(meta)
    ver = meta.get("format_version")
    if ver != FORMAT_VERSION:
        raise NIRImportError(f"graph metadata 'spikecore.format_version': unsupported version {ver!r} "
                             f"(this spikecore reads version {FORMAT_VERSION})")
    for key in ("config", "checksum"):
        if key not in meta:
            raise NIRImportError(f"graph metadata 'spikecore' lacks field {key!r}")
    try:
        cfg = SpikeGradConfig.from_dict(meta["config"], source="graph metadata 'spikecore.config'")
    except ConfigError as e:
        raise NIRImportError(str(e)) from None
    n_in, layers = _layers(graph)
    if n_in != cfg.layer_sizes[0] or len(layers) != cfg.num_layers:
        raise NIRImportError(f"graph structure (input {n_in}, {len(layers)} synapse layers) does not match "
                             f"the recorded configuration layer_sizes {list(cfg.layer_sizes)}")
    ws, bs = [], []
    for l, layer in enumerate(layers):
        nid, node = layer["syn"]
        m = _plain(getattr(node, "metadata", None) or {}).get(META_KEY)
        if not isinstance(m, dict) or "integer_weight" not in m or "integer_bias" not in m:
            raise NIRImportError(f"{_describe(nid, node)}: metadata 'spikecore.integer_weight'/'integer_bias' "
                                 "missing (graph metadata says this graph was written by spikecore)")
        if m.get("layer") != l:
            raise NIRImportError(f"{_describe(nid, node)}: metadata 'spikecore.layer' is {m.get('layer')!r}, "
                                 f"expected {l}")
        w = np.asarray(m["integer_weight"])
        b = np.asarray(m["integer_bias"])
        for name, v in (("integer_weight", w), ("integer_bias", b)):
            if v.dtype.kind not in "iu":
                raise NIRImportError(f"{_describe(nid, node)}: metadata 'spikecore.{name}' is not integer "
                                     f"(dtype {v.dtype})")
        if w.shape != np.shape(node.weight):
            raise NIRImportError(f"{_describe(nid, node)}: integer weight shape {w.shape} differs from the "
                                 f"weight shape {np.shape(node.weight)}")
        _agree(nid, node, "weight", np.asarray(node.weight), w, cfg.theta_ff)
        if isinstance(node, nir.Affine):
            _agree(nid, node, "bias", np.asarray(node.bias), b, cfg.theta_ff)
        elif b.size and np.any(b != 0):
            raise NIRImportError(f"{_describe(nid, node)}: nonzero integer bias on a Linear node")
        hidden = l < cfg.num_layers - 1
        if hidden != (layer["neuron"] is not None):
            raise NIRImportError(f"{_describe(nid, node)}: layer {l} should "
                                 f"{'feed an IF node' if hidden else 'feed the Output directly'}")
        ws.append(torch.from_numpy(w.astype(np.int64)))
        bs.append(torch.from_numpy(b.astype(np.int64)))
    if _checksum(ws, bs) != meta["checksum"]:
        raise NIRImportError("graph metadata 'spikecore.checksum' does not match the integer weights "
                             "(file corrupted or edited)")
    cfg = _override(cfg, overrides)
    try:
        return SpikeGradParams(cfg, ws, bs)
    except ParamsError as e:
        raise NIRImportError(f"parameters do not fit the configuration: {e}") from None


def _agree(nid, node, field: str, f: np.ndarray, ints: np.ndarray, theta: int) -> None:
    if f.shape != ints.shape:
        raise NIRImportError(f"{_describe(nid, node)}: {field} shape {f.shape} differs from the integer "
                             f"{field} shape {ints.shape}")
    q = _round_half_away(f.astype(np.float64) * theta)
    bad = np.argwhere(~(q == ints))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise NIRImportError(f"{_describe(nid, node)}: {field}{list(idx)} = {float(f[idx])!r} does not match "
                             f"the integer {field} {int(ints[idx])} / theta_ff {theta} (file edited?)")


def _override(cfg: SpikeGradConfig, overrides: dict) -> SpikeGradConfig:
    if not overrides:
        return cfg
    d = cfg.to_dict()
    d.update(overrides)
    try:
        return SpikeGradConfig.from_dict(d, source="config_overrides")
    except ConfigError as e:
        raise NIRImportError(str(e)) from None


# -------------------------------------------------------------- foreign import
def _per_neuron(nid, node, field: str, n: int) -> np.ndarray:
    a = np.asarray(getattr(node, field), dtype=np.float64)
    if a.size == 1:
        return np.full(n, float(a.reshape(-1)[0]))
    if a.shape != (n,):
        raise NIRImportError(f"shape mismatch: {_describe(nid, node)} parameter {field!r} has shape {a.shape} "
                             f"but its synapse gives {n} values")
    return a


def _neuron_scale(nid, node, n: int, *, dt: float, allow_leak: bool) -> np.ndarray:
    """Per-neuron factor ``gain / v_threshold`` (what one unit of synaptic input is, in thresholds)."""
    if node is None:
        return np.ones(n)
    if isinstance(node, (nir.IF, nir.LIF)):
        vth = _per_neuron(nid, node, "v_threshold", n)
        if not np.all(np.isfinite(vth) & (vth > 0)):
            raise NIRImportError(f"{_describe(nid, node)}: v_threshold {_summary(vth)} must be finite and positive")
        vr = _per_neuron(nid, node, "v_reset", n)
        if np.any(vr != 0):
            raise NIRImportError(f"{_describe(nid, node)}: v_reset {_summary(vr)} is not supported (must be 0: "
                                 "a NIR reset to 0 becomes SpikeGrad's reset by subtracting the threshold)")
    else:
        vth = np.ones(n)
    r = _per_neuron(nid, node, "r", n)
    if isinstance(node, (nir.IF, nir.I)):
        gain = r
    else:  # LIF, LI
        tau = _per_neuron(nid, node, "tau", n)
        leak = _per_neuron(nid, node, "v_leak", n)
        if np.any(leak != 0):
            raise NIRImportError(f"{_describe(nid, node)}: v_leak {_summary(leak)} is not supported (must be 0)")
        if np.any(np.isnan(tau) | (tau <= 0)):
            raise NIRImportError(f"{_describe(nid, node)}: tau {_summary(tau)} must be positive")
        inf = np.isinf(tau)
        if np.any(inf & np.isfinite(r)):
            raise NIRImportError(f"{_describe(nid, node)}: tau is infinite but r {_summary(r[inf])} is finite, "
                                 "so the input gain r*dt/tau is zero")
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = np.where(inf, 1.0, r * dt / tau)   # tau = r = inf: snnTorch's beta = 1 (r = tau/dt)
            per_step = np.where(inf, 0.0, dt / tau)
        if np.any(per_step > 0):
            what = (f"{_describe(nid, node)}: membrane leak dt/tau {_summary(per_step)} per step (tau "
                    f"{_summary(tau)} with dt {dt:g}; snnTorch beta = 1 - dt/tau {_summary(1 - per_step)})")
            if not allow_leak:
                raise NIRImportError(f"{what} cannot be represented by SpikeGrad integrate-and-fire neurons; "
                                     "export without leak (snnTorch beta = 1, tau = inf) or pass allow_leak=True "
                                     "(--allow-leak) to drop the leak")
            warnings.warn(f"{what}: leak dropped, the imported network is an IF approximation", NIRImportWarning,
                          stacklevel=4)
    if not np.all(np.isfinite(gain) & (gain > 0)):
        raise NIRImportError(f"{_describe(nid, node)}: input gain {_summary(gain)} must be finite and positive")
    gain = np.where(np.abs(gain - 1.0) <= GAIN_SNAP, 1.0, gain)
    return gain / vth


def _quantise(nid, node, field: str, values: np.ndarray, scale: np.ndarray, limit: int) -> torch.Tensor:
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        idx = [int(i) for i in np.argwhere(~np.isfinite(v))[0]]
        raise NIRImportError(f"{_describe(nid, node)}: {field}{idx} is {float(v[tuple(idx)])} (not finite)")
    scaled = v * (scale[:, None] if v.ndim == 2 else scale)
    q = _round_half_away(scaled)
    bad = np.argwhere(np.abs(q) > limit)
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise NIRImportError(f"{_describe(nid, node)}: {field}{list(idx)} = {float(v[idx]):g} quantises to "
                             f"{int(q[idx])} (scaled by gain / v_threshold * theta_ff = {scale[idx[0]]:g}), out of range [{-limit}, {limit}]; "
                             "SpikeGrad needs |weight x gain| below v_threshold (one input spike may cause at most "
                             "one output spike): scale the source's weights down or its thresholds up")
    return torch.from_numpy(q.astype(np.int64))


def _import_foreign(graph, overrides: dict, *, dt: float, allow_leak: bool, bias_steps: int) -> SpikeGradParams:
    n_in, layers = _layers(graph)
    sizes = [n_in] + [int(np.shape(x["syn"][1].weight)[0]) for x in layers]
    has_bias = any(isinstance(x["syn"][1], nir.Affine) and np.any(np.asarray(x["syn"][1].bias) != 0)
                   for x in layers)
    base = {"layer_sizes": sizes, "activations": ["relu"] * (len(layers) - 1) + ["linear"], "bias": has_bias}
    if overrides and "layer_sizes" in overrides and list(overrides["layer_sizes"]) != sizes:
        raise NIRImportError(f"config_overrides layer_sizes {list(overrides['layer_sizes'])} differ from the "
                             f"graph's {sizes}")
    d = SpikeGradConfig().to_dict()
    d.update(base)
    d.update(overrides or {})
    try:
        cfg = SpikeGradConfig.from_dict(d, source="configuration for the imported graph")
    except ConfigError as e:
        raise NIRImportError(str(e)) from None
    ws, bs = [], []
    for x in layers:
        sid, syn = x["syn"]
        n = int(np.shape(syn.weight)[0])
        nid, neuron = x["neuron"] if x["neuron"] else (None, None)
        scale = _neuron_scale(nid, neuron, n, dt=dt, allow_leak=allow_leak) * cfg.theta_ff
        ws.append(_quantise(sid, syn, "weight", syn.weight, scale, cfg.weight_limit))
        if isinstance(syn, nir.Affine) and cfg.bias:
            bs.append(_quantise(sid, syn, "bias", np.asarray(syn.bias, dtype=np.float64) * bias_steps,
                                scale, cfg.bias_limit))
        else:
            bs.append(torch.zeros(n, dtype=torch.int64))
    try:
        return SpikeGradParams(cfg, ws, bs)
    except ParamsError as e:
        raise NIRImportError(f"parameters do not fit the configuration: {e}") from None


def import_nir(graph_or_path, *, config_overrides: dict | None = None, dt: float = SNNTORCH_DT,
               allow_leak: bool = False, bias_steps: int = 1) -> SpikeGradParams:
    """SpikeGrad parameters from a NIR graph or file.

    ``config_overrides``: SpikeGradConfig fields to set (e.g. ``theta_ff``,
    ``weight_bits``, ``lanes``); for a foreign graph they apply before
    quantising. ``dt``: the time step the exporter assumed for LIF/LI nodes
    (snnTorch 1e-4, Norse 1e-3). ``allow_leak``: accept a leaky LIF as IF with a
    warning. ``bias_steps``: time steps per sample over which the source adds
    its (per-step) bias; SpikeGrad adds a bias once (the initial membrane).
    """
    if isinstance(graph_or_path, (str, Path)):
        source = str(graph_or_path)
        graph = load_nir(graph_or_path)
    else:
        source, graph = None, graph_or_path
    if isinstance(bias_steps, bool) or not isinstance(bias_steps, int) or bias_steps < 1:
        raise NIRImportError(f"bias_steps must be a positive integer, got {bias_steps!r}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NIRImportError(f"dt must be a positive number, got {dt!r}")
    overrides = dict(config_overrides or {})
    try:
        meta = getattr(graph, "metadata", None)
        if isinstance(meta, dict) and META_KEY in meta:
            return _import_exact(graph, meta[META_KEY], overrides)
        return _import_foreign(graph, overrides, dt=float(dt), allow_leak=allow_leak, bias_steps=bias_steps)
    except NIRImportError as e:
        if source:
            raise NIRImportError(f"{source}: {e}") from None
        raise


# ------------------------------------------------------------------------ CLI
def add_nir_commands(subparsers) -> None:
    """Add ``spikecore nir export|import`` to an argparse ``add_subparsers()`` object.

    Errors are ``ValueError`` subclasses (``NIRImportError``, ``WeightFileError``),
    which ``spikecore.cli.main`` already reports as ``spikecore: error: ...``.
    """
    p = subparsers.add_parser("nir", help="export or import NIR graphs (snnTorch, Norse, ...)")
    sub = p.add_subparsers(dest="nir_command", required=True)

    e = sub.add_parser("export", help="write a weight file as a NIR graph")
    e.add_argument("weights", help="weight file (JSON, spikecore-weights)")
    e.add_argument("-o", "--output", required=True, help="NIR file to write (HDF5)")
    e.set_defaults(func=_cmd_export)

    i = sub.add_parser("import", help="read a NIR graph into a weight file")
    i.add_argument("graph", help="NIR file (HDF5)")
    i.add_argument("-o", "--output", required=True, help="weight file to write (JSON)")
    i.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="configuration override, value in JSON (e.g. --set theta_ff=65536); repeatable")
    i.add_argument("--dt", type=float, default=SNNTORCH_DT,
                   help=f"time step the exporter assumed for LIF nodes (snnTorch {SNNTORCH_DT:g}, Norse 1e-3)")
    i.add_argument("--allow-leak", action="store_true", help="accept leaky LIF nodes as IF (drops the leak)")
    i.add_argument("--bias-steps", type=int, default=1, help="time steps per sample the source adds its bias")
    i.set_defaults(func=_cmd_import)


def _cmd_export(args) -> int:
    from . import weights as weight_file

    params = weight_file.load(args.weights)
    save_nir(params, args.output)
    print(f"wrote {args.output}: NIR graph, layers {list(params.config.layer_sizes)}")
    return 0


def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise NIRImportError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def _cmd_import(args) -> int:
    from . import weights as weight_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NIRImportWarning)
        params = import_nir(args.graph, config_overrides=_parse_sets(args.set), dt=args.dt,
                            allow_leak=args.allow_leak, bias_steps=args.bias_steps)
    for w in caught:
        print(f"spikecore: warning: {w.message}")
    weight_file.save(params, args.output)
    print(f"wrote {args.output}: layers {list(params.config.layer_sizes)}, theta_ff {params.config.theta_ff}")
    return 0
