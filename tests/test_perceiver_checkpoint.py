"""Real Hugging Face PerceiverForImageClassificationFourier checkpoints (random weights, written
by transformers 5 and 4.57) load into the zoo Perceiver IO and reproduce HF's logits; a wrong
mapping does not; the paper-size zoo model writes HF's full-size layout; bad checkpoints say
what is wrong."""
import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import SHARED
from edgezoo.base.errors import EdgezooError, ModelFileError, UnknownModelError
from edgezoo.zoo import create_model, from_checkpoint, read_preprocessing, to_checkpoint
from edgezoo.zoo.checkpoints import supported_architectures
from edgezoo.zoo.perceiver import checkpoint as perceiver_checkpoint

REFERENCE = SHARED / "reference-checkpoints"
HF5, HF4 = REFERENCE / "hf" / "perceiver", REFERENCE / "hf4" / "perceiver"
LAYOUTS = REFERENCE / "full-size-layouts.json"
ARCH = "PerceiverForImageClassificationFourier"
ATOL = 1e-4  # max abs error vs HF's logits
REL_STD = 0.01  # ... and at most 1 % of the logits' standard deviation


def _reference(folder):
    if not folder.is_dir():
        pytest.fail(f"reference checkpoints not found at {folder}; set EDGEZOO_SHARED")
    io = np.load(folder / "reference_io.npz")
    return io["pixel_values_nchw"].transpose(0, 2, 3, 1), io["logits"]


@pytest.fixture(scope="module")
def model():
    return from_checkpoint(HF5)


def _error(model, folder):
    x, logits = _reference(folder)
    return float(np.abs(model(x, training=False).numpy() - logits).max())


def _within_tolerance(err, folder):
    return err <= ATOL and err <= REL_STD * float(_reference(folder)[1].std())


@pytest.mark.parametrize("folder", [HF5, HF4], ids=["transformers5", "transformers4"])
def test_reproduces_hf_logits(folder):
    err = _error(from_checkpoint(folder), folder)
    assert _within_tolerance(err, folder), err
    # Measured 5.6e-9 for both. Below the gate, 1e-6 still pins two details the gate alone
    # would miss: LayerNorm eps 1e-12 (config's layer_norm_eps, which HF does not use) instead
    # of torch's 1e-5 moves the logits by 2.9e-6, and Fourier bands interleaved across the two
    # axes (instead of axis-major) by 1.5e-5.
    assert err <= 1e-6, err


def test_transformers_4_and_5_name_the_tensors_alike():
    """The two writers differ only in config.json extras; the loader reads both folders."""
    names5, names4 = load_file(str(HF5 / "model.safetensors")), load_file(
        str(HF4 / "model.safetensors"))
    assert sorted(names5) == sorted(names4)
    assert json.loads((HF4 / "config.json").read_text())["transformers_version"].startswith("4.")


def test_built_from_the_checkpoint_configuration(model):
    config = json.loads((HF5 / "config.json").read_text())
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
    for folder in (HF5, HF4):
        err = _error(from_checkpoint(folder), folder)
        assert not _within_tolerance(err, folder), err
        assert err > floor * ATOL, err  # not a near miss


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
        err = _error(from_checkpoint(HF5), HF5)
        assert not _within_tolerance(err, HF5) and err > 5 * ATOL, (wrong.__name__, err)


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
    folder = to_checkpoint(model, tmp_path / "out")
    written, original = load_file(str(folder / "model.safetensors")), _tensors()
    assert sorted(written) == sorted(original)
    for name, value in original.items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == [ARCH] and config["d_model"] == 261
    assert _error(from_checkpoint(folder), HF5) == _error(model, HF5)


def test_perceiver_io_writes_the_hf_full_size_layout(tmp_path):
    """The zoo's paper-size perceiver_io is deepmind/vision-perceiver-fourier's size: its
    checkpoint has exactly HF's tensor names and shapes and loads back bit for bit (~25 s)."""
    expected = json.loads(LAYOUTS.read_text())["architectures"][f"hf4:{ARCH}"]["tensors"]
    model = create_model("perceiver_io")
    folder = to_checkpoint(model, tmp_path / "full")
    written = load_file(str(folder / "model.safetensors"))
    assert {k: list(v.shape) for k, v in written.items()} == expected
    loaded = from_checkpoint(folder)
    assert len(model.weights) == len(loaded.weights) == len(expected)
    for ours, theirs in zip(model.weights, loaded.weights):  # same builder, same order
        assert ours.shape == theirs.shape, ours.name
        np.testing.assert_array_equal(theirs.numpy(), ours.numpy(), err_msg=ours.name)
    again = perceiver_checkpoint.export_hf_perceiver(loaded)[1]
    for name, value in written.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)


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
    assert json.loads((out / "config.json").read_text())["use_query_residual"] is False


def test_new_head_when_num_classes_changes(model):
    five = from_checkpoint(HF5, num_classes=5)
    assert five.output_shape == (None, 5)
    np.testing.assert_array_equal(five.get_layer("decoder_query").latents.numpy(),
                                  model.get_layer("decoder_query").latents.numpy())


# --- bad input ------------------------------------------------------------------------------

def _tensors():
    return load_file(str(HF5 / "model.safetensors"))


def _copy(tmp_path, tensors=None, **config_changes):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    if tensors is None:
        shutil.copy(HF5 / "model.safetensors", folder / "model.safetensors")
    else:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((HF5 / "config.json").read_text())
    config.update(config_changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_wrong_shape_names_tensor_and_shapes(tmp_path):
    tensors = _tensors()
    name = "perceiver.encoder.self_attends.1.mlp.dense1.weight"
    tensors[name] = tensors[name][:20]
    with pytest.raises(ModelFileError, match=r"self_attends\.1\.mlp\.dense1\.weight has shape "
                                             r"\(20, 32\), the model expects \(32, 32\)"):
        from_checkpoint(_copy(tmp_path, tensors))


def test_missing_tensor_is_named(tmp_path):
    tensors = _tensors()
    del tensors["perceiver.decoder.decoder.output_position_encodings.position_embeddings"]
    with pytest.raises(ModelFileError, match=r"missing tensors: perceiver\.decoder\.decoder\."
                                             r"output_position_encodings\.position_embeddings"):
        from_checkpoint(_copy(tmp_path, tensors))


def test_leftover_tensor_is_named(tmp_path):
    """A third self-attend that the config (num_self_attends_per_block=2) does not declare."""
    tensors = _tensors()
    tensors["perceiver.encoder.self_attends.2.layernorm.weight"] = np.ones(32, np.float32)
    with pytest.raises(ModelFileError, match=r"unexpected tensors.*self_attends\.2\.layernorm"):
        from_checkpoint(_copy(tmp_path, tensors))


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
        folder = tmp_path / arch
        folder.mkdir()
        shutil.copy(HF5 / "model.safetensors", folder / "model.safetensors")
        config = json.loads((HF5 / "config.json").read_text())
        config["architectures"] = [arch]
        (folder / "config.json").write_text(json.dumps(config))
        listing = f"huggingface architecture '{arch}' is not supported; supported: .*{ARCH}"
        with pytest.raises(UnknownModelError, match=listing):
            from_checkpoint(folder)
    assert issubclass(UnknownModelError, EdgezooError)
