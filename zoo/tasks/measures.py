"""Float-vs-converted agreement measures, in NumPy: each compares named outputs of the float
model with those of the converted one on the same held-out samples.

A measure returns ``{"value": primary number, "details": {...}}``; what it is gated against
lives in ``edgezoo.edge.verification.Thresholds`` under the name the task gives it.
"""
import numpy as np


def top1(logits):
    """Arg-max over the last axis (a class per sample, or per query / token)."""
    return np.asarray(logits).argmax(-1)


def top1_agreement(float_out, converted):
    """Share of samples (or queries, tokens) whose arg-max is the same."""
    a, b = np.asarray(float_out), np.asarray(converted)
    a = a.reshape(len(a), -1, a.shape[-1]) if a.ndim > 2 else a.reshape(len(a), -1)
    b = b.reshape(a.shape)
    return float((top1(a) == top1(b)).mean())


def logit_error(float_out, converted):
    """Max and mean |difference| relative to the float outputs' standard deviation."""
    a, b = np.asarray(float_out, np.float64), np.asarray(converted, np.float64)
    scale = float(a.std()) or 1.0
    err = np.abs(a - b) / scale
    return {"max_over_std": float(err.max()), "mean_over_std": float(err.mean())}


def masked_cosine(float_out, converted, mask=None):
    """Mean cosine similarity of matching vectors (last axis), over unmasked positions."""
    a, b = np.asarray(float_out, np.float64), np.asarray(converted, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    cos = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask) > 0, cos.shape)
        return float(cos[mask].mean()) if mask.any() else 1.0
    return float(cos.mean())
