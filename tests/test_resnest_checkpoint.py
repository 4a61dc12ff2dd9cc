"""A real timm ResNeSt checkpoint (random weights, timm's layout) loads into the zoo ResNeSt and
reproduces timm's outputs; a wrong mapping does not; bad checkpoints say what is wrong; a zoo
ResNeSt writes timm's full-size layout and reads back bit for bit."""
import json
import shutil

import numpy as np
import pytest
import tf_keras as keras
from safetensors.numpy import load_file, save_file

from conftest import SHARED
from edgezoo.base.errors import EdgezooError, ModelFileError, UnknownModelError
from edgezoo.zoo import create_model, from_checkpoint, read_preprocessing, to_checkpoint
from edgezoo.zoo.checkpoints import CONV2D, IDENTITY, Transform
from edgezoo.zoo.resnest import checkpoint as resnest_checkpoint
from edgezoo.zoo.resnest import resnest

TIMM_RESNEST = SHARED / "reference-checkpoints" / "timm" / "resnest"
LAYOUTS = SHARED / "reference-checkpoints" / "full-size-layouts.json"
ATOL = 1e-4  # max abs error vs timm's logits
REL_STD = 0.01  # ... and at most 1 % of the logits' standard deviation


@pytest.fixture(scope="module")
def reference():
    if not TIMM_RESNEST.is_dir():
        pytest.fail(f"reference checkpoints not found at {TIMM_RESNEST}; set EDGEZOO_SHARED")
    io = np.load(TIMM_RESNEST / "reference_io.npz")
    return io["pixel_values_nchw"].transpose(0, 2, 3, 1), io["logits"]


@pytest.fixture(scope="module")
def model():
    return from_checkpoint(TIMM_RESNEST)


def _error(model, reference):
    x, logits = reference
    return float(np.abs(model(x, training=False).numpy() - logits).max())


def _within_tolerance(err, logits):
    return err <= ATOL and err <= REL_STD * float(logits.std())


def test_reproduces_timm_logits(model, reference):
    err = _error(model, reference)
    assert _within_tolerance(err, reference[1]), err


def test_built_from_the_checkpoint_configuration(model):
    assert model.name == "resnest50d"
    assert model.input_shape == (None, 64, 64, 3) and model.output_shape == (None, 10)
    assert model.get_layer("stem_conv1").filters == 8
    assert model.get_layer("stem_conv3").filters == 16
    assert model.get_layer("layer4_block0_conv3").filters == 256  # channels 64 x expansion 4
    assert model.get_layer("layer1_block0_splat_fc1").filters == 32  # make_divisible(8*2/4, 32)
    assert model.get_layer("layer2_block0_splat_rsoftmax").radix == 2
    assert "layer1_block1_conv1" not in [layer.name for layer in model.layers]
    assert "layer2_block0_avd" in [layer.name for layer in model.layers]
    assert "layer2_block0_down_pool" in [layer.name for layer in model.layers]
    assert {layer.epsilon for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)} == {1e-5}


def test_preprocessing_recorded(model, tmp_path):
    expected = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "input_size": [3, 64, 64], "input_shape": [64, 64, 3],
                "interpolation": "bilinear", "crop_pct": 0.875, "crop_mode": "center"}
    assert {k: model.preprocessing[k] for k in expected} == expected
    assert "timm/resnest50d.in1k" in model.preprocessing["source"]
    assert read_preprocessing(TIMM_RESNEST) == model.preprocessing
    config = json.loads((TIMM_RESNEST / "config.json").read_text())
    del config["pretrained_cfg"]
    assert read_preprocessing(config) == "unknown"
    folder = _write(tmp_path, _tensors(), config)
    bare = from_checkpoint(folder)  # no pretrained_cfg: timm's default input size
    assert bare.preprocessing == "unknown" and bare.input_shape == (None, 224, 224, 3)


def _swap_halves(a):
    """The two radix halves of fc2's output channels (cardinality 1) swapped."""
    return np.concatenate(np.split(a, 2, axis=0)[::-1], axis=0)


def _with_rows(monkeypatch, replace):
    table = [replace.get(row[0], row) for row in resnest_checkpoint.BLOCK_TABLE]
    monkeypatch.setattr(resnest_checkpoint, "BLOCK_TABLE", table)


