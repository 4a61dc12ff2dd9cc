"""Fine-tuning shared by every recipe step that trains (pruning, clustering, QAT, distillation).

Seeded and run with deterministic ops, so the same recipe, model and data give
the same weights (and so the same .tflite bytes) run after run.
"""
import dataclasses

import numpy as np
import tf_keras as keras


@dataclasses.dataclass(frozen=True)
class FinetuneData:
    """What a training step trains on.

    ``y``: integer labels, or soft targets (probabilities, shape = the model's
    output) when a teacher supplies them; ``None`` when the task has no labels
    (then only distillation can train).
    """

    x: np.ndarray
    y: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def labelled(self):
        return self.y is not None

    @classmethod
    def from_dataset(cls, dataset):
        """From a zoo ``Dataset`` (labels of -1 mean an unlabelled set, such as natural patches)."""
        labelled = bool(np.all(dataset.train.y >= 0))
        return cls(dataset.train.x, dataset.train.y if labelled else None,
                   dataset.val.x if labelled else None, dataset.val.y if labelled else None)


def require_graph_model(model, what):
    """TFMOT wraps and clones layer graphs: refuse (before any work) a model it cannot see."""
    from edgezoo.base.errors import RecipeError

    if not isinstance(model, keras.Model):
        raise RecipeError(f"{what} needs a tf_keras Model, got {type(model).__name__}")
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise RecipeError(f"{what}: model {model.name!r} ({type(model).__name__}) is a subclassed "
                          "Keras model whose layers TFMOT cannot see; rebuild it as a functional "
                          "(or Sequential) model")


def outputs_probabilities(model):
    """True when the model ends in a softmax (its outputs are probabilities, not logits)."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if last.__class__.__name__ == "Softmax":
        return True
    return getattr(activation, "__name__", "") == "softmax"


def classification_loss(model):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))


def steps_per_epoch(n, batch_size):
    return max(1, int(np.ceil(n / batch_size)))


def finetune(model, data, *, epochs, batch_size=32, learning_rate=1e-4, seed=0, loss=None,
             callbacks=(), progress=False, desc="finetune"):
    """Train ``model`` in place on ``data`` (Adam); returns the Keras history dict.

    ``loss`` defaults to sparse cross-entropy on labels (from logits unless the
    model ends in a softmax). TFMOT wrappers need their own callbacks
    (``UpdatePruningStep``); pass them in ``callbacks``.
    """
    import tensorflow as tf

    if data.y is None:
        raise ValueError("fine-tuning needs labels or a teacher's soft targets; this data has "
                         "neither (add a distillation step with a teacher)")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=loss or classification_loss(model), jit_compile=False)
    cbs = list(callbacks)
    if progress:
        from edgezoo.zoo.training import ProgressBar

        cbs.append(ProgressBar(epochs, desc=desc))
    ds = (tf.data.Dataset.from_tensor_slices((np.asarray(data.x, np.float32), data.y))
          .shuffle(len(data.x), seed=seed).batch(batch_size))
    history = model.fit(ds, epochs=epochs, verbose=0, callbacks=cbs)
    return history.history
