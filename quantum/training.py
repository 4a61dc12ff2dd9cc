"""Compile and train a task's model, and its parameter-matched classical baseline beside it."""
import time

import numpy as np
import tf_keras as keras

from edgezoo.quantum.baseline import classical_baseline, trainable_params
from edgezoo.quantum.errors import QuantumConfigError
from edgezoo.quantum.losses import expectation_accuracy, expectation_bce, hinge_accuracy

LOSSES = ("hinge", "bce")


def compile_classifier(model, loss="hinge", learning_rate=0.02):
    """Adam with hinge loss + hinge_accuracy (labels ±1), or expectation BCE (labels 0/1)."""
    if loss not in LOSSES:
        raise QuantumConfigError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if loss == "hinge":
        model.compile(keras.optimizers.Adam(learning_rate), keras.losses.Hinge(), metrics=[hinge_accuracy])
    else:
        model.compile(keras.optimizers.Adam(learning_rate), expectation_bce, metrics=[expectation_accuracy])
    return model


def train_task(task, *, epochs=10, batch_size=32, seed=0, learning_rate=None, differentiator=None,
               repetitions=None, noise=None, baseline=True, verbose=0):
    """Train ``task``'s default model (and, with classical features, the baseline); return (model, report)."""
    if isinstance(task, str):
        from edgezoo.quantum.tasks import get_task

        task = get_task(task, seed=seed)
    if int(epochs) < 1 or int(batch_size) < 1:
        raise QuantumConfigError(f"epochs and batch_size must be ≥ 1, got {epochs}, {batch_size}")
    lr = task.learning_rate if learning_rate is None else learning_rate
    keras.utils.set_random_seed(seed)
    model = task.build(seed=seed, differentiator=differentiator, repetitions=repetitions, noise=noise)
    compile_classifier(model, "hinge", lr)
    start = time.perf_counter()
    history = model.fit(task.x_train, task.y_train, epochs=int(epochs), batch_size=int(batch_size),
                        validation_data=(task.x_val, task.y_val), verbose=verbose)
    seconds = time.perf_counter() - start
    val = model.evaluate(task.x_val, task.y_val, verbose=0, return_dict=True)
    report = {"task": task.name, "description": task.description, "qubits": task.n_qubits,
              "params": trainable_params(model), "epochs": int(epochs), "seed": seed,
              "train_samples": int(len(task.y_train)), "val_samples": int(len(task.y_val)),
              "val_accuracy": float(val["hinge_accuracy"]), "val_loss": float(val["loss"]),
              "train_seconds": round(seconds, 2),
              "history_val_accuracy": [float(v) for v in history.history["val_hinge_accuracy"]],
              "noise": None if noise is None else str(noise), "repetitions": repetitions,
              "differentiator": differentiator, "baseline": None}
    if baseline and task.features_train is not None:
        report["baseline"] = fit_baseline(task, report["params"], epochs, batch_size, seed)
    return model, report


BASELINE_MIN_EPOCHS = 200


def fit_baseline(task, n_params, epochs, batch_size, seed):
    """Train the parameter-matched Dense baseline on the same features, labels and split.

    It trains for at least 200 epochs (it is cheap), so a short quantum run is not compared
    with an unconverged classical model.
    """
    keras.utils.set_random_seed(seed)
    model = classical_baseline(task.features_train.shape[1], n_params, seed=seed)
    compile_classifier(model, "hinge", 0.02)
    epochs = max(int(epochs), BASELINE_MIN_EPOCHS)
    model.fit(task.features_train, task.y_train, epochs=epochs, batch_size=int(batch_size), verbose=0)
    val = model.evaluate(task.features_val, task.y_val, verbose=0, return_dict=True)
    return {"params": trainable_params(model), "val_accuracy": float(val["hinge_accuracy"]),
            "epochs": epochs, "layers": [l.units for l in model.layers if hasattr(l, "units")]}


def mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std())


def evaluate_under_noise(model, task, noise, repetitions=100, seed=0):
    """Validation accuracy of ``model``'s trained weights run on the noisy version of its circuit."""
    noisy = task.build(seed=seed, noise=noise, repetitions=repetitions)
    noisy.set_weights(model.get_weights())
    compile_classifier(noisy, "hinge")
    return float(noisy.evaluate(task.x_val, task.y_val, verbose=0, return_dict=True)["hinge_accuracy"])
