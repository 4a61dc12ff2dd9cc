"""Run one .tflite on TFLite Micro and LiteRT (reference and default kernels) and compare.

Like is compared with like: TFLite Micro against LiteRT's reference kernels
(``BUILTIN_REF``) element by element in LSBs; against default LiteRT
(XNNPACK), whose int8 arithmetic rounds differently, only on top-1.
"""
import numpy as np

from edgezoo.edge.runners.litert import LiteRTRunner
from edgezoo.edge.runners.micro import MicroRunner


def lut_compressed(model):
    """Whether a parsed model decodes LUT-compressed weights at run time (TFLite Micro only)."""
    return any(op.op == "CUSTOM:TFLM_DECODE" for op in model.operators)


def top1(outputs):
    return np.asarray(outputs).reshape(len(outputs), -1).argmax(-1)


def compare_runtimes(model_bytes, model, x, labels=None, float_outputs=None, micro_runner=None):
    """Outputs of the three runtimes on float samples ``x`` and how they agree.

    ``float_outputs`` (the float Keras model's outputs on ``x``) adds int8-vs-float
    top-1 agreement; ``labels`` adds accuracies.
    """
    micro = micro_runner or MicroRunner(model_bytes, model)
    out = {"micro": micro.run(x)}
    result = {"samples": int(len(x))}
    if lut_compressed(model):
        result["litert"] = ("not run: LUT-compressed (DECODE operators), which LiteRT has no kernel "
                            "for; compare the uncompressed .tflite for the LSB checks")
    else:
        out["reference"] = LiteRTRunner(model_bytes, model, "reference").run(x)
        out["default"] = LiteRTRunner(model_bytes, model, "default").run(x)
        lsb = np.abs(out["micro"].astype(np.int64) - out["reference"].astype(np.int64))
        result.update({
            "micro_vs_reference_max_lsb": int(lsb.max()) if lsb.size else 0,
            "micro_vs_reference_within_1lsb": float((lsb <= 1).mean()) if lsb.size else 1.0,
            "default_vs_micro_top1": float((top1(out["default"]) == top1(out["micro"])).mean()),
        })
    result.update({"arena_bytes": micro.arena_bytes, "arena_breakdown": micro.arena_breakdown})
    if float_outputs is not None:
        result["micro_vs_float_top1"] = float((top1(out["micro"]) == top1(float_outputs)).mean())
    if labels is not None:
        labels = np.asarray(labels)
        result["accuracy"] = {"int8_micro": float((top1(out["micro"]) == labels).mean())}
        if "default" in out:
            result["accuracy"]["int8_litert"] = float((top1(out["default"]) == labels).mean())
        if float_outputs is not None:
            result["accuracy"]["float"] = float((top1(float_outputs) == labels).mean())
    return result, out
