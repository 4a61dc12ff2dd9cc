"""Hungarian matching: the assignment is optimal (brute force over every permutation on small
cases) and the cost terms are the papers' (hand-computed)."""
import itertools

import numpy as np
import pytest

from edgezoo.zoo.set_matching import DEFORMABLE_DETR_COSTS, DETR_COSTS, cost_matrix, match


def _random_case(rng, queries, objects, classes=4):
    logits = rng.normal(size=(queries, classes + 1))
    boxes = np.concatenate([rng.uniform(0.2, 0.8, (queries, 2)), rng.uniform(0.05, 0.3, (queries, 2))], 1)
    labels = rng.integers(classes, size=objects)
    targets = np.concatenate([rng.uniform(0.2, 0.8, (objects, 2)), rng.uniform(0.05, 0.3, (objects, 2))], 1)
    return logits, boxes, labels, targets


@pytest.mark.parametrize("costs", [DETR_COSTS, DEFORMABLE_DETR_COSTS])
def test_assignment_is_the_brute_force_optimum(costs):
    rng = np.random.default_rng(0)
    for queries, objects in [(5, 3), (6, 4), (4, 4), (7, 2)]:
        logits, boxes, labels, targets = _random_case(rng, queries, objects)
        c = cost_matrix(logits, boxes, labels, targets, costs)
        rows, cols = match(logits, boxes, labels, targets, costs)
        best = min(sum(c[q, t] for t, q in enumerate(perm))
                   for perm in itertools.permutations(range(queries), objects))
        assert c[rows, cols].sum() == pytest.approx(best)
        assert sorted(cols) == list(range(objects)) and len(set(rows)) == objects


def test_detr_cost_terms_by_hand():
    logits = np.log(np.array([[0.7, 0.2, 0.1]]))  # softmax probabilities 0.7, 0.2, 0.1
    box = np.array([[0.5, 0.5, 0.2, 0.2]])
    target = np.array([[0.6, 0.5, 0.2, 0.2]])
    # class: -0.2 (class 1); L1: 0.1; GIoU: IoU 0.1*0.2/(0.08-0.02)=1/3, enclosing 0.3*0.2=0.06
    # = union, so GIoU = 1/3
    expected = 1 * -0.2 + 5 * 0.1 - 2 * (1 / 3)
    assert cost_matrix(logits, box, [1], target)[0, 0] == pytest.approx(expected)


def test_focal_cost_by_hand():
    logit = np.array([[0.0, 2.0]])  # class 1: p = sigmoid(2)
    p = 1 / (1 + np.exp(-2.0))
    pos = 0.25 * (1 - p) ** 2 * -np.log(p)
    neg = 0.75 * p ** 2 * -np.log(1 - p)
    box = np.array([[0.5, 0.5, 0.2, 0.2]])
    c = cost_matrix(logit, box, [1], box, DEFORMABLE_DETR_COSTS)[0, 0]
    assert c == pytest.approx(2 * (pos - neg) - 2 * 1.0, rel=1e-6)


def test_no_objects_and_too_many_objects():
    rows, cols = match(np.zeros((3, 5)), np.full((3, 4), 0.5), [], np.zeros((0, 4)))
    assert rows.size == cols.size == 0
    with pytest.raises(ValueError, match="3 objects but only 2 queries"):
        match(np.zeros((2, 5)), np.full((2, 4), 0.5), [0, 1, 2], np.full((3, 4), 0.5))
