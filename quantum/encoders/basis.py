"""Basis (binary) encoding: X on each qubit whose value exceeds a threshold (TFQ MNIST study)."""
import cirq

from edgezoo.quantum.encoders.base import Encoder


class BasisEncoder(Encoder):
    """|x⟩ with bit i set when value i > ``threshold``; values must lie in [0, 1]."""

    kind = "basis"
    value_range = (0.0, 1.0)
    range_hint = "scale the data to [0, 1] first (e.g. pixels / 255)"

    def __init__(self, qubits, threshold=0.5):
        super().__init__(qubits)
        self.threshold = float(threshold)

    def circuit(self, row):
        return cirq.Circuit(cirq.X(q) for q, v in zip(self.qubits, row) if v > self.threshold)

    def _params(self):
        return {"threshold": self.threshold}
