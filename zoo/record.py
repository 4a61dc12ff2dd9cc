"""Where a model's weights came from: the checkpoint's source and preprocessing.

``from_checkpoint`` puts the checkpoint's preprocessing (timm ``pretrained_cfg``: mean, std,
input size, interpolation, crop) on ``model.preprocessing``, and ``attach`` adds its source (hub,
architecture, weights file and its sha256) as ``model.checkpoint_source``. Keras saves neither
attribute, so a ``.keras`` file ported from a checkpoint carries them as an extra JSON member of
its zip, ``edgezoo-checkpoint.json``, beside the input contract's ``edgezoo.json``
(``edgezoo.zoo.data.contract``); ``restore`` puts them back on a model loaded from such a file.
"""
import hashlib
import json
import zipfile
from pathlib import Path

from edgezoo.base.errors import ModelFileError

RECORD = "edgezoo-checkpoint.json"


def checkpoint_source(path):
    """``{hub, architecture, file, sha256}`` of a checkpoint that ``from_checkpoint`` has read
    (``file`` is the weights file relative to the folder the user named, so reports do not
    depend on where the checkpoint lies)."""
    from edgezoo.zoo.checkpoints import CONFIG_FILE, WEIGHTS_FILE

    path = Path(path)
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    config_path = weights.parent / CONFIG_FILE
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if "architecture" in config:
        hub, arch = "timm", config["architecture"]
    else:
        hub, arch = "huggingface", (config.get("architectures") or [None])[0]
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    name = f"{path.name}/{WEIGHTS_FILE}" if path.is_dir() else path.name
    return {"hub": hub, "architecture": arch, "file": name, "sha256": digest.hexdigest()}


def attach(model, preprocessing, source):
    """Set ``model.preprocessing`` and ``model.checkpoint_source`` (past Keras' attribute
    tracking, which would wrap the dicts; neither is a layer or a weight)."""
    object.__setattr__(model, "preprocessing", preprocessing)
    object.__setattr__(model, "checkpoint_source", source)
    return model


def record_in_keras_file(path, preprocessing, source):
    """Write the checkpoint's preprocessing and source into a .keras zip."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(RECORD, json.dumps({"preprocessing": preprocessing,
                                             "checkpoint": source}, indent=2))


def read_from_keras_file(path):
    """``(preprocessing, source)`` a .keras file records, or None (not ported from a
    checkpoint, or another format)."""
    from edgezoo.base.files import keras_zip_record

    try:
        record = keras_zip_record(path, RECORD)
        return None if record is None else (record["preprocessing"], record["checkpoint"])
    except (ValueError, KeyError, TypeError):
        raise ModelFileError(f"{path}: its {RECORD} record is malformed; port the "
                             "checkpoint again (edgezoo port)") from None


def restore(model, path):
    """``model`` (loaded from ``path``) with the preprocessing and source its file records."""
    record = read_from_keras_file(path)
    return model if record is None else attach(model, *record)


def input_range(preprocessing):
    """The range the model's inputs lie in, ``(low, high)``: images in [0, 1] (timm's
    ``ToTensor``, Hugging Face's ``rescale_factor`` 1/255) normalized as ``(x - mean) / std``;
    None when the preprocessing is unknown or its normalization differs between channels (one
    linear range cannot describe it: give --input-range)."""
    p = preprocessing
    if not isinstance(p, dict):
        return None
    high = 1.0
    if "do_rescale" in p or "rescale_factor" in p:  # Hugging Face: pixels times rescale_factor
        high = 255.0 * p.get("rescale_factor", 1 / 255) if p.get("do_rescale", True) else 255.0
    if p.get("do_normalize") is False:
        return 0.0, high
    if "mean" not in p:
        return None
    mean, std = list(p["mean"]), list(p.get("std") or [1.0] * len(p["mean"]))
    if len(set(mean)) != 1 or len(set(std)) != 1 or not std[0]:
        return None
    return (0.0 - mean[0]) / std[0], (high - mean[0]) / std[0]


def describe(preprocessing):
    """One line for people: ``mean 0.5 std 0.5, 32x32, bicubic, crop 0.9 center``."""
    if not isinstance(preprocessing, dict):
        return "preprocessing unknown (the checkpoint records none)"

    def values(v):
        return f"{v[0]:g}" if len(set(v)) == 1 else "[" + ", ".join(f"{x:g}" for x in v) + "]"

    parts = []
    if "mean" in preprocessing:
        parts.append(f"mean {values(preprocessing['mean'])} std "
                     f"{values(preprocessing.get('std', [1.0]))}")
    size = preprocessing.get("input_shape") or preprocessing.get("size")
    if isinstance(size, dict) and {"height", "width"} <= set(size):
        size = [size["height"], size["width"]]
    if isinstance(size, (list, tuple)):
        parts.append("x".join(str(s) for s in size[:2]))
    if "interpolation" in preprocessing:
        parts.append(preprocessing["interpolation"])
    if "crop_pct" in preprocessing:
        parts.append(f"crop {preprocessing['crop_pct']:g} {preprocessing.get('crop_mode', '')}"
                     .strip())
    return "preprocessing " + ", ".join(parts)
