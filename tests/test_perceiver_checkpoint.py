"""Real Hugging Face PerceiverForImageClassificationFourier checkpoints (random weights, written
by transformers 5 and 4.57) load into the zoo Perceiver IO and reproduce HF's logits; a wrong
mapping does not; the paper-size zoo model writes HF's full-size layout; bad checkpoints say
what is wrong."""
import json

import numpy as np
import pytest

from checkpoint_case import (REFERENCE, assert_fails_tolerance, assert_new_head, assert_refused,
                             assert_same_tensors, assert_same_weights, assert_writes_back,
                             full_size_layout, max_error, read_config, read_tensors,
                             reference_io, tensor_shapes, within_tolerance, write_checkpoint)
from edgezoo.base.errors import EdgezooError, ModelFileError, UnknownModelError
from edgezoo.zoo import create_model, from_checkpoint, read_preprocessing, to_checkpoint
from edgezoo.zoo.checkpoints import supported_architectures
from edgezoo.zoo.perceiver import checkpoint as perceiver_checkpoint

HF5, HF4 = REFERENCE / "hf" / "perceiver", REFERENCE / "hf4" / "perceiver"
ARCH = "PerceiverForImageClassificationFourier"


@pytest.fixture(scope="module")
def model():
    return from_checkpoint(HF5)


@pytest.mark.parametrize("folder", [HF5, HF4], ids=["transformers5", "transformers4"])
def test_reproduces_hf_logits(folder):
    reference = reference_io(folder)
    err = max_error(from_checkpoint(folder), reference)
    assert within_tolerance(err, reference[1]), err
    # Measured 5.6e-9 for both. Below the gate, 1e-6 still pins two details the gate alone
    # would miss: LayerNorm eps 1e-12 (config's layer_norm_eps, which HF does not use) instead
    # of torch's 1e-5 moves the logits by 2.9e-6, and Fourier bands interleaved across the two
    # axes (instead of axis-major) by 1.5e-5.
    assert err <= 1e-6, err


def test_transformers_4_and_5_name_the_tensors_alike():
    """The two writers differ only in config.json extras; the loader reads both folders."""
    names5, names4 = read_tensors(HF5), read_tensors(HF4)
    assert sorted(names5) == sorted(names4)
    assert read_config(HF4)["transformers_version"].startswith("4.")


def test_built_from_the_checkpoint_configuration(model):
    config = read_config(HF5)
    assert model.input_shape == (None, config["image_size"], config["image_size"], 3)
    assert model.output_shape == (None, len(config["id2label"]))
    latents = model.get_layer("latents")
    assert (latents.num_latents, latents.latent_dim) == (config["num_latents"],
                                                         config["d_latents"])
    fourier = model.get_layer("fourier_features")
    assert (fourier.num_bands, fourier.max_resolution) == (64, (224.0, 224.0))
    names = [layer.name for layer in model.layers]
    assert "latent0_block1_attn" in names and "latent0_block2_attn" not in names
    assert "latent1_block0_attn" not in names  # one weight set, shared by every block
    assert model.get_layer("latent0_block0_attn").num_heads == config["num_self_attention_heads"]
    assert model.get_layer("cross0_attn").num_heads == config["num_cross_attention_heads"]
    assert model.get_layer("cross0_attn").key.kernel.shape == (config["d_model"],) * 2
    assert model.get_layer("cross0_norm_q").epsilon == 1e-5  # torch's default; HF passes none
    assert model.get_layer("decoder_mlp_gelu").get_config()["activation"] == "gelu"


def _swap_kernels(a, b, layer):
    """The mapping table with the ``a`` and ``b`` projection weights of ``layer`` swapped."""
    def swap(name):
        return name.replace(f".{a}.", ".@.").replace(f".{b}.", f".{a}.").replace(".@.", f".{b}.")

    return [(swap(t) if layer in t and t.endswith(".weight") else t, v, tr)
            for t, v, tr in perceiver_checkpoint.HF_PERCEIVER_TABLE]


