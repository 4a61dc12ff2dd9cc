"""One recipe, the whole path: float Keras model -> compressed Keras model -> TFLite bytes.

``compress`` runs the steps a ``Recipe`` names, in a fixed order, and measures
what each promised on the bytes that ship (sparsity per layer, distinct values
per channel). It never runs a device runtime: the root pipeline
(``edgezoo.convert``) checks the result on the target.
"""
import dataclasses

import numpy as np
import tf_keras as keras

from edgezoo.converters.finetune import FinetuneData, require_graph_model
from edgezoo.converters.recipe import Recipe
from edgezoo.base.errors import DataError, RecipeError


@dataclasses.dataclass
class CompressedModel:
    """What ``compress`` made: the Keras model that was converted, the .tflite bytes and a
    report of every step (recipe, per-step info, measurements)."""

    keras_model: object
    tflite: bytes
    report: dict
    uncompressed_tflite: bytes = b""  # before LUT compression: what LiteRT (no DECODE op) can run
    candidates: dict = dataclasses.field(default_factory=dict)  # {cpu form: bytes}: measure, choose
    dense_candidates: dict = dataclasses.field(default_factory=dict)  # {per_channel, per_tensor}

    @property
    def parsed(self):
        from edgezoo.converters.tflite_model import read_tflite

        return read_tflite(self.tflite)


def finetune_data(data):
    """A ``FinetuneData`` from what a user passes: FinetuneData, a zoo Dataset, (x, y) or x
    (x: an array, or a list of arrays for a model with several inputs)."""
    if data is None or isinstance(data, FinetuneData):
        return data
    if hasattr(data, "train") and hasattr(data.train, "x"):
        return FinetuneData.from_dataset(data)
    if isinstance(data, tuple) and len(data) == 2:
        return FinetuneData(data[0], data[1])
    return FinetuneData(data)


def check_inputs(model, recipe, data, calibration, teacher, task):
    """Everything that can be refused, before any step runs."""
    from edgezoo.zoo.data.arrays import input_list

    if recipe.trains:
        require_graph_model(model, ", ".join(recipe.training_steps()))
    if data is not None:
        xs = input_list(data.x, model.input_names)
        if len(xs) != len(model.inputs):
            raise DataError(f"data holds {len(xs)} input array(s); the model takes "
                            f"{len(model.inputs)} ({', '.join(model.input_names)})")
        for name, tensor, x in zip(model.input_names, model.inputs, xs):
            shape = tuple(tensor.shape[1:])
            if tuple(np.shape(x)[1:]) != shape:
                what = "data" if len(xs) == 1 else f"data for input {name!r}"
                raise DataError(f"{what} has shape {np.shape(x)}; the model takes "
                                f"(N, {', '.join(map(str, shape))})")
    if recipe.trains and (data is None or (not data.labelled and teacher is None)):
        raise RecipeError("the recipe fine-tunes the model but the data has no labels: add "
                          "--distill TEACHER (e.g. 'self', the float model) to train on a "
                          "teacher's soft targets")
    if recipe.trains and teacher is None:
        task.losses(model)  # a task that cannot train on labels says so now
    if calibration is None and recipe.quantize in ("int8", "int16x8"):
        raise RecipeError(f"--quantize {recipe.quantize} needs calibration samples")
    if teacher is not None:
        from edgezoo.converters.distill import check_teacher

        check_teacher(model, teacher)


def training_targets(model, data, teacher, recipe, task):
    """(FinetuneData, loss): labels with the task's loss (None: the classification default),
    or a teacher's outputs with the task's distillation losses."""
    if teacher is None:
        losses = None if task.name == "classification" else task.losses(model)
        return data, None if losses is None else _one_or_list(losses)
    from edgezoo.converters.distill import teacher_outputs

    losses = task.losses(model, teacher=True, temperature=recipe.temperature)
    return FinetuneData(data.x, teacher_outputs(teacher, data.x)), _one_or_list(losses)


def _one_or_list(losses):
    return losses[0] if len(losses) == 1 else list(losses)


def learning_rate(recipe, data):
    """The recipe's rate, or a cosine decay to 0 over one training step's optimizer steps."""
    if recipe.lr_schedule == "constant" or data is None:
        return recipe.learning_rate
    from edgezoo.converters.finetune import steps_per_epoch

    from edgezoo.zoo.data.arrays import num_samples

    steps = recipe.finetune_epochs * steps_per_epoch(num_samples(data.x), recipe.batch_size)
    return keras.optimizers.schedules.CosineDecay(recipe.learning_rate, decay_steps=steps)


