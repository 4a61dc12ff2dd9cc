"""Shared helpers for the reference-checkpoint tests (ViT, ResNeSt, Perceiver IO).

Each family's test module loads a small reference checkpoint from
``shared/reference-checkpoints`` (random weights in the original library's layout, with the
library's own outputs in ``reference_io.npz``), gates the zoo model's outputs on one tolerance,
writes edited copies to see bad checkpoints refused, and compares what ``to_checkpoint`` writes
with the reference file or with the full-size layouts in ``full-size-layouts.json``. The
helpers live here so that the three modules apply one gate and one set of comparisons.
"""
import json
import shutil

import numpy as np
import pytest
import tf_keras as keras
from safetensors.numpy import load_file, save_file

from conftest import SHARED
from edgezoo.zoo import from_checkpoint, to_checkpoint

REFERENCE = SHARED / "reference-checkpoints"
LAYOUTS = REFERENCE / "full-size-layouts.json"
ATOL = 1e-4  # max abs error vs the reference library's logits
REL_STD = 0.01  # ... and at most 1 % of the logits' standard deviation


def reference_io(folder, *extra):
    """``(images, logits, *extra)`` from ``folder``'s reference_io.npz, the images turned from
    the reference library's NCHW into the zoo's NHWC; a missing folder fails the test (not a
    skip: the references are part of the test data)."""
    if not folder.is_dir():
        pytest.fail(f"reference checkpoints not found at {folder}; set EDGEZOO_SHARED")
    io = np.load(folder / "reference_io.npz")
    return (io["pixel_values_nchw"].transpose(0, 2, 3, 1), io["logits"], *(io[k] for k in extra))


def max_error(model, reference):
    """The largest absolute difference between ``model``'s outputs (inference mode) on the
    reference images and the reference logits; ``reference`` is ``reference_io``'s tuple."""
    x, logits = reference[:2]
    return float(np.abs(model(x, training=False).numpy() - logits).max())


def within_tolerance(err, logits):
    """The gate: ``err`` at most ATOL and at most REL_STD of the logits' standard deviation,
    so that neither large nor tiny logits make it meaningless."""
    return err <= ATOL and err <= REL_STD * float(logits.std())


def assert_fails_tolerance(model, reference, floor, label=None):
    """Negative control: ``model`` (a deliberately wrong mapping) fails the gate, and by more
    than ``floor`` x ATOL, so that the gate's pass on the right mapping is not a near miss.
    ``label`` names the variant in the failure message. Returns the error."""
    err = max_error(model, reference)
    assert not within_tolerance(err, reference[1]), (label, err)
    assert err > floor * ATOL, (label, err)
    return err


def assert_refused(checkpoint, error, match):
    """``from_checkpoint(checkpoint)`` raises ``error`` with a message matching ``match``: a bad
    checkpoint says what is wrong."""
    with pytest.raises(error, match=match):
        from_checkpoint(checkpoint)


def assert_new_head(model, source, layer, weight):
    """``source`` loaded with ``num_classes=5`` gets a new 5-way head and keeps the body:
    ``layer``'s ``weight`` equals that of ``model`` (loaded from ``source`` as it is)."""
    five = from_checkpoint(source, num_classes=5)
    assert five.output_shape == (None, 5)
    np.testing.assert_array_equal(getattr(five.get_layer(layer), weight).numpy(),
                                  getattr(model.get_layer(layer), weight).numpy())


def read_tensors(folder):
    """The tensors of ``folder``'s model.safetensors, by name."""
    return load_file(str(folder / "model.safetensors"))


def read_config(folder):
    """``folder``'s config.json, parsed."""
    return json.loads((folder / "config.json").read_text())


def write_checkpoint(folder, source, tensors=None, config=None, drop=(), put=None):
    """A new checkpoint folder ``folder``, for tests that feed the loader an edited checkpoint:
    ``tensors`` (None: ``source``'s) less the names in ``drop`` and with ``put``'s name: array
    entries set, saved as model.safetensors (an unedited ``source`` file is copied), and
    ``config`` as config.json (None: a copy of ``source``'s). Returns ``folder``."""
    folder.mkdir()
    if tensors is None and (drop or put):
        tensors = read_tensors(source)
    if tensors is not None:
        tensors = dict(tensors)
        for name in drop:
            del tensors[name]  # a KeyError if absent: the edit must change the checkpoint
        tensors.update(put or {})
    if tensors is None:
        shutil.copy(source / "model.safetensors", folder / "model.safetensors")
    else:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if config is None:
        shutil.copy(source / "config.json", folder / "config.json")
    else:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def assert_same_tensors(written, original):
    """``written`` has exactly ``original``'s tensor names and shapes, every value bit for bit."""
    assert {k: v.shape for k, v in written.items()} == {k: v.shape for k, v in original.items()}
    for name, value in original.items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)


def assert_writes_back(model, source, folder):
    """``to_checkpoint(model, folder)`` writes ``source``'s tensors back bit for bit (the model
    was loaded from ``source``). Returns the written folder, for the caller's further checks."""
    folder = to_checkpoint(model, folder)
    assert_same_tensors(read_tensors(folder), read_tensors(source))
    return folder


def assert_same_weights(original, loaded, names=True):
    """``loaded`` holds ``original``'s weights in the same order: the same count, shapes and
    values bit for bit, and with ``names`` the same variable names."""
    assert len(loaded.weights) == len(original.weights)
    if names:
        assert [v.name for v in loaded.weights] == [v.name for v in original.weights]
    for a, b in zip(original.weights, loaded.weights):
        assert a.shape == b.shape, a.name
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.name)


def assert_keras_file_round_trip(model, x, path):
    """``model`` saved to the .keras file ``path`` and loaded back gives identical outputs on
    ``x``."""
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def full_size_layout(key):
    """The tensor names and shapes (lists) of the full-size original checkpoint ``key`` (such
    as ``"timm:resnest50d"``), as recorded in full-size-layouts.json."""
    return json.loads(LAYOUTS.read_text())["architectures"][key]["tensors"]


def tensor_shapes(tensors):
    """``{name: list(shape)}``, comparable with ``full_size_layout``."""
    return {k: list(v.shape) for k, v in tensors.items()}
