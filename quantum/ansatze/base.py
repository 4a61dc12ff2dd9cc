"""An ansatz: a parameterized model circuit, the observables it is read with, and init hints."""
import dataclasses

import cirq
import sympy


@dataclasses.dataclass
class Ansatz:
    """``circuit`` with sympy symbols, ``observables`` (PauliStrings/PauliSums) measured at the end.

    ``mirror`` maps a symbol to the one whose initial value it copies (identity blocks).
    """

    circuit: cirq.Circuit
    observables: list
    mirror: dict = dataclasses.field(default_factory=dict)

    @property
    def symbols(self):
        """Symbol names, sorted as TensorFlow Quantum orders a layer's weights."""
        return sorted(str(s) for s in cirq.parameter_names(self.circuit))

    @property
    def qubits(self):
        return sorted(self.circuit.all_qubits())

    def __len__(self):
        return len(self.symbols)


def symbols(names):
    """sympy Symbols for a list of names."""
    return [sympy.Symbol(n) for n in names]
