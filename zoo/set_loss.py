"""The set prediction loss of DETR-style detectors: queries are Hungarian-matched to the
objects (``zoo.set_matching``), then a class loss over every query, and L1 and GIoU losses over
the matched boxes, each box loss divided by the number of objects in the batch.

DETR: softmax cross-entropy with the no-object class weighted ``eos_coef`` (0.1), weights
class 1, L1 5, GIoU 2. Deformable DETR: sigmoid focal loss (alpha 0.25, gamma 2) against one-hot
targets (no object: all zeros), summed and divided by the number of objects, weights 2, 5, 2.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from edgezoo.zoo.set_matching import DEFORMABLE_DETR_COSTS, DETR_COSTS, MatchCosts, match


@dataclasses.dataclass(frozen=True)
class SetLoss:
    costs: MatchCosts = DETR_COSTS
    class_weight: float = 1.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0
    eos_coef: float = 0.1  # softmax only: the no-object class's weight
    focal: bool = False


DETR_LOSS = SetLoss()
DEFORMABLE_DETR_LOSS = SetLoss(costs=DEFORMABLE_DETR_COSTS, class_weight=2.0, focal=True)


def _xyxy(b):
    cx, cy, w, h = tf.unstack(b, axis=-1)
    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def giou_tf(a, b):
    """Element-wise generalised IoU of ``cxcywh`` boxes (differentiable)."""
    a, b = _xyxy(a), _xyxy(b)
    lo, hi = tf.maximum(a[..., :2], b[..., :2]), tf.minimum(a[..., 2:], b[..., 2:])
    inter = tf.reduce_prod(tf.maximum(hi - lo, 0.0), -1)
    area = lambda x: tf.reduce_prod(tf.maximum(x[..., 2:] - x[..., :2], 0.0), -1)  # noqa: E731
    union = area(a) + area(b) - inter
    iou = inter / tf.maximum(union, 1e-9)
    elo, ehi = tf.minimum(a[..., :2], b[..., :2]), tf.maximum(a[..., 2:], b[..., 2:])
    enclosing = tf.reduce_prod(tf.maximum(ehi - elo, 0.0), -1)
    return iou - (enclosing - union) / tf.maximum(enclosing, 1e-9)


def match_batch(logits, boxes, targets, costs):
    """Per image (query indices, object indices), from NumPy outputs and (n, 5) targets."""
    return [match(logits[i], boxes[i], t[:, 0].astype(np.int64), t[:, 1:], costs)
            for i, t in enumerate(targets)]


def set_loss(logits, boxes, targets, spec=DETR_LOSS, matches=None):
    """(total loss, {"class", "l1", "giou"}) for one batch: ``logits`` (B, Q, C [+ 1]) and
    ``boxes`` (B, Q, 4) tensors, ``targets`` a list of (n, 5) arrays (class, cx, cy, w, h)."""
    if matches is None:
        matches = match_batch(np.asarray(logits), np.asarray(boxes), targets, spec.costs)
    batch, queries, width = logits.shape
    classes = width if spec.focal else width - 1
    target_class = np.full((batch, queries), classes, np.int64)  # no object
    index, target_boxes = [], []
    for i, ((q, t), objects) in enumerate(zip(matches, targets)):
        target_class[i, q] = objects[t, 0].astype(np.int64)
        index += [(i, int(k)) for k in q]
        target_boxes.append(objects[t, 1:])
    num_boxes = max(len(index), 1)
    if spec.focal:
        onehot = tf.one_hot(target_class, classes + 1)[..., :classes]  # no object: all zeros
        p = tf.sigmoid(logits)
        ce = tf.nn.sigmoid_cross_entropy_with_logits(onehot, logits)
        p_t = p * onehot + (1 - p) * (1 - onehot)
        alpha_t = spec.costs.alpha * onehot + (1 - spec.costs.alpha) * (1 - onehot)
        class_loss = tf.reduce_sum(alpha_t * ce * (1 - p_t) ** spec.costs.gamma) / num_boxes
    else:
        weights = np.ones(width, np.float32)
        weights[-1] = spec.eos_coef
        w = tf.constant(weights[target_class])
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(target_class, logits)
        class_loss = tf.reduce_sum(w * ce) / tf.reduce_sum(w)
    if index:
        chosen = tf.gather_nd(boxes, index)
        goal = tf.constant(np.concatenate(target_boxes).astype(np.float32))
        l1 = tf.reduce_sum(tf.abs(chosen - goal)) / num_boxes
        giou = tf.reduce_sum(1.0 - giou_tf(chosen, goal)) / num_boxes
    else:
        l1 = giou = tf.constant(0.0)
    total = spec.class_weight * class_loss + spec.bbox_weight * l1 + spec.giou_weight * giou
    return total, {"class": class_loss, "l1": l1, "giou": giou}
