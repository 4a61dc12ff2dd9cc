"""``causal_lm``: int32 token ids -> next-token logits (N, T, vocab); next-token top-1."""
import numpy as np

from edgezoo.zoo.tasks import measures
from edgezoo.zoo.tasks.base import Task


def _measure(float_outs, converted, inputs):
    a, b = np.asarray(float_outs[0]), np.asarray(converted[0])
    value = float((a.argmax(-1) == b.argmax(-1)).mean())
    return {"measure": "next-token top-1", "value": value,
            "checks": {"next_token_top1": value},
            "details": {"logit_error": measures.logit_error(a, b), "positions": int(a[..., 0].size)}}


def _label_loss(model):
    from edgezoo.zoo.tasks.losses import NextTokenLoss

    return [NextTokenLoss()]


def _distill_loss(model, temperature):
    from edgezoo.zoo.tasks.losses import SoftTargetLoss

    return [SoftTargetLoss(temperature)]


CAUSAL_LM = Task(
    name="causal_lm",
    summary="token ids (N, T) int32 -> next-token logits (N, T, vocab)",
    input_roles=("token_ids",),
    output_roles=("logits",),
    has_classes=False,
    data_needs="x: int32 token ids (N, T) within the vocabulary; labels are the ids themselves",
    calibration="the first N sequences of the train split; ids stay int32, never quantized",
    metrics=("perplexity", "next-token accuracy"),
    checks=("next_token_top1",),
    measure=_measure,
    label_loss=_label_loss,
    distill_loss=_distill_loss,
)
