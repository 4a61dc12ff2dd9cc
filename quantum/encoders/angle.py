"""Angle encoding: one rotation rx or ry of value·scale per qubit."""
import cirq
import numpy as np

from edgezoo.quantum.encoders.base import Encoder
from edgezoo.quantum.errors import QuantumConfigError

ROTATIONS = {"x": cirq.rx, "y": cirq.ry}


class AngleEncoder(Encoder):
    """rx/ry(scale·value) on qubit i; values in ``value_range`` (default [-1, 1], so ±π)."""

    kind = "angle"
    range_hint = "rescale the data, e.g. sklearn MinMaxScaler(feature_range=(-1, 1))"

    def __init__(self, qubits, axis="y", scale=np.pi, value_range=(-1.0, 1.0)):
        super().__init__(qubits)
        if axis not in ROTATIONS:
            raise QuantumConfigError(f"AngleEncoder axis must be 'x' or 'y', got {axis!r}")
        lo, hi = (float(v) for v in value_range)
        if not lo < hi:
            raise QuantumConfigError(f"AngleEncoder value_range must be (low, high) with low < high, "
                                     f"got {value_range!r}")
        self.axis, self.scale, self.value_range = axis, float(scale), (lo, hi)

    def circuit(self, row):
        rot = ROTATIONS[self.axis]
        return cirq.Circuit(rot(self.scale * float(v))(q) for q, v in zip(self.qubits, row))

    def _params(self):
        return {"axis": self.axis, "scale": self.scale}