@pytest.mark.parametrize("a, b, layer, floor", [
    ("query", "value", "self_attends", 3),  # measured 5.1e-4
    ("query", "value", "decoding_cross_attention", 10),  # measured 5.0e-3
    ("key", "value", "decoding_cross_attention", 10),  # measured 3.0e-3
])
def test_swapped_kernels_fail_the_tolerance(monkeypatch, a, b, layer, floor):
    """Negative control: the gate catches a plausible mapping bug, in both checkpoints.

    A query/key swap is NOT among them: in these checkpoints (HF's init, weights of std 0.02)
    q.k is so small that every softmax is almost uniform, and swapping the query and key
    kernels moves the logits by only 5e-8 (self-attends) or 4.5e-7 (decoder), far inside any
    float32 tolerance; no test on these logits can see it.
    """
    table = _swap_kernels(a, b, layer)
    assert table != perceiver_checkpoint.HF_PERCEIVER_TABLE
    monkeypatch.setattr(perceiver_checkpoint, "HF_PERCEIVER_TABLE", table)
    for folder in (HF5, HF4):  # floor x ATOL: not a near miss
        assert_fails_tolerance(from_checkpoint(folder), reference_io(folder), floor,
                               folder.parent.name)


def test_fourier_channel_order_is_checked(monkeypatch):
    """Negative control for the byte array: positions after the sines and cosines (instead of
    first) or cosines before sines fail the gate (measured 1.1e-3 and 9.4e-4)."""
    from edgezoo.zoo.perceiver.layers import fourier_features

    right = fourier_features.fourier_position_features

    def positions_last(*args, **kwargs):
        f = right(*args, **kwargs)
        return np.concatenate([f[:, 2:], f[:, :2]], axis=-1)

    def cosines_first(*args, **kwargs):
        f = right(*args, **kwargs)
        return np.concatenate([f[:, :2], f[:, 130:], f[:, 2:130]], axis=-1)

    for wrong in (positions_last, cosines_first):
        monkeypatch.setattr(fourier_features, "fourier_position_features", wrong)
        assert_fails_tolerance(from_checkpoint(HF5), reference_io(HF5), 5, wrong.__name__)


def test_preprocessing_unknown_without_preprocessor_config(model):
    assert model.preprocessing == "unknown"
    assert read_preprocessing(HF5) == "unknown"


def test_preprocessing_recorded_from_preprocessor_config(tmp_path):
    """deepmind/vision-perceiver-fourier's PerceiverImageProcessor settings, beside the weights."""
    folder = _copy(tmp_path)
    pre = {"crop_size": {"height": 256, "width": 256}, "do_center_crop": True,
           "do_normalize": True, "do_rescale": True, "do_resize": True,
           "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
           "image_processor_type": "PerceiverImageProcessor", "resample": 3,
           "rescale_factor": 1 / 255, "size": {"height": 224, "width": 224}}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    recorded = from_checkpoint(folder).preprocessing
    assert recorded["mean"] == pre["image_mean"] and recorded["std"] == pre["image_std"]
    assert recorded["size"] == pre["size"] and recorded["crop_size"] == pre["crop_size"]
    assert recorded["do_center_crop"] is True and recorded["resample"] == 3
    assert recorded["interpolation"] == "bicubic"
    assert "PerceiverImageProcessor" in recorded["source"]
    assert read_preprocessing(folder) == recorded


def test_to_checkpoint_round_trips_bit_for_bit(model, tmp_path):
    """Reduced round trip: the loaded reference written back equals the reference file."""
    folder = assert_writes_back(model, HF5, tmp_path / "out")
    config = read_config(folder)
    assert config["architectures"] == [ARCH] and config["d_model"] == 261
    reference = reference_io(HF5)
    assert max_error(from_checkpoint(folder), reference) == max_error(model, reference)


@pytest.mark.slow  # about 25 s; the micro checkpoint's round trip runs by default
def test_perceiver_io_writes_the_hf_full_size_layout(tmp_path):
    """The zoo's paper-size perceiver_io is deepmind/vision-perceiver-fourier's size: its
    checkpoint has exactly HF's tensor names and shapes and loads back bit for bit (~25 s)."""
    expected = full_size_layout(f"hf4:{ARCH}")
    model = create_model("perceiver_io")
    folder = to_checkpoint(model, tmp_path / "full")
    written = read_tensors(folder)
    assert tensor_shapes(written) == expected
    loaded = from_checkpoint(folder)
    assert len(loaded.weights) == len(expected)
    assert_same_weights(model, loaded, names=False)  # same builder, same order
    again = perceiver_checkpoint.export_hf_perceiver(loaded)[1]
    assert_same_tensors(again, written)


