"""What every encoder shares: qubits, input validation, and circuits for a batch."""
import json

import cirq
import numpy as np

from edgezoo.quantum.errors import EncodingRangeError, QubitCountError


def as_qubits(qubits):
    """``qubits`` as a list of cirq qubits; an int n means a 1×n row of GridQubits."""
    if isinstance(qubits, (int, np.integer)):
        if qubits < 1:
            raise QubitCountError(f"an encoder needs at least 1 qubit, got {qubits}")
        return cirq.GridQubit.rect(1, int(qubits))
    qubits = list(qubits)
    if not qubits or not all(isinstance(q, cirq.Qid) for q in qubits):
        raise QubitCountError(
            f"qubits must be a positive int or a non-empty list of cirq qubits, got {qubits!r}"
        )
    if len(set(qubits)) != len(qubits):
        raise QubitCountError(f"qubits must be distinct, got {qubits!r}")
    return qubits


class Encoder:
    """Base encoder: maps rows of classical features, one feature per qubit, to circuits.

    Subclasses set ``value_range`` (the closed interval the encoding is defined on)
    and implement ``circuit(row)`` for one validated row.
    """

    kind = "encoder"
    value_range = (-np.inf, np.inf)
    range_hint = ""

    def __init__(self, qubits):
        self.qubits = as_qubits(qubits)

    @property
    def n_qubits(self):
        return len(self.qubits)

    def validate(self, x):
        """Return ``x`` as a 2-D float array (samples × features) or raise a clear error."""
        name = type(self).__name__
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0:
            raise QubitCountError(f"{name} needs samples of features, got a scalar")
        x = x.reshape(1, -1) if x.ndim == 1 else x.reshape(len(x), -1)
        if x.shape[1] > self.n_qubits:
            raise QubitCountError(
                f"{name} has {self.n_qubits} qubits but the data has {x.shape[1]} features per "
                f"sample (one qubit per feature); use at least {x.shape[1]} qubits, or reduce "
                "the features first (downsample, PCA)"
            )
        if not np.all(np.isfinite(x)):
            bad = np.argwhere(~np.isfinite(x))[0]
            raise EncodingRangeError(
                f"{name} got a non-finite value at sample {bad[0]}, feature {bad[1]}; "
                "remove or impute NaN/inf values before encoding"
            )
        lo, hi = self.value_range
        tol = 1e-6 * max(1.0, abs(lo) if np.isfinite(lo) else 1.0, abs(hi) if np.isfinite(hi) else 1.0)
        outside = (x < lo - tol) | (x > hi + tol)
        if outside.any():
            i, j = np.argwhere(outside)[0]
            raise EncodingRangeError(
                f"{name} encodes values in [{lo:g}, {hi:g}], but the data spans "
                f"[{x.min():g}, {x.max():g}] (first outside: sample {i}, feature {j}, "
                f"value {x[i, j]:g}); {self.range_hint or 'rescale the data into that range'}"
            )
        return x

    def circuit(self, row):  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x):
        """One ``cirq.Circuit`` per sample of ``x``."""
        return [self.circuit(row) for row in self.validate(x)]

    def to_tensor(self, x):
        """The encoded circuits as a TFQ string tensor, ready for a quantum model."""
        from edgezoo.quantum._tfq import require_tfq

        return require_tfq().convert_to_tensor(self.encode(x))

    def _params(self):
        return {}

    def get_config(self):
        """Plain-JSON description (kind, qubits as Cirq JSON, parameters) for manifests."""
        return {"kind": self.kind, "qubits": json.loads(cirq.to_json(self.qubits)),
                "value_range": [float(v) for v in self.value_range], **self._params()}
