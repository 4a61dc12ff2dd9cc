"""A real timm ViT checkpoint (random weights, timm's layout) loads into the zoo ViT and
reproduces timm's outputs; a wrong mapping does not; bad checkpoints say what is wrong."""
import json

import numpy as np
import pytest
import tf_keras as keras

from checkpoint_case import (ATOL, REFERENCE, assert_fails_tolerance, assert_keras_file_round_trip,
                             assert_new_head, assert_refused, assert_writes_back,
                             full_size_layout, max_error, read_config, read_tensors,
                             reference_io, tensor_shapes, within_tolerance, write_checkpoint)
from edgezoo.base.errors import EdgezooError, ModelFileError, UnknownModelError
from edgezoo.zoo import create_model, from_checkpoint, read_preprocessing
from edgezoo.zoo.vit import checkpoint as vit_checkpoint

TIMM_VIT = REFERENCE / "timm" / "vit"


@pytest.fixture(scope="module")
def reference():
    """(images NHWC, timm's logits, timm's pre-logits features)."""
    return reference_io(TIMM_VIT, "pre_logits")


@pytest.fixture(scope="module")
def model():
    return from_checkpoint(TIMM_VIT)


def test_reproduces_timm_logits(model, reference):
    x, logits, pre_logits = reference
    err = max_error(model, reference)
    assert within_tolerance(err, logits), err
    features = keras.Model(model.input, model.get_layer("cls_pool").output)
    assert np.abs(features(x).numpy() - pre_logits).max() <= ATOL


def test_built_from_the_checkpoint_configuration(model):
    assert model.name == "vit_tiny_patch16_224"
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert model.get_layer("patch_embed").kernel_size == (8, 8)
    assert model.get_layer("block1_attn").num_heads == 4
    assert model.get_layer("block0_mlp_fc1").units == 256
    assert "block2_attn" not in [layer.name for layer in model.layers]
    assert model.get_layer("norm").epsilon == 1e-6
    assert model.get_layer("block0_mlp_gelu").get_config()["activation"] == "gelu"


def test_preprocessing_recorded(model, tmp_path):
    expected = {"mean": [0.5] * 3, "std": [0.5] * 3, "input_size": [3, 32, 32],
                "input_shape": [32, 32, 3], "interpolation": "bicubic", "crop_pct": 0.9,
                "crop_mode": "center"}
    assert {k: model.preprocessing[k] for k in expected} == expected
    assert read_preprocessing(TIMM_VIT) == model.preprocessing
    config = read_config(TIMM_VIT)
    del config["pretrained_cfg"]
    assert read_preprocessing(config) == "unknown"


def test_swapped_query_and_key_fails_the_tolerance(monkeypatch, reference):
    """Negative control: the tolerance catches a plausible mapping bug."""
    def swapped(w):
        q, k, v = np.split(w, 3, axis=0)
        return k.T, q.T, v.T

    monkeypatch.setattr(vit_checkpoint, "_split_qkv_weight", swapped)
    assert_fails_tolerance(from_checkpoint(TIMM_VIT), reference, 10)  # measured 1.2e-3


def _write(tmp_path, tensors=None, **edits):
    """An edited copy of the reference (``write_checkpoint``'s edits), with its config.json."""
    return write_checkpoint(tmp_path / "ckpt", TIMM_VIT, tensors, **edits)


def _tensors():
    return read_tensors(TIMM_VIT)


def test_missing_tensor_is_named(tmp_path):
    assert_refused(_write(tmp_path, drop=["blocks.1.attn.qkv.bias"]), ModelFileError,
                   r"missing tensors: blocks\.1\.attn\.qkv\.bias")


def test_extra_tensor_is_named(tmp_path):
    extra = {"blocks.0.ls1.gamma": np.ones(64, np.float32)}
    assert_refused(_write(tmp_path, put=extra), ModelFileError,
                   r"unexpected tensors.*blocks\.0\.ls1\.gamma")


