"""``edgezoo port``: a timm / Hugging Face checkpoint into a .keras file that remembers it.

The checkpoint is read by ``edgezoo.zoo.from_checkpoint`` (any family it supports; safetensors
only, pickles refused unopened). The .keras file records the checkpoint's preprocessing and source
(``edgezoo.zoo.record``) and, when the preprocessing implies one, the input range
(``edgezoo.zoo.data.contract``), so ``edgezoo convert`` of the file knows what a checkpoint would
tell it. The file is written beside its final name and renamed into place: an error leaves
nothing behind.
"""
from pathlib import Path

from edgezoo.base.errors import DataError


def is_checkpoint(path):
    """Whether ``path`` names a checkpoint rather than a Keras model: a ``.safetensors`` or
    pickle file (refused when read), or a folder (not a SavedModel) holding model.safetensors,
    config.json or pickle files."""
    from edgezoo.zoo.checkpoints import CONFIG_FILE, PICKLE_SUFFIXES, WEIGHTS_FILE

    path = Path(str(path))
    if path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES):
        return True
    if not path.is_dir() or (path / "saved_model.pb").exists():
        return False
    return ((path / WEIGHTS_FILE).is_file() or (path / CONFIG_FILE).is_file()
            or any(p.suffix.lower() in PICKLE_SUFFIXES for p in path.iterdir()))


def load_checkpoint(path, **overrides):
    """The zoo model of a checkpoint, with ``model.preprocessing`` and
    ``model.checkpoint_source`` set (see ``edgezoo.zoo.record``)."""
    from edgezoo.zoo import from_checkpoint
    from edgezoo.zoo.record import attach, checkpoint_source

    model = from_checkpoint(path, **overrides)
    return attach(model, model.preprocessing, checkpoint_source(path))


def checkpoint_contract(preprocessing):
    """The input contract a checkpoint's preprocessing implies, or None (unknown, or a
    normalization that differs between channels)."""
    from edgezoo.zoo.data.contract import InputContract
    from edgezoo.zoo.record import input_range

    bounds = input_range(preprocessing)
    if bounds is None:
        return None
    return InputContract(*bounds, "checkpoint preprocessing: images in [0, 1] normalized by "
                                  "its mean and std")


def check_out(out):
    """Refuse an --out that is a folder or not a .keras file, before any work."""
    from edgezoo.base.files import check_folder

    out = Path(out)
    if out.is_dir():
        raise DataError(f"--out {out} is a folder; give the .keras file to write, e.g. "
                        f"{out / 'model.keras'}")
    if out.suffix != ".keras":
        raise DataError(f"--out {out} does not end in .keras; edgezoo port writes a .keras file")
    check_folder(out.parent, "--out's folder")


def port_checkpoint(path, out):
    """Read the checkpoint at ``path`` and write it to ``out`` (.keras), atomically.

    Returns a summary: out, hub, architecture, params, preprocessing, input_contract.
    """
    from edgezoo.base import files
    from edgezoo.zoo.data import contract as contract_record
    from edgezoo.zoo import record

    check_out(out)
    model = load_checkpoint(path)
    contract = checkpoint_contract(model.preprocessing)
    out = Path(out)
    with files.atomic_path(out) as tmp:
        model.save(tmp)
        if contract is not None:
            contract_record.record_in_keras_file(tmp, contract)
        record.record_in_keras_file(tmp, model.preprocessing, model.checkpoint_source)
    source = model.checkpoint_source
    return {"out": str(out), "hub": source["hub"], "architecture": source["architecture"],
            "params": int(model.count_params()), "preprocessing": model.preprocessing,
            "input_contract": None if contract is None else contract.as_dict()}
