"""Farhi–Neven readout-qubit ansatz (arXiv 1802.06002), as in TFQ's MNIST study.

The readout qubit is prepared in |−⟩ (X then H); layers of ``XX**θ`` / ``ZZ**θ`` couple each
data qubit to it; a final H maps the answer onto Z of the readout qubit.
"""
import cirq
import sympy

from edgezoo.quantum.ansatze.base import Ansatz
from edgezoo.quantum.errors import QuantumConfigError

GATES = {"xx": cirq.XX, "yy": cirq.YY, "zz": cirq.ZZ}


def readout_ansatz(data_qubits, readout=None, gates=("xx", "zz"), prefix=""):
    """One layer per entry of ``gates``; symbols ``{prefix}{gate}{layer}_{qubit}``; observable Z(readout)."""
    data_qubits = list(data_qubits)
    readout = cirq.GridQubit(-1, -1) if readout is None else readout
    if readout in data_qubits:
        raise QuantumConfigError(f"the readout qubit {readout} must not be one of the data qubits")
    unknown = [g for g in gates if g not in GATES]
    if unknown or not gates:
        raise QuantumConfigError(f"readout_ansatz gates must be a non-empty list from "
                                 f"{sorted(GATES)}, got {list(gates)!r}")
    c = cirq.Circuit(cirq.X(readout), cirq.H(readout))
    for l, g in enumerate(gates):
        for i, q in enumerate(data_qubits):
            c.append(GATES[g](q, readout) ** sympy.Symbol(f"{prefix}{g}{l}_{i}"))
    c.append(cirq.H(readout))
    return Ansatz(c, [cirq.Z(readout)])
