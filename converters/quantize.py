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
    specs = [tf.TensorSpec([1, *inp.shape[1:]], inp.dtype, name=name)
             for inp, name in zip(model.inputs, input_names(model))]
    if any(d is None for s in specs for d in s.shape):
        raise ValueError(
            f"model {model.name!r} has an input with an unknown dimension {specs}; "
            "build it with a static input shape"
        )

    @tf.function
    def serve(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    return serve.get_concrete_function(*specs)


def representative_arrays(model, samples, limit):
    """One array per model input, in its dtype: float inputs as float32, integer ones (token
    ids, masks) as int32, which the converter leaves unquantized."""
    from edgezoo.zoo.tasks import calibration_inputs

    return calibration_inputs(model, samples, limit)


def _representative(model, samples, limit, by_name=True):
    """Batch-1 samples by input name (the signature's names), so the calibrator feeds each
    input its own array whatever order the converter gives the inputs; ``by_name=False``
    yields lists (for a one-input model, where order cannot be wrong)."""
    arrays = representative_arrays(model, samples, limit)
    names = input_names(model)

    def gen():
        for i in range(len(arrays[0])):
            if by_name:
                yield {name: a[i : i + 1] for name, a in zip(names, arrays)}
            else:
                yield [a[i : i + 1] for a in arrays]

    return gen


def input_names(model):
    """The names the batch-1 signature gives the model's inputs, in the model's order."""
    return [inp.name.split(":")[0] for inp in model.inputs]


def make_converter(model, quantize="int8", calibration=None, *, micro=False, max_calibration=300,
                   per_tensor_dense=False):
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
        from edgezoo.zoo.data.arrays import num_samples

        if calibration is None or num_samples(calibration) == 0:
            raise ValueError(f"--quantize {quantize} needs calibration samples")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(model, calibration, max_calibration)
        # one weight scale per Dense layer (FULLY_CONNECTED): no per-channel arrays in the arena
        converter._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor_dense
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
    from edgezoo.zoo.data.arrays import num_samples

    if samples is None or not num_samples(samples):
        return
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    try:
        probe_model = keras.Model(model.inputs, [l.output for l in layers])
    except (AttributeError, ValueError, TypeError):  # subclassed or nested: the outputs only
        layers, probe_model = [model], model
    inputs = representative_arrays(model, samples, probe)
    outputs = probe_model(inputs if len(inputs) > 1 else inputs[0], training=False)
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


def convert(model, quantize="int8", calibration=None, *, micro=False, max_calibration=300,
            per_tensor_dense=False, ranges="minmax", info=None):
    """Convert ``model`` to TFLite bytes (see ``make_converter`` for the modes). ``ranges``:
    how int8 activation ranges are chosen (``converters.ptq_ranges``; what was chosen goes
    into the ``info`` dict when one is given)."""
    if quantize in ("int8", "int16x8"):
        check_ranges(model, calibration)
    from edgezoo.converters.io_order import keras_io_order

    if ranges != "minmax":
        from edgezoo.converters.ptq_ranges import convert_with_ranges

        if quantize != "int8":
            raise UnsupportedQuantizationError(f"ranges {ranges} chooses full-int8 activation "
                                               f"ranges; --quantize {quantize} has none")
        check_quantization(quantize, micro)
        data, chosen = convert_with_ranges(model, calibration, ranges,
                                           max_calibration=max_calibration,
                                           per_tensor_dense=per_tensor_dense)
        if info is not None:
            info.update(chosen)
    else:
        converter = make_converter(model, quantize, calibration, micro=micro,
                                   max_calibration=max_calibration,
                                   per_tensor_dense=per_tensor_dense)
        data = bytes(converter.convert())
    return keras_io_order(data, input_names(model), len(model.outputs))
