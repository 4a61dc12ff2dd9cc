"""The compression steps as one table: ``Recipe.steps()`` lists and ``compress`` runs the rows
whose ``applies`` holds, in table order. Every training step trains on the task's data with
the task's losses (``edgezoo.zoo.tasks``), so a detector or a language model is pruned,
clustered and distilled like a classifier.
"""
import dataclasses
from typing import Callable

import tf_keras as keras


@dataclasses.dataclass
class StepContext:
    """What the steps pass along: the model as it is now, the data and losses they train with,
    the calibration samples, the report they fill, and the converted bytes."""

    model: object
    recipe: object
    micro: bool
    train_data: object
    loss: object
    common: dict
    calibration: object
    report: dict
    rewrites: list = dataclasses.field(default_factory=list)
    tflite: bytes = b""
    uncompressed: bytes = b""
    candidates: dict = dataclasses.field(default_factory=dict)  # {cpu form: bytes} to measure
    dense_candidates: dict = dataclasses.field(default_factory=dict)  # per-layer Dense forms


@dataclasses.dataclass(frozen=True)
class Step:
    """One row: ``applies(recipe, micro)`` (micro None: the target is not known yet) and
    ``run(context)``; ``label(recipe)`` is the name recipes and reports show."""

    name: str
    applies: Callable
    run: Callable
    trains: bool = False
    label: Callable = None

    def title(self, recipe):
        return self.label(recipe) if self.label else self.name


def _distill(ctx):
    from edgezoo.converters.finetune import finetune

    student = keras.models.clone_model(ctx.model)  # the caller's model stays as it was
    student.set_weights(ctx.model.get_weights())
    ctx.model = student
    finetune(ctx.model, ctx.train_data, epochs=ctx.recipe.finetune_epochs, desc="distill",
             **ctx.common)
    ctx.report["steps"]["distill"] = {"teacher": ctx.recipe.distill,
                                      "temperature": ctx.recipe.temperature,
                                      "epochs": ctx.recipe.finetune_epochs}


def _prune(ctx):
    from edgezoo.converters import pruning

    r = ctx.recipe
    ctx.model, ctx.report["steps"]["prune"] = pruning.prune(
        ctx.model, ctx.train_data, sparsity=r.prune, schedule=r.prune_schedule,
        two_of_four=r.prune_2of4, policy=r.prune_policy, epochs=r.finetune_epochs, **ctx.common)


def _lottery_ticket(ctx):
    from edgezoo.converters import pruning

    r = ctx.recipe
    ctx.model, ctx.report["steps"]["prune"] = pruning.lottery_ticket(
        ctx.model, ctx.train_data, sparsity=r.sparsity, rounds=r.lottery_rounds,
        epochs_per_round=r.finetune_epochs, **ctx.common)


def _cluster(ctx):
    from edgezoo.converters import clustering

    counts = ctx.recipe.cluster_counts()
    ctx.model, ctx.report["steps"]["cluster"] = clustering.cluster(
        ctx.model, ctx.train_data, clusters=counts[None] if set(counts) == {None} else counts,
        epochs=ctx.recipe.finetune_epochs, preserve_sparsity=ctx.recipe.sparsity is not None,
        **ctx.common)


def _micro_rewrites(ctx):
    from edgezoo.converters.compress import micro_rewrites

    ctx.model, ctx.rewrites, info = micro_rewrites(ctx.model, ctx.calibration,
                                                   ctx.recipe.dense_form)
    ctx.report.update(info)


def _cpu_rewrites(ctx):
    from edgezoo.converters.cpu_layernorm import layernorm_for_xnnpack

    rewritten = layernorm_for_xnnpack(ctx.model)
    if rewritten is not ctx.model:
        ctx.model = rewritten
        ctx.rewrites.append("layernorm_for_xnnpack")


def _qat(ctx):
    from edgezoo.converters import qat

    r = ctx.recipe
    preserve = "cluster" if r.cluster is not None else "sparsity" if r.sparsity is not None else None
    ctx.model = qat.quantize_aware_train(ctx.model, ctx.train_data, epochs=r.finetune_epochs,
                                         preserve=preserve, **ctx.common)
    ctx.report["steps"]["qat"] = {"preserve": preserve, "epochs": r.finetune_epochs}


def _ptq_weights(ctx):
    from edgezoo.converters.dense_forms import DENSE_FORMS
    from edgezoo.converters.ptq_weights import round_weights

    r = ctx.recipe
    ctx.model, ctx.report["steps"]["ptq_weights"] = round_weights(
        ctx.model, ctx.calibration, adaptive=r.adaround, bias_correction=r.bias_correction,
        clusters=r.cluster_counts() if r.clusters_post_training else None,
        cluster_fit=r.cluster_fit, gptq_damping=r.gptq_damping,
        per_tensor_dense=DENSE_FORMS[r.dense_form].per_tensor, limit=r.calibration_samples,
        seed=r.seed)


