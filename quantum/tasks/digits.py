"""Digits 3 vs 6 at 4×4, binarized and basis-encoded (TFQ's MNIST study, on scikit-learn's digits).

scikit-learn ships the 8×8 digits, so nothing is downloaded. Images are area-downsampled,
binarized at 0.5, and images whose binary pattern occurs with both labels are removed
(as in the study); the model is the Farhi–Neven readout ansatz on rows×cols + 1 qubits.
"""
import cirq
import numpy as np

from edgezoo.quantum.errors import QuantumConfigError
from edgezoo.quantum.tasks.base import QuantumTask, split


def digits_images(size=(4, 4), digits=(3, 6)):
    """(images in [0, 1] of shape (n, rows, cols), labels +1 for digits[0] and -1 for digits[1])."""
    from sklearn.datasets import load_digits

    rows, cols = size
    if not (1 <= rows <= 8 and 1 <= cols <= 8):
        raise QuantumConfigError(f"digits size must be within 1..8 × 1..8, got {size}")
    d = load_digits()
    mask = np.isin(d.target, digits)
    images = d.images[mask].astype(np.float32) / 16.0
    labels = np.where(d.target[mask] == digits[0], 1.0, -1.0).astype(np.float32)
    import tensorflow as tf

    small = tf.image.resize(images[..., None], (rows, cols), method="area").numpy()[..., 0]
    return np.clip(small, 0.0, 1.0), labels


def remove_contradictory(x, y):
    """Drop samples whose (binary) pattern appears with more than one label."""
    seen = {}
    for row, label in zip(map(bytes, x.astype(np.uint8)), y):
        seen.setdefault(row, set()).add(float(label))
    keep = np.array([len(seen[bytes(r)]) == 1 for r in x.astype(np.uint8)])
    return x[keep], y[keep]


def digits_task(size=(4, 4), threshold=0.5, val_fraction=0.25, seed=0, gates=("xx", "zz")):
    from edgezoo.quantum.ansatze import readout_ansatz
    from edgezoo.quantum.encoders import BasisEncoder
    from edgezoo.quantum.factories import quantum_classifier

    images, labels = digits_images(size)
    binary = (images.reshape(len(images), -1) > threshold).astype(np.float32)
    binary, labels = remove_contradictory(binary, labels)
    qubits = cirq.GridQubit.rect(*size)
    encoder = BasisEncoder(qubits, threshold=0.5)
    tr, va = split(len(labels), val_fraction, seed, labels)
    ansatz = readout_ansatz(qubits, gates=gates)

    def build(seed=0, **options):
        return quantum_classifier(ansatz, seed=seed, name="digits_qnn", **options)

    return QuantumTask(
        name="digits", x_train=encoder.to_tensor(binary[tr]), y_train=labels[tr],
        x_val=encoder.to_tensor(binary[va]), y_val=labels[va], build=build,
        n_qubits=len(qubits) + 1, features_train=binary[tr], features_val=binary[va], encoder=encoder,
        description=f"scikit-learn digits 3 vs 6 at {size[0]}x{size[1]}, binarized, basis-encoded, "
                    f"Farhi-Neven readout ansatz ({len(qubits) + 1} qubits)",
        learning_rate=0.02)
