"""Hardware-efficient ansatz: single-qubit rotations on every qubit, then a CZ ladder, per layer."""
import cirq
import sympy

from edgezoo.quantum.ansatze.base import Ansatz
from edgezoo.quantum.errors import QuantumConfigError

ROTATIONS = {"x": cirq.rx, "y": cirq.ry, "z": cirq.rz}


def hardware_efficient_block(qubits, layer, rotations=("y", "z"), prefix="w"):
    """One layer: ``rotations`` on each qubit (symbols ``{prefix}{layer}_{i}_{axis}``), CZ ladder."""
    qubits = list(qubits)
    bad = [r for r in rotations if r not in ROTATIONS]
    if bad or not rotations:
        raise QuantumConfigError(f"rotations must be a non-empty list from 'x', 'y', 'z', got {list(rotations)!r}")
    c = cirq.Circuit()
    for r in rotations:
        c.append(ROTATIONS[r](sympy.Symbol(f"{prefix}{layer}_{i}_{r}"))(q) for i, q in enumerate(qubits))
    c.append(cirq.CZ(a, b) for a, b in zip(qubits, qubits[1:]))
    return c


def z_observables(qubits, readout="all"):
    """Z on every qubit (``"all"``) or on the first one (``"first"``)."""
    qubits = list(qubits)
    if readout == "all":
        return [cirq.Z(q) for q in qubits]
    if readout == "first":
        return [cirq.Z(qubits[0])]
    raise QuantumConfigError(f"readout must be 'all' or 'first', got {readout!r}")


def hardware_efficient(qubits, layers=2, rotations=("y", "z"), prefix="w", readout="all"):
    """``layers`` blocks of rotations + CZ ladder; observables Z per qubit (or the first)."""
    if int(layers) < 1:
        raise QuantumConfigError(f"hardware_efficient needs at least 1 layer, got {layers}")
    c = cirq.Circuit()
    for l in range(int(layers)):
        c += hardware_efficient_block(qubits, l, rotations, prefix)
    return Ansatz(c, z_observables(qubits, readout))
