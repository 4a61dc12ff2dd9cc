"""Serializable ControlledPQC: circuit parameters come from another layer (a Dense controller)."""
import tf_keras as keras

from edgezoo.quantum._tfq import require_tfq
from edgezoo.quantum.errors import QuantumConfigError
from edgezoo.quantum.layers.serialization import (CircuitJSON, check_repetitions, is_noisy, load_circuit,
                                                  load_observables, make_differentiator)

tfq = require_tfq()


@keras.utils.register_keras_serializable(package="edgezoo.quantum")
class ControlledPQC(CircuitJSON, tfq.layers.ControlledPQC):
    """Inputs [circuits, values]: ``values[:, k]`` drives ``symbol_names[k]`` (sorted)."""

    def __init__(self, circuit, observables, *, repetitions=None, differentiator=None, symbols=None,
                 **kwargs):
        circuit, cj = load_circuit(circuit)
        observables, oj = load_observables(observables)
        repetitions = check_repetitions(repetitions)
        if is_noisy(circuit):
            raise QuantumConfigError("ControlledPQC cannot simulate noise channels; build it without noise")
        diff_name, diff = make_differentiator(differentiator, analytic=repetitions is None)
        super().__init__(circuit, observables, repetitions=repetitions, differentiator=diff, **kwargs)
        self._cj, self._oj, self._repetitions_arg, self._diff_name = cj, oj, repetitions, diff_name
        if symbols is not None and list(symbols) != self.symbol_names:
            raise QuantumConfigError(f"{self.name}: the circuit's symbols {self.symbol_names} differ "
                                     f"from the saved ones {list(symbols)}")

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config.update(circuit=self._cj, observables=self._oj, symbols=self.symbol_names,
                      repetitions=self._repetitions_arg, differentiator=self._diff_name)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)  # Keras would turn our clear errors into a generic TypeError
