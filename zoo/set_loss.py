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


def pad_targets(targets, slots=None):
    """A list of (n, 5) targets as one (B, slots, 5) array and a (B, slots) 0/1 mask, so a
    compiled step takes every batch at one shape (``slots`` defaults to the largest n)."""
    targets = [np.asarray(t, np.float32).reshape(-1, 5) for t in targets]
    slots = max([len(t) for t in targets] + [1]) if slots is None else slots
    padded = np.zeros((len(targets), slots, 5), np.float32)
    mask = np.zeros((len(targets), slots), np.float32)
    for i, t in enumerate(targets):
        padded[i, : len(t)], mask[i, : len(t)] = t, 1.0
    return padded, mask


def matched_queries(logits, boxes, padded, mask, costs):
    """(B, slots) query index matched to each target slot (0 where the slot is empty), by the
    Hungarian matcher on NumPy arrays."""
    targets = [t[m > 0] for t, m in zip(np.asarray(padded), np.asarray(mask))]
    index = np.zeros(np.shape(mask), np.int64)
    for i, (q, t) in enumerate(match_batch(np.asarray(logits), np.asarray(boxes), targets, costs)):
        index[i, t] = q
    return index


def match_in_graph(logits, boxes, padded, mask, costs):
    """``matched_queries`` as a graph op (``tf.numpy_function``), without gradient."""
    index = tf.numpy_function(
        lambda *a: matched_queries(*a, costs),
        [tf.stop_gradient(logits), tf.stop_gradient(boxes), padded, mask], tf.int64)
    return tf.reshape(index, tf.shape(mask))


def set_loss(logits, boxes, targets, spec=DETR_LOSS, matches=None):
    """(total loss, {"class", "l1", "giou"}) for one batch: ``logits`` (B, Q, C [+ 1]) and
    ``boxes`` (B, Q, 4) tensors, ``targets`` a list of (n, 5) arrays (class, cx, cy, w, h);
    ``matches`` per image (query indices, object indices), by default the Hungarian matcher's."""
    padded, mask = pad_targets(targets)
    if matches is None:
        index = matched_queries(np.asarray(logits), np.asarray(boxes), padded, mask, spec.costs)
    else:
        index = np.zeros(mask.shape, np.int64)
        keep = np.zeros_like(mask)
        for i, (q, t) in enumerate(matches):
            index[i, t], keep[i, t] = q, 1.0
        mask = mask * keep
    return dense_set_loss(logits, boxes, tf.constant(padded), tf.constant(mask),
                          tf.constant(index), spec)


def dense_set_loss(logits, boxes, padded, mask, index, spec=DETR_LOSS):
    """The set loss from padded targets (B, slots, 5), their 0/1 mask and each slot's matched
    query (B, slots): every tensor has a fixed shape, so the training step compiles."""
    queries, width = logits.shape[1], logits.shape[2]
    classes = width if spec.focal else width - 1
    assign = tf.one_hot(index, queries) * mask[..., None]  # (B, slots, Q)
    labels = tf.cast(padded[..., 0], tf.float32)
    taken = tf.reduce_sum(assign, 1)  # (B, Q): 1 where a query has an object
    target_class = tf.cast(tf.round(tf.einsum("bsq,bs->bq", assign, labels)
                                    + (1.0 - taken) * classes), tf.int64)
    num_boxes = tf.maximum(tf.reduce_sum(mask), 1.0)
    if spec.focal:
        onehot = tf.one_hot(target_class, classes + 1)[..., :classes]  # no object: all zeros
        p = tf.sigmoid(logits)
        ce = tf.nn.sigmoid_cross_entropy_with_logits(onehot, logits)
        p_t = p * onehot + (1 - p) * (1 - onehot)
        alpha_t = spec.costs.alpha * onehot + (1 - spec.costs.alpha) * (1 - onehot)
        class_loss = tf.reduce_sum(alpha_t * ce * (1 - p_t) ** spec.costs.gamma) / num_boxes
    else:
        w = tf.where(target_class == classes, spec.eos_coef, 1.0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(target_class, logits)
        class_loss = tf.reduce_sum(w * ce) / tf.reduce_sum(w)
    chosen = tf.einsum("bsq,bqd->bsd", assign, boxes)  # each slot's matched box
    goal = padded[..., 1:] * mask[..., None]
    l1 = tf.reduce_sum(tf.abs(chosen - goal)) / num_boxes
    giou = tf.reduce_sum(mask * (1.0 - giou_tf(chosen, goal))) / num_boxes
    total = spec.class_weight * class_loss + spec.bbox_weight * l1 + spec.giou_weight * giou
    return total, {"class": class_loss, "l1": l1, "giou": giou}
