"""COCO mAP with pycocotools, with object-size ranges stated for the data's image size.

COCO's size ranges are absolute (small < 32², large > 96² pixels, for images of about
640x480): on 64x64 images every object would be "small" and "large" would stay empty. Here the
ranges are fractions of the image's area: small below (1/4 side)², large above (3/8 side)²,
medium between (on 64x64 images: 16² and 24² pixels).
"""
import contextlib
import io

import numpy as np

SMALL_SIDE, LARGE_SIDE = 1 / 4, 3 / 8  # of the image side
MAX_DETECTIONS = 100


def area_ranges(image_hw):
    """pycocotools ``areaRng`` (pixels²) and labels for images of ``image_hw``."""
    area = float(image_hw[0] * image_hw[1])
    small, large = area * SMALL_SIDE ** 2, area * LARGE_SIDE ** 2
    return [[0.0, 1e10], [0.0, small], [small, large], [large, 1e10]], ["all", "small", "medium",
                                                                         "large"]


def detections_from_outputs(logits, boxes, image_ids, image_hw, scoring="softmax",
                            top_k=MAX_DETECTIONS):
    """COCO result rows from per-query logits and normalised ``cxcywh`` boxes: softmax with a
    last no-object class (per query its best object class), or sigmoid (the top ``top_k``
    query-class pairs, selected here on the host)."""
    logits, boxes = np.asarray(logits, np.float64), np.asarray(boxes, np.float64)
    h, w = image_hw
    rows = []
    for n, image_id in enumerate(image_ids):
        if scoring == "softmax":
            z = logits[n] - logits[n].max(-1, keepdims=True)
            probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
            scores, labels = probs[:, :-1].max(-1), probs[:, :-1].argmax(-1)
            queries = np.arange(len(scores))
        else:
            probs = 1 / (1 + np.exp(-logits[n]))
            flat = np.argsort(-probs.ravel(), kind="stable")[:top_k]
            queries, labels = np.unravel_index(flat, probs.shape)
            scores = probs[queries, labels]
        order = np.argsort(-scores, kind="stable")[:top_k]
        for q, label, score in zip(queries[order], labels[order], scores[order]):
            cx, cy, bw, bh = boxes[n, q]
            rows.append({"image_id": image_id, "category_id": int(label),
                         "bbox": [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h],
                         "score": float(score)})
    return rows


def coco_map(ground_truth, detections, image_hw, category_ids=None):
    """{"mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large"} from pycocotools'
    COCOeval on ``ground_truth`` (a COCO dict) and ``detections`` (rows whose
    ``category_id`` is a position in ``ground_truth["categories"]`` when ``category_ids`` is
    None, mapped to that category's id). -1 marks a size with no ground-truth object."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ids = category_ids or [c["id"] for c in ground_truth["categories"]]
    rows = [{**d, "category_id": ids[d["category_id"]]} for d in detections]
    gt = COCO()
    gt.dataset = {**ground_truth, "annotations": [{**a, "iscrowd": a.get("iscrowd", 0)}
                                                  for a in ground_truth["annotations"]]}
    names = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large")
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not rows or not gt.dataset["annotations"]:
            return {k: 0.0 for k in names}
        dt = gt.loadRes(rows)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.areaRng, evaluator.params.areaRngLbl = area_ranges(image_hw)
        evaluator.params.maxDets = [1, 10, MAX_DETECTIONS]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {name: float(stats[k]) for k, name in enumerate(names)}
