"""Box tensor ops shared by detectors, their losses and their agreement measures (NumPy):
normalised ``cxcywh`` boxes, as DETR-style detectors predict them."""
import numpy as np


def cxcywh_to_xyxy(boxes):
    cx, cy, w, h = np.moveaxis(np.asarray(boxes, np.float64), -1, 0)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def box_iou(a, b):
    """Element-wise IoU of matching normalised ``cxcywh`` boxes (same shape, last axis 4)."""
    a, b = cxcywh_to_xyxy(a), cxcywh_to_xyxy(b)
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), -1)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)
