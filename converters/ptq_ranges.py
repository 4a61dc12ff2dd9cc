"""Activation ranges chosen by error, not by min/max, for full-int8 post-training quantization.

The stock converter gives every activation the min and max it saw on the calibration samples,
so one outlier widens the int8 step of a whole tensor. Here the converter's own calibration and
quantization run as two passes (TensorFlow's calibrate-only mode, then its MLIR quantizer, the
same two calls ``TFLiteConverter.convert`` makes); in between, each activation's recorded range
is replaced by one chosen from a histogram of its values on the same calibration samples. The
model's inputs and outputs keep their min/max (clipping an input or a logit changes what the
model is asked or answers). With the ranges untouched the two passes give the stock model,
tensor for tensor.
"""
import numpy as np

# method -> what it does (rows, not ifs: the CLI and the recipe check against these names)
RANGE_METHODS = {
    "minmax": "the stock converter: each activation's min and max over the calibration samples",
    "percentile": "each activation clipped to the central 99.99 % of its calibration values",
    "mse": "each activation's range chosen to minimise the expected squared int8 error over "
           "its calibration histogram (a search over clipped ranges)",
}
BINS = 2048
TAIL = 1e-4  # percentile: the share of values left outside, split between the two tails
MSE_STEPS = 100  # candidate ends per side, from 1 % to 100 % of the min/max range


def calibrated_model(model, calibration, max_calibration=300, per_tensor_dense=False):
    """The float .tflite with the calibrator's min/max recorded on every activation."""
    from edgezoo.converters.quantize import make_converter

    converter = make_converter(model, "int8", calibration, max_calibration=max_calibration,
                               per_tensor_dense=per_tensor_dense)
    converter._experimental_calibrate_only = True
    return bytes(converter.convert())


def activation_tensors(model_t):
    """{tensor index: (min, max)} of the activations whose range may be chosen: recorded by the
    calibrator, not a subgraph input or output, not a constant."""
    sg = model_t.subgraphs[0]
    fixed = {int(j) for j in sg.inputs} | {int(j) for j in sg.outputs}
    found = {}
    for j, t in enumerate(sg.tensors):
        q = t.quantization
        buf = model_t.buffers[t.buffer] if t.buffer < len(model_t.buffers) else None
        constant = buf is not None and buf.data is not None and len(buf.data) > 0
        if (j in fixed or constant or q is None or q.min is None or q.max is None
                or len(q.min) != 1):
            continue
        found[j] = (float(q.min[0]), float(q.max[0]))
    return found


def activation_histograms(calibrated, model, calibration, max_calibration, tensors):
    """{tensor: counts in BINS bins over its recorded [min, max]}, from the calibrated float model
    run on the calibration samples the calibrator used."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgezoo.converters.quantize import input_names, representative_arrays

    interpreter = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interpreter.get_signature_runner()
    arrays = representative_arrays(model, calibration, max_calibration)
    names = input_names(model)
    counts = {j: np.zeros(BINS, np.int64) for j in tensors}
    for i in range(len(arrays[0])):
        runner(**{name: a[i : i + 1] for name, a in zip(names, arrays)})
        for j, (lo, hi) in tensors.items():
            if hi > lo:
                values = np.clip(interpreter.get_tensor(j).ravel(), lo, hi)
                counts[j] += np.histogram(values, BINS, range=(lo, hi))[0]
    return counts


def int8_error(centres, counts, lo, hi):
    """Expected squared error of int8 quantization over [lo, hi] (zero kept exact, as the
    converter nudges it) of values at ``centres`` with ``counts``."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-12) / 255.0
    zero_point = np.clip(np.round(-128 - lo / scale), -128, 127)
    q = np.clip(np.round(centres / scale) + zero_point, -128, 127)
    return float(np.sum(counts * (centres - (q - zero_point) * scale) ** 2))


def choose_range(counts, lo, hi, method):
    """(lo, hi) for an activation whose calibration values have ``counts`` over [lo, hi]."""
    if method == "minmax" or hi <= lo or counts.sum() == 0:
        return lo, hi
    edges = np.linspace(lo, hi, BINS + 1)
    if method == "percentile":
        cdf = np.cumsum(counts) / counts.sum()
        new_lo = edges[np.searchsorted(cdf, TAIL / 2)] if lo < 0 else lo
        new_hi = edges[min(np.searchsorted(cdf, 1 - TAIL / 2) + 1, BINS)] if hi > 0 else hi
        return float(min(new_lo, 0.0) if lo < 0 else lo), float(max(new_hi, 0.0) if hi > 0 else hi)
    if method != "mse":
        raise ValueError(f"unknown range method {method!r}; choose one of {', '.join(RANGE_METHODS)}")
    centres = (edges[:-1] + edges[1:]) / 2
    fractions = np.linspace(0.01, 1.0, MSE_STEPS)
    best_lo, best_hi = lo, hi
    for _ in range(2):  # coordinate descent: the upper end, then the lower, twice
        if hi > 0:
            best_hi = min(fractions * hi, key=lambda h: int8_error(centres, counts, best_lo, h))
        if lo < 0:
            best_lo = min(fractions * lo, key=lambda l: int8_error(centres, counts, l, best_hi))
    return float(best_lo), float(best_hi)


def quantize_calibrated(calibrated, per_tensor_dense=False):
    """TensorFlow's MLIR quantizer on a calibrated model, int8 in and out (as ``convert`` runs it)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert
    from tensorflow.lite.python.lite import _deduplicate_readonly_buffers

    quantized = tf_convert.mlir_quantize(calibrated, False, input_data_type=tf.int8,
                                         output_data_type=tf.int8,
                                         disable_per_channel_for_dense_layers=per_tensor_dense)
    return bytes(_deduplicate_readonly_buffers(quantized))


def convert_with_ranges(model, calibration, method, *, max_calibration=300, per_tensor_dense=False):
    """(full-int8 .tflite bytes, report) with every activation's range chosen by ``method``."""
    from edgezoo.converters.flatbuffer_io import pack_model, read_model_t

    calibrated = calibrated_model(model, calibration, max_calibration, per_tensor_dense)
    model_t = read_model_t(calibrated)
    tensors = activation_tensors(model_t)
    counts = activation_histograms(calibrated, model, calibration, max_calibration, tensors)
    shrink, clipped = [], []
    sg = model_t.subgraphs[0]
    for j, (lo, hi) in tensors.items():
        new_lo, new_hi = choose_range(counts[j], lo, hi, method)
        sg.tensors[j].quantization.min = np.array([new_lo], np.float32)
        sg.tensors[j].quantization.max = np.array([new_hi], np.float32)
        if hi > lo:
            shrink.append((new_hi - new_lo) / (hi - lo))
            centres = np.linspace(lo, hi, BINS + 1)[:-1] + (hi - lo) / BINS / 2
            outside = (centres < new_lo) | (centres > new_hi)
            clipped.append(counts[j][outside].sum() / max(counts[j].sum(), 1))
    report = {"ranges": method, "why": RANGE_METHODS[method], "activations": len(tensors),
              "median_range_kept": round(float(np.median(shrink)), 4) if shrink else 1.0,
              "max_share_clipped": round(float(max(clipped)), 6) if clipped else 0.0}
    return quantize_calibrated(pack_model(model_t), per_tensor_dense), report
