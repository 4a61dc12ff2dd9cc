"""QCNN task (TFQ's QCNN tutorial): is a cluster state excited by a large or a small rotation?

Each sample is the cluster state on a ring of n qubits (H on all, CZ between neighbours)
followed by rx(θ) on one random qubit, θ uniform in [-π, π]; label +1 when |θ| ≤ π/2.
"""
import cirq
import numpy as np

from edgezoo.quantum.tasks.base import QuantumTask, split


def cluster_state(qubits):
    qubits = list(qubits)
    c = cirq.Circuit(cirq.H.on_each(*qubits))
    c.append(cirq.CZ(a, b) for a, b in zip(qubits, qubits[1:] + qubits[:1]))
    return c


def excitations(qubits, n_samples, seed=0):
    """(circuits, labels ±1): cluster state plus one random rx excitation each."""
    rng = np.random.default_rng(seed)
    base = cluster_state(qubits)
    circuits, labels = [], []
    for _ in range(n_samples):
        theta = rng.uniform(-np.pi, np.pi)
        q = qubits[rng.integers(len(qubits))]
        circuits.append(base + cirq.Circuit(cirq.rx(theta)(q)))
        labels.append(1.0 if abs(theta) <= np.pi / 2 else -1.0)
    return circuits, np.array(labels, np.float32)


def cluster_task(n_qubits=8, n_samples=256, val_fraction=0.25, seed=0):
    from edgezoo.quantum._tfq import require_tfq
    from edgezoo.quantum.ansatze import qcnn
    from edgezoo.quantum.factories import quantum_classifier

    tfq = require_tfq()
    qubits = cirq.GridQubit.rect(1, n_qubits)
    circuits, labels = excitations(qubits, n_samples, seed)
    tr, va = split(len(labels), val_fraction, seed)
    ansatz = qcnn(qubits)

    def build(seed=0, **options):
        return quantum_classifier(ansatz, seed=seed, name="cluster_qcnn", **options)

    return QuantumTask(
        name="cluster", x_train=tfq.convert_to_tensor([circuits[i] for i in tr]), y_train=labels[tr],
        x_val=tfq.convert_to_tensor([circuits[i] for i in va]), y_val=labels[va], build=build,
        n_qubits=n_qubits, description=f"cluster-state excitation detection, QCNN on {n_qubits} qubits",
        learning_rate=0.02)
