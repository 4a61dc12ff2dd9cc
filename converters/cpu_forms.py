"""The forms an int8 model can take on a LiteRT (CPU) board: one row per form.

XNNPACK runs int8 CONV_2D, FULLY_CONNECTED, ADD, MUL, MEAN and TRANSPOSE, but not int8
SQUARED_DIFFERENCE / RSQRT (LayerNorm), BATCH_MATMUL, SOFTMAX or GELU: a full-int8
transformer splits into 28-101 partitions and runs 2-5x slower than its float model.
Dynamic-range int8 keeps int8 weights and lets XNNPACK quantize each GEMM's activations at run
time (its qd8 kernels), while LayerNorm, softmax, GELU and the attention matmuls stay float:
the graph stays in the float graph's partitions. Which form ships is measured per model
(``edgezoo.cpu_form``), never assumed; a microcontroller target always runs full int8.
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class CpuForm:
    name: str
    quantize: str  # the converter mode (converters.quantize.QUANTIZATION_MODES)
    why: str


CPU_FORMS = {f.name: f for f in (
    CpuForm("dynamic_int8", "dynamic", "int8 weights per channel, each GEMM's activations "
            "quantized at run time; float LayerNorm/softmax/GELU/attention, float I/O: every op "
            "delegated to XNNPACK"),
    CpuForm("full_int8", "int8", "int8 weights and calibrated int8 activations, int8 I/O; "
            "XNNPACK leaves int8 LayerNorm, softmax, GELU and BATCH_MATMUL to the builtin "
            "kernels, splitting the graph"),
    CpuForm("float", "none", "the float model: the baseline every int8 form must beat to be "
            "chosen"),
)}
# On a tie within TIE_MARGIN of the fastest, the earlier form in CPU_FORMS ships (the fewer
# partitions), so that timing noise does not flip the choice between runs.
TIE_MARGIN = 0.10
CPU_FORM_CHOICES = ("auto", *CPU_FORMS)


def candidate_forms(cpu_form):
    """The forms to convert for a recipe's ``cpu_form`` ("auto": every row)."""
    return list(CPU_FORMS) if cpu_form == "auto" else [cpu_form]


def convert_forms(model, calibration, forms, max_calibration=300, ranges="minmax", info=None):
    """{form: .tflite bytes} of ``model`` in each of ``forms`` (``ranges``: the full-int8
    form's activation ranges, ``converters.ptq_ranges``)."""
    from edgezoo.converters.quantize import convert

    full = CPU_FORMS["full_int8"].quantize
    return {name: convert(model, CPU_FORMS[name].quantize,
                          calibration if CPU_FORMS[name].quantize == full else None,
                          max_calibration=max_calibration,
                          ranges=ranges if CPU_FORMS[name].quantize == full else "minmax",
                          info=info)
            for name in forms}
