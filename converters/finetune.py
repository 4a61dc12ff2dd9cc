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

    ``x``: an array, or a list of arrays (one per input) for a model with several.
    ``y``: labels, or a teacher's outputs (a list for a model with several outputs);
    ``None`` when the data has no labels (then only distillation can train).
    """

    x: object
    y: object = None
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
    from edgezoo.zoo.tasks.losses import outputs_probabilities as ends_in_softmax

    return ends_in_softmax(model)


def classification_loss(model):
    from edgezoo.zoo.tasks.losses import sparse_classification

    return sparse_classification(model)


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
    from edgezoo.zoo.data.arrays import input_list, num_samples

    xs = tuple(a.astype(np.int32) if a.dtype.kind in "iub" else a.astype(np.float32)
               for a in input_list(data.x))
    y = tuple(data.y) if isinstance(data.y, (list, tuple)) else data.y
    ds = (tf.data.Dataset.from_tensor_slices((xs if len(xs) > 1 else xs[0], y))
          .shuffle(num_samples(xs), seed=seed).batch(batch_size))
    history = model.fit(ds, epochs=epochs, verbose=0, callbacks=cbs)
    return history.history