def test_wrong_shape_names_tensor_and_shapes(tmp_path):
    tensors = _tensors()
    tensors["blocks.0.mlp.fc1.weight"] = tensors["blocks.0.mlp.fc1.weight"][:200]
    assert_refused(_write(tmp_path, tensors), ModelFileError,
                   r"blocks\.0\.mlp\.fc1\.weight has shape \(200, 64\), "
                   r"the model expects \(256, 64\)")


def test_pickle_files_are_refused_unopened(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"not opened")
    for target in (path, tmp_path, tmp_path / "absent.pth"):  # refused by name, never read
        with pytest.raises(ModelFileError, match="pickle.*safetensors.torch import save_file"):
            from_checkpoint(target)


def test_corrupted_header(tmp_path):
    folder = _write(tmp_path, _tensors())
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[8:20] = b"\xff" * 12  # inside the JSON header
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        from_checkpoint(folder)


def test_unknown_architecture_lists_supported(tmp_path):
    folder = _write(tmp_path, _tensors())
    config = read_config(folder)
    config["architecture"] = "vit_giant_patch14_224"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnknownModelError, match="not supported; supported: timm: .*"
                                                "vit_base_patch16_224"):
        from_checkpoint(folder)


def test_unsupported_model_args_refused(tmp_path):
    folder = _write(tmp_path, _tensors())
    config = read_config(folder)
    config["model_args"]["global_pool"] = "avg"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EdgezooError, match="global_pool='avg' is not supported"):
        from_checkpoint(folder)


def test_new_head_when_num_classes_changes(model, reference):
    features = from_checkpoint(TIMM_VIT, num_classes=0)
    assert np.abs(features(reference[0]).numpy() - reference[2]).max() <= ATOL
    assert_new_head(model, TIMM_VIT, "norm", "gamma")


def test_a_safetensors_file_with_config_beside_it(model):
    direct = from_checkpoint(TIMM_VIT / "model.safetensors")
    np.testing.assert_array_equal(direct.get_layer("pos_embed").table.numpy(),
                                  model.get_layer("pos_embed").table.numpy())


def test_keras_file_round_trip(model, reference, tmp_path):
    assert_keras_file_round_trip(model, reference[0], tmp_path / "vit.keras")


def test_to_checkpoint_round_trips_bit_for_bit(model, reference, tmp_path):
    folder = assert_writes_back(model, TIMM_VIT, tmp_path / "out")
    assert max_error(from_checkpoint(folder), reference) == max_error(model, reference)


def test_vit_b16_writes_the_timm_full_size_layout():
    expected = full_size_layout("timm:vit_base_patch16_224")
    model = create_model("vit_b16")
    config, tensors = vit_checkpoint.export_timm_vit(model)
    assert config["architecture"] == "vit_base_patch16_224" and config["model_args"] == {}
    assert tensor_shapes(tensors) == expected


def test_tied_copies_must_equal_their_source():
    """A checkpoint that stores one weight twice (GPT-2's lm_head = wte) is read once; a copy
    that differs is an error naming both, and the model is left untouched."""
    from edgezoo.zoo.checkpoints import IDENTITY, Step, assign

    layer = keras.layers.Dense(2, use_bias=False)
    keras.Sequential([keras.Input((3,)), layer])
    before = layer.kernel.numpy().copy()
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    plan = [Step("wte.weight", (layer.kernel,), IDENTITY)]
    assign({"wte.weight": w, "lm_head.weight": w.copy()}, plan, tied={"lm_head.weight": "wte.weight"})
    np.testing.assert_array_equal(layer.kernel.numpy(), w)
    layer.kernel.assign(before)
    with pytest.raises(ModelFileError, match="tied tensor lm_head.weight differs from its source wte.weight"):
        assign({"wte.weight": w, "lm_head.weight": w + 1}, plan, tied={"lm_head.weight": "wte.weight"})
    np.testing.assert_array_equal(layer.kernel.numpy(), before)
    with pytest.raises(ModelFileError, match="unexpected tensors .*lm_head.weight"):
        assign({"wte.weight": w, "lm_head.weight": w}, plan)  # undeclared: a leftover
