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


def compile_classifier(model, learning_rate=2e-3, weight_decay=0.05, label_smoothing=0.0):
    """AdamW on logits with sparse labels (the ViT/DeiT training setup)."""
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
        jit_compile=True,
    )
    return model


def cosine_schedule(learning_rate, epochs, warmup=3):
    def schedule(epoch, _lr):
        if epoch < warmup:
            return learning_rate * (epoch + 1) / warmup
        t = (epoch - warmup) / max(epochs - warmup, 1)
        return learning_rate * 0.5 * (1 + np.cos(np.pi * t))

    return keras.callbacks.LearningRateScheduler(schedule)


def fit_classifier(model, dataset, *, epochs, batch_size=64, learning_rate=2e-3, seed=0,
                   progress=True):
    """Train ``model`` on ``dataset.train``; the weights with the best val accuracy are kept."""
    keras.utils.set_random_seed(seed)
    compile_classifier(model, learning_rate=learning_rate)
    callbacks = [cosine_schedule(learning_rate, epochs), _KeepBest()]
    if progress:
        callbacks.append(ProgressBar(epochs))
    history = model.fit(
        dataset.train.x, dataset.train.y, validation_data=(dataset.val.x, dataset.val.y),
        epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks,
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
