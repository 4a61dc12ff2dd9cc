"""Generated quantum data: two classes of entangled states from rotations near two centres.

Class +1 has per-qubit angles near (θ_a, φ_a), class −1 near (θ_b, φ_b), each with
Gaussian spread, then a CZ chain entangles the qubits. No classical features exist to
give a classical baseline: the data are states.
"""
import cirq
import numpy as np

from edgezoo.quantum.tasks.base import QuantumTask, split

CENTRES = {1.0: (0.3 * np.pi, 0.0), -1.0: (0.7 * np.pi, 0.5 * np.pi)}


def quantum_states(qubits, n_samples, spread=0.25, seed=0):
    rng = np.random.default_rng(seed)
    circuits, labels = [], []
    for k in range(n_samples):
        label = 1.0 if k % 2 == 0 else -1.0
        theta0, phi0 = CENTRES[label]
        c = cirq.Circuit()
        for q in qubits:
            c.append([cirq.ry(theta0 + spread * rng.normal())(q), cirq.rz(phi0 + spread * rng.normal())(q)])
        c.append(cirq.CZ(a, b) for a, b in zip(qubits, qubits[1:]))
        circuits.append(c)
        labels.append(label)
    order = rng.permutation(n_samples)
    return [circuits[i] for i in order], np.array(labels, np.float32)[order]


def quantum_data_task(n_qubits=4, n_samples=200, spread=0.25, val_fraction=0.25, seed=0, layers=1):
    from edgezoo.quantum._tfq import require_tfq
    from edgezoo.quantum.ansatze import hardware_efficient
    from edgezoo.quantum.factories import hybrid_classifier

    tfq = require_tfq()
    qubits = cirq.GridQubit.rect(1, n_qubits)
    circuits, labels = quantum_states(qubits, n_samples, spread, seed)
    tr, va = split(len(labels), val_fraction, seed, labels)
    ansatz = hardware_efficient(qubits, layers=layers)

    def build(seed=0, **options):
        return hybrid_classifier(ansatz, seed=seed, name="quantum_data_hybrid", **options)

    return QuantumTask(
        name="quantum_data", x_train=tfq.convert_to_tensor([circuits[i] for i in tr]), y_train=labels[tr],
        x_val=tfq.convert_to_tensor([circuits[i] for i in va]), y_val=labels[va], build=build,
        n_qubits=n_qubits, description=f"two clusters of entangled {n_qubits}-qubit states", learning_rate=0.05)
