"""Errors edgezoo.quantum raises for bad input; each names what is wrong and what to do."""
from edgezoo.base.errors import EdgezooError


class QuantumError(EdgezooError):
    """Base of the quantum module's errors."""


class QuantumDependencyError(QuantumError, ImportError):
    """tensorflow-quantum (or cirq) is missing: install ``edgezoo[quantum]``."""


class QubitCountError(QuantumError, ValueError):
    """More features (or a feature count that does not match) than an encoder has qubits."""


class EncodingRangeError(QuantumError, ValueError):
    """Values outside the range an encoder is defined on (or not finite)."""


class QuantumConfigError(QuantumError, ValueError):
    """An option a quantum layer or model factory cannot use (differentiator, repetitions, noise...)."""


class LabelError(QuantumError, ValueError):
    """Labels a loss cannot take (hinge loss needs two classes, mapped to -1 and +1)."""


class UnresolvedSymbolsError(QuantumError, ValueError):
    """A circuit still has free sympy symbols where concrete values are needed (export, QASM)."""
