"""Serializable PQC and NoisyPQC: TFQ's layers with a ``get_config`` (tensorflow/quantum#899).

The circuit and observables live in the config as Cirq JSON, beside the symbol names in
weight order; each layer has its own seeded initializer.
"""
import cirq
import numpy as np
import tf_keras as keras

from edgezoo.quantum._tfq import require_tfq
from edgezoo.quantum.errors import QuantumConfigError
from edgezoo.quantum.layers.initializers import AngleInitializer
from edgezoo.quantum.layers.serialization import (CircuitJSON, check_repetitions, fresh_seed, is_noisy,
                                                  load_circuit, load_observables,
                                                  make_differentiator)

tfq = require_tfq()


def _check_symbols(layer, symbols, mirror):
    names = layer.symbol_names
    if symbols is not None and list(symbols) != names:
        raise QuantumConfigError(
            f"{layer.name}: the circuit's symbols {names} differ from the saved ones {list(symbols)}; "
            "the file was edited or written by an incompatible version"
        )
    unknown = sorted((set(mirror) | set(mirror.values())) - set(names))
    if unknown:
        raise QuantumConfigError(f"{layer.name}: mirror names symbols not in the circuit: {unknown}")


class _Trainable(CircuitJSON):
    """Mixin: config and read-out shared by the layers that own the circuit's parameters."""

    def _store(self, cj, oj, repetitions, diff_name, seed, minval, maxval, mirror):
        self._cj, self._oj, self._repetitions_arg = cj, oj, repetitions
        self._diff_name, self._seed, self._minval, self._maxval = diff_name, seed, minval, maxval
        self._mirror = dict(mirror)

    def parameter_values(self):
        """{symbol name: current value} as plain floats."""
        return {s: float(v) for s, v in zip(self.symbol_names, self.get_weights()[0])}

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config.update(circuit=self._cj, observables=self._oj, symbols=self.symbol_names,
                      repetitions=self._repetitions_arg, differentiator=self._diff_name,
                      seed=self._seed, minval=self._minval, maxval=self._maxval, mirror=dict(self._mirror))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)  # Keras would turn our clear errors into a generic TypeError


def _initializer(circuit, seed, minval, maxval, mirror):
    names = sorted(str(s) for s in cirq.parameter_names(circuit))
    if not names:
        raise QuantumConfigError("the model circuit has no sympy symbols to train; "
                                 "build it with an ansatz (e.g. hardware_efficient)")
    return AngleInitializer(seed, minval, maxval, names, mirror)


@keras.utils.register_keras_serializable(package="edgezoo.quantum")
class PQC(_Trainable, tfq.layers.PQC):
    """Expectations of ``observables`` after appending ``circuit`` (trainable) to the input circuits."""

    def __init__(self, circuit, observables, *, repetitions=None, differentiator=None, seed=None,
                 minval=0.0, maxval=2 * np.pi, mirror=None, symbols=None, **kwargs):
        circuit, cj = load_circuit(circuit)
        observables, oj = load_observables(observables)
        repetitions = check_repetitions(repetitions)
        if is_noisy(circuit):
            raise QuantumConfigError("PQC got a circuit with noise channels; use NoisyPQC (or "
                                     "noise=... in the model factories)")
        diff_name, diff = make_differentiator(differentiator, analytic=repetitions is None)
        seed = fresh_seed() if seed is None else int(seed)
        mirror = dict(mirror or {})
        super().__init__(circuit, observables, repetitions=repetitions, differentiator=diff,
                         initializer=_initializer(circuit, seed, minval, maxval, mirror), **kwargs)
        self._store(cj, oj, repetitions, diff_name, seed, float(minval), float(maxval), mirror)
        _check_symbols(self, symbols, mirror)


@keras.utils.register_keras_serializable(package="edgezoo.quantum")
class NoisyPQC(_Trainable, tfq.layers.NoisyPQC):
    """PQC on a circuit with noise channels, averaged over ``repetitions`` trajectories."""

    def __init__(self, circuit, observables, *, repetitions=100, sample_based=False, differentiator=None,
                 seed=None, minval=0.0, maxval=2 * np.pi, mirror=None, symbols=None, **kwargs):
        circuit, cj = load_circuit(circuit)
        observables, oj = load_observables(observables)
        repetitions = check_repetitions(repetitions, required=True)
        diff_name, diff = make_differentiator(differentiator, analytic=False, noisy=True)
        seed = fresh_seed() if seed is None else int(seed)
        mirror = dict(mirror or {})
        super().__init__(circuit, observables, repetitions=repetitions, sample_based=bool(sample_based),
                         differentiator=diff,
                         initializer=_initializer(circuit, seed, minval, maxval, mirror), **kwargs)
        self._store(cj, oj, repetitions, diff_name, seed, float(minval), float(maxval), mirror)
        self._sample_based_arg = bool(sample_based)
        _check_symbols(self, symbols, mirror)

    def get_config(self):
        return {**super().get_config(), "sample_based": self._sample_based_arg}
