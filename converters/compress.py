"""One recipe, the whole path: float Keras model -> compressed Keras model -> TFLite bytes.

``compress`` runs the steps a ``Recipe`` names, in a fixed order, and measures
what each promised on the bytes that ship (sparsity per layer, distinct values
per channel). It never runs a device runtime: the root pipeline
(``edgezoo.convert``) checks the result on the target.
"""
import dataclasses

import numpy as np
import tf_keras as keras

from edgezoo.converters.calibration import check_calibration
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

    @property
    def parsed(self):
        from edgezoo.converters.tflite_model import read_tflite

        return read_tflite(self.tflite)


def finetune_data(data):
    """A ``FinetuneData`` from what a user passes: FinetuneData, a zoo Dataset, (x, y) or x."""
    if data is None or isinstance(data, FinetuneData):
        return data
    if hasattr(data, "train") and hasattr(data.train, "x"):
        return FinetuneData.from_dataset(data)
    if isinstance(data, tuple) and len(data) == 2:
        return FinetuneData(np.asarray(data[0], np.float32), np.asarray(data[1]))
    return FinetuneData(np.asarray(data, np.float32))


def check_inputs(model, recipe, data, calibration, teacher):
    """Everything that can be refused, before any step runs."""
    if recipe.trains:
        require_graph_model(model, ", ".join(recipe.training_steps()))
    shape = tuple(model.input_shape[1:])
    if data is not None and tuple(np.shape(data.x)[1:]) != shape:
        raise DataError(f"data has shape {np.shape(data.x)}; the model takes "
                        f"(N, {', '.join(map(str, shape))})")
    if recipe.trains and (data is None or (not data.labelled and teacher is None)):
        raise RecipeError("the recipe fine-tunes the model but the data has no labels: add "
                          "--distill TEACHER (e.g. 'self', the float model) to train on a "
                          "teacher's soft targets")
    if calibration is None and recipe.quantize in ("int8", "int16x8"):
        raise RecipeError(f"--quantize {recipe.quantize} needs calibration samples")
    if teacher is not None:
        from edgezoo.converters.distill import check_teacher

        check_teacher(model, teacher)


def training_targets(model, data, teacher, recipe):
    """(FinetuneData, loss): labels, or a teacher's soft targets with the distillation loss."""
    if teacher is None:
        return data, None
    from edgezoo.converters.distill import SoftTargetLoss, teacher_logits
    from edgezoo.converters.finetune import outputs_probabilities

    loss = SoftTargetLoss(recipe.temperature, student_probabilities=outputs_probabilities(model))
    return FinetuneData(data.x, teacher_logits(teacher, data.x)), loss


def learning_rate(recipe, data):
    """The recipe's rate, or a cosine decay to 0 over one training step's optimizer steps."""
    if recipe.lr_schedule == "constant" or data is None:
        return recipe.learning_rate
    from edgezoo.converters.finetune import steps_per_epoch

    steps = recipe.finetune_epochs * steps_per_epoch(len(data.x), recipe.batch_size)
    return keras.optimizers.schedules.CosineDecay(recipe.learning_rate, decay_steps=steps)


def micro_rewrites(model, calibration):
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
    rewritten, applied = apply_micro_rewrites(model)
    if "gelu" in applied:
        lo, hi = gelu_range or (-12.0, 12.0)
        deviation = max_deviation(lo, hi)
        if deviation > MAX_DEVIATION:
            raise RecipeError(f"the GELU rewrite deviates {deviation:.2e} (> {MAX_DEVIATION}) over "
                              f"the calibration range [{lo:.3g}, {hi:.3g}]")
        info["gelu_rewrite"] = {"calibration_range": [lo, hi], "max_abs_deviation": deviation}
    return rewritten, applied, info


