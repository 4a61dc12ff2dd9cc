"""edgezoo.converters: Keras -> (rewritten, quantized) TFLite flatbuffers."""
from edgezoo.converters.compress import CompressedModel, compress
from edgezoo.converters.cpu_layernorm import CpuLayerNormalization, layernorm_for_xnnpack
from edgezoo.converters.dense_conv import dense_to_pointwise
from edgezoo.converters.finetune import FinetuneData
from edgezoo.converters.micro_support import MICRO_UNSUPPORTED
from edgezoo.converters.recipe import Recipe
from edgezoo.converters.gelu import micro_gelu, rewrite_gelu
from edgezoo.converters.quantize import QUANTIZATION_MODES, check_quantization, convert
from edgezoo.converters.rewrites import MICRO_REWRITES, apply_micro_rewrites
from edgezoo.converters.tflite_model import read_tflite

__all__ = [
    "CompressedModel",
    "CpuLayerNormalization",
    "FinetuneData",
    "MICRO_REWRITES",
    "MICRO_UNSUPPORTED",
    "Recipe",
    "compress",
    "QUANTIZATION_MODES",
    "apply_micro_rewrites",
    "check_quantization",
    "convert",
    "dense_to_pointwise",
    "layernorm_for_xnnpack",
    "micro_gelu",
    "read_tflite",
    "rewrite_gelu",
]
