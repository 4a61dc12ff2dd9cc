"""COCO mAP through pycocotools on hand-made cases, and box overlaps against hand-computed values."""
import numpy as np
import pytest

from edgezoo.zoo.boxes import complete_iou, distance_iou, generalized_iou, xywh_to_cxcywh
from edgezoo.zoo.coco_eval import area_ranges, coco_map, detections_from_outputs


def _gt(boxes):
    """One 64x64 image per box list; category 1."""
    images = [{"id": i + 1, "width": 64, "height": 64} for i in range(len(boxes))]
    annotations = [{"id": k + 1, "image_id": i + 1, "category_id": 1, "bbox": b,
                    "area": b[2] * b[3]}
                   for k, (i, b) in enumerate((i, b) for i, bs in enumerate(boxes) for b in bs)]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]}


def test_perfect_and_shifted_detections():
    gt = _gt([[[8, 8, 20, 20]], [[30, 30, 16, 16]]])
    perfect = [{"image_id": a["image_id"], "category_id": 0, "bbox": a["bbox"], "score": 0.9}
               for a in gt["annotations"]]
    assert coco_map(gt, perfect, (64, 64))["mAP"] == pytest.approx(1.0)
    # shifted by 4 px: IoU 16*20/(2*400-320) = 0.667 (20 px box), 12*16/(2*256-192) = 0.6
    shifted = [{**d, "bbox": [d["bbox"][0] + 4, *d["bbox"][1:]]} for d in perfect]
    result = coco_map(gt, shifted, (64, 64))
    assert result["mAP50"] == pytest.approx(1.0) and result["mAP75"] == pytest.approx(0.0)
    # thresholds 0.50..0.95: the 0.667 box counts at 0.50-0.65 (4 of 10), the 0.6 box at 0.50-0.60
    # (3 of 10): each threshold's AP is the share of images matched -> mean (4 + 3) / 20
    assert result["mAP"] == pytest.approx((4 + 3) / 20, abs=0.01)


def test_a_false_positive_ranked_first_halves_precision():
    gt = _gt([[[8, 8, 20, 20]]])
    rows = [{"image_id": 1, "category_id": 0, "bbox": [40, 40, 10, 10], "score": 0.9},
            {"image_id": 1, "category_id": 0, "bbox": [8, 8, 20, 20], "score": 0.5}]
    # precision at recall 1 is 1/2; COCO's interpolated AP is then 0.5 at every threshold
    assert coco_map(gt, rows, (64, 64))["mAP"] == pytest.approx(0.5, abs=0.01)
    assert coco_map(gt, rows[::-1][:1], (64, 64))["mAP"] == pytest.approx(1.0)


def test_size_ranges_are_fractions_of_the_image():
    (all_, small, medium, large), labels = area_ranges((64, 64))
    assert labels == ["all", "small", "medium", "large"]
    assert small == [0.0, 256.0] and medium == [256.0, 576.0] and large[0] == 576.0
    gt = _gt([[[2, 2, 10, 10], [30, 30, 30, 30]]])  # a 100 px² and a 900 px² object
    rows = [{"image_id": 1, "category_id": 0, "bbox": [30, 30, 30, 30], "score": 0.9}]
    result = coco_map(gt, rows, (64, 64))
    assert result["mAP_large"] == pytest.approx(1.0) and result["mAP_small"] == pytest.approx(0.0)
    assert result["mAP_medium"] == -1.0  # no medium object: pycocotools says -1


def test_outputs_to_detections_in_pixels():
    logits = np.array([[[4.0, 0.0, 0.0], [0.0, 0.0, 5.0]]])  # query 0: class 0; query 1: no-object
    boxes = np.array([[[0.5, 0.5, 0.25, 0.5], [0.1, 0.1, 0.1, 0.1]]])
    rows = detections_from_outputs(logits, boxes, [7], (64, 64))
    best = rows[0]
    assert best["image_id"] == 7 and best["category_id"] == 0
    assert best["bbox"] == pytest.approx([24, 16, 16, 32])
    assert best["score"] == pytest.approx(np.exp(4) / (np.exp(4) + 2))
    sig = detections_from_outputs(np.array([[[3.0, -3.0], [-3.0, 1.0]]]), boxes, [1], (64, 64),
                                  scoring="sigmoid", top_k=2)
    assert [(r["category_id"], round(r["score"], 4)) for r in sig] == [
        (0, round(1 / (1 + np.exp(-3)), 4)), (1, round(1 / (1 + np.exp(-1)), 4))]


def test_giou_diou_ciou_against_hand_computed_values():
    a = xywh_to_cxcywh([0, 0, 2, 2])
    b = xywh_to_cxcywh([1, 1, 2, 2])
    # IoU 1/7; enclosing 3x3 = 9: GIoU = 1/7 - (9 - 7)/9
    assert generalized_iou(a, b) == pytest.approx(1 / 7 - 2 / 9)
    # centres (1,1), (2,2): d² = 2; enclosing diagonal² = 18: DIoU = 1/7 - 2/18
    assert distance_iou(a, b) == pytest.approx(1 / 7 - 1 / 9)
    # same aspect ratio: v = 0, CIoU = DIoU
    assert complete_iou(a, b) == pytest.approx(distance_iou(a, b))
    # disjoint boxes: GIoU negative, approaching -1 far apart
    far = xywh_to_cxcywh([100, 100, 2, 2])
    assert -1 < generalized_iou(a, far) < -0.99
    # a 2x1 against a 1x2 box with the same centre: IoU 1/3, v = 4/pi² (atan 2 - atan 1/2)²
    wide, tall = np.array([0.0, 0.0, 2.0, 1.0]), np.array([0.0, 0.0, 1.0, 2.0])
    v = 4 / np.pi ** 2 * (np.arctan(2) - np.arctan(0.5)) ** 2
    assert complete_iou(wide, tall) == pytest.approx(1 / 3 - v / (1 - 1 / 3 + v) * v)
    pairwise = generalized_iou(np.stack([a, far]), np.stack([a, b, far]), pairwise=True)
    assert pairwise.shape == (2, 3) and pairwise[0, 0] == pytest.approx(1.0)
