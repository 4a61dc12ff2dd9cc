"""Training and evaluating a DETR on detection data: the set loss on every decoder layer
(auxiliary decoding losses), AdamW with gradient clipping as in the paper, and COCO mAP from
pycocotools on a held-out split."""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from edgezoo.zoo.set_loss import DETR_LOSS, dense_set_loss, match_in_graph, pad_targets

CLIP_NORM = 0.1  # the paper's gradient clipping (max norm)
WEIGHT_DECAY = 1e-4


def with_auxiliary_outputs(model):
    """Model -> Model: the same layers, returning ``[logits, boxes]`` of every decoder layer
    (the decoder LayerNorm and the shared heads applied to each), the last layer's last."""
    names = {layer.name for layer in model.layers}
    count = sum(1 for n in names if n.startswith("decoder") and n.endswith("_ffn_norm"))
    norm, heads = model.get_layer("decoder_norm"), ("logits", "box_mlp0", "box_mlp1", "boxes")
    if not all(h in names for h in heads):
        raise ValueError(f"{model.name} has no DETR heads ({', '.join(heads)})")
    outputs = []
    for i in range(count - 1):
        y = norm(model.get_layer(f"decoder{i}_ffn_norm").output)
        box = model.get_layer("boxes")(model.get_layer("box_mlp1")(model.get_layer("box_mlp0")(y)))
        outputs += [model.get_layer("logits")(y), box]
    return keras.Model(model.inputs, outputs + list(model.outputs), name=f"{model.name}_aux")


def auxiliary_trainer(model):
    """The model with every decoder layer's outputs: DETR's or Deformable DETR's heads."""
    if "decoder_norm" in {layer.name for layer in model.layers}:
        return with_auxiliary_outputs(model)
    from edgezoo.zoo.deformable_detr.train import with_auxiliary_outputs as deformable

    return deformable(model)


def _class_agnostic(objects):
    """Targets (..., 5) with every object labelled class 0 (the two-stage encoder's proposal
    loss, as the reference trains it); the caller's array is left untouched."""
    objects = np.array(objects, np.float32, copy=True)
    objects[..., 0] = 0
    return objects


class DetectorTrainer:
    """The set loss on every decoder layer, one compiled step a batch: the Hungarian matching
    runs inside the step as a NumPy op, so the forward pass, loss and update are one graph (an
    eager step is about ten times slower). The optimizer keeps its state across ``epoch`` calls,
    so a caller can train epoch by epoch (a wall-time budget) without restarting AdamW."""

    def __init__(self, model, *, batch_size=16, learning_rate=1e-4, loss=DETR_LOSS):
        self.model, self.batch_size, self.loss = model, batch_size, loss
        self.trainer = auxiliary_trainer(model)
        self.pairs = getattr(self.trainer, "class_agnostic_pairs", ())  # trained on class 0
        self.optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=WEIGHT_DECAY,
                                                global_clipnorm=CLIP_NORM)
        self._step = tf.function(self._train_step, reduce_retracing=True)

    def _train_step(self, x, padded, mask, agnostic):
        with tf.GradientTape() as tape:
            outputs = self.trainer(x, training=True)
            terms = []
            for k in range(0, len(outputs), 2):
                goal = agnostic if k // 2 in self.pairs else padded
                index = match_in_graph(outputs[k], outputs[k + 1], goal, mask, self.loss.costs)
                terms.append(dense_set_loss(outputs[k], outputs[k + 1], goal, mask, index,
                                            self.loss)[0])
            total = tf.add_n(terms)
        variables = self.trainer.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return total

    def epoch(self, split, seed=0):
        """One pass over ``split`` (``x`` images, ``y`` per-image (n, 5) targets) in a seeded
        order; returns the mean loss."""
        x, targets = np.asarray(split.x, np.float32), split.y  # ``y`` may be built on access
        slots = max([len(np.reshape(t, (-1, 5))) for t in targets] + [1])
        order = np.random.default_rng(seed).permutation(len(x))
        losses = []
        for start in range(0, len(x), self.batch_size):
            idx = order[start : start + self.batch_size]
            padded, mask = pad_targets([targets[i] for i in idx], slots)
            losses.append(float(self._step(x[idx], padded, mask, _class_agnostic(padded))))
        return float(np.mean(losses))


def fit_detector(model, split, *, epochs, batch_size=16, learning_rate=1e-4, seed=0,
                 loss=DETR_LOSS, progress=None):
    """Train ``model`` in place on ``split`` (``x`` images, ``y`` per-image (n, 5) targets) with
    the set loss on every decoder layer. Returns the mean loss of each epoch."""
    trainer = DetectorTrainer(model, batch_size=batch_size, learning_rate=learning_rate,
                              loss=loss)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        history.append(trainer.epoch(split, seed=int(rng.integers(2**31))))
        if progress:
            progress(epoch, history[-1])
    return history


def evaluate_detector(predict, split, scoring=None):
    """COCO mAP (pycocotools) of ``predict(x) -> (logits, boxes)`` on ``split``. ``scoring``
    None: softmax with a no-object logit (DETR) or sigmoid (Deformable DETR), read from the
    logits' width against the split's classes."""
    from edgezoo.base.errors import DataError
    from edgezoo.zoo.coco_eval import coco_map, detections_from_outputs

    logits, boxes = predict(np.asarray(split.x, np.float32))
    classes = len(split.coco["categories"])
    if scoring is None:
        widths = {classes + 1: "softmax", classes: "sigmoid"}
        if logits.shape[-1] not in widths:
            raise DataError(f"the detector predicts {logits.shape[-1]} logits a query; the data "
                            f"has {classes} classes (DETR predicts {classes + 1}, Deformable "
                            f"DETR {classes})")
        scoring = widths[logits.shape[-1]]
    ids = [im["id"] for im in split.coco["images"]]
    rows = detections_from_outputs(logits, boxes, ids, split.x.shape[1:3], scoring)
    return coco_map(split.coco, rows, split.x.shape[1:3])
