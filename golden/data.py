"""The embedded data set: scikit-learn's 8x8 digits (ships inside the wheel).

Pixel values are 0..16; a pixel of value ``p`` is sent to the core as ``p``
positive spikes. The split is fixed: stratified 80/20 with a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_SPLIT_SEED = 0


@dataclass(frozen=True)
class DigitsSplit:
    train_x: torch.Tensor   # (1437, 64) int64 pixel counts 0..16
    train_y: torch.Tensor   # (1437,) int64 labels
    test_x: torch.Tensor    # (360, 64)
    test_y: torch.Tensor    # (360,)


def load_digits_split(seed: int = DEFAULT_SPLIT_SEED, test_fraction: float = 0.2) -> DigitsSplit:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.int64)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return DigitsSplit(t(xtr), t(ytr), t(xte), t(yte))


def encode_counts(counts) -> list[tuple[int, int]]:
    """Input events for one sample in the canonical round-robin order.

    Round ``r`` (1, 2, ...) emits one event ``(j, sign)`` for every input ``j``
    whose ``|count|`` is at least ``r``, in index order. Interleaving the pixels
    like a rate code keeps the membrane near its long-run average and so keeps
    redundant spikes few (the paper's observation on continuous inputs).
    """
    c = [int(v) for v in (counts.tolist() if hasattr(counts, "tolist") else counts)]
    events = []
    for r in range(1, max((abs(v) for v in c), default=0) + 1):
        for j, v in enumerate(c):
            if abs(v) >= r:
                events.append((j, 1 if v > 0 else -1))
    return events
