"""Magnitude pruning with TFMOT, and the lottery-ticket procedure built on the same masks.

``prune`` wraps every layer TFMOT can prune in ``PruneLowMagnitude``, fine-tunes
with the shared helper, and strips the wrappers before returning, so
conversion never sees them. The schedule's mask-update frequency and end step
are derived from the fine-tuning length: TFMOT's default frequency of 100 steps
silently prunes nothing on a short run.

Which weights a layer has to prune, or why it has none, is read from the
support table (``edgezoo.converters.layer_support``) for the layers it has rows
for, and from what TFMOT itself knows (its registry of built-in layers, and a
custom layer's ``get_prunable_weights``) for the rest; the layers left dense,
with the reason, are reported, never silently skipped.
"""
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
# Not in TFMOT's public API: which weights its registry prunes, and its wrapper class.
from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
    PruneLowMagnitude,
)

from edgezoo.converters.finetune import (
    classification_loss,
    finetune,
    require_graph_model,
    steps_per_epoch,
)
from edgezoo.converters.layer_support import support_for
from edgezoo.base.errors import RecipeError
from edgezoo.zoo.data.arrays import num_samples

SCHEDULES = ("constant", "polynomial")
POLICIES = {"xnnpack": tfmot.sparsity.keras.PruneForLatencyOnXNNPack}

# Share of the pruning span over which masks are updated; the rest of the run
# trains with the final mask, recovering from the last pruning step.
RAMP_SHARE = 0.7
MAX_MASK_UPDATES = 10
TWO_OF_FOUR = (2, 4)

def pruning_schedule(kind, sparsity, steps, *, begin_step=0):
    """A TFMOT schedule whose last mask update is at ``sparsity``, well before ``steps`` ends.

    ``steps`` is the fine-tuning length in optimizer steps (epochs x steps per
    epoch); TFMOT numbers them 1..steps. Masks are updated every ``frequency``
    steps from ``begin_step`` to ``end_step`` ~ 70 % of the way, with
    ``frequency`` dividing that span, so the final update is exactly at
    ``end_step`` and the remaining steps recover with the final mask.
    ``polynomial`` ramps from 0 with Zhu & Gupta's cubic (arXiv 1710.01878);
    ``constant`` prunes to ``sparsity`` at every update.
    """
    if kind not in SCHEDULES:
        raise RecipeError(f"unknown pruning schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    _check_sparsity(sparsity)
    steps, begin_step = int(steps), int(begin_step)
    if begin_step < 0 or steps <= begin_step:
        raise RecipeError(f"pruning begins at step {begin_step} but fine-tuning has only {steps} "
                          "steps; begin earlier or train for more epochs")
    ramp = max(1, int(RAMP_SHARE * (steps - begin_step)))
    updates = min(MAX_MASK_UPDATES, ramp)
    frequency = ramp // updates
    end_step = begin_step + frequency * updates
    if kind == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(
            float(sparsity), begin_step=begin_step, end_step=end_step, frequency=frequency)
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=float(sparsity), begin_step=begin_step,
        end_step=end_step, frequency=frequency)