def micro_rewrites(model, calibration, dense_form="conv1x1"):
    """Apply the TFLite Micro rewrites, checking the GELU one over the calibration range."""
    from edgezoo.converters.activations import activation_deviations
    from edgezoo.converters.gelu import MAX_DEVIATION, gelu_input_range, max_deviation
    from edgezoo.converters.rewrites import apply_micro_rewrites

    info = {}
    gelu_range = gelu_input_range(model, calibration) if calibration is not None else None
    if calibration is not None:
        try:
            deviations = activation_deviations(model, calibration)
        except AssertionError as exc:
            raise RecipeError(f"an activation rewrite is not faithful here: {exc}") from None
        if deviations:
            info["activation_rewrites"] = deviations
    from edgezoo.converters.dense_forms import DENSE_FORMS

    skip = () if DENSE_FORMS[dense_form].conv1x1 else ("dense_as_conv1x1",)
    rewritten, applied = apply_micro_rewrites(model, skip)
    if "gelu" in applied:
        lo, hi = gelu_range or (-12.0, 12.0)
        deviation = max_deviation(lo, hi)
        if deviation > MAX_DEVIATION:
            raise RecipeError(f"the GELU rewrite deviates {deviation:.2e} (> {MAX_DEVIATION}) over "
                              f"the calibration range [{lo:.3g}, {hi:.3g}]")
        info["gelu_rewrite"] = {"calibration_range": [lo, hi], "max_abs_deviation": deviation}
    return rewritten, applied, info


def compress(model, recipe=None, data=None, *, calibration=None, teacher=None, micro=False,
             progress=False, task=None):
    """Run ``recipe`` on ``model``; returns a ``CompressedModel``.

    ``data``: what the training steps fine-tune on (a zoo Dataset, a
    ``FinetuneData``, (x, y), or unlabelled x with a teacher; x is a list of arrays for a
    model with several inputs). ``calibration``: representative samples for integer
    quantization (default: the first ``recipe.calibration_samples`` of ``data.x``).
    ``teacher``: the Keras model to distil from (``recipe.distill == "self"`` uses a copy
    of ``model``). ``micro``: the target runs TFLite Micro (rewrites, refusals, LUT
    compression). ``task``: the model's task contract (default: ``zoo.tasks.task_of``),
    whose losses train every step. The steps are the rows of ``converters.steps.STEPS``.
    """
    from edgezoo.converters.calibration import check_model_calibration
    from edgezoo.converters.steps import TARGET_STEPS, StepContext, recipe_steps
    from edgezoo.zoo.data.arrays import take
    from edgezoo.zoo.tasks import calibration_inputs, task_of

    recipe = recipe or Recipe()
    recipe.check_target(micro)
    task = task_of(model, task)
    data = finetune_data(data)
    if calibration is None and data is not None:
        calibration = take(data.x, slice(0, recipe.calibration_samples))
    if calibration is not None:
        calibration = calibration_inputs(model, calibration, recipe.calibration_samples)
        calibration = calibration[0] if len(calibration) == 1 else calibration
    if recipe.distill == "self" and teacher is None:
        teacher = keras.models.clone_model(model)
        teacher.set_weights(model.get_weights())
    elif recipe.distill and teacher is None:
        raise RecipeError(f"the recipe distils from {recipe.distill!r}: pass that model as teacher")
    check_inputs(model, recipe, data, calibration, teacher, task)
    warnings_found = (check_model_calibration(model, calibration,
                                              reference=None if data is None else data.x)
                      if calibration is not None else [])

    report = {"model": model.name, "params": int(model.count_params()), "quantize": recipe.quantize,
              "task": task.name, "steps": {}, "warnings": warnings_found}
    train_data, loss = (training_targets(model, data, teacher, recipe, task) if recipe.trains
                        else (data, None))
    common = dict(batch_size=recipe.batch_size, learning_rate=learning_rate(recipe, data),
                  seed=recipe.seed, loss=loss, progress=progress)
    ctx = StepContext(model, recipe, micro, train_data, loss, common, calibration, report)
    ran = []
    for step in recipe_steps(recipe, micro):
        step.run(ctx)
        ran.append(step)
    report["tflite_bytes"] = len(ctx.tflite)
    report["recipe"] = {**recipe.as_dict(),
                        "steps": [s.title(recipe) for s in ran if s.name not in TARGET_STEPS],
                        "rewrites": ctx.rewrites,
                        "calibration_samples": 0 if calibration is None else _count(calibration),
                        "signature": "static batch 1"}
    return CompressedModel(ctx.model, ctx.tflite, report, ctx.uncompressed, ctx.candidates,
                           ctx.dense_candidates)


def _count(samples):
    from edgezoo.zoo.data.arrays import num_samples

    return num_samples(samples)
