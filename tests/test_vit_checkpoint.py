"""A real timm ViT checkpoint (random weights, timm's layout) loads into the zoo ViT and
reproduces timm's outputs; a wrong mapping does not; bad checkpoints say what is wrong."""
import json
import shutil

import numpy as np
import pytest
import tf_keras as keras
from safetensors.numpy import load_file, save_file

from conftest import SHARED
from edgezoo.base.errors import EdgezooError, ModelFileError, UnknownModelError
from edgezoo.zoo import create_model, from_checkpoint, read_preprocessing, to_checkpoint
from edgezoo.zoo.vit import checkpoint as vit_checkpoint

TIMM_VIT = SHARED / "reference-checkpoints" / "timm" / "vit"
LAYOUTS = SHARED / "reference-checkpoints" / "full-size-layouts.json"
ATOL = 1e-4  # max abs error vs timm's logits
REL_STD = 0.01  # ... and at most 1 % of the logits' standard deviation


@pytest.fixture(scope="module")
def reference():
    if not TIMM_VIT.is_dir():
        pytest.fail(f"reference checkpoints not found at {TIMM_VIT}; set EDGEZOO_SHARED")
    io = np.load(TIMM_VIT / "reference_io.npz")
    return io["pixel_values_nchw"].transpose(0, 2, 3, 1), io["logits"], io["pre_logits"]


@pytest.fixture(scope="module")
def model():
    return from_checkpoint(TIMM_VIT)


def _error(model, reference):
    x, logits, _ = reference
    return float(np.abs(model(x, training=False).numpy() - logits).max())


def _within_tolerance(err, logits):
    return err <= ATOL and err <= REL_STD * float(logits.std())


def test_reproduces_timm_logits(model, reference):
    x, logits, pre_logits = reference
    err = _error(model, reference)
    assert _within_tolerance(err, logits), err
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
    config = json.loads((TIMM_VIT / "config.json").read_text())
    del config["pretrained_cfg"]
    assert read_preprocessing(config) == "unknown"


def test_swapped_query_and_key_fails_the_tolerance(monkeypatch, reference):
    """Negative control: the tolerance catches a plausible mapping bug."""
    def swapped(w):
        q, k, v = np.split(w, 3, axis=0)
        return k.T, q.T, v.T

    monkeypatch.setattr(vit_checkpoint, "_split_qkv_weight", swapped)
    wrong = from_checkpoint(TIMM_VIT)
    assert not _within_tolerance(_error(wrong, reference), reference[1])
    assert _error(wrong, reference) > 10 * ATOL  # measured 1.2e-3: not a near miss


def _write(tmp_path, tensors, config=True):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if config:
        shutil.copy(TIMM_VIT / "config.json", folder / "config.json")
    return folder


def _tensors():
    return load_file(str(TIMM_VIT / "model.safetensors"))


def test_missing_tensor_is_named(tmp_path):
    tensors = _tensors()
    del tensors["blocks.1.attn.qkv.bias"]
    with pytest.raises(ModelFileError, match=r"missing tensors: blocks\.1\.attn\.qkv\.bias"):
        from_checkpoint(_write(tmp_path, tensors))


def test_extra_tensor_is_named(tmp_path):
    tensors = _tensors()
    tensors["blocks.0.ls1.gamma"] = np.ones(64, np.float32)
    with pytest.raises(ModelFileError, match=r"unexpected tensors.*blocks\.0\.ls1\.gamma"):
        from_checkpoint(_write(tmp_path, tensors))


def test_wrong_shape_names_tensor_and_shapes(tmp_path):
    tensors = _tensors()
    tensors["blocks.0.mlp.fc1.weight"] = tensors["blocks.0.mlp.fc1.weight"][:200]
    with pytest.raises(ModelFileError, match=r"blocks\.0\.mlp\.fc1\.weight has shape \(200, 64\), "
                                             r"the model expects \(256, 64\)"):
        from_checkpoint(_write(tmp_path, tensors))


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
    config = json.loads((folder / "config.json").read_text())
    config["architecture"] = "vit_giant_patch14_224"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnknownModelError, match="not supported; supported: timm: .*"
                                                "vit_base_patch16_224"):
        from_checkpoint(folder)


def test_unsupported_model_args_refused(tmp_path):
    folder = _write(tmp_path, _tensors())
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["global_pool"] = "avg"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EdgezooError, match="global_pool='avg' is not supported"):
        from_checkpoint(folder)


def test_new_head_when_num_classes_changes(model, reference):
    features = from_checkpoint(TIMM_VIT, num_classes=0)
    assert np.abs(features(reference[0]).numpy() - reference[2]).max() <= ATOL
    five = from_checkpoint(TIMM_VIT, num_classes=5)
    assert five.output_shape == (None, 5)
    np.testing.assert_array_equal(five.get_layer("norm").gamma.numpy(),
                                  model.get_layer("norm").gamma.numpy())


def test_a_safetensors_file_with_config_beside_it(model):
    direct = from_checkpoint(TIMM_VIT / "model.safetensors")
    np.testing.assert_array_equal(direct.get_layer("pos_embed").table.numpy(),
                                  model.get_layer("pos_embed").table.numpy())


def test_keras_file_round_trip(model, reference, tmp_path):
    path = tmp_path / "vit.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(reference[0]).numpy(), model(reference[0]).numpy())


def test_to_checkpoint_round_trips_bit_for_bit(model, reference, tmp_path):
    folder = to_checkpoint(model, tmp_path / "out")
    written, original = load_file(str(folder / "model.safetensors")), _tensors()
    assert sorted(written) == sorted(original)
    for name, value in original.items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)
    assert _error(from_checkpoint(folder), reference) == _error(model, reference)


def test_vit_b16_writes_the_timm_full_size_layout():
    expected = json.loads(LAYOUTS.read_text())["architectures"]["timm:vit_base_patch16_224"]
    model = create_model("vit_b16")
    config, tensors = vit_checkpoint.export_timm_vit(model)
    assert config["architecture"] == "vit_base_patch16_224" and config["model_args"] == {}
    assert {k: list(v.shape) for k, v in tensors.items()} == expected["tensors"]


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
