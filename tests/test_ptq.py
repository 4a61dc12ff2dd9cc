"""Post-training quantization beyond the stock converter: activation ranges chosen by error,
adaptive rounding and bias correction, each checked against a NumPy derivation and against what
the converted flatbuffer holds."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.base.errors import RecipeError
from edgezoo.converters.ptq_ranges import BINS, TAIL, choose_range, convert_with_ranges
from edgezoo.converters.ptq_weights import fold_batch_norms, round_weights
from edgezoo.converters.quantize import convert
from edgezoo.converters.recipe import Recipe
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.converters.tflite_weights import constant_weights


def _counts(values):
    lo, hi = float(values.min()), float(values.max())
    return np.histogram(values, BINS, range=(lo, hi))[0], lo, hi


def _true_int8_error(values, lo, hi):
    """Mean squared error of quantizing the samples themselves (not bin centres) to [lo, hi]."""
    scale = (hi - lo) / 255.0
    zp = np.clip(np.round(-128 - lo / scale), -128, 127)
    q = np.clip(np.round(values / scale) + zp, -128, 127)
    return float(np.mean((values - (q - zp) * scale) ** 2))


def test_percentile_range_is_the_numpy_quantile_of_the_values():
    values = np.random.default_rng(0).laplace(0, 1, 200_000)
    counts, lo, hi = _counts(values)
    new_lo, new_hi = choose_range(counts, lo, hi, "percentile")
    width = (hi - lo) / BINS
    # to the histogram's resolution (a few bins: the tails are sparse)
    assert abs(new_hi - np.quantile(values, 1 - TAIL / 2)) <= 3 * width
    assert abs(new_lo - np.quantile(values, TAIL / 2)) <= 3 * width
    # one-sided data (after a ReLU) keeps its exact lower end
    relu = np.maximum(values, 0)
    counts, lo, hi = _counts(relu)
    assert choose_range(counts, lo, hi, "percentile")[0] == 0.0


def test_mse_range_is_near_the_brute_force_optimum_and_keeps_a_uniform_range():
    rng = np.random.default_rng(1)
    # one rare outlier: clipping it costs less than the coarser steps it forces on the rest
    values = np.maximum(np.append(rng.normal(0, 1, 500_000), 10.0), 0)
    counts, lo, hi = _counts(values)
    _, chosen = choose_range(counts, lo, hi, "mse")
    brute = min(_true_int8_error(values, 0.0, h) for h in np.linspace(0.01, 1, 400) * hi)
    assert _true_int8_error(values, 0.0, chosen) <= 1.05 * brute
    assert chosen <= 0.9 * hi
    assert _true_int8_error(values, 0.0, chosen) < 0.9 * _true_int8_error(values, 0.0, hi)
    # frequent outliers: clipping them costs more than it saves; the range stays wide
    many = np.maximum(np.concatenate([rng.normal(0, 1, 100_000), rng.normal(0, 1, 20) * 40]), 0)
    counts, lo, hi = _counts(many)
    _, chosen = choose_range(counts, lo, hi, "mse")
    assert _true_int8_error(many, 0.0, chosen) <= 1.05 * min(
        _true_int8_error(many, 0.0, h) for h in np.linspace(0.01, 1, 400) * hi)
    # negative control: values spread evenly gain nothing from clipping; the range stays
    uniform = rng.uniform(0, 3, 100_000)
    counts, lo, hi = _counts(uniform)
    assert choose_range(counts, lo, hi, "mse")[1] >= 0.97 * hi


def _conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="head")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn")  # a trained-looking batch norm: scales and shifts far from 1 and 0
    rng = np.random.default_rng(seed)
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(0, 0.5, 8), rng.normal(0, 0.3, 8),
                    rng.uniform(0.5, 2, 8)])
    return model


def _data(n, seed):
    """Heavy-tailed inputs (a few large values min/max ranges must cover), correlated across
    channels and neighbouring pixels as images are (with independent inputs, rounding to
    nearest is already optimal and adaptive rounding has nothing to gain)."""
    x = np.random.default_rng(seed).standard_t(3, (n, 9, 9, 3))
    x = (x[:, 1:, 1:] + x[:, :-1, 1:] + x[:, 1:, :-1]) / 3
    return (x + 2 * x.mean(axis=-1, keepdims=True)).astype(np.float32)


def _conv_np(x, k):
    """NumPy 3x3 'same' convolution (stride 1) of NHWC ``x`` with an HWIO kernel."""
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    patches = np.stack([pad[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], 3)
    return np.einsum("nhwpc,pco->nhwo", patches, k.reshape(9, k.shape[2], -1))



def _scales(data):
    parsed = read_tflite(data)
    return {t.name: t.scale for t in parsed.tensors}


def test_two_pass_conversion_with_untouched_ranges_is_the_stock_model():
    model, calib = _conv_model(), _data(64, 0)
    two_pass, report = convert_with_ranges(model, calib, "minmax")
    stock = convert(model, "int8", calib)
    assert report["activations"] > 0 and report["median_range_kept"] == 1.0
    assert _scales(two_pass) == _scales(stock)
    assert [w.values.tobytes() for w in constant_weights(two_pass)] == \
        [w.values.tobytes() for w in constant_weights(stock)]


def test_chosen_ranges_are_the_scales_in_the_flatbuffer():
    model, calib = _conv_model(), _data(256, 0)
    stock, percentile = _scales(convert(model, "int8", calib)), None
    data, report = convert_with_ranges(model, calib, "percentile")
    percentile = _scales(data)
    assert report["max_share_clipped"] <= TAIL + 1e-9
    inner = [name for name in stock if name in percentile and "Relu" in name and stock[name] > 0]
    assert inner and all(percentile[n] < stock[n] for n in inner)
    # the model's input and output keep the stock converter's ranges
    parsed = read_tflite(data)
    assert percentile[parsed.inputs[0].name] == stock[parsed.inputs[0].name]
    assert percentile[parsed.outputs[0].name] == stock[parsed.outputs[0].name]


def test_batch_norm_folding_keeps_the_function_and_what_the_converter_quantizes():
    model, x = _conv_model(), _data(16, 3)
    folded, pairs = fold_batch_norms(model)
    assert pairs == {"conv": "bn"}
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    bn = model.get_layer("bn")
    gamma, beta, mean, var = (w.numpy() for w in (bn.gamma, bn.beta, bn.moving_mean,
                                                  bn.moving_variance))
    expected = model.get_layer("conv").kernel.numpy() * gamma / np.sqrt(var + bn.epsilon)
    np.testing.assert_allclose(folded.get_layer("conv").kernel.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(folded.get_layer("bn").beta.numpy(),
                               beta - mean * gamma / np.sqrt(var + bn.epsilon), rtol=1e-5,
                               atol=1e-6)
    assert model.get_layer("bn").gamma.numpy() is not None  # the caller's model is untouched
    np.testing.assert_array_equal(model.get_layer("bn").gamma.numpy(), gamma)


def _int8_steps(kernel, axes):
    """NumPy: symmetric per-channel int8 steps of a kernel (the converter's weight grid)."""
    scale = np.abs(kernel).max(axis=axes, keepdims=True) / 127.0
    return np.round(kernel / scale)


def test_adaround_steps_are_what_the_flatbuffer_holds_and_fit_held_out_outputs_better():
    model, calib, held_out = _conv_model(), _data(256, 0), _data(256, 9)
    rounded, report = round_weights(model, calib, adaptive=True, limit=len(calib))
    conv = rounded.get_layer("conv").kernel.numpy()
    steps = _int8_steps(conv, (0, 1, 2))
    np.testing.assert_allclose(conv / (np.abs(conv).max(axis=(0, 1, 2), keepdims=True) / 127),
                               steps, atol=1e-3)  # on the grid
    stored = {w.op: w.values for w in constant_weights(convert(rounded, "int8", calib))}
    # the one CONV_2D (conv + its batch norm + ReLU); TFLite stores its weights (out, h, w, in)
    np.testing.assert_array_equal(stored["CONV_2D"],
                                  np.transpose(steps, (3, 0, 1, 2)).astype(np.int8))
    assert report["layers"]["conv"]["steps_changed"] > 0
    # the float conv output on held-out inputs, in NumPy: the rounded kernel is closer than nearest
    folded, _ = fold_batch_norms(model)
    w = folded.get_layer("conv").kernel.numpy()
    near = _int8_steps(w, (0, 1, 2)) * np.abs(w).max(axis=(0, 1, 2), keepdims=True) / 127
    target = _conv_np(held_out, w)
    assert np.mean((_conv_np(held_out, conv) - target) ** 2) < \
        0.8 * np.mean((_conv_np(held_out, near) - target) ** 2)


def test_bias_correction_removes_the_mean_shift_of_rounded_weights():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, name="fc")])
    kernel, bias = model.get_layer("fc").get_weights()
    model.get_layer("fc").set_weights([kernel, bias + 0.1])
    x = np.random.default_rng(0).normal(1.0, 1.0, (512, 16)).astype(np.float32)  # mean 1: shifts
    corrected, report = round_weights(model, x, bias_correction=True, limit=len(x))
    w_q = _int8_steps(kernel, (0,)) * np.abs(kernel).max(axis=0, keepdims=True) / 127
    shift = (x @ (w_q - kernel)).mean(axis=0)
    assert np.abs(shift).max() > 1e-4  # negative control: the rounding does shift the outputs
    np.testing.assert_allclose(corrected.get_layer("fc").bias.numpy(), bias + 0.1 - shift,
                               atol=1e-6)
    assert report["layers"]["fc"]["max_bias_shift"] == pytest.approx(np.abs(shift).max(), rel=1e-4)


