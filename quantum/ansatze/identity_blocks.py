"""Identity-block initialization against barren plateaus (Grant et al. 2019, arXiv 1903.05076).

Each block U(θ) is followed by U(φ)†, with its own symbols φ; the layer starts with φ = θ
(``Ansatz.mirror``), so the whole circuit begins as the identity while θ and φ train apart.
"""
import cirq
import sympy

from edgezoo.quantum.ansatze.base import Ansatz
from edgezoo.quantum.errors import QuantumConfigError

MIRROR_SUFFIX = "_m"


def mirrored_inverse(block):
    """U(φ)† for a block U(θ): every symbol s renamed s_m, then the circuit inverted."""
    names = cirq.parameter_names(block)
    renamed = cirq.resolve_parameters(block, {n: sympy.Symbol(n + MIRROR_SUFFIX) for n in names})
    return cirq.inverse(renamed), {n + MIRROR_SUFFIX: n for n in names}


def identity_blocks(block_fn, n_blocks, observables):
    """``n_blocks`` of ``block_fn(k)`` (a symbolic cirq.Circuit), each followed by its mirrored inverse."""
    if int(n_blocks) < 1:
        raise QuantumConfigError(f"identity_blocks needs at least 1 block, got {n_blocks}")
    c, mirror = cirq.Circuit(), {}
    for k in range(int(n_blocks)):
        block = block_fn(k)
        if not cirq.is_parameterized(block):
            raise QuantumConfigError(f"block {k} has no symbols; identity blocks need trainable blocks")
        inverse, m = mirrored_inverse(block)
        c += block
        c += inverse
        mirror.update(m)
    return Ansatz(c, list(observables), mirror)
