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

from edgezoo.base.errors import ModelFileError
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


def _class_names(config):
    """Every ``class_name`` in a Keras config, at any depth."""
    if isinstance(config, dict):
        names = {config["class_name"]} if isinstance(config.get("class_name"), str) else set()
        return names.union(*(_class_names(v) for v in config.values()))
    if isinstance(config, list):
        return set().union(*(_class_names(v) for v in config))
    return set()


def _require_quantum_layer(path, config):
    """Refuse a classical model before Keras meets its (unregistered) layers."""
    from edgezoo.quantum.layers import QUANTUM_LAYERS

    names = {cls.__name__ for cls in QUANTUM_LAYERS}
    if not names & {n.rsplit(">", 1)[-1] for n in _class_names(config)}:
        raise ModelFileError(f"{str(path)!r} holds no edgezoo quantum layer ({', '.join(sorted(names))}): "
                             "it is not a hybrid model. Export models from 'edgezoo quantum train'; "
                             "convert a classical model with 'edgezoo convert'")


def load_model(path, compile=True, trust_model_code=False):
    """Load a ``.keras`` hybrid model; needs tensorflow-quantum (``edgezoo[quantum]``).

    Refused before Keras reads it if it would run code from the file (a Lambda layer, an
    unregistered module to import: ``edgezoo.edge.safe_load``); ``trust_model_code=True`` lets
    that code run, only for files the user trusts."""
    require_tfq()
    import tf_keras as keras

    import edgezoo.quantum.layers  # noqa: F401  (registers the layers)
    import edgezoo.quantum.losses  # noqa: F401  (registers losses and metrics)
    from edgezoo.edge.safe_load import check_model_file, keras_safe_mode, keras_zip_configs

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {str(path)!r}; give the path of a .keras file "
                             "written by edgezoo.quantum.save_model or 'edgezoo quantum train'")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelFileError(f"{str(path)!r} is not a .keras model file (a zip archive ending in .keras)")
    if not trust_model_code:
        check_model_file(path, "keras", hint=(
            "Only for a file you made or trust: load it with edgezoo.quantum.load_model(path, "
            "trust_model_code=True), which runs that code"))
    _require_quantum_layer(path, keras_zip_configs(path)[0])
    try:
        with keras_safe_mode(not trust_model_code):
            return keras.models.load_model(path, compile=compile, safe_mode=not trust_model_code)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ModelFileError(f"could not load {str(path)!r} as a hybrid model: {exc}") from exc
