"""Shared by the serializable quantum layers: Cirq JSON in configs, differentiators by name."""
import cirq
import numpy as np

from edgezoo.quantum._tfq import require_tfq
from edgezoo.quantum.errors import QuantumConfigError

DIFFERENTIATORS = ("adjoint", "parameter_shift", "finite_difference")


def load_circuit(circuit):
    """(cirq.Circuit, its Cirq JSON) from a circuit or Cirq JSON text."""
    if isinstance(circuit, str):
        circuit = cirq.read_json(json_text=circuit)
    if not isinstance(circuit, cirq.Circuit):
        raise QuantumConfigError(f"expected a cirq.Circuit (or its Cirq JSON), got {type(circuit).__name__}")
    return circuit, cirq.to_json(circuit)


class CircuitJSON:
    """Mixin for TFQ layers that keep their circuit (``_cj``) and observables (``_oj``) as
    Cirq JSON and their symbols in ``_symbols_list``: the live objects, rebuilt on demand."""

    @property
    def symbol_names(self):
        return [str(s) for s in self._symbols_list]

    @property
    def circuit(self):
        return load_circuit(self._cj)[0]

    @property
    def observables(self):
        return load_observables(self._oj)[0]


def load_observables(observables):
    """(list of PauliString/PauliSum, its Cirq JSON) from observables or Cirq JSON text."""
    if isinstance(observables, str):
        observables = cirq.read_json(json_text=observables)
    if isinstance(observables, (cirq.PauliString, cirq.PauliSum)):
        observables = [observables]
    observables = list(observables)
    if not observables or not all(isinstance(o, (cirq.PauliString, cirq.PauliSum)) for o in observables):
        raise QuantumConfigError(
            "observables must be a non-empty list of cirq.PauliString / cirq.PauliSum, "
            f"e.g. [cirq.Z(q)]; got {observables!r}"
        )
    return observables, cirq.to_json(observables)


def check_repetitions(repetitions, required=False):
    """``None`` (exact expectations) or a positive int number of samples."""
    if repetitions is None and not required:
        return None
    if isinstance(repetitions, bool) or not isinstance(repetitions, (int, np.integer)) or repetitions < 1:
        need = "a positive int" + ("" if required else " or None for exact expectations")
        raise QuantumConfigError(f"repetitions must be {need}, got {repetitions!r}")
    return int(repetitions)


def is_noisy(circuit):
    """True when the circuit holds non-unitary channels (depolarize, amplitude damping...)."""
    return any(not cirq.has_unitary(op) and not cirq.is_measurement(op) and not cirq.is_parameterized(op)
               for op in circuit.all_operations())


def make_differentiator(name, *, analytic=True, noisy=False):
    """A fresh tfq differentiator: ``adjoint`` (exact, noiseless only), ``parameter_shift``,
    ``finite_difference`` (central differences, step 1e-3); ``None`` picks adjoint where it
    applies and parameter shift elsewhere."""
    tfq = require_tfq()
    if name is None:
        name = "adjoint" if analytic and not noisy else "parameter_shift"
    if name not in DIFFERENTIATORS:
        raise QuantumConfigError(f"unknown differentiator {name!r}; choose one of {', '.join(DIFFERENTIATORS)}")
    if name == "adjoint":
        if not analytic or noisy:
            raise QuantumConfigError(
                "the adjoint differentiator needs exact expectations on a noiseless circuit "
                "(repetitions=None, no noise); use differentiator='parameter_shift'"
            )
        return name, tfq.differentiators.Adjoint()
    if name == "parameter_shift":
        return name, tfq.differentiators.ParameterShift()
    return name, tfq.differentiators.CentralDifference(error_order=2, grid_spacing=1e-3)


def fresh_seed():
    """A random 31-bit seed, for layers built without one (recorded in their config)."""
    return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
