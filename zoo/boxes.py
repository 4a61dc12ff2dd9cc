"""Box tensor ops shared by detectors, their losses and their agreement measures (NumPy):
normalised ``cxcywh`` boxes, as DETR-style detectors predict them."""
import numpy as np


def cxcywh_to_xyxy(boxes):
    cx, cy, w, h = np.moveaxis(np.asarray(boxes, np.float64), -1, 0)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def box_iou(a, b):
    """Element-wise IoU of matching normalised ``cxcywh`` boxes (same shape, last axis 4); two
    empty boxes count as identical (IoU 1)."""
    iou, union, _, _ = _iou_parts(*_pair(a, b, False))
    return np.where(union > 0, iou, 1.0)


def xyxy_to_cxcywh(boxes):
    x0, y0, x1, y1 = np.moveaxis(np.asarray(boxes, np.float64), -1, 0)
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)


def xywh_to_cxcywh(boxes):
    """COCO ``[x, y, width, height]`` to ``cxcywh`` (in the same units)."""
    x, y, w, h = np.moveaxis(np.asarray(boxes, np.float64), -1, 0)
    return np.stack([x + w / 2, y + h / 2, w, h], -1)


def _pair(a, b, pairwise):
    """xyxy boxes broadcast element-wise, or every box of ``a`` (N) against every one of ``b`` (M)."""
    a, b = cxcywh_to_xyxy(a), cxcywh_to_xyxy(b)
    return (a[:, None], b[None]) if pairwise else (a, b)


def _iou_parts(a, b):
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), -1)  # noqa: E731
    union = area(a) + area(b) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    enclose_lo, enclose_hi = np.minimum(a[..., :2], b[..., :2]), np.maximum(a[..., 2:], b[..., 2:])
    return iou, union, enclose_lo, enclose_hi


def generalized_iou(a, b, pairwise=False):
    """GIoU (Rezatofighi et al. 2019): IoU - (enclosing area - union) / enclosing area, in [-1, 1]."""
    a, b = _pair(a, b, pairwise)
    iou, union, lo, hi = _iou_parts(a, b)
    enclosing = np.prod(np.clip(hi - lo, 0, None), -1)
    return iou - np.where(enclosing > 0, (enclosing - union) / np.where(enclosing > 0, enclosing, 1), 0)


def distance_iou(a, b, pairwise=False):
    """DIoU (Zheng et al. 2020): IoU - (centre distance)² / (enclosing diagonal)²."""
    a, b = _pair(a, b, pairwise)
    iou, _, lo, hi = _iou_parts(a, b)
    centre = lambda x: (x[..., :2] + x[..., 2:]) / 2  # noqa: E731
    d2 = np.sum((centre(a) - centre(b)) ** 2, -1)
    c2 = np.sum((hi - lo) ** 2, -1)
    return iou - np.where(c2 > 0, d2 / np.where(c2 > 0, c2, 1), 0)


def complete_iou(a, b, pairwise=False):
    """CIoU (Zheng et al. 2020): DIoU - alpha * v, v = 4/pi² (atan(w_b/h_b) - atan(w_a/h_a))²,
    alpha = v / (1 - IoU + v)."""
    diou = distance_iou(a, b, pairwise)
    xa, xb = _pair(a, b, pairwise)
    iou = _iou_parts(xa, xb)[0]
    wh = lambda x: (x[..., 2] - x[..., 0], x[..., 3] - x[..., 1])  # noqa: E731
    (wa, ha), (wb, hb) = wh(xa), wh(xb)
    v = 4 / np.pi ** 2 * (np.arctan2(wb, hb) - np.arctan2(wa, ha)) ** 2
    alpha = np.where(1 - iou + v > 0, v / np.where(1 - iou + v > 0, 1 - iou + v, 1), 0)
    return diou - alpha * v
