"""Model factories: tf-keras classifiers built around the serializable quantum layers.

Circuit inputs are TFQ string tensors (``Encoder.to_tensor``); each quantum layer gets
seed ``seed + k`` for its k-th quantum layer, so two layers never start identical.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from edgezoo.quantum.ansatze import Ansatz, hardware_efficient_block, z_observables
from edgezoo.quantum.encoders import ReUploadingEncoder
from edgezoo.quantum.errors import QuantumConfigError
from edgezoo.quantum.layers import PQC, ControlledPQC, NoisyPQC, ReUploadingPQC, with_noise

DEFAULT_TRAJECTORIES = 100


def _check_ansatz(ansatz):
    if not isinstance(ansatz, Ansatz):
        raise QuantumConfigError(f"expected an Ansatz (e.g. from edgezoo.quantum.ansatze), got {type(ansatz).__name__}")
    return ansatz


def quantum_layer(ansatz, *, differentiator=None, repetitions=None, noise=None, seed=0, name=None):
    """PQC for a noiseless ansatz, NoisyPQC (``repetitions`` trajectories, default 100) with noise."""
    ansatz = _check_ansatz(ansatz)
    kw = dict(differentiator=differentiator, seed=seed, mirror=ansatz.mirror, name=name)
    if noise is None:
        return PQC(ansatz.circuit, ansatz.observables, repetitions=repetitions, **kw)
    return NoisyPQC(with_noise(ansatz.circuit, noise), ansatz.observables,
                    repetitions=DEFAULT_TRAJECTORIES if repetitions is None else repetitions, **kw)


def _circuit_input():
    return keras.Input((), dtype=tf.string, name="circuits")


def _head(x, hidden, n_outputs, activation, seed, prefix="head"):
    for k, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"{prefix}_{k}",
                               kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 100 + k))(x)
    return keras.layers.Dense(n_outputs, activation=activation, name=f"{prefix}_out",
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 200))(x)


def quantum_classifier(ansatz, *, differentiator=None, repetitions=None, noise=None, seed=0,
                       name="quantum_classifier"):
    """Circuits → quantum layer → expectations (in [-1, 1]; train with hinge loss on ±1 labels)."""
    inp = _circuit_input()
    out = quantum_layer(ansatz, differentiator=differentiator, repetitions=repetitions, noise=noise,
                        seed=seed, name="pqc")(inp)
    return keras.Model(inp, out, name=name)


def hybrid_classifier(ansatz, *, n_outputs=1, hidden=(), activation="tanh", differentiator=None,
                      repetitions=None, noise=None, seed=0, name="hybrid_classifier"):
    """Circuits → quantum layer → Dense head (``hidden`` relu layers, then ``n_outputs``)."""
    inp = _circuit_input()
    x = quantum_layer(ansatz, differentiator=differentiator, repetitions=repetitions, noise=noise,
                      seed=seed, name="pqc")(inp)
    return keras.Model(inp, _head(x, hidden, n_outputs, activation, seed), name=name)


def controlled_classifier(ansatz, n_features, *, hidden=(16,), differentiator=None, repetitions=None,
                          noise=None, seed=0, name="controlled_classifier"):
    """[circuits, features] → Dense controller → circuit parameters → ControlledPQC → expectations."""
    ansatz = _check_ansatz(ansatz)
    if noise is not None:
        raise QuantumConfigError("controlled_classifier has no noisy variant (TFQ's NoisyControlledPQC "
                                 "is not wrapped); use quantum_classifier or hybrid_classifier with noise")
    if int(n_features) < 1:
        raise QuantumConfigError(f"n_features must be ≥ 1, got {n_features}")
    circuits = _circuit_input()
    features = keras.Input((int(n_features),), name="features")
    x = features
    for k, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"controller_{k}",
                               kernel_initializer=keras.initializers.GlorotUniform(seed=seed + k))(x)
    x = keras.layers.Dense(len(ansatz.symbols), name="controller_out",
                           kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 50))(x)
    out = ControlledPQC(ansatz.circuit, ansatz.observables, repetitions=repetitions,
                        differentiator=differentiator, name="controlled_pqc")([circuits, x])
    return keras.Model([circuits, features], out, name=name)


def multi_filter_classifier(ansatze, *, n_filters=None, n_outputs=1, hidden=(), activation="tanh",
                            differentiator=None, repetitions=None, noise=None, seed=0,
                            name="multi_filter_classifier"):
    """Circuits → several quantum filters (own seeds) → concatenate → Dense head.

    ``ansatze`` is a list of Ansatz, or one Ansatz repeated ``n_filters`` times.
    """
    if isinstance(ansatze, Ansatz):
        if n_filters is None or int(n_filters) < 1:
            raise QuantumConfigError("give n_filters ≥ 1 with a single ansatz, or a list of ansatze")
        ansatze = [ansatze] * int(n_filters)
    ansatze = [_check_ansatz(a) for a in ansatze]
    if not ansatze:
        raise QuantumConfigError("multi_filter_classifier needs at least one ansatz")
    inp = _circuit_input()
    outs = [quantum_layer(a, differentiator=differentiator, repetitions=repetitions, noise=noise,
                          seed=seed + k, name=f"pqc_{k}")(inp) for k, a in enumerate(ansatze)]
    x = keras.layers.Concatenate(name="filters")(outs) if len(outs) > 1 else outs[0]
    return keras.Model(inp, _head(x, hidden, n_outputs, activation, seed), name=name)


def reuploading_classifier(encoder, *, rotations=("y", "z"), readout="all", n_outputs=1, hidden=(),
                           activation="tanh", initial_scale=np.pi, differentiator=None, repetitions=None,
                           seed=0, name="reuploading_classifier"):
    """Features → ReUploadingPQC (encoder layers interleaved with hardware-efficient blocks) → Dense head."""
    if not isinstance(encoder, ReUploadingEncoder):
        raise QuantumConfigError(f"reuploading_classifier needs a ReUploadingEncoder, got {type(encoder).__name__}")
    circuit = encoder.build(lambda l: hardware_efficient_block(encoder.qubits, l, rotations))
    inp = keras.Input((encoder.n_qubits,), name="features")
    x = ReUploadingPQC(circuit, z_observables(encoder.qubits, readout), encoder.input_symbols(),
                       initial_scale=initial_scale, repetitions=repetitions, differentiator=differentiator,
                       seed=seed, name="reuploading_pqc")(inp)
    return keras.Model(inp, _head(x, hidden, n_outputs, activation, seed), name=name)
