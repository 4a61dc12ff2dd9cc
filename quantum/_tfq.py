"""Import TensorFlow Quantum on demand, so a missing extra gives one clear error."""
import importlib

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

from edgezoo.quantum.errors import QuantumDependencyError

INSTALL_HINT = 'install the quantum extra: pip install "edgezoo[quantum]"'


def require_tfq():
    """Return the ``tensorflow_quantum`` module (importing it registers its ops)."""
    try:
        return importlib.import_module("tensorflow_quantum")
    except ImportError as exc:
        raise QuantumDependencyError(
            f"edgezoo.quantum needs tensorflow-quantum, which could not be imported ({exc}); "
            f"{INSTALL_HINT}"
        ) from exc