def test_zoo_models_hf_cannot_hold_are_refused():
    with pytest.raises(ModelFileError, match="3 input channels, 64 bands.*has 1 channels, "
                                             "8 bands"):
        to_checkpoint(create_model("perceiver_io_micro"), "unused")
    with pytest.raises(ModelFileError, match="HF has no Perceiver \\(v1\\) class"):
        to_checkpoint(create_model("perceiver_micro"), "unused")


def test_use_query_residual_false_is_built(tmp_path):
    folder = _copy(tmp_path, use_query_residual=False)
    model = from_checkpoint(folder)
    names = {layer.name for layer in model.layers}
    assert "cross_attend0_attn_add" not in names and "tower0_block0_attn_add" in names
    out = to_checkpoint(model, tmp_path / "out")
    assert read_config(out)["use_query_residual"] is False


def test_new_head_when_num_classes_changes(model):
    assert_new_head(model, HF5, "decoder_query", "latents")


# --- bad input ------------------------------------------------------------------------------

def _tensors():
    return read_tensors(HF5)


def _copy(tmp_path, tensors=None, drop=(), put=None, **config_changes):
    """An edited copy of HF5 (``write_checkpoint``'s tensor edits), its config.json with the
    changes."""
    config = read_config(HF5)
    config.update(config_changes)
    return write_checkpoint(tmp_path / "ckpt", HF5, tensors, config, drop, put)


def test_wrong_shape_names_tensor_and_shapes(tmp_path):
    tensors = _tensors()
    name = "perceiver.encoder.self_attends.1.mlp.dense1.weight"
    tensors[name] = tensors[name][:20]
    assert_refused(_copy(tmp_path, tensors), ModelFileError,
                   r"self_attends\.1\.mlp\.dense1\.weight has shape "
                   r"\(20, 32\), the model expects \(32, 32\)")


def test_missing_tensor_is_named(tmp_path):
    name = "perceiver.decoder.decoder.output_position_encodings.position_embeddings"
    assert_refused(_copy(tmp_path, drop=[name]), ModelFileError,
                   r"missing tensors: perceiver\.decoder\.decoder\."
                   r"output_position_encodings\.position_embeddings")


def test_leftover_tensor_is_named(tmp_path):
    """A third self-attend that the config (num_self_attends_per_block=2) does not declare."""
    extra = {"perceiver.encoder.self_attends.2.layernorm.weight": np.ones(32, np.float32)}
    assert_refused(_copy(tmp_path, put=extra), ModelFileError,
                   r"unexpected tensors.*self_attends\.2\.layernorm")


@pytest.fixture
def no_build(monkeypatch):
    """Config errors must come before any model is built."""
    def refuse(**kwargs):
        raise AssertionError("a model was built before the configuration was checked")

    monkeypatch.setattr("edgezoo.zoo.perceiver.model.perceiver_io", refuse)


@pytest.mark.parametrize("change, match", [
    (dict(qk_channels=16), "qk_channels=16 cannot be built.*latent self-attention projects"),
    (dict(v_channels=16), "v_channels=16 cannot be built.*latent self-attention"),
    (dict(hidden_act="relu"), "hidden_act='relu' cannot be built.*exact \\(erf\\) GELU"),
    (dict(d_model=768), "d_model=768 cannot be built.*3 pixel channels \\+ 258 Fourier"),
    (dict(cross_attention_shape_for_attention="x"), "cross_attention_shape_for_attention='x'"),
])
def test_unbuildable_config_option_says_which_and_why(tmp_path, no_build, change, match):
    with pytest.raises(ModelFileError, match=match):
        from_checkpoint(_copy(tmp_path, **change))


def test_unmapped_hf_architecture_lists_supported(tmp_path):
    assert ARCH in supported_architectures()["huggingface"]
    for arch in ("BertForMaskedLM", "PerceiverForImageClassificationLearned"):
        config = read_config(HF5)
        config["architectures"] = [arch]
        folder = write_checkpoint(tmp_path / arch, HF5, config=config)
        listing = f"huggingface architecture '{arch}' is not supported; supported: .*{ARCH}"
        with pytest.raises(UnknownModelError, match=listing):
            from_checkpoint(folder)
    assert issubclass(UnknownModelError, EdgezooError)
