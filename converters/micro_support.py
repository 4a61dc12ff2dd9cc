"""What TFLite Micro still cannot run in int8 after ``MICRO_REWRITES``, as data.

Each row was produced by converting a tiny model with the case (after the
micro rewrites) to full int8 and running it in the installed TFLite Micro;
tests/test_micro_support.py rebuilds every row, checks that it still fails
for the stated reason, and fails when one starts to run.

Row fields: ``case`` (unique key), ``kind`` and what builds it:

- ``activation``: ``name``, a Keras activation, as ``Dense -> Activation(name) -> Dense``;
- ``tf_op``: ``name``, a ``tf`` function path (``"math.log"``) called on a Dense output (a TFOpLambda);
- ``transpose``: ``input_shape`` (without batch) and ``perm`` (with batch) of a ``Permute``;
- ``model``: ``name``, a zoo model, at its registered input shape.

``fails_at``: ``convert`` (the TFLite converter refuses it), ``check`` (the
static op/type check against the wheel's op table) or ``run`` (TFLite Micro's
Prepare/Invoke); ``op``: the operator named in the error; ``reason``: why.

Measured with tensorflow 2.18.1 and the installed tflite-micro wheel. Every
other ``*_micro`` zoo model (vit, resnest, cswin, perceiver, perceiver_io, detr,
deformable_detr and its box-refinement variant) converts and runs, so none is a
row; paper-size models were not measured.
"""

MICRO_UNSUPPORTED = (
    {"case": "activation:exponential", "kind": "activation", "name": "exponential",
     "fails_at": "run", "op": "EXP",
     "reason": "int8 EXP fails at Prepare in TFLite Micro (its kernel accepts FLOAT32 only); "
               "e^x is unbounded, so there is no cheap int8 form"},
    {"case": "tf_op:math.exp", "kind": "tf_op", "name": "math.exp",
     "fails_at": "run", "op": "EXP",
     "reason": "int8 EXP fails at Prepare in TFLite Micro (its kernel accepts FLOAT32 only)"},
    {"case": "tf_op:math.log", "kind": "tf_op", "name": "math.log",
     "fails_at": "run", "op": "LOG",
     "reason": "int8 LOG fails at Invoke in TFLite Micro (its elementwise kernel accepts FLOAT32 only)"},
    {"case": "tf_op:nn.softplus", "kind": "tf_op", "name": "nn.softplus",
     "fails_at": "run", "op": "EXP",
     "reason": "tf.nn.softplus called directly (a TFLite op lambda, not a Keras activation) is not "
               "rewritten and converts to int8 EXP, which fails at Prepare: use activation='softplus'"},
    {"case": "tf_op:nn.gelu", "kind": "tf_op", "name": "nn.gelu",
     "fails_at": "check", "op": "GELU",
     "reason": "tf.nn.gelu called directly is not rewritten and the converter fuses it into GELU, "
               "which TFLite Micro has no kernel for: use activation='gelu'"},
    {"case": "model:deformable_detr_micro_two_stage", "kind": "model",
     "name": "deformable_detr_micro_two_stage", "fails_at": "check", "op": "TOPK_V2",
     "reason": "two-stage Deformable DETR picks its queries as the encoder's top-k proposals, and "
               "TFLite Micro has no TOPK_V2 kernel; it runs in LiteRT (the single-stage and "
               "box-refinement models run in TFLite Micro)"},
    {"case": "transpose:6d_no_merge", "kind": "transpose", "input_shape": [2, 2, 2, 2, 2, 2],
     "perm": [0, 2, 4, 6, 1, 3, 5], "fails_at": "run", "op": "TRANSPOSE",
     "reason": "TFLite Micro's TRANSPOSE takes at most 5-D; this permutation moves no two "
               "neighbouring axes together, so it stays 6-D (7-D with the batch axis)"},
)


def unsupported_case(case):
    """The row for ``case``, or None."""
    return next((row for row in MICRO_UNSUPPORTED if row["case"] == case), None)


def known_reasons(op):
    """The reasons of the rows whose failing operator is ``op`` (for error messages)."""
    return [row["reason"] for row in MICRO_UNSUPPORTED if row["op"] == op]