def prune(model, data, *, sparsity=None, schedule="polynomial", two_of_four=False, policy=None,
          epochs, batch_size=32, learning_rate=1e-4, seed=0, loss=None, progress=False):
    """Fine-tune a pruned copy of ``model``; returns (model without wrappers, info).

    ``two_of_four``: TFMOT's structured 2:4 sparsity (2 zeros in every 4
    consecutive input-channel weights; its masks are set once, at the first
    step). ``policy="xnnpack"``: prune only the 1x1 convolutions of a model that
    fits XNNPACK's sparse-inference pattern. ``model`` itself is not changed.
    ``info``: what was requested, the schedule's parameters, the pruned layers
    with their measured Keras sparsity, and the layers left dense with why.
    """
    if two_of_four:
        if sparsity not in (None, 0.5):
            raise RecipeError(f"two_of_four with sparsity={sparsity}: 2:4 is 50 % sparsity; "
                              "drop sparsity or set it to 0.5")
        sparsity = 0.5
    elif sparsity is None:
        raise RecipeError("pruning needs a target sparsity in (0, 1), or two_of_four=True")
    _check_sparsity(sparsity)
    if schedule not in SCHEDULES:
        raise RecipeError(f"unknown pruning schedule {schedule!r}; "
                          f"choose one of {', '.join(SCHEDULES)}")
    if policy is not None and policy not in POLICIES:
        raise RecipeError(f"unknown pruning policy {policy!r}; choose one of "
                          f"{', '.join(POLICIES)} (or none)")
    _check_trainable(model, data, epochs)

    steps = int(epochs) * steps_per_epoch(num_samples(data.x), batch_size)
    sched = pruning_schedule(schedule, sparsity, steps)
    loss = loss or classification_loss(model)
    net = _copy(model)
    rule = None
    if policy is not None:
        rule = POLICIES[policy]()
        try:
            rule.ensure_model_supports_pruning(net)
        except ValueError as e:
            raise RecipeError(f"model {model.name!r} does not fit the {policy} pruning policy: {e}. "
                              "XNNPACK's sparse inference needs ZeroPadding2D(1) + Conv2D 3x3 "
                              "stride 2 on a 3-channel input, then only 1x1 convolutions, "
                              "depthwise convolutions and activations up to a "
                              "GlobalAveragePooling2D(keepdims=True); prune without the policy "
                              "or rebuild the model") from None
    plan, skipped = _plan(net, two_of_four=two_of_four, rule=rule, policy=policy)
    if not plan:
        raise RecipeError(f"model {model.name!r} has no layer TFMOT can prune: "
                          + "; ".join(f"{n}: {r}" for n, r in skipped.items()))
    params = {"sparsity_m_by_n": TWO_OF_FOUR} if two_of_four else {}
    wrapped = _wrap(net, plan, lambda calls: _scaled(sched, calls), params)
    finetune(wrapped, data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
             seed=seed, loss=loss, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
             progress=progress, desc="prune")
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    info = {
        "requested": {"sparsity": float(sparsity), "schedule": schedule,
                      "two_of_four": bool(two_of_four), "policy": policy},
        "schedule": {"kind": schedule, "steps": steps, "begin_step": sched.begin_step,
                     "end_step": sched.end_step, "frequency": sched.frequency,
                     **({"note": "TFMOT sets 2:4 masks once, at step 1; frequency "
                                 "and end step are unused"} if two_of_four else {})},
        "pruned": keras_sparsity(stripped, plan),
        "not_pruned": skipped,
    }
    return stripped, info


