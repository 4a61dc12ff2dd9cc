import numpy as np
import pytest
import tf_keras as keras

from edgezoo.base.errors import InputShapeError
from edgezoo.zoo import create_model
from edgezoo.zoo.vit.layers import PositionEmbedding, resize_position_embedding
from model_case import assert_model_checks, run_model_checks, samples_for

# timm vit_base_patch16_224 / HF ViTForImageClassification, 1000 classes.
VIT_B16_PARAMS = 86_567_656
# timm vit_tiny_patch16_224, vit_small_patch16_224, vit_large_patch16_224 and
# vit_huge_patch14_224 (built with num_classes=1000: its default config has no head).
REFERENCE_PARAMS = {"vit_ti16": 5_717_416, "vit_s16": 22_050_664, "vit_l16": 304_326_632,
                    "vit_h14": 632_045_800}


def test_vit_b16_has_the_reference_parameter_count():
    model = create_model("vit_b16")
    assert model.count_params() == VIT_B16_PARAMS
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)


@pytest.mark.parametrize("name", ["vit_ti16", "vit_s16", "vit_l16"])
def test_other_sizes_match_reference_counts(name):
    assert create_model(name).count_params() == REFERENCE_PARAMS[name]


@pytest.mark.slow
def test_vit_h14_matches_reference_count():
    assert create_model("vit_h14").count_params() == REFERENCE_PARAMS["vit_h14"]


def test_vit_b16_parameter_count_by_part():
    """A missing class token, position table or final norm changes these exact numbers."""
    model = create_model("vit_b16")
    by_layer = {layer.name: layer.count_params() for layer in model.layers}
    assert by_layer["patch_embed"] == 16 * 16 * 3 * 768 + 768
    assert by_layer["cls_token"] == 768
    assert by_layer["pos_embed"] == 197 * 768
    assert by_layer["norm"] == 2 * 768
    assert by_layer["head"] == 768 * 1000 + 1000
    assert by_layer["block0_attn"] == 4 * (768 * 768 + 768)
    assert by_layer["block0_mlp_fc1"] + by_layer["block0_mlp_fc2"] == 2 * 768 * 3072 + 3072 + 768
    assert sum(1 for name in by_layer if name.endswith("_attn")) == 12


def test_vit_micro_through_shared_checks(tmp_path):
    model = create_model("vit_micro")
    check = run_model_checks(model, tmp_path, target="nrf52840")
    assert_model_checks(check, (16, 10))
    assert check.report["ops"] == sorted(check.report["ops"])
    assert "FULLY_CONNECTED" not in check.report["ops"]  # dense_as_conv1x1 rewrite applied


def test_features_when_num_classes_is_zero():
    model = create_model("vit_micro", num_classes=0)
    assert model.output_shape == (None, 64)
    assert "head" not in [layer.name for layer in model.layers]


def test_pre_logits_option():
    model = create_model("vit_micro", representation_size=32)
    assert model.get_layer("pre_logits").count_params() == 64 * 32 + 32
    assert model.get_layer("pre_logits").get_config()["activation"] == "tanh"


@pytest.mark.parametrize("shape, words", [
    ((18, 16, 1), "multiples of the patch size 4"),
    ((16, 16), "static (height, width, channels)"),
    ((16, None, 1), "static (height, width, channels)"),
])
def test_bad_input_shapes_say_why(shape, words):
    with pytest.raises(InputShapeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        create_model("vit_micro", input_shape=shape)


def test_heads_must_divide_width():
    with pytest.raises(InputShapeError, match="not divisible by 5 heads"):
        create_model("vit_micro", num_heads=5)


def test_position_embedding_resized_when_input_size_changes(tmp_path):
    small = create_model("vit_micro")  # 4x4 patch grid
    path = tmp_path / "small.keras"
    small.save(path)
    large = create_model("vit_micro", input_shape=(32, 32, 1))  # 8x8 grid
    table = small.get_layer("pos_embed").get_weights()[0]
    large.get_layer("pos_embed").set_weights([table])
    got = large.get_layer("pos_embed").get_weights()[0]
    assert got.shape == (1, 65, 64)
    np.testing.assert_array_equal(got[:, :1], table[:, :1])  # class token position kept
    np.testing.assert_allclose(got, resize_position_embedding(table, (8, 8)), rtol=1e-6)
    # A smooth table stays smooth: bicubic resize of a linear ramp is a linear ramp inside.
    ramp = np.linspace(0, 1, 4)[:, None] + np.zeros((4, 4))
    grid = np.concatenate([np.zeros((1, 1, 1)), ramp.reshape(1, 16, 1)], axis=1)
    resized = resize_position_embedding(grid, (8, 8))[0, 1:, 0].reshape(8, 8)
    assert np.all(np.diff(resized[:, 3]) > 0)


def test_keras_file_weights_load_into_a_larger_input(tmp_path):
    """Fine-tuning at a higher resolution: every weight carries over, the position table resized."""
    small = create_model("vit_micro")
    path = tmp_path / "small.keras"
    small.save(path)
    large = create_model("vit_micro", input_shape=(32, 32, 1))
    large.load_weights(path)
    table = small.get_layer("pos_embed").get_weights()[0]
    np.testing.assert_allclose(large.get_layer("pos_embed").get_weights()[0],
                               resize_position_embedding(table, (8, 8)), rtol=1e-6)
    for name in ("patch_embed", "cls_token", "block3_attn", "norm", "head"):
        for a, b in zip(small.get_layer(name).get_weights(), large.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    layer = PositionEmbedding((8, 8))
    with pytest.raises(ValueError, match="expected 65 tokens"):
        layer.build((None, 17, 64))


def test_training_flags_change_outputs_only_in_training():
    model = create_model("vit_micro", dropout=0.5, drop_path_rate=0.5)
    x = samples_for(model, 4)
    a, b = model(x, training=False).numpy(), model(x, training=False).numpy()
    np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(1)
    assert np.abs(model(x, training=True).numpy() - a).max() > 1e-3
