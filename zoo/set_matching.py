"""Hungarian matching of predicted queries to ground-truth objects, as DETR-style detectors train.

The cost of giving query q the object t is a weighted sum of a class cost, the L1 distance of
the normalised ``cxcywh`` boxes and minus their generalised IoU; ``scipy.optimize.
linear_sum_assignment`` finds the assignment of least total cost (each object gets one query,
unmatched queries are "no object"). DETR's class cost is minus the softmax probability of the
object's class (weights 1, 5, 2); Deformable DETR's is the sigmoid focal cost (alpha 0.25,
gamma 2; weights 2, 5, 2).
"""
import dataclasses

import numpy as np

from edgezoo.zoo.boxes import generalized_iou


@dataclasses.dataclass(frozen=True)
class MatchCosts:
    """The cost's weights and its class term (``softmax`` or ``focal``)."""

    class_weight: float = 1.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0
    class_cost: str = "softmax"
    alpha: float = 0.25
    gamma: float = 2.0


DETR_COSTS = MatchCosts()
DEFORMABLE_DETR_COSTS = MatchCosts(class_weight=2.0, class_cost="focal")


def _class_cost(logits, labels, costs):
    logits = np.asarray(logits, np.float64)
    if costs.class_cost == "softmax":
        z = logits - logits.max(-1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        return -probs[:, labels]
    if costs.class_cost != "focal":
        raise ValueError(f"class_cost is 'softmax' or 'focal', not {costs.class_cost!r}")
    p = 1 / (1 + np.exp(-logits[:, labels]))
    eps = 1e-8
    negative = (1 - costs.alpha) * p ** costs.gamma * -np.log(1 - p + eps)
    positive = costs.alpha * (1 - p) ** costs.gamma * -np.log(p + eps)
    return positive - negative


def cost_matrix(logits, boxes, labels, target_boxes, costs=DETR_COSTS):
    """(queries, objects) matching costs for one image."""
    labels = np.asarray(labels, np.int64)
    boxes, target_boxes = np.asarray(boxes, np.float64), np.asarray(target_boxes, np.float64)
    l1 = np.abs(boxes[:, None, :] - target_boxes[None, :, :]).sum(-1)
    giou = generalized_iou(boxes, target_boxes, pairwise=True)
    return (costs.class_weight * _class_cost(logits, labels, costs) + costs.bbox_weight * l1
            - costs.giou_weight * giou)


def match(logits, boxes, labels, target_boxes, costs=DETR_COSTS):
    """(query indices, object indices) of the least-cost assignment for one image (empty arrays
    for an image with no object)."""
    from scipy.optimize import linear_sum_assignment

    if len(labels) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(labels) > len(boxes):
        raise ValueError(f"{len(labels)} objects but only {len(boxes)} queries: every object "
                         "needs a query of its own; use more queries")
    rows, cols = linear_sum_assignment(cost_matrix(logits, boxes, labels, target_boxes, costs))
    return rows.astype(np.int64), cols.astype(np.int64)