def lottery_ticket(model, data, *, sparsity, rounds=3, epochs_per_round, rewind_epoch=0,
                   rewind_step=None, batch_size=32, learning_rate=1e-4, seed=0, loss=None,
                   progress=False, on_round_start=None):
    """Iterative magnitude pruning with rewinding; returns (model without wrappers, info).

    Train; then ``rounds`` times: prune the smallest surviving weights of each
    layer so that round r reaches sparsity ``1 - (1 - sparsity)^(r / rounds)``,
    rewind every weight to its value at the rewind point (``rewind_epoch``
    epochs or ``rewind_step`` steps into the first training; 0 is the original
    initialization, Frankle & Carbin arXiv 1803.03635; later points follow
    Frankle et al. arXiv 1912.05671), and retrain with the mask fixed. Pruned
    weights stay exactly zero. ``on_round_start(round, model, masks)`` is called
    after each rewind, before retraining (for inspection). ``info["rounds"]``
    holds each round's target and measured per-layer sparsity.
    """
    _check_sparsity(sparsity)
    if int(rounds) < 1:
        raise RecipeError(f"lottery ticket needs at least 1 pruning round, got rounds={rounds}")
    _check_trainable(model, data, epochs_per_round)
    per_epoch = steps_per_epoch(num_samples(data.x), batch_size)
    if rewind_step is not None and rewind_epoch:
        raise RecipeError(f"give rewind_epoch ({rewind_epoch}) or rewind_step ({rewind_step}), "
                          "not both")
    rewind = int(rewind_step) if rewind_step is not None else int(rewind_epoch) * per_epoch
    first = int(epochs_per_round) * per_epoch
    if not 0 <= rewind < first:
        raise RecipeError(f"rewind point at step {rewind} is outside the first training "
                          f"({first} steps, {epochs_per_round} epochs); rewind earlier")

    loss = loss or classification_loss(model)
    net = _copy(model)
    plan, skipped = _plan(net)
    if not plan:
        raise RecipeError(f"model {model.name!r} has no layer TFMOT can prune: "
                          + "; ".join(f"{n}: {r}" for n, r in skipped.items()))
    wrapped = _wrap(net, plan, lambda calls: _FixedMask(), {})
    wrappers = [l for l in wrapped.layers if isinstance(l, PruneLowMagnitude)]
    train = dict(batch_size=batch_size, learning_rate=learning_rate, seed=seed, loss=loss,
                 progress=progress)
    step = tfmot.sparsity.keras.UpdatePruningStep

    snapshot = _Snapshot(net, rewind)
    finetune(wrapped, data, epochs=epochs_per_round, callbacks=[step(), snapshot],
             desc="lottery 0", **train)
    history = []
    for r in range(1, int(rounds) + 1):
        target = 1.0 - (1.0 - float(sparsity)) ** (r / int(rounds))
        masks = {}
        for layer in wrappers:
            for weight, mask, _ in layer.pruning_vars:
                masks[weight.name] = _magnitude_mask(weight.numpy(), mask.numpy(), target)
        net.set_weights(snapshot.weights)
        for layer in wrappers:
            for weight, mask, _ in layer.pruning_vars:
                mask.assign(masks[weight.name])
                weight.assign(weight.numpy() * masks[weight.name])
        if on_round_start is not None:
            on_round_start(r, net, dict(masks))
        finetune(wrapped, data, epochs=epochs_per_round, callbacks=[step()],
                 desc=f"lottery {r}", **train)
        history.append({"round": r, "target": target,
                        "sparsity": keras_sparsity(net, plan)})
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    info = {
        "requested": {"sparsity": float(sparsity), "rounds": int(rounds),
                      "epochs_per_round": int(epochs_per_round), "rewind_step": rewind},
        "rounds": history,
        "pruned": keras_sparsity(stripped, plan),
        "not_pruned": skipped,
    }
    return stripped, info


def keras_sparsity(model, names=None):
    """{layer: share of exact zeros over its prunable weights}, for ``names`` or every prunable layer."""
    table = {}
    for layer in model.layers:
        if names is not None and layer.name not in names:
            continue
        weights = _prunable_weights(layer)
        if weights:
            values = [np.asarray(w.numpy()) for w in weights]
            table[layer.name] = float(sum(np.sum(v == 0) for v in values)
                                      / sum(v.size for v in values))
    return table


def _check_sparsity(sparsity):
    if sparsity is None or not 0.0 < float(sparsity) < 1.0:
        raise RecipeError(f"sparsity must lie in (0, 1) (the share of weights set to zero), "
                          f"got {sparsity}")


def _check_trainable(model, data, epochs):
    require_graph_model(model, "pruning")
    if not model.built:
        raise RecipeError(f"model {model.name!r} is not built; build it with an input shape")
    if getattr(data, "y", None) is None:
        raise RecipeError("pruning fine-tunes the model and this data has no labels or targets; "
                          "give labels, or soft targets from a teacher")
    if int(epochs) < 1:
        raise RecipeError(f"pruning needs at least 1 epoch of fine-tuning, got {epochs}")


