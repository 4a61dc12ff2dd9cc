"""Data re-uploading layer: classical features in, λ·x fed to the encoding symbols, θ trained."""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from edgezoo.quantum._tfq import require_tfq
from edgezoo.quantum.errors import QuantumConfigError, QubitCountError
from edgezoo.quantum.layers.initializers import AngleInitializer
from edgezoo.quantum.layers.serialization import (check_repetitions, fresh_seed, load_circuit,
                                                  load_observables, make_differentiator)

tfq = require_tfq()


@keras.utils.register_keras_serializable(package="edgezoo.quantum")
class ReUploadingPQC(keras.layers.Layer):
    """``input_symbols[l][i]`` gets ``scales[l, i] · x_i``; the other symbols are trainable angles.

    ``scales`` start at ``initial_scale`` (π maps [-1, 1] to a full turn).
    """

    def __init__(self, circuit, observables, input_symbols, *, initial_scale=np.pi, repetitions=None,
                 differentiator=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        import cirq

        self._circuit, self._cj = load_circuit(circuit)
        self._observables, self._oj = load_observables(observables)
        self.input_symbols = [list(map(str, layer)) for layer in input_symbols]
        widths = {len(layer) for layer in self.input_symbols}
        if not self.input_symbols or len(widths) != 1:
            raise QuantumConfigError("input_symbols must be a non-empty list of equally long lists of names")
        names = {str(s) for s in cirq.parameter_names(self._circuit)}
        flat = [s for layer in self.input_symbols for s in layer]
        missing = sorted(set(flat) - names)
        if missing:
            raise QuantumConfigError(f"input symbols not in the circuit: {missing}")
        self.weight_symbols = sorted(names - set(flat))
        if not self.weight_symbols:
            raise QuantumConfigError("the circuit has no trainable symbols besides the inputs")
        self.repetitions = check_repetitions(repetitions)
        self._diff_name, diff = make_differentiator(differentiator, analytic=self.repetitions is None)
        self.initial_scale = float(initial_scale)
        self.seed = fresh_seed() if seed is None else int(seed)
        self._expectation = (tfq.layers.Expectation(differentiator=diff) if self.repetitions is None
                             else tfq.layers.SampledExpectation(differentiator=diff))
        self._circuit_t = tfq.convert_to_tensor([self._circuit])
        self._ops_t = tfq.convert_to_tensor([self._observables])
        self._names_t = tf.constant(flat + self.weight_symbols)
        n_layers, width = len(self.input_symbols), widths.pop()
        self.scales = self.add_weight("scales", shape=(n_layers, width),
                                      initializer=keras.initializers.Constant(self.initial_scale))
        self.parameters = self.add_weight(
            "parameters", shape=(len(self.weight_symbols),),
            initializer=AngleInitializer(self.seed, symbols=self.weight_symbols))

    def _check_width(self, width):
        if width is not None and width != self.scales.shape[1]:
            raise QubitCountError(f"{self.name} encodes {self.scales.shape[1]} features per layer, "
                                  f"but its input has {width}")

    def build(self, input_shape):
        self._check_width(input_shape[-1])
        super().build(input_shape)

    def call(self, x):
        self._check_width(x.shape[-1])
        batch = tf.shape(x)[0]
        encoded = tf.reshape(self.scales[None] * tf.cast(x, tf.float32)[:, None, :], [batch, -1])
        values = tf.concat([encoded, tf.tile(self.parameters[None], [batch, 1])], axis=1)
        kw = dict(symbol_names=self._names_t, symbol_values=values,
                  operators=tf.tile(self._ops_t, [batch, 1]))
        if self.repetitions is not None:
            kw["repetitions"] = tf.fill([batch, len(self._observables)], self.repetitions)
        return self._expectation(tf.tile(self._circuit_t, [batch]), **kw)

    @property
    def symbol_names(self):
        return list(self.weight_symbols)

    @property
    def circuit(self):
        return self._circuit

    @property
    def observables(self):
        return list(self._observables)

    def parameter_values(self):
        return {s: float(v) for s, v in zip(self.weight_symbols, self.parameters.numpy())}

    def get_config(self):
        config = super().get_config()
        config.update(circuit=self._cj, observables=self._oj,
                      input_symbols=[list(row) for row in self.input_symbols],
                      initial_scale=self.initial_scale, repetitions=self.repetitions,
                      differentiator=self._diff_name, seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)  # Keras would turn our clear errors into a generic TypeError
