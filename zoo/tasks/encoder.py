"""``encoder``: int32 token ids + attention mask -> hidden states (N, T, D), optionally a
pooled vector; agreement is the cosine of each unmasked token's hidden state."""
import numpy as np

from edgezoo.zoo.tasks import measures
from edgezoo.zoo.tasks.base import Task


def _measure(float_outs, converted, inputs):
    mask = np.asarray(inputs[1]) if len(inputs) > 1 else None
    value = measures.masked_cosine(float_outs[0], converted[0], mask)
    details = {"hidden_error": measures.logit_error(float_outs[0], converted[0])}
    checks = {"hidden_cosine": value}
    if len(float_outs) > 1:
        pooled = measures.masked_cosine(float_outs[1], converted[1])
        details["pooled_error"] = measures.logit_error(float_outs[1], converted[1])
        checks["pooled_cosine"] = pooled
    return {"measure": "hidden-state cosine (unmasked tokens)", "value": value, "checks": checks,
            "details": details}


def _distill_loss(model, temperature):
    import tf_keras as keras

    return [keras.losses.MeanSquaredError() for _ in model.outputs]


ENCODER = Task(
    name="encoder",
    summary="token ids (N, T) int32 + attention mask (N, T) int32 -> hidden states (N, T, D)"
            " [+ pooled (N, D)]",
    input_roles=("token_ids", "attention_mask"),
    output_roles=("hidden_states",),
    optional_outputs=("pooled",),
    has_classes=False,
    data_needs="x: int32 token ids (N, T) and an int32 attention mask (N, T), 1 = real token",
    calibration="the first N sequences of the train split; ids and mask stay int32",
    metrics=("hidden-state cosine",),
    checks=("hidden_cosine", "pooled_cosine"),
    measure=_measure,
    label_loss=None,
    distill_loss=_distill_loss,
)
