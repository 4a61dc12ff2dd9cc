"""Supervised training with a progress bar, seeded, keeping the best-validation weights."""
import numpy as np
import tf_keras as keras


class ProgressBar(keras.callbacks.Callback):
    """One tqdm bar over epochs, showing the latest loss and accuracies."""

    def __init__(self, epochs, desc="train"):
        super().__init__()
        self.epochs, self.desc, self.bar = epochs, desc, None

    def on_train_begin(self, logs=None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.epochs, desc=self.desc, unit="epoch", leave=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if "acc" in k or k == "loss"})
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


STRATEGIES = ("default", "mirrored", "multiworker")


def deterministic(seed=0):
    """Op determinism, one intra-op and one inter-op thread, and every seed set: the same seed
    then gives the same weights on every run of a machine. Threads can be set only before
    TensorFlow runs its first op; the returned dict says what is in force (for reports)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process: threads stay as they are
        pass
    keras.utils.set_random_seed(seed)
    return {"op_determinism": True, "seed": seed,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def configure_cpu_devices(count):
    """Split the CPU into ``count`` logical devices (data parallelism on one machine).

    Must run before TensorFlow initializes its devices, i.e. before any op runs.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(int(count))]
    )


def get_strategy(name="default"):
    """A tf.distribute strategy by name; ``multiworker`` reads the cluster from TF_CONFIG."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def compile_classifier(model, learning_rate=2e-3, weight_decay=0.05, jit_compile=True):
    """AdamW on logits with sparse labels (the ViT/DeiT training setup)."""
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
        jit_compile=jit_compile,
    )
    return model


def cosine_schedule(learning_rate, epochs, warmup=3):
    def schedule(epoch, _lr):
        if epoch < warmup:
            return learning_rate * (epoch + 1) / warmup
        t = (epoch - warmup) / max(epochs - warmup, 1)
        return learning_rate * 0.5 * (1 + np.cos(np.pi * t))

    return keras.callbacks.LearningRateScheduler(schedule)


def shifted_batches(x, y, batch_size, shift, seed):
    """A tf.data pipeline of shuffled batches, each image moved by up to ``shift`` pixels.

    Random translation is the augmentation small-data ViT training needs most
    (the model has no convolutional prior to give it translation invariance).
    """
    import tensorflow as tf

    shape = x.shape[1:]
    pad = [[shift, shift], [shift, shift], [0, 0]]

    def move(image, label):
        return tf.image.random_crop(tf.pad(image, pad), shape, seed=seed), label

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    if shift:  # one thread: a seeded random op gives the same crops run after run
        ds = ds.map(move)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit_classifier(model, dataset, *, epochs, batch_size=64, learning_rate=2e-3, seed=0,
                   progress=True, strategy=None, shift=0, jit_compile=True):
    """Train ``model`` on ``dataset.train``; the weights with the best val accuracy are kept.

    With a ``strategy``, build ``model`` inside ``strategy.scope()``; ``batch_size``
    is the global batch, split across the replicas. Under op determinism XLA has
    no deterministic MaxPool gradient: such models train without XLA.
    """
    import tensorflow as tf

    try:
        return _fit(model, dataset, epochs, batch_size, learning_rate, seed, progress, strategy,
                    shift, jit_compile)
    except tf.errors.UnimplementedError as exc:
        if not jit_compile or "deterministic" not in str(exc):
            raise
    # The failure comes when the train step is compiled, before any weight changes.
    return _fit(model, dataset, epochs, batch_size, learning_rate, seed, progress, strategy,
                shift, jit_compile=False)


def _fit(model, dataset, epochs, batch_size, learning_rate, seed, progress, strategy, shift,
         jit_compile):
    keras.utils.set_random_seed(seed)
    if strategy is None:
        compile_classifier(model, learning_rate=learning_rate, jit_compile=jit_compile)
    else:
        import tensorflow as tf

        # XLA clusters do not span replicas or workers: jit only on a single local replica.
        local = (jit_compile and strategy.num_replicas_in_sync == 1
                 and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy))
        with strategy.scope():
            compile_classifier(model, learning_rate=learning_rate, jit_compile=local)
    callbacks = [cosine_schedule(learning_rate, epochs), _KeepBest()]
    if progress:
        callbacks.append(ProgressBar(epochs))
    history = model.fit(
        shifted_batches(dataset.train.x, dataset.train.y, batch_size, shift, seed),
        validation_data=(dataset.val.x, dataset.val.y), validation_batch_size=256,
        epochs=epochs, verbose=0, callbacks=callbacks,
    )
    return history.history


class _KeepBest(keras.callbacks.Callback):
    """Restores the weights of the epoch with the highest validation accuracy."""

    def on_train_begin(self, logs=None):
        self.best, self.weights = -1.0, None

    def on_epoch_end(self, epoch, logs=None):
        acc = (logs or {}).get("val_acc", -1.0)
        if acc >= self.best:
            self.best, self.weights = acc, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)
