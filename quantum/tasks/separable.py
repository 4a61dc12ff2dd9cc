"""A generated, linearly separable classical task for small hybrids (a sanity check, not a claim).

Features uniform in [-1, 1]; label sign(w·x) for a fixed random w, with samples within a
margin of the boundary dropped; angle-encoded with ry(π/2 · x).
"""
import cirq
import numpy as np

from edgezoo.quantum.tasks.base import QuantumTask, split


def separable_data(n_features, n_samples, margin=0.1, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_features)
    w /= np.linalg.norm(w)
    x = np.empty((0, n_features))
    while len(x) < n_samples:
        cand = rng.uniform(-1, 1, size=(2 * n_samples, n_features))
        x = np.concatenate([x, cand[np.abs(cand @ w) >= margin]])
    x = x[:n_samples].astype(np.float32)
    return x, np.where(x @ w > 0, 1.0, -1.0).astype(np.float32)


def separable_task(n_features=4, n_samples=200, margin=0.1, val_fraction=0.25, seed=0, layers=1):
    from edgezoo.quantum.ansatze import hardware_efficient
    from edgezoo.quantum.encoders import AngleEncoder
    from edgezoo.quantum.factories import hybrid_classifier

    qubits = cirq.GridQubit.rect(1, n_features)
    encoder = AngleEncoder(qubits, axis="y", scale=np.pi / 2)
    x, y = separable_data(n_features, n_samples, margin, seed)
    tr, va = split(len(y), val_fraction, seed, y)
    ansatz = hardware_efficient(qubits, layers=layers, rotations=("y",))

    def build(seed=0, **options):
        return hybrid_classifier(ansatz, seed=seed, name="separable_hybrid", **options)

    return QuantumTask(
        name="separable", x_train=encoder.to_tensor(x[tr]), y_train=y[tr], x_val=encoder.to_tensor(x[va]),
        y_val=y[va], build=build, n_qubits=n_features, features_train=x[tr], features_val=x[va],
        encoder=encoder, description=f"linearly separable {n_features}-feature data, angle-encoded",
        learning_rate=0.05)