def _quantize(ctx):
    from edgezoo.converters.quantize import convert
    from edgezoo.converters.tflite_weights import weights_report

    from edgezoo.converters.dense_forms import DENSE_FORMS

    ranges = {}
    if cpu_forms_apply(ctx.recipe, ctx.micro):  # a LiteRT board's int8: its CPU forms
        from edgezoo.converters.cpu_forms import candidate_forms, convert_forms

        forms = candidate_forms(ctx.recipe.cpu_form)
        converted = convert_forms(ctx.model, ctx.calibration, forms,
                                  ctx.recipe.calibration_samples, ctx.recipe.ranges, ranges)
        # until one is chosen by measurement on the board's runtime (edgezoo.cpu_form): full int8
        ctx.tflite = ctx.uncompressed = converted.get("full_int8", converted[forms[0]])
        if len(forms) > 1:
            ctx.candidates = converted
        else:
            ctx.report["cpu_form"] = {"chosen": forms[0], "rule": "named in the recipe"}
    else:
        if DENSE_FORMS[ctx.recipe.dense_form].per_layer and ctx.micro:  # chosen on the board
            ctx.dense_candidates = {"per_tensor": convert(
                ctx.model, ctx.recipe.quantize, ctx.calibration, micro=ctx.micro,
                max_calibration=ctx.recipe.calibration_samples, per_tensor_dense=True,
                ranges=ctx.recipe.ranges)}
        ctx.tflite = ctx.uncompressed = convert(
            ctx.model, ctx.recipe.quantize, ctx.calibration, micro=ctx.micro,
            max_calibration=ctx.recipe.calibration_samples,
            per_tensor_dense=DENSE_FORMS[ctx.recipe.dense_form].per_tensor,
            ranges=ctx.recipe.ranges, info=ranges)
    if ctx.dense_candidates:
        ctx.dense_candidates["per_channel"] = ctx.tflite
    if ranges:
        ctx.report["steps"]["ranges"] = ranges
    ctx.report["weights"] = weights_report(ctx.tflite)
    ctx.report["uncompressed_tflite_bytes"] = len(ctx.tflite)


def cpu_forms_apply(recipe, micro):
    """int8 for a LiteRT board (or a form named for LiteRT): the rows of converters.cpu_forms."""
    return (micro is False and recipe.quantize == "int8"
            and (bool(recipe.target) or recipe.cpu_form != "auto"))


def _micro_compression(ctx):
    from edgezoo.converters.micro_compression import compress_tflite

    ctx.tflite, ctx.report["steps"]["micro_compression"] = compress_tflite(
        ctx.tflite, max_unique=max(ctx.recipe.cluster_counts().values()))


def _distills_alone(r):
    """A teacher with no other training step: distillation is its own step (otherwise the
    teacher's outputs train those steps)."""
    return r.distill is not None and not (r.sparsity is not None or r.clusters_by_training or r.qat)


def _lut_compresses(r):
    from edgezoo.converters.recipe import MAX_LUT_CLUSTERS

    return (r.cluster is not None and r.micro_compression and r.quantize == "int8"
            and max(r.cluster_counts().values()) <= MAX_LUT_CLUSTERS)


STEPS = (
    Step("distill", lambda r, micro: _distills_alone(r), _distill, trains=True),
    Step("prune", lambda r, micro: r.sparsity is not None and not r.lottery_rounds, _prune,
         trains=True),
    Step("lottery_ticket", lambda r, micro: r.sparsity is not None and bool(r.lottery_rounds),
         _lottery_ticket, trains=True),
    Step("cluster", lambda r, micro: r.clusters_by_training, _cluster, trains=True),
    # TFLite Micro rewrites: after pruning and clustering (TFMOT clusters Dense, not its 1x1-conv
    # form), before QAT (its fake-quant ranges must be those of the graph that is converted)
    Step("micro_rewrites", lambda r, micro: micro is True, _micro_rewrites),
    # a LiteRT (CPU) board's int8: LayerNorm in the form XNNPACK delegates (converters.cpu_layernorm)
    # opt-in: on a trained ViT it cost agreement (0.997 -> 0.986 with the float model)
    Step("cpu_rewrites", lambda r, micro: micro is False and r.xnnpack_layernorm
         and r.quantize == "int8", _cpu_rewrites),
    Step("qat", lambda r, micro: bool(r.qat), _qat, trains=True),
    # post-training weight surgery: on the graph that is converted, after every training step
    # (clusters fitted on calibration inputs included)
    Step("ptq_weights", lambda r, micro: r.adaround or r.bias_correction
         or r.clusters_post_training, _ptq_weights,
         label=lambda r: "+".join(n for n, on in ((f"cluster ({r.cluster_fit})",
                                                   r.clusters_post_training),
                                                  ("adaround", r.adaround),
                                                  ("bias_correction", r.bias_correction)) if on)),
    Step("quantize", lambda r, micro: True, _quantize, label=lambda r: f"quantize:{r.quantize}"
         + (f" ({r.ranges} ranges)" if r.ranges != "minmax" else "")),
    Step("micro_compression", lambda r, micro: micro is not False and _lut_compresses(r),
         _micro_compression),
)
# Rows that belong to the target, not to the recipe: not listed among a recipe's steps.
TARGET_STEPS = ("micro_rewrites", "cpu_rewrites")


def recipe_steps(recipe, micro=None):
    """The rows of ``STEPS`` that run for ``recipe`` (on a micro target: ``micro``)."""
    return [s for s in STEPS if s.applies(recipe, micro)]