def test_swapped_radix_halves_fail_the_tolerance(monkeypatch, reference):
    """Negative control: the tolerance catches the radix halves of fc2 swapped."""
    weight = Transform("fc2 halves swapped", lambda a: CONV2D.forward(_swap_halves(a)),
                       lambda vs: _swap_halves(CONV2D.inverse(vs)))
    bias = Transform("fc2 bias halves swapped", lambda a: (_swap_halves(a),),
                     lambda vs: _swap_halves(vs[0]))
    _with_rows(monkeypatch, {
        "layer{s}.{b}.conv2.fc2.weight": ("layer{s}.{b}.conv2.fc2.weight",
                                          ("layer{s}_block{b}_splat_fc2.kernel",), weight),
        "layer{s}.{b}.conv2.fc2.bias": ("layer{s}.{b}.conv2.fc2.bias",
                                        ("layer{s}_block{b}_splat_fc2.bias",), bias)})
    err = _error(from_checkpoint(TIMM_RESNEST), reference)
    assert not _within_tolerance(err, reference[1])
    assert err > 10 * ATOL, err  # measured 2.1e-3: not a near miss


def test_swapped_batch_norm_scale_and_shift_fail_the_tolerance(monkeypatch, reference):
    """Negative control: a BN's weight and bias swapped (split attention's bn0)."""
    _with_rows(monkeypatch, {
        "layer{s}.{b}.conv2.bn0.weight": ("layer{s}.{b}.conv2.bn0.weight",
                                          ("layer{s}_block{b}_splat_bn0.beta",), IDENTITY),
        "layer{s}.{b}.conv2.bn0.bias": ("layer{s}.{b}.conv2.bn0.bias",
                                        ("layer{s}_block{b}_splat_bn0.gamma",), IDENTITY)})
    err = _error(from_checkpoint(TIMM_RESNEST), reference)
    assert not _within_tolerance(err, reference[1])
    assert err > 10 * ATOL, err  # measured 2.1e-2


def _write(tmp_path, tensors, config=None):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if config is None:
        shutil.copy(TIMM_RESNEST / "config.json", folder / "config.json")
    else:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def _tensors():
    return load_file(str(TIMM_RESNEST / "model.safetensors"))


def _config(**model_args):
    config = json.loads((TIMM_RESNEST / "config.json").read_text())
    config["model_args"].update(model_args)
    return config


@pytest.fixture
def no_build(monkeypatch):
    """Bad checkpoints must fail before the model is built."""
    def refuse(**kwargs):
        raise AssertionError("the model was built before the checkpoint was checked")

    monkeypatch.setattr(resnest_checkpoint, "resnest", refuse)


def test_missing_tensor_is_named(tmp_path, no_build):
    tensors = _tensors()
    del tensors["layer3.0.conv2.fc2.bias"]
    with pytest.raises(ModelFileError, match=r"missing tensors: layer3\.0\.conv2\.fc2\.bias"):
        from_checkpoint(_write(tmp_path, tensors))


def test_extra_tensor_is_named(tmp_path, no_build):
    tensors = _tensors()
    tensors["layer1.0.se.fc1.weight"] = np.ones((4, 32, 1, 1), np.float32)
    with pytest.raises(ModelFileError, match=r"unexpected tensors.*layer1\.0\.se\.fc1\.weight"):
        from_checkpoint(_write(tmp_path, tensors))


def test_wrong_shape_names_tensor_and_shapes(tmp_path, no_build):
    tensors = _tensors()
    tensors["layer2.0.conv2.conv.weight"] = tensors["layer2.0.conv2.conv.weight"][:, :4]
    with pytest.raises(ModelFileError, match=r"layer2\.0\.conv2\.conv\.weight has shape "
                                             r"\(32, 4, 3, 3\), the model expects \(32, 8, 3, 3\)"):
        from_checkpoint(_write(tmp_path, tensors))


def test_unknown_architecture_lists_supported(tmp_path, no_build):
    config = _config()
    config["architecture"] = "resnest50d_dilated"
    with pytest.raises(UnknownModelError, match="not supported; supported: timm: .*resnest50d"):
        from_checkpoint(_write(tmp_path, _tensors(), config))


