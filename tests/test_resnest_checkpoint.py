"""A real timm ResNeSt checkpoint (random weights, timm's layout) loads into the zoo ResNeSt and
reproduces timm's outputs; a wrong mapping does not; bad checkpoints say what is wrong; a zoo
ResNeSt writes timm's full-size layout and reads back bit for bit."""
import numpy as np
import pytest
import tf_keras as keras

from checkpoint_case import (REFERENCE, assert_fails_tolerance, assert_keras_file_round_trip,
                             assert_new_head, assert_refused, assert_same_weights,
                             assert_writes_back, full_size_layout, max_error, read_config,
                             read_tensors, reference_io, tensor_shapes, within_tolerance,
                             write_checkpoint)
from edgezoo.base.errors import EdgezooError, ModelFileError, UnknownModelError
from edgezoo.zoo import create_model, from_checkpoint, read_preprocessing, to_checkpoint
from edgezoo.zoo.checkpoints import CONV2D, IDENTITY, Transform
from edgezoo.zoo.resnest import checkpoint as resnest_checkpoint
from edgezoo.zoo.resnest import resnest

TIMM_RESNEST = REFERENCE / "timm" / "resnest"


@pytest.fixture(scope="module")
def reference():
    """(images NHWC, timm's logits)."""
    return reference_io(TIMM_RESNEST)


@pytest.fixture(scope="module")
def model():
    return from_checkpoint(TIMM_RESNEST)


def test_reproduces_timm_logits(model, reference):
    err = max_error(model, reference)
    assert within_tolerance(err, reference[1]), err


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
    config = read_config(TIMM_RESNEST)
    del config["pretrained_cfg"]
    assert read_preprocessing(config) == "unknown"
    folder = _write(tmp_path, _tensors(), config)
    bare = from_checkpoint(folder)  # no pretrained_cfg: timm's default input size
    assert bare.preprocessing == "unknown" and bare.input_shape == (None, 224, 224, 3)


def _swap_halves(a):
    """The two radix halves of fc2's output channels (cardinality 1) swapped."""
    return np.concatenate(np.split(a, 2, axis=0)[::-1], axis=0)


def _with_rows(monkeypatch, replace):
    """BLOCK_TABLE with each timm name in ``replace`` mapped instead to ``replace[name]``,
    a (zoo variable, transform) pair."""
    rows = {name: (name, (variable,), transform) for name, (variable, transform) in replace.items()}
    table = [rows.get(row[0], row) for row in resnest_checkpoint.BLOCK_TABLE]
    monkeypatch.setattr(resnest_checkpoint, "BLOCK_TABLE", table)


def test_swapped_radix_halves_fail_the_tolerance(monkeypatch, reference):
    """Negative control: the tolerance catches the radix halves of fc2 swapped."""
    weight = Transform("fc2 halves swapped", lambda a: CONV2D.forward(_swap_halves(a)),
                       lambda vs: _swap_halves(CONV2D.inverse(vs)))
    bias = Transform("fc2 bias halves swapped", lambda a: (_swap_halves(a),),
                     lambda vs: _swap_halves(vs[0]))
    _with_rows(monkeypatch, {
        "layer{s}.{b}.conv2.fc2.weight": ("layer{s}_block{b}_splat_fc2.kernel", weight),
        "layer{s}.{b}.conv2.fc2.bias": ("layer{s}_block{b}_splat_fc2.bias", bias)})
    assert_fails_tolerance(from_checkpoint(TIMM_RESNEST), reference, 10)  # measured 2.1e-3


def test_swapped_batch_norm_scale_and_shift_fail_the_tolerance(monkeypatch, reference):
    """Negative control: a BN's weight and bias swapped (split attention's bn0)."""
    _with_rows(monkeypatch, {
        "layer{s}.{b}.conv2.bn0.weight": ("layer{s}_block{b}_splat_bn0.beta", IDENTITY),
        "layer{s}.{b}.conv2.bn0.bias": ("layer{s}_block{b}_splat_bn0.gamma", IDENTITY)})
    assert_fails_tolerance(from_checkpoint(TIMM_RESNEST), reference, 10)  # measured 2.1e-2


def _write(tmp_path, tensors=None, config=None, **edits):
    """An edited copy of the reference (``write_checkpoint``'s edits); ``config`` None: the
    reference's."""
    return write_checkpoint(tmp_path / "ckpt", TIMM_RESNEST, tensors, config, **edits)


def _tensors():
    return read_tensors(TIMM_RESNEST)


def _config(**model_args):
    config = read_config(TIMM_RESNEST)
    config["model_args"].update(model_args)
    return config


@pytest.fixture
def no_build(monkeypatch):
    """Bad checkpoints must fail before the model is built."""
    def refuse(**kwargs):
        raise AssertionError("the model was built before the checkpoint was checked")

    monkeypatch.setattr(resnest_checkpoint, "resnest", refuse)


def test_missing_tensor_is_named(tmp_path, no_build):
    assert_refused(_write(tmp_path, drop=["layer3.0.conv2.fc2.bias"]), ModelFileError,
                   r"missing tensors: layer3\.0\.conv2\.fc2\.bias")


def test_extra_tensor_is_named(tmp_path, no_build):
    extra = {"layer1.0.se.fc1.weight": np.ones((4, 32, 1, 1), np.float32)}
    assert_refused(_write(tmp_path, put=extra), ModelFileError,
                   r"unexpected tensors.*layer1\.0\.se\.fc1\.weight")


def test_wrong_shape_names_tensor_and_shapes(tmp_path, no_build):
    tensors = _tensors()
    tensors["layer2.0.conv2.conv.weight"] = tensors["layer2.0.conv2.conv.weight"][:, :4]
    assert_refused(_write(tmp_path, tensors), ModelFileError,
                   r"layer2\.0\.conv2\.conv\.weight has shape "
                   r"\(32, 4, 3, 3\), the model expects \(32, 8, 3, 3\)")


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
    assert_new_head(model, TIMM_RESNEST, "layer4_block0_bn3", "moving_variance")


def test_keras_file_round_trip(model, reference, tmp_path):
    assert_keras_file_round_trip(model, reference[0], tmp_path / "resnest.keras")


def test_to_checkpoint_round_trips_bit_for_bit(model, reference, tmp_path):
    folder = assert_writes_back(model, TIMM_RESNEST, tmp_path / "out")
    assert read_config(folder)["pretrained_cfg"]["input_size"] == [3, 64, 64]
    again = from_checkpoint(folder)
    assert again.preprocessing["mean"] == model.preprocessing["mean"]
    assert max_error(again, reference) == max_error(model, reference)


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
    assert_same_weights(original, loaded)
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
    expected = full_size_layout("timm:resnest50d")
    model = create_model("resnest50")
    folder = to_checkpoint(model, tmp_path / "resnest50d")
    assert read_config(folder) == {"architecture": "resnest50d", "model_args": {},
                                   "num_classes": 1000}
    written = read_tensors(folder)
    assert tensor_shapes(written) == expected
    assert all(written[k].dtype == np.int64 for k in expected if k.endswith("_tracked"))
    loaded = from_checkpoint(folder)
    assert loaded.preprocessing == "unknown"
    assert_same_weights(model, loaded)
