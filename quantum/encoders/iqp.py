"""IQP / ZZ feature map (Havlíček et al. 2019): H, then Z phases and ZZ couplings, repeated."""
import itertools

import cirq
import numpy as np

from edgezoo.quantum.encoders.base import Encoder
from edgezoo.quantum.errors import QuantumConfigError


class IQPEncoder(Encoder):
    """U_Φ(x) H^n repeated ``reps`` times, φ_i = scale·x_i, φ_ij = (π − φ_i)(π − φ_j).

    Each repetition applies H on all qubits, exp(−i φ_i Z_i) and exp(−i φ_ij Z_i Z_j)
    for pairs (``"linear"``: neighbours, ``"full"``: all). Values in [-1, 1].
    """

    kind = "iqp"
    value_range = (-1.0, 1.0)
    range_hint = "rescale the data, e.g. sklearn MinMaxScaler(feature_range=(-1, 1))"

    def __init__(self, qubits, reps=2, scale=np.pi, entanglement="linear"):
        super().__init__(qubits)
        if int(reps) < 1:
            raise QuantumConfigError(f"IQPEncoder reps must be at least 1, got {reps}")
        if entanglement not in ("linear", "full"):
            raise QuantumConfigError(
                f"IQPEncoder entanglement must be 'linear' or 'full', got {entanglement!r}")
        self.reps, self.scale, self.entanglement = int(reps), float(scale), entanglement

    def pairs(self, n):
        if self.entanglement == "full":
            return list(itertools.combinations(range(n), 2))
        return [(i, i + 1) for i in range(n - 1)]

    def circuit(self, row):
        phi = self.scale * np.asarray(row, dtype=np.float64)
        qs = self.qubits[: len(phi)]
        c = cirq.Circuit()
        for _ in range(self.reps):
            c.append(cirq.H.on_each(*qs))
            # exp(-i φ Z) is rz(2φ); exp(-i φ ZZ) is ZZ**(2φ/π) up to a global phase.
            c.append(cirq.rz(2 * p)(q) for q, p in zip(qs, phi))
            c.append(cirq.ZZ(qs[i], qs[j]) ** (2 * (np.pi - phi[i]) * (np.pi - phi[j]) / np.pi)
                     for i, j in self.pairs(len(qs)))
        return c

    def _params(self):
        return {"reps": self.reps, "scale": self.scale, "entanglement": self.entanglement}
