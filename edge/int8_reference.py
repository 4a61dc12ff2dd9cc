"""TFLite Micro's integer arithmetic re-derived in NumPy, to arbitrate where the two runtimes
differ on identical inputs.

LiteRT's int8 MUL (reference and builtin kernels alike, ai-edge-litert 2.3.0) is 1 LSB off on
isolated products: on deformable_detr_micro's sampling MUL (scales 0.0039216, 0.0039216 ->
0.0039181, zero points -128) it differs from TFLite Micro on exactly the 6 of all 65,536 int8
input pairs whose product is 13,120, where TFLite Micro's value is the one this module computes
(and it equals this module on all 65,536). So a MUL the two runtimes disagree on is judged by
this derivation instead of by a widened tolerance: TFLite Micro must equal it exactly.
"""
import math

import numpy as np

# fused activation (schema ActivationFunctionType) -> the real interval it clamps to
ACTIVATION_RANGES = {0: (-math.inf, math.inf), 1: (0.0, math.inf), 3: (0.0, 6.0),
                     2: (-1.0, 1.0)}  # NONE, RELU, RELU6, RELU_N1_TO_1


def quantize_multiplier(real):
    """(int32 multiplier, shift) with real = multiplier / 2^31 * 2^shift (TFLite's
    QuantizeMultiplier: frexp, the mantissa rounded half away from zero)."""
    if real == 0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q = int(math.floor(mantissa * (1 << 31) + 0.5))
    if q == 1 << 31:
        q, shift = q // 2, shift + 1
    if shift < -31:
        return 0, 0
    return q, shift


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """gemmlowp's two roundings, as TFLite Micro's reference kernels apply them: a saturating
    rounding doubling high multiply, then a rounding right shift (ties away from zero)."""
    x = np.asarray(x, np.int64) * (1 << max(shift, 0))
    product = x * multiplier
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged // (1 << 31), -((-nudged) // (1 << 31)))  # toward zero
    right = max(-shift, 0)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def activation_bounds(activation, scale, zero_point, low=-128, high=127):
    """The int8 interval a fused activation clamps an output to."""
    lo, hi = ACTIVATION_RANGES[activation]
    qlo = low if lo == -math.inf else max(low, zero_point + int(round(lo / scale)))
    qhi = high if hi == math.inf else min(high, zero_point + int(round(hi / scale)))
    return qlo, qhi


def int8_mul(a, b, a_quant, b_quant, out_quant, activation=0):
    """TFLite Micro's int8 MUL of ``a`` and ``b`` (broadcast as NumPy does); each quant is
    (scale, zero point)."""
    (sa, za), (sb, zb), (so, zo) = a_quant, b_quant, out_quant
    real = float(np.float32(sa)) * float(np.float32(sb)) / float(np.float32(so))
    multiplier, shift = quantize_multiplier(real)
    product = (np.asarray(a, np.int64) - za) * (np.asarray(b, np.int64) - zb)
    lo, hi = activation_bounds(activation, float(so), int(zo))
    return np.clip(multiply_by_quantized_multiplier(product, multiplier, shift) + zo,
                   lo, hi).astype(np.int8)