@pytest.mark.parametrize("model_args, message", [
    ({"output_stride": 8}, r"output_stride=8 is not supported by the zoo ResNeSt: the zoo "
                           r"ResNeSt has no dilated stages"),
    ({"stem_type": "tiered"}, r"stem_type='tiered' is not supported.*only the deep stem"),
    ({"channels": [8, 16, 32, 48]}, r"channels=\[8, 16, 32, 48\].*doubles the planes"),
    ({"block_args": {"radix": 0}}, r"radix=0 .*no split attention"),
    ({"block_args": {"radix": 2, "attn_layer": "se"}}, r"attn_layer='se' is not supported"),
    ({"layers": [1, 1, 1]}, r"four stages"),
    ({"layers": 4}, r"layers=4 .*list of positive whole numbers"),
    ({"act_layer": ["relu"]}, r"act_layer=\['relu'\] .*uses ReLU"),
    ({"drop_block_rate": 0.1}, r"drop_block_rate=0\.1 .*no DropBlock"),
    ({"zero_init": True}, r"model_args zero_init=True is not supported.*known: .*stem_width"),
])
def test_unsupported_model_args_refused(tmp_path, no_build, model_args, message):
    with pytest.raises(EdgezooError, match=message):
        from_checkpoint(_write(tmp_path, _tensors(), _config(**model_args)))


def test_new_head_when_num_classes_changes(model, reference):
    features = from_checkpoint(TIMM_RESNEST, num_classes=0)
    assert features.output_shape == (None, 256)
    five = from_checkpoint(TIMM_RESNEST, num_classes=5)
    assert five.output_shape == (None, 5)
    np.testing.assert_array_equal(five.get_layer("layer4_block0_bn3").moving_variance.numpy(),
                                  model.get_layer("layer4_block0_bn3").moving_variance.numpy())


def test_keras_file_round_trip(model, reference, tmp_path):
    path = tmp_path / "resnest.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(reference[0]).numpy(), model(reference[0]).numpy())


def test_to_checkpoint_round_trips_bit_for_bit(model, reference, tmp_path):
    folder = to_checkpoint(model, tmp_path / "out")
    written, original = load_file(str(folder / "model.safetensors")), _tensors()
    assert {k: v.shape for k, v in written.items()} == {k: v.shape for k, v in original.items()}
    for name, value in original.items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)
    config = json.loads((folder / "config.json").read_text())
    assert config["pretrained_cfg"]["input_size"] == [3, 64, 64]
    again = from_checkpoint(folder)
    assert again.preprocessing["mean"] == model.preprocessing["mean"]
    assert _error(again, reference) == _error(model, reference)


@pytest.mark.parametrize("kwargs", [  # the other timm block kinds, reduced
    dict(cardinality=2, radix=4, bottleneck_width=40, avd_first=True),  # resnest50d_4s2x40d
    dict(cardinality=4, radix=1, bottleneck_width=24, avd_first=True),  # resnest50d_1s4x24d
    dict(avg_down=False, avd=False, dropout=0.25),
])
def test_reduced_variants_round_trip(tmp_path, kwargs):
    original = resnest(input_shape=(64, 64, 3), num_classes=7, layers=(1, 2, 1, 1),
                       stem_width=8, base_planes=32, **kwargs)
    folder = to_checkpoint(original, tmp_path / "out")
    loaded = from_checkpoint(folder)
    assert loaded.input_shape == original.input_shape
    assert [v.name for v in loaded.weights] == [v.name for v in original.weights]
    for a, b in zip(original.weights, loaded.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.name
    if "dropout" in kwargs:
        assert loaded.get_layer("head_drop").rate == 0.25


def test_zoo_models_timm_cannot_express_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="four stages"):
        to_checkpoint(create_model("resnest_micro"), tmp_path / "micro")
    narrow = resnest(input_shape=(64, 64, 3), num_classes=3, layers=(1, 1, 1, 1), stem_width=8,
                     base_planes=8, attn_min_channels=8)
    with pytest.raises(ModelFileError, match=r"no timm counterpart: timm's "
                                             r"layer1\.0\.conv2\.bn1\.bias would be \(32,\)"):
        to_checkpoint(narrow, tmp_path / "narrow")


def test_resnest50_writes_the_timm_full_size_layout_and_reads_back(tmp_path):
    expected = json.loads(LAYOUTS.read_text())["architectures"]["timm:resnest50d"]["tensors"]
    model = create_model("resnest50")
    folder = to_checkpoint(model, tmp_path / "resnest50d")
    config = json.loads((folder / "config.json").read_text())
    assert config == {"architecture": "resnest50d", "model_args": {}, "num_classes": 1000}
    written = load_file(str(folder / "model.safetensors"))
    assert {k: list(v.shape) for k, v in written.items()} == expected
    assert all(written[k].dtype == np.int64 for k in expected if k.endswith("_tracked"))
    loaded = from_checkpoint(folder)
    assert loaded.preprocessing == "unknown"
    assert [v.name for v in loaded.weights] == [v.name for v in model.weights]
    for a, b in zip(model.weights, loaded.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.name
