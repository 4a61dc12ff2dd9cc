"""Keras -> TFLite from a static batch-1 signature, with post-training quantization.

A dynamic batch dimension brings shape arithmetic (SHAPE, REDUCE_PROD, ...)
into LayerNormalization and attention graphs, and TFLite Micro fails on it; so
every conversion traces the model at batch size 1.
"""
import numpy as np
import tensorflow as tf

from edgezoo.base.errors import UnsupportedQuantizationError

QUANTIZATION_MODES = ("int8", "int16x8", "float16", "dynamic", "none")

# Modes a microcontroller runtime (TFLite Micro) cannot run, with the reason: data, not ifs.
MICRO_REFUSES = {
    "float16": "TFLite Micro has no float16 kernels: float16 weights need a runtime that "
               "dequantizes them (LiteRT on a CPU or GPU)",
    "dynamic": "dynamic-range models quantize activations at run time with hybrid kernels "
               "that TFLite Micro does not have",
}


def check_quantization(mode, micro):
    """Raise before any work if ``mode`` is unknown or cannot run on the target."""
    if mode not in QUANTIZATION_MODES:
        raise UnsupportedQuantizationError(
            f"unknown quantization {mode!r}; choose one of {', '.join(QUANTIZATION_MODES)}"
        )
    if micro and mode in MICRO_REFUSES:
        raise UnsupportedQuantizationError(
            f"--quantize {mode} cannot run on a microcontroller target: {MICRO_REFUSES[mode]}. "
            "Use int8 (or int16x8)."
        )


def batch1_concrete_function(model):
    """Trace ``model`` with every input at batch size 1."""
    specs = [tf.TensorSpec([1, *inp.shape[1:]], inp.dtype, name=inp.name.split(":")[0])
             for inp in model.inputs]
    if any(d is None for s in specs for d in s.shape):
        raise ValueError(
            f"model {model.name!r} has an input with an unknown dimension {specs}; "
            "build it with a static input shape"
        )

    @tf.function
    def serve(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    return serve.get_concrete_function(*specs)


def _representative(samples, limit):
    samples = np.asarray(samples, np.float32)

    def gen():
        for i in range(min(limit, len(samples))):
            yield [samples[i : i + 1]]

    return gen


def make_converter(model, quantize="int8", calibration=None, *, micro=False, max_calibration=300):
    """The TFLiteConverter for ``model`` from a static batch-1 signature, set up for ``quantize``.

    ``int8``: full-integer with int8 input and output; ``int16x8``: 16-bit
    activations, 8-bit weights; ``float16``: float16 weights; ``dynamic``:
    dynamic-range; ``none``: float32. Integer modes need ``calibration`` samples.
    """
    check_quantization(quantize, micro)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [batch1_concrete_function(model)], model
    )
    if quantize in ("int8", "int16x8"):
        if calibration is None or len(calibration) == 0:
            raise ValueError(f"--quantize {quantize} needs calibration samples")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration, max_calibration)
        if quantize == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter


MAX_ABS_RANGE = 1e30  # float32 ranges beyond it overflow the converter's scales ("illegal scale: INF")


def check_ranges(model, samples, probe=32):
    """Refuse weights that are NaN, infinite or beyond ``MAX_ABS_RANGE``, and activations (on
    ``probe`` calibration samples) that are infinite or beyond it, naming the layer: the converter would compute an infinite scale
    and abort the process rather than raise."""
    import tf_keras as keras

    from edgezoo.base.errors import RecipeError

    for layer in model.layers:
        for w in layer.weights:
            value = np.asarray(w.numpy())
            if value.size and not (np.isfinite(value).all() and np.abs(value).max() <= MAX_ABS_RANGE):
                raise RecipeError(f"weights {w.name} of layer {layer.name!r} are NaN, infinite or "
                                  f"beyond {MAX_ABS_RANGE:.0e}: they cannot be quantized")
    if samples is None or not len(samples):
        return
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    try:
        probe_model = keras.Model(model.inputs, [l.output for l in layers])
    except (AttributeError, ValueError, TypeError):  # subclassed or nested: the outputs only
        layers, probe_model = [model], model
    outputs = probe_model(np.asarray(samples[:probe], np.float32), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for layer, out in zip(layers, outputs):
        for tensor in (out if isinstance(out, (list, tuple)) else [out]):
            value = np.asarray(tensor)
            if value.dtype.kind != "f":
                continue
            value = value[~np.isnan(value)]  # calibration skips NaN; infinities become scales
            if value.size and not np.abs(value).max() <= MAX_ABS_RANGE:
                raise RecipeError(f"layer {layer.name!r} outputs infinite values or values beyond "
                                  f"{MAX_ABS_RANGE:.0e} on the calibration data: int8 scales "
                                  "would overflow; check the model's weights and input range")


def convert(model, quantize="int8", calibration=None, *, micro=False, max_calibration=300):
    """Convert ``model`` to TFLite bytes (see ``make_converter`` for the modes)."""
    if quantize in ("int8", "int16x8"):
        check_ranges(model, calibration)
    converter = make_converter(model, quantize, calibration, micro=micro,
                               max_calibration=max_calibration)
    return bytes(converter.convert())
