"""The task contract: what a task's model takes and gives, how it trains, how int8 is judged.

One ``Task`` per task (``classification``, ``detection``, ``causal_lm``, ``encoder``). Every
layer that used to assume "one image in, one class vector out" asks the task instead: the
compression steps take their losses from it, calibration draws its samples through it (token
ids stay int32), and the verification path compares every named output with its measure.
"""
import dataclasses
from typing import Callable

import numpy as np

from edgezoo.base.errors import DataError, RecipeError
from edgezoo.zoo.tasks.spec import keras_specs


@dataclasses.dataclass(frozen=True)
class Task:
    """A task contract. ``input_roles`` / ``output_roles``: the role of each named tensor, in
    the model's order (``optional_outputs`` may follow). ``checks``: the agreement gates it
    produces (names of ``Thresholds`` fields). ``measure(float_outs, converted, inputs)`` ->
    ``{"value": ..., "checks": {gate: value}, "details": {...}}`` over lists of arrays."""

    name: str
    summary: str
    input_roles: tuple
    output_roles: tuple
    has_classes: bool
    data_needs: str
    calibration: str
    metrics: tuple
    checks: tuple
    measure: Callable
    label_loss: Callable = None  # model -> a loss per output, trained on labels (None: no labels)
    distill_loss: Callable = None  # (model, temperature) -> a loss per output, on teacher outputs
    optional_outputs: tuple = ()
    uninformative: Callable = None  # (float outputs, thresholds) -> reasons, beyond NaN/constant
    no_label_loss: str = "it has no labels of its own"  # why label_loss is None
    check_outputs: Callable = None  # (output specs) -> None, raising what the task needs of them

    def inputs(self, model):
        """The model's inputs as TensorSpecs with this task's roles."""
        return keras_specs(model, self.input_roles, "inputs")

    def outputs(self, model):
        n = len(model.outputs)
        roles = (self.output_roles + self.optional_outputs)[:n]
        if n < len(self.output_roles) or n != len(roles):
            raise DataError(f"model {model.name!r} has {n} output(s); a {self.name} model has "
                            f"{', '.join(self.output_roles)}"
                            + (f" (and optionally {', '.join(self.optional_outputs)})"
                               if self.optional_outputs else ""))
        return keras_specs(model, roles, "outputs")

    def check_model(self, model):
        """Refuse a model whose inputs or outputs do not have this task's shape (named)."""
        for spec in self.inputs(model):
            kind = np.dtype(spec.dtype).kind
            if spec.role in ("token_ids", "attention_mask") and kind not in "iu":
                raise DataError(f"{self.name}: input {spec.name!r} ({spec.role}) must be integer "
                                f"(int32), not {spec.dtype}")
            if spec.role == "image" and kind != "f":
                raise DataError(f"{self.name}: input {spec.name!r} must be float, not {spec.dtype}")
        outputs = self.outputs(model)
        if self.check_outputs is not None:
            self.check_outputs(outputs)
        return True

    def losses(self, model, teacher=False, temperature=4.0):
        """A Keras loss per output: on a teacher's outputs (distillation) or on labels."""
        if teacher:
            return self.distill_loss(model, temperature)
        if self.label_loss is None:
            raise RecipeError(f"a {self.name} model cannot be fine-tuned on labels here "
                              f"({self.no_label_loss}): add --distill TEACHER (e.g. 'self', the "
                              "float model) to train on the teacher's outputs")
        return self.label_loss(model)

    def describe(self, model=None):
        """What the contract says, for reports and ``edgezoo list --tasks``."""
        info = {"task": self.name, "summary": self.summary, "input_roles": list(self.input_roles),
                "output_roles": list(self.output_roles), "has_classes": self.has_classes,
                "data_needs": self.data_needs, "calibration": self.calibration,
                "metrics": list(self.metrics), "agreement_checks": list(self.checks)}
        if self.optional_outputs:
            info["optional_outputs"] = list(self.optional_outputs)
        if model is not None:
            info["inputs"] = [s.as_dict() for s in self.inputs(model)]
            info["outputs"] = [s.as_dict() for s in self.outputs(model)]
        return info


def calibration_inputs(model, arrays, limit):
    """The first ``limit`` samples of every input, each in its model dtype: float inputs as
    float32 (quantized by the converter), integer inputs (token ids, masks) as int32 —
    they are never quantized, so they must arrive as whole numbers."""
    arrays = list(arrays) if isinstance(arrays, (list, tuple)) else [arrays]
    out = []
    for tensor, a in zip(model.inputs or [None] * len(arrays), arrays):  # None: subclassed
        a = np.asarray(a)[:limit]
        if tensor is not None and np.dtype(tensor.dtype.name).kind in "iub":
            if a.dtype.kind == "f" and not np.all(np.mod(a, 1) == 0):
                raise DataError(f"input {tensor.name!r} takes integers (token ids); the data "
                                "holds fractions")
            out.append(a.astype(np.int32))
        else:
            out.append(a.astype(np.float32))
    return out
