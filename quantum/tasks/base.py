"""A quantum learning task: circuits (or features) and ±1 labels, split, with a default model."""
import dataclasses
from typing import Callable, Optional

import numpy as np


@dataclasses.dataclass
class QuantumTask:
    """``x_*``: model inputs (TFQ circuit tensors, or features for re-uploading models);
    ``y_*``: labels in {-1, +1}; ``features_*``: classical features for the baseline (None
    for quantum data); ``build(seed=..., **options)`` returns the default (uncompiled) model."""

    name: str
    x_train: object
    y_train: np.ndarray
    x_val: object
    y_val: np.ndarray
    build: Callable
    n_qubits: int
    features_train: Optional[np.ndarray] = None
    features_val: Optional[np.ndarray] = None
    encoder: object = None
    description: str = ""
    learning_rate: float = 0.02


def split(n, val_fraction, seed, labels=None):
    """Shuffled train/val indices; stratified by ``labels`` when given."""
    rng = np.random.default_rng(seed)
    if labels is None:
        idx = rng.permutation(n)
        k = int(round(n * val_fraction))
        return idx[k:], idx[:k]
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * val_fraction))
        val.extend(idx[:k])
        train.extend(idx[k:])
    return rng.permutation(train), rng.permutation(val)
