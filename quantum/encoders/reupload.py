"""Data re-uploading (Pérez-Salinas et al. 2020): the features are encoded again before each block.

The encoding rotations are symbolic (``in{l}_{i}``); the ``ReUploadingPQC`` layer feeds
them λ_{l,i}·x_i with trainable scales λ, so the model learns how strongly each layer
sees each feature.
"""
import cirq
import sympy

from edgezoo.quantum.encoders.angle import ROTATIONS
from edgezoo.quantum.encoders.base import Encoder
from edgezoo.quantum.errors import QuantumConfigError


class ReUploadingEncoder(Encoder):
    """Encoding layer l: rot(in{l}_{i}) on qubit i; interleaved with variational blocks by ``build``."""

    kind = "reupload"
    range_hint = "rescale the data, e.g. sklearn MinMaxScaler(feature_range=(-1, 1))"

    def __init__(self, qubits, layers=2, axis="x", value_range=(-1.0, 1.0)):
        super().__init__(qubits)
        if int(layers) < 1:
            raise QuantumConfigError(f"ReUploadingEncoder layers must be at least 1, got {layers}")
        if axis not in ROTATIONS:
            raise QuantumConfigError(f"ReUploadingEncoder axis must be 'x' or 'y', got {axis!r}")
        lo, hi = (float(v) for v in value_range)
        self.layers, self.axis, self.value_range = int(layers), axis, (lo, hi)

    def input_symbols(self):
        """Names of the encoding symbols, one list of n_qubits per layer."""
        return [[f"in{l}_{i}" for i in range(self.n_qubits)] for l in range(self.layers)]

    def encoding_layer(self, l):
        rot = ROTATIONS[self.axis]
        return cirq.Circuit(rot(sympy.Symbol(s))(q) for q, s in zip(self.qubits, self.input_symbols()[l]))

    def build(self, block):
        """Model circuit: for each layer l, encoding_layer(l) then ``block(l)`` (a cirq.Circuit)."""
        c = cirq.Circuit()
        for l in range(self.layers):
            c += self.encoding_layer(l)
            c += block(l)
        return c

    def circuit(self, row):
        """The encoding layers alone for one row, with unit scales (for inspection)."""
        values = {s: float(v) for layer in self.input_symbols() for s, v in zip(layer, row)}
        c = cirq.Circuit()
        for l in range(self.layers):
            c += self.encoding_layer(l)
        return cirq.resolve_parameters(c, {**{s: 0.0 for layer in self.input_symbols() for s in layer},
                                           **values})

    def _params(self):
        return {"layers": self.layers, "axis": self.axis}