def _copy(model):
    """A copy with the same weights (TFMOT wraps layer objects in place)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _prunable_weights(layer):
    """The weights TFMOT would prune in ``layer``: its support-table row, else its own list,
    else its registry entry."""
    if isinstance(layer, PruneLowMagnitude):
        layer = layer.layer
    row = support_for(layer)
    if row is not None:
        return [_attribute(layer, name) for name in row.prunable]
    if hasattr(layer, "get_prunable_weights"):
        return list(layer.get_prunable_weights())
    if PruneRegistry.supports(layer) and not PruneRegistry._is_rnn_layer(layer):
        return [_attribute(layer, name) for name in PruneRegistry._weight_names(layer)]
    return []


def _attribute(layer, dotted):
    for part in dotted.split("."):
        layer = getattr(layer, part)
    return layer


def _why_dense(layer, rule, policy, two_of_four):
    """Why ``layer`` is not pruned, or None when it is."""
    name = type(layer).__name__
    weights = _prunable_weights(layer)
    if not layer.weights:
        return "no weights"
    if not weights:
        row = support_for(layer)
        if row is not None:
            return row.prune_why
        if PruneRegistry.supports(layer):
            return f"TFMOT's registry lists no prunable weights for {name}"
        return (f"custom layer {name} has weights but no get_prunable_weights() "
                "(TFMOT's PrunableLayer interface); add one to prune it")
    if rule is not None and not rule.allow_pruning(layer):
        return f"the {policy} policy prunes only 1x1 Conv2D layers"
    if two_of_four:
        for w in weights:
            if w.shape.rank not in (2, 4) or int(w.shape[-2]) % TWO_OF_FOUR[1]:
                return (f"2:4 needs input channels in groups of 4; {w.name} has shape "
                        f"{tuple(w.shape)}")
    return None


def _plan(net, *, two_of_four=False, rule=None, policy=None):
    """{name: calls per step} of the layers to prune, and {name: reason} of the others."""
    plan, skipped = {}, {}
    for layer in net.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        why = _why_dense(layer, rule, policy, two_of_four)
        if why is None:
            plan[layer.name] = max(1, len(layer._inbound_nodes))
        elif why != "no weights":
            skipped[layer.name] = why
    return plan, skipped


def _wrap(net, plan, schedule_for, params):
    """``net`` with the planned layers in ``PruneLowMagnitude`` (sharing the layer objects)."""

    def wrap(layer):
        if layer.name not in plan:
            return layer
        return tfmot.sparsity.keras.prune_low_magnitude(
            layer, pruning_schedule=schedule_for(plan[layer.name]), **params)

    return keras.models.clone_model(net, clone_function=wrap)


def _scaled(schedule, calls):
    """A layer called ``calls`` times per step (shared weights) counts that many TFMOT steps."""
    if calls == 1:
        return schedule
    config = {**schedule.get_config()["config"]}
    for key in ("begin_step", "end_step", "frequency"):
        config[key] = config[key] * calls
    return type(schedule)(**config)


class _FixedMask(tfmot.sparsity.keras.PruningSchedule):
    """Never updates a mask: lottery-ticket rounds set the masks themselves."""

    def __call__(self, step):
        return tf.constant(False), tf.constant(0.0)

    def get_config(self):
        return {"class_name": type(self).__name__, "config": {}}


def _magnitude_mask(weights, mask, sparsity):
    """Keep the largest-magnitude surviving weights so that exactly ``sparsity`` of all are zero."""
    keep = int(round(weights.size * (1.0 - sparsity)))
    score = np.where(mask.reshape(-1) > 0, np.abs(weights.reshape(-1)), -1.0)
    order = np.argsort(-score, kind="stable")
    new = np.zeros(weights.size, weights.dtype)
    new[order[:keep]] = 1
    return (new * (mask.reshape(-1) > 0)).reshape(weights.shape)


class _Snapshot(keras.callbacks.Callback):
    """The model's weights after ``step`` optimizer steps (0: before training)."""

    def __init__(self, model, step):
        super().__init__()
        self.net, self.step, self.seen, self.weights = model, step, 0, None

    def on_train_begin(self, logs=None):
        if self.step == 0:
            self.weights = self.net.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            self.weights = self.net.get_weights()
