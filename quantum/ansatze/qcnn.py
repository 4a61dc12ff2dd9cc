"""Quantum convolutional neural network blocks (Cong, Choi, Lukin 2019), as in TFQ's QCNN tutorial.

Convolution: a general two-qubit unitary from 15 parameters, shared over neighbouring pairs.
Pooling: 6 parameters; a controlled rotation from each source onto a sink, after which
the source qubit is dropped.
"""
import cirq
import sympy

from edgezoo.quantum.ansatze.base import Ansatz
from edgezoo.quantum.errors import QuantumConfigError


def one_qubit_unitary(q, s):
    """X, Y, Z powers from 3 symbols: any single-qubit rotation up to phase."""
    return cirq.Circuit(cirq.X(q) ** s[0], cirq.Y(q) ** s[1], cirq.Z(q) ** s[2])


def two_qubit_unitary(a, b, s):
    """15 symbols: local rotations, ZZ/YY/XX couplings, local rotations (KAK form)."""
    c = one_qubit_unitary(a, s[0:3]) + one_qubit_unitary(b, s[3:6])
    c.append([cirq.ZZ(a, b) ** s[6], cirq.YY(a, b) ** s[7], cirq.XX(a, b) ** s[8]])
    return c + one_qubit_unitary(a, s[9:12]) + one_qubit_unitary(b, s[12:15])


def two_qubit_pool(source, sink, s):
    """6 symbols: basis choices on sink and source, CNOT source→sink, undo the sink's basis."""
    sink_basis = one_qubit_unitary(sink, s[0:3])
    c = sink_basis + one_qubit_unitary(source, s[3:6])
    c.append(cirq.CNOT(source, sink))
    return c + cirq.inverse(sink_basis)


def _syms(prefix, n):
    return [sympy.Symbol(f"{prefix}_{k:02d}") for k in range(n)]


def conv_layer(qubits, prefix):
    """``two_qubit_unitary`` on even then odd neighbouring pairs (cyclic), 15 shared symbols."""
    qubits, s = list(qubits), _syms(prefix, 15)
    if len(qubits) < 2:
        raise QuantumConfigError(f"a QCNN convolution needs at least 2 qubits, got {len(qubits)}")
    c = cirq.Circuit()
    pairs = list(zip(qubits[0::2], qubits[1::2]))
    if len(qubits) > 2:
        pairs += list(zip(qubits[1::2], qubits[2::2] + [qubits[0]]))
    for a, b in pairs:
        c += two_qubit_unitary(a, b, s)
    return c


def pool_layer(sources, sinks, prefix):
    """``two_qubit_pool`` from each source onto its sink, 6 shared symbols."""
    s = _syms(prefix, 6)
    c = cirq.Circuit()
    for src, snk in zip(sources, sinks):
        c += two_qubit_pool(src, snk, s)
    return c


def qcnn(qubits, prefix="q"):
    """Convolve and pool, halving the qubits, until one remains; read Z on it.

    The qubit count must be a power of two (≥ 2): 8 qubits give 3 × (15 + 6) = 63 symbols.
    """
    qubits = list(qubits)
    n = len(qubits)
    if n < 2 or n & (n - 1):
        raise QuantumConfigError(f"qcnn needs a power-of-two number of qubits (2, 4, 8, ...), got {n}")
    c, level = cirq.Circuit(), 0
    while len(qubits) > 1:
        half = len(qubits) // 2
        c += conv_layer(qubits, f"{prefix}c{level}")
        c += pool_layer(qubits[:half], qubits[half:], f"{prefix}p{level}")
        qubits, level = qubits[half:], level + 1
    return Ansatz(c, [cirq.Z(qubits[0])])
