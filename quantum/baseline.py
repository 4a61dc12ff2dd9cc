"""A fair classical baseline: a small Dense net with about the quantum model's trainable parameters.

Reported beside every quantum model, so an accuracy is never shown without what a
classical model of the same size does on the same features.
"""
import numpy as np
import tf_keras as keras

from edgezoo.quantum.errors import QuantumConfigError


def trainable_params(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def baseline_hidden_units(n_features, n_params, n_outputs=1):
    """Hidden width h of Dense(h, relu) → Dense(n_outputs) closest to ``n_params``; 0: linear."""
    linear = (n_features + 1) * n_outputs
    per_unit = n_features + 1 + n_outputs  # weights in, bias, weights out
    h = int(round((n_params - n_outputs) / per_unit))
    return h if h >= 1 and abs(h * per_unit + n_outputs - n_params) < abs(linear - n_params) else 0


def classical_baseline(n_features, n_params, n_outputs=1, activation="tanh", seed=0):
    """Dense(h, relu) → Dense(n_outputs, activation) with h matched to ``n_params`` (linear if tiny).

    ``activation='tanh'`` gives outputs in [-1, 1] like an expectation value (hinge loss).
    """
    if n_features < 1 or n_params < 1:
        raise QuantumConfigError(f"baseline needs n_features ≥ 1 and n_params ≥ 1, got {n_features}, {n_params}")
    h = baseline_hidden_units(n_features, n_params, n_outputs)
    init = keras.initializers.GlorotUniform(seed=seed)
    x = inp = keras.Input((n_features,), name="features")
    if h:
        x = keras.layers.Dense(h, activation="relu", kernel_initializer=init, name="hidden")(x)
    out = keras.layers.Dense(n_outputs, activation=activation,
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1), name="out")(x)
    return keras.Model(inp, out, name=f"baseline_{n_params}")
