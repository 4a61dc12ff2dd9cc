"""Save and load hybrid models as ``.keras`` files.

TFQ's own layers cannot be saved (tensorflow/quantum#899); the edgezoo layers keep their
circuits as Cirq JSON in ``get_config``. Loading imports tensorflow_quantum first, which
registers its custom ops, then the edgezoo layers, which registers them with Keras.
"""
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from edgezoo.errors import ModelFileError
from edgezoo.quantum._tfq import require_tfq


def save_model(model, path):
    """Write ``model`` to ``path`` (must end in .keras) atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"save to a path ending in .keras, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent)
    try:
        tmp_file = os.path.join(tmp, path.name)
        model.save(tmp_file, save_format="keras")
        os.replace(tmp_file, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_model(path, compile=True):
    """Load a ``.keras`` hybrid model; needs tensorflow-quantum (``edgezoo[quantum]``)."""
    require_tfq()
    import tf_keras as keras

    import edgezoo.quantum.layers  # noqa: F401  (registers the layers)
    import edgezoo.quantum.losses  # noqa: F401  (registers losses and metrics)

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {str(path)!r}; give the path of a .keras file "
                             "written by edgezoo.quantum.save_model or 'edgezoo quantum train'")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelFileError(f"{str(path)!r} is not a .keras model file (a zip archive ending in .keras)")
    try:
        return keras.models.load_model(path, compile=compile)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ModelFileError(f"could not load {str(path)!r} as a hybrid model: {exc}") from exc