def compress(model, recipe=None, data=None, *, calibration=None, teacher=None, micro=False,
             progress=False):
    """Run ``recipe`` on ``model``; returns a ``CompressedModel``.

    ``data``: what the training steps fine-tune on (a zoo Dataset, a
    ``FinetuneData``, (x, y), or unlabelled x with a teacher). ``calibration``:
    representative samples for integer quantization (default: the first
    ``recipe.calibration_samples`` of ``data.x``). ``teacher``: the Keras model
    to distil from (``recipe.distill == "self"`` uses a copy of ``model``).
    ``micro``: the target runs TFLite Micro (rewrites, refusals, LUT compression).
    """
    from edgezoo.converters.quantize import convert
    from edgezoo.converters.tflite_weights import max_unique_per_channel, sparsity_by_layer

    recipe = recipe or Recipe()
    recipe.check_target(micro)
    data = finetune_data(data)
    if calibration is None and data is not None:
        calibration = data.x[: recipe.calibration_samples]
    if calibration is not None:
        calibration = np.asarray(calibration, np.float32)[: recipe.calibration_samples]
    if recipe.distill == "self" and teacher is None:
        teacher = keras.models.clone_model(model)
        teacher.set_weights(model.get_weights())
    elif recipe.distill and teacher is None:
        raise RecipeError(f"the recipe distils from {recipe.distill!r}: pass that model as teacher")
    check_inputs(model, recipe, data, calibration, teacher)
    warnings_found = (check_calibration(calibration, model.input_shape[1:],
                                        reference=None if data is None else data.x)
                      if calibration is not None else [])

    report = {"model": model.name, "params": int(model.count_params()), "quantize": recipe.quantize,
              "steps": {}, "warnings": warnings_found}
    train_data, loss = training_targets(model, data, teacher, recipe) if recipe.trains else (data, None)
    common = dict(batch_size=recipe.batch_size, learning_rate=learning_rate(recipe, data),
                  seed=recipe.seed, loss=loss, progress=progress)

    if "distill" in recipe.steps():
        from edgezoo.converters.finetune import finetune

        student = keras.models.clone_model(model)  # the caller's model stays as it was
        student.set_weights(model.get_weights())
        model = student
        finetune(model, train_data, epochs=recipe.finetune_epochs, desc="distill", **common)
        report["steps"]["distill"] = {"teacher": recipe.distill, "temperature": recipe.temperature,
                                      "epochs": recipe.finetune_epochs}
    if recipe.sparsity is not None:
        from edgezoo.converters import pruning

        if recipe.lottery_rounds:
            model, info = pruning.lottery_ticket(model, train_data, sparsity=recipe.sparsity,
                                                 rounds=recipe.lottery_rounds,
                                                 epochs_per_round=recipe.finetune_epochs, **common)
        else:
            model, info = pruning.prune(model, train_data, sparsity=recipe.prune,
                                        schedule=recipe.prune_schedule,
                                        two_of_four=recipe.prune_2of4, policy=recipe.prune_policy,
                                        epochs=recipe.finetune_epochs, **common)
        report["steps"]["prune"] = info
    if recipe.cluster is not None:
        from edgezoo.converters import clustering

        counts = recipe.cluster_counts()
        model, info = clustering.cluster(model, train_data,
                                         clusters=counts[None] if set(counts) == {None} else counts,
                                         epochs=recipe.finetune_epochs,
                                         preserve_sparsity=recipe.sparsity is not None, **common)
        report["steps"]["cluster"] = info
    applied = []
    if micro:  # after pruning and clustering (TFMOT clusters Dense, not its 1x1-conv form)
        model, applied, rewrite_info = micro_rewrites(model, calibration)
        report.update(rewrite_info)
    if recipe.qat:  # on the graph that is converted, so its fake-quant ranges are the ones used
        from edgezoo.converters import qat

        preserve = ("cluster" if recipe.cluster is not None
                    else "sparsity" if recipe.sparsity is not None else None)
        model = qat.quantize_aware_train(model, train_data, epochs=recipe.finetune_epochs,
                                         preserve=preserve, **common)
        report["steps"]["qat"] = {"preserve": preserve, "epochs": recipe.finetune_epochs}

    data_bytes = convert(model, recipe.quantize, calibration, micro=micro,
                         max_calibration=recipe.calibration_samples)
    report["weights"] = {"sparsity_by_layer": sparsity_by_layer(data_bytes),
                         "max_unique_per_channel": max_unique_per_channel(data_bytes)}
    report["uncompressed_tflite_bytes"] = len(data_bytes)
    uncompressed = data_bytes
    if "micro_compression" in recipe.steps() and micro:
        from edgezoo.converters.micro_compression import compress_tflite

        data_bytes, info = compress_tflite(data_bytes,
                                           max_unique=max(recipe.cluster_counts().values()))
        report["steps"]["micro_compression"] = info
    report["tflite_bytes"] = len(data_bytes)
    ran = [s for s in recipe.steps() if micro or s != "micro_compression"]
    report["recipe"] = {**recipe.as_dict(), "steps": ran, "rewrites": applied,
                        "calibration_samples": 0 if calibration is None else len(calibration),
                        "signature": "static batch 1"}
    return CompressedModel(model, data_bytes, report, uncompressed)