@pytest.mark.parametrize("changes, match", [
    (dict(ranges="kl"), "unknown ranges 'kl'"),
    (dict(ranges="percentile", quantize="dynamic"), "takes no calibration data"),
    (dict(adaround=True, quantize="float16"), "adaround work on calibration data"),
    (dict(bias_correction=True, qat=True), "quantization-aware training learns"),
    (dict(adaround=True, cluster=16), "clustered weights would lose"),
    (dict(cluster=16, cluster_fit="hessian"), "unknown cluster_fit 'hessian'"),
    (dict(cluster_fit="gptq"), "the recipe clusters nothing"),
    (dict(cluster=16, cluster_fit="calibration", quantize="float16"), "use --quantize int8"),
    (dict(cluster=16, cluster_fit="gptq", qat=True), "would not survive it"),
    (dict(cluster=16, cluster_fit="gptq", gptq_damping=0), "gptq_damping must be in"),
    (dict(cluster=16, cluster_fit="calibration", gptq_damping=0.1), "dampens cluster_fit gptq"),
])
def test_bad_ptq_options_are_refused(changes, match):
    with pytest.raises(RecipeError, match=match):
        Recipe(**changes)


def test_cli_refuses_adaround_without_calibration_before_any_work(tmp_path, capsys):
    from edgezoo.cli import main

    code = main(["convert", "vit_micro", "--quantize", "dynamic", "--adaround",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "adaround work on calibration data" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_cli_range_names_are_the_table():
    from edgezoo.cli.main import RANGE_NAMES
    from edgezoo.converters.ptq_ranges import RANGE_METHODS

    assert RANGE_NAMES == tuple(RANGE_METHODS)


def test_cli_cluster_fits_are_the_table_and_reach_the_recipe(tmp_path, capsys):
    from edgezoo.cli.main import CLUSTER_FIT_NAMES, build_parser, main, recipe_from_args
    from edgezoo.converters.recipe import CLUSTER_FITS

    assert CLUSTER_FIT_NAMES == tuple(CLUSTER_FITS)
    args = build_parser().parse_args(["convert", "vit_micro", "--cluster", "16",
                                      "--cluster-fit", "gptq", "--out", "x"])
    assert recipe_from_args(args).clusters_post_training
    # negative control: a fit with nothing to cluster is refused before any work
    code = main(["convert", "vit_micro", "--cluster-fit", "gptq", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "clusters nothing" in err and not (tmp_path / "o").exists()


def test_recipe_options_run_in_the_pipeline_and_are_reported():
    from edgezoo.converters.compress import compress

    model, calib = _conv_model(), _data(64, 0)
    recipe = Recipe(ranges="percentile", adaround=True, bias_correction=True)
    assert recipe.steps() == ["adaround+bias_correction", "quantize:int8 (percentile ranges)"]
    result = compress(model, recipe, calibration=calib)
    steps = result.report["steps"]
    assert steps["ranges"]["ranges"] == "percentile"
    assert set(steps["ptq_weights"]["layers"]) == {"conv", "dw", "head"}
    assert result.tflite[4:8] == b"TFL3"


def test_weighted_kmeans_follows_the_weights_on_a_hand_case():
    from edgezoo.converters.ptq_clusters import weighted_kmeans

    values = np.array([0.0, 1.0, 10.0, 11.0])
    centroids, labels = weighted_kmeans(values, np.ones(4), 2, seed=0)
    np.testing.assert_allclose(centroids, [0.5, 10.5])
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])
    # the weighted mean: 1.0 counts nine times as much as 0.0
    centroids, _ = weighted_kmeans(values, np.array([1.0, 9.0, 1.0, 1.0]), 2, seed=0)
    np.testing.assert_allclose(centroids, [0.9, 10.5])


@pytest.mark.parametrize("fit", ["calibration", "gptq"])
def test_post_training_clusters_are_k_values_on_each_channels_int8_grid(fit):
    from edgezoo.converters.ptq_clusters import cluster_kernel, input_energy
    from edgezoo.converters.ptq_gptq import gptq_cluster_kernel

    model, x = _conv_model(), _data(64, 0)
    conv = model.get_layer("conv")
    w = conv.kernel.numpy().copy()
    w[0, 0, :, :3] = 0.0  # pruned weights
    out = (cluster_kernel(w, input_energy(conv, x), 4) if fit == "calibration"
           else gptq_cluster_kernel(conv, w, x, 4))
    rows = out.reshape(-1, out.shape[-1])
    scale = np.abs(rows).max(axis=0) / 127
    for c in range(rows.shape[1]):
        assert len(np.unique(rows[:, c])) <= 4
    np.testing.assert_allclose(rows / scale, np.round(rows / scale), atol=1e-3)
    assert np.all(out[0, 0, :, :3] == 0)  # zeros stay zero


def test_input_rows_are_the_numpy_patches_of_the_convolution():
    from edgezoo.converters.ptq_gptq import input_rows

    model, x = _conv_model(), _data(4, 0)
    conv = model.get_layer("conv")
    w = conv.kernel.numpy()
    np.testing.assert_allclose(input_rows(conv, x) @ w.reshape(-1, w.shape[-1]),
                               _conv_np(x, w).reshape(-1, w.shape[-1]), atol=1e-4)


def test_gptq_assignment_is_nearest_without_correlation_and_wins_with_it():
    from edgezoo.converters.ptq_clusters import cluster_kernel, input_energy
    from edgezoo.converters.ptq_gptq import gptq_assign, gptq_cluster_kernel

    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 20))
    books = [np.sort(rng.normal(size=4)) for _ in range(3)]
    nearest_idx = np.array([[np.argmin(np.abs(v - b)) for v in row] for row, b in zip(w, books)])
    # uncorrelated inputs (H = I): no error can be compensated, so every weight takes its nearest
    np.testing.assert_array_equal(gptq_assign(w, np.eye(20), books, np.zeros_like(w, bool)),
                                  nearest_idx)
    # correlated inputs: held-out convolution outputs (NumPy) closer than the k-means alone
    model, calib, held_out = _conv_model(), _data(256, 0), _data(256, 9)
    folded, _ = fold_batch_norms(model)
    conv = folded.get_layer("conv")
    w = conv.kernel.numpy()
    k_means = cluster_kernel(w, input_energy(conv, calib), 4)
    gptq = gptq_cluster_kernel(conv, w, calib, 4)
    target = _conv_np(held_out, w)
    assert np.mean((_conv_np(held_out, gptq) - target) ** 2) < \
        0.8 * np.mean((_conv_np(held_out, k_means) - target) ** 2)


def test_post_training_clusters_are_what_the_flatbuffer_holds():
    from edgezoo.converters.compress import compress

    recipe = Recipe(cluster=4, cluster_fit="gptq", bias_correction=True)
    assert recipe.steps()[:2] == ["cluster (gptq)+bias_correction", "quantize:int8"]
    assert not recipe.trains
    result = compress(_conv_model(), recipe, calibration=_data(64, 0))
    stored = {w.op: w.values for w in constant_weights(result.tflite)}
    conv = stored["CONV_2D"].reshape(stored["CONV_2D"].shape[0], -1)  # (out, h*w*in)
    assert max(len(np.unique(row)) for row in conv) <= 4
    assert result.report["steps"]["ptq_weights"]["layers"]["conv"]["clusters"] == 4
