"""Weight files: a versioned JSON format, validated before anything uses it.

Layout (version 1)::

    {
      "format": "spikecore-weights",
      "version": 1,
      "config": { ...SpikeGradConfig fields... },
      "layers": [ {"weights": [[w_00, w_01, ...], ...],   # (fan_out, fan_in)
                   "bias": [b_0, ...]}, ... ],
      "checksum": "sha256 of the canonical layers JSON"
    }

Loading checks, in order: JSON syntax (a truncated file fails here), format
name, version, the configuration (every field and range), the number of layers,
each matrix's shape, that every entry is an integer, each value's range, and
the checksum. Every refusal names the file, the field and the allowed range.

``export_hex`` writes ``$readmemh`` files for the hardware memories.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from spikecore.config import ConfigError, SpikeGradConfig

from .params import ParamsError, SpikeGradParams

FORMAT_NAME = "spikecore-weights"
FORMAT_VERSION = 1


class WeightFileError(ValueError):
    """A weight file is malformed; the message names file, field and range."""


def _layers_json(params: SpikeGradParams) -> list[dict]:
    return [{"weights": w.tolist(), "bias": b.tolist()} for w, b in zip(params.weights, params.biases)]


def _checksum(layers: list) -> str:
    canon = json.dumps(layers, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()


def dumps(params: SpikeGradParams) -> str:
    layers = _layers_json(params)
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": params.config.to_dict(),
           "layers": layers, "checksum": _checksum(layers)}
    return json.dumps(doc)


def save(params: SpikeGradParams, path) -> None:
    Path(path).write_text(dumps(params) + "\n")


def loads(text: str, *, source: str = "<weights>") -> SpikeGradParams:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise WeightFileError(f"{source}: not valid JSON at line {e.lineno}, column {e.colno} ({e.msg}); "
                              "the file may be truncated") from None
    if not isinstance(doc, dict):
        raise WeightFileError(f"{source}: top level must be a JSON object")
    if doc.get("format") != FORMAT_NAME:
        raise WeightFileError(f"{source}: field 'format' must be {FORMAT_NAME!r}, got {doc.get('format')!r}")
    if doc.get("version") != FORMAT_VERSION:
        raise WeightFileError(f"{source}: field 'version': unsupported version {doc.get('version')!r} "
                              f"(this spikecore reads version {FORMAT_VERSION})")
    for key in ("config", "layers", "checksum"):
        if key not in doc:
            raise WeightFileError(f"{source}: missing field '{key}'")
    try:
        cfg = SpikeGradConfig.from_dict(doc["config"])
    except ConfigError as e:
        raise WeightFileError(f"{source}: config: {e}") from None
    layers = doc["layers"]
    if not isinstance(layers, list) or len(layers) != cfg.num_layers:
        n = len(layers) if isinstance(layers, list) else type(layers).__name__
        raise WeightFileError(f"{source}: field 'layers': expected {cfg.num_layers} layers, got {n}")
    ws, bs = [], []
    for l, layer in enumerate(layers):
        fan_out, fan_in = cfg.weight_shape(l)
        if not isinstance(layer, dict) or "weights" not in layer or "bias" not in layer:
            raise WeightFileError(f"{source}: layers[{l}] must be an object with 'weights' and 'bias'")
        w, b = layer["weights"], layer["bias"]
        if not isinstance(w, list) or len(w) != fan_out:
            raise WeightFileError(f"{source}: layers[{l}].weights: expected {fan_out} rows (shape "
                                  f"({fan_out}, {fan_in})), got {len(w) if isinstance(w, list) else type(w).__name__}")
        for i, row in enumerate(w):
            if not isinstance(row, list) or len(row) != fan_in:
                raise WeightFileError(f"{source}: layers[{l}].weights[{i}]: expected {fan_in} columns (shape "
                                      f"({fan_out}, {fan_in})), got {len(row) if isinstance(row, list) else type(row).__name__}")
            _check_ints(row, f"{source}: layers[{l}].weights[{i}]")
        if not isinstance(b, list) or len(b) != fan_out:
            raise WeightFileError(f"{source}: layers[{l}].bias: expected {fan_out} values, "
                                  f"got {len(b) if isinstance(b, list) else type(b).__name__}")
        _check_ints(b, f"{source}: layers[{l}].bias")
        ws.append(torch.tensor(w, dtype=torch.int64))
        bs.append(torch.tensor(b, dtype=torch.int64))
    if _checksum(layers) != doc["checksum"]:
        raise WeightFileError(f"{source}: field 'checksum' does not match the layers (file corrupted or edited)")
    try:
        return SpikeGradParams(cfg, ws, bs)
    except ParamsError as e:
        raise WeightFileError(f"{source}: {e}") from None


def _check_ints(values: list, name: str) -> None:
    for k, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int):
            raise WeightFileError(f"{name}[{k}]: expected an integer, got {v!r}")


def load(path) -> SpikeGradParams:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise WeightFileError(f"{p}: cannot read weight file ({e.strerror})") from None
    return loads(text, source=str(p))


def to_hex(value: int, bits: int) -> str:
    """Two's-complement hex of ``value`` in ``bits`` bits (``$readmemh`` format)."""
    digits = (bits + 3) // 4
    return format(value & ((1 << bits) - 1), f"0{digits}x")


def export_hex(params: SpikeGradParams, directory) -> list[Path]:
    """``layer<l>_weights.hex`` (row-major ``w[i][j]``, one word per line) and
    ``layer<l>_bias.hex`` for each layer, ``weight_bits`` wide."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    bits = params.config.weight_bits
    written = []
    for l, (w, b) in enumerate(zip(params.weights, params.biases)):
        pw = d / f"layer{l}_weights.hex"
        pw.write_text("".join(to_hex(v, bits) + "\n" for v in w.reshape(-1).tolist()))
        pb = d / f"layer{l}_bias.hex"
        pb.write_text("".join(to_hex(v, bits) + "\n" for v in b.tolist()))
        written += [pw, pb]
    return written
