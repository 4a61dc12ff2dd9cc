"""``detection``: an image -> per-query class logits and normalised ``cxcywh`` boxes.

Two scorings: ``softmax`` with a last no-object class (DETR) or per-class ``sigmoid``
without one (Deformable DETR, one-stage detectors). Agreement: per-query class agreement (each
query's class or no object) and, on the queries the float model calls objects, box IoU (box L1
reported).
"""

import numpy as np

from edgezoo.zoo.boxes import box_iou
from edgezoo.zoo.tasks.base import Task


def _objects(logits, scoring):
    """Queries the model calls an object: arg-max not the no-object class (softmax), or any
    class probability above 0.5 (sigmoid)."""
    logits = np.asarray(logits)
    if scoring == "softmax":
        return logits.argmax(-1) != logits.shape[-1] - 1
    return (1 / (1 + np.exp(-logits))).max(-1) > 0.5


def query_classes(logits, scoring):
    """Each query's decision: its class, or ``num_classes`` for no object. Softmax: the arg-max
    (the last class is no-object). Sigmoid has no no-object class: a query whose probabilities
    are all at or below 0.5 is no object, so the arg-max among a background query's near-zero
    scores, which nothing downstream reads, is not compared."""
    logits = np.asarray(logits)
    if scoring == "softmax":
        return logits.argmax(-1)
    return np.where(_objects(logits, scoring), logits.argmax(-1), logits.shape[-1])


def _measure_for(scoring):
    def measure(float_outs, converted, inputs):
        logits_f, boxes_f = (np.asarray(a) for a in float_outs[:2])
        logits_c, boxes_c = (np.asarray(a) for a in converted[:2])
        classes = float((query_classes(logits_f, scoring)
                         == query_classes(logits_c, scoring)).mean())
        objects = _objects(logits_f, scoring)
        iou = box_iou(boxes_f, boxes_c)
        chosen = objects if objects.any() else np.ones_like(objects)
        value_iou = float(iou[chosen].mean())
        return {"measure": "per-query class agreement and box IoU", "value": classes,
                "checks": {"query_class_agreement": classes, "box_iou": value_iou},
                "details": {"object_queries": int(objects.sum()), "queries": int(objects.size),
                            "box_l1": float(np.abs(boxes_f - boxes_c).mean()),
                            "scoring": scoring}}
    return measure


def _distill_loss_for(scoring):
    def loss(model, temperature):
        import tf_keras as keras

        from edgezoo.zoo.tasks.losses import SigmoidSoftTargetLoss, SoftTargetLoss

        cls = SoftTargetLoss(temperature) if scoring == "softmax" else SigmoidSoftTargetLoss()
        return [cls, keras.losses.MeanAbsoluteError()]
    return loss


def _uninformative_for(scoring):
    def uninformative(float_outs, th):
        boxes, reasons = np.asarray(float_outs[1]), []
        if float(boxes.std()) < th.min_output_std:
            reasons.append("the float model predicts the same boxes for every query and sample")
        if not _objects(float_outs[0], scoring).any():
            reasons.append("the float model calls no query an object on these inputs: class "
                           "agreement would compare only no-object decisions")
        return reasons
    return uninformative


def _check_boxes(outputs):
    from edgezoo.base.errors import DataError

    if tuple(outputs[1].shape[-1:]) != (4,):
        raise DataError(f"detection: output {outputs[1].name!r} must end in 4 box coordinates "
                        f"(cx, cy, w, h), got {outputs[1].shape}")


def detection_task(scoring="softmax"):
    """The detection contract for one scoring (``softmax`` with no-object, or ``sigmoid``)."""
    if scoring not in ("softmax", "sigmoid"):
        raise ValueError(f"detection scoring is 'softmax' or 'sigmoid', not {scoring!r}")
    return Task(
        name="detection" if scoring == "softmax" else "detection_sigmoid",
        summary=("image -> logits (N, queries, classes"
                 + (" + no-object)" if scoring == "softmax" else ", per-class sigmoid)")
                 + " and boxes (N, queries, 4), normalised cx, cy, w, h"),
        input_roles=("image",),
        output_roles=("logits", "boxes"),
        has_classes=True,
        data_needs=("x: images; y: per image a list of (class, cx, cy, w, h) in [0, 1] "
                    "(the set loss matches them to queries)"),
        calibration="the first N images of the train split, float32, quantized by the converter",
        metrics=("mAP@0.5:0.95", "mAP@0.5"),
        checks=("query_class_agreement", "box_iou"),
        measure=_measure_for(scoring),
        label_loss=None,
        no_label_loss="the set loss, which matches boxes to queries, comes with the detection models",
        distill_loss=_distill_loss_for(scoring),
        uninformative=_uninformative_for(scoring),
        check_outputs=_check_boxes,
    )


DETECTION = detection_task("softmax")
DETECTION_SIGMOID = detection_task("sigmoid")
