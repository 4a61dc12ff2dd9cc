"""``classification``: one input (an image, features) -> class logits; top-1 agreement."""
import numpy as np

from edgezoo.zoo.tasks import measures
from edgezoo.zoo.tasks.base import Task


def _label_loss(model):
    from edgezoo.zoo.tasks.losses import sparse_classification

    return [sparse_classification(model)]


def _distill_loss(model, temperature):
    from edgezoo.zoo.tasks.losses import SoftTargetLoss, outputs_probabilities

    return [SoftTargetLoss(temperature, student_probabilities=outputs_probabilities(model))]


def _measure(float_outs, converted, inputs):
    value = measures.top1_agreement(float_outs[0], converted[0])
    return {"measure": "top-1", "value": value, "checks": {"top1_agreement": value},
            "details": {"logit_error": measures.logit_error(float_outs[0], converted[0])}}


def _uninformative(float_outs, th):
    """A classifier's float outputs say nothing when one class takes nearly every sample or
    the top-1 falls on too few classes."""
    y = np.asarray(float_outs[0], np.float64).reshape(len(float_outs[0]), -1)
    reasons = []
    if len(y) > 1:
        classes, counts = np.unique(y.argmax(-1), return_counts=True)
        share = counts.max() / len(y)
        if share > th.max_top_class_share:
            reasons.append(f"the float model predicts class {int(classes[counts.argmax()])} for "
                           f"{share:.1%} of the {len(y)} samples (> {th.max_top_class_share:.0%}): "
                           "these inputs are not data it tells apart, so agreement on them says "
                           "nothing")
        used = int((counts >= 0.01 * len(y)).sum())
        needed = max(2, int(np.ceil(th.min_classes_used * y.shape[1])))
        if y.shape[1] > 1 and used < needed:
            reasons.append(f"the float model's top-1 falls on only {used} of its {y.shape[1]} "
                           f"classes (on at least 1 % of the samples each; {needed} needed): "
                           "these inputs exercise too little of it for agreement to mean much")
    return reasons


CLASSIFICATION = Task(
    name="classification",
    summary="one input (image or features) -> class logits (N, classes)",
    input_roles=("image",),
    output_roles=("logits",),
    has_classes=True,
    data_needs="x: samples shaped as the input; y: an integer class per sample (-1: unlabelled)",
    calibration="the first N samples of the train split, float32, quantized by the converter",
    metrics=("accuracy",),
    checks=("top1_agreement",),
    measure=_measure,
    label_loss=_label_loss,
    distill_loss=_distill_loss,
    uninformative=_uninformative,
)
