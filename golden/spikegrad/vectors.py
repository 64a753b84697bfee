"""Test vectors: everything a testbench needs to check one inference and one
training step, computed by the event-driven simulator (the bit-level spec,
counters and flags included) and cross-checked with the integer ANN."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from golden.data import encode_counts

from . import int_ann
from .event_sim import EventDrivenSimulator
from .params import SpikeGradParams


def sample_vector(params: SpikeGradParams, counts, label: int | None = None, *, events=None) -> dict:
    """One sample: inputs, expected inference and (with ``label``) training results.

    ``events`` overrides the canonical encoding of ``counts``.
    """
    events = encode_counts(counts) if events is None else [tuple(e) for e in events]
    sim = EventDrivenSimulator(params)
    res = sim.train_step(events, label) if label is not None else sim.forward(events)
    vec = {
        "input_counts": [int(c) for c in counts],
        "input_events": [list(e) for e in events],
        "label": label,
        "v_top": res.v_top,
        "prediction": res.prediction,
        "counts": res.counts[:-1],
        "surrogate": res.surrogate,
        "counters": {"forward_ops": res.counters.forward_ops, "backward_ops": res.counters.backward_ops,
                     "update_ops": res.counters.update_ops, "spikes": res.counters.spikes,
                     "error_spikes": res.counters.error_spikes},
        "flags": res.flags,
    }
    if label is not None:
        vec["u_top"] = res.u_top
        vec["error_counts"] = res.error_counts
        vec["weights_after"] = [w.tolist() for w in sim.params.weights]
        vec["bias_after"] = [b.tolist() for b in sim.params.biases]
    return vec


def make_vectors(params: SpikeGradParams, inputs, labels=None) -> dict:
    """Vectors for a batch of samples (each from the same initial parameters)."""
    inputs = torch.as_tensor(inputs, dtype=torch.int64)
    samples = []
    for n in range(inputs.shape[0]):
        label = None if labels is None else int(labels[n])
        samples.append(sample_vector(params, inputs[n].tolist(), label))
    fwd = int_ann.forward(params, inputs)
    for n, s in enumerate(samples):
        if not any(s["flags"].values()) and not fwd.overflow:
            assert s["v_top"] == fwd.v_top[n].tolist(), "event simulator and integer ANN disagree"
    return {"config": params.config.to_dict(), "weights": [w.tolist() for w in params.weights],
            "bias": [b.tolist() for b in params.biases], "samples": samples}


def save_vectors(vectors: dict, path) -> None:
    Path(path).write_text(json.dumps(vectors))


def sequence_vectors(params: SpikeGradParams, items) -> dict:
    """Expected results of running ``items`` in order on ONE core, weights carried over.

    ``items``: iterable of ``(events, label, error_shift)`` (``label`` None = INFER).
    Returns ``{"config", "params", "samples", "final"}`` ready to hand to the bench.
    """
    sim = EventDrivenSimulator(params)
    base = params.config
    samples = []
    for events, label, shift in items:
        cfg = base.replace(error_shift=shift)
        sim.config = cfg
        sim.params = SpikeGradParams(cfg, sim.params.weights, sim.params.biases)
        events = [tuple(e) for e in events]
        res = sim.train_step(events, label) if label is not None else sim.forward(events)
        samples.append({
            "events": [list(e) for e in events], "label": label, "error_shift": shift,
            "v_top": res.v_top, "prediction": res.prediction,
            "counters": {"forward_ops": res.counters.forward_ops, "backward_ops": res.counters.backward_ops,
                         "update_ops": res.counters.update_ops},
            "flags": dict(res.flags),
        })
    return {"config": base.to_dict(),
            "params": {"weights": [w.tolist() for w in params.weights], "bias": [b.tolist() for b in params.biases]},
            "samples": samples,
            "final": {"weights": [w.tolist() for w in sim.params.weights],
                      "bias": [b.tolist() for b in sim.params.biases]}}
