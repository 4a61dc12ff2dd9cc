"""Per-layer quantization error from TensorFlow Lite's quantization debugger.

When an int8 model agrees poorly with its float model, this says which layers
lose the most: each quantized tensor's error against the float result, relative
to its quantization step.
"""
import csv
import io


def quantization_error_summary(model, samples, *, micro=False, top=8, max_samples=64):
    """The ``top`` layers by RMSE / scale (error in int8 steps), worst first.

    Runs TFLite's ``QuantizationDebugger`` over ``samples`` on the same
    converter set-up as the int8 conversion.
    """
    import tensorflow as tf

    from edgezoo.converters.quantize import _representative, make_converter

    from edgezoo.base.errors import RecipeError
    from edgezoo.zoo.data.arrays import take

    if len(model.inputs) != 1:  # its dataset is fed by position, in the converter's order
        raise RecipeError("the quantization debugger takes one-input models")
    samples = take(samples, slice(0, max_samples))
    converter = make_converter(model, "int8", samples, micro=micro)
    # The debugger compares float and quantized tensors, so it needs float I/O.
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_representative(model, samples, max_samples, by_name=False))
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = []
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        scale = float(row["scale"] or 0.0)
        rmse = float(row["mean_squared_error"]) ** 0.5
        rows.append({"op": row["op_name"], "tensor": row["tensor_name"], "scale": scale,
                     "rmse": rmse, "max_abs_error": float(row["max_abs_error"]),
                     "rmse_in_steps": rmse / scale if scale else float("inf")})
    rows.sort(key=lambda r: r["rmse_in_steps"], reverse=True)
    return rows[:top]
