"""Look-up-table weight compression for TFLite Micro, with the tflite-micro wheel's own compressor.

A weight tensor whose output channels each hold few distinct int8 values (after
clustering) is stored as ``bits``-wide indices plus a value table per channel; a
``DECODE`` operator (custom code ``TFLM_DECODE``) inserted before each consumer
rebuilds the int8 tensor at run time. The decoded values are exactly the original
ones, so the compressed model computes bit for bit the same.

Decompression memory: a DECODE output has no buffer and lives in the arena from
its DECODE to the very next operator (its one consumer), so at most one DECODE's
outputs are alive at once. ``info["decompression_bytes"]`` is the largest sum of
one DECODE's decoded tensors (what TFLite Micro's alternate decompression memory
would need; ``alt_decompression_memory_size`` in its Python interpreter). By
default TFLite Micro plans those tensors in the main arena, so the arena it
measures for the compressed model already contains them: the memory planner
overlaps them with activations that are dead at that point, so the arena grows
by at most that much (plus the DECODE kernels' small persistent state, about
600 B on a small CNN), often less: ResNet-8 grows by 5,552 B for 36,864 B
decoded. Budget RAM with the arena measured on the compressed model (and no
extra decompression bytes), or with the uncompressed arena plus
``decompression_bytes`` when the decoded tensors go to separate memory.
"""
import contextlib
import io
import warnings

import numpy as np

from edgezoo.converters.tflite_model import read_tflite
from edgezoo.converters.tflite_weights import WEIGHT_INPUTS
from edgezoo.base.errors import ModelFileError, RecipeError

DECODE_OP = "TFLM_DECODE"
# Tensor types compressed (the weights of integer models); others keep their stored values.
COMPRESSIBLE_TYPES = ("INT8",)
DCM_BYTES = 16  # the DECODE metadata header ahead of each value table
MAX_INDEX_BITS = 7  # the LUT format's widest index (DCM byte 5, bits 2-0)
DEFAULT_MAX_UNIQUE = 16  # 4-bit indices: a K <= 16 clustered model


def _compression_modules():
    import importlib

    base = "tflite_micro.tensorflow.lite.micro.compression."
    return tuple(importlib.import_module(base + name) for name in ("compress", "model_editor", "spec"))


def _bits(unique):
    return max(1, int(unique - 1).bit_length())


def _lut_plan(values, channel_axis):
    """(bits, distinct values in the fullest channel, index bytes, value-table bytes) of a per-channel LUT.

    Per-channel only: in the installed TFLite Micro, per-tensor tables (DCM axis
    0xF) decode to wrong values (measured: off by up to 213 LSB at the output of
    a small CNN), while per-channel tables decode exactly.
    """
    rows = np.moveaxis(values, channel_axis, 0).reshape(values.shape[channel_axis], -1)
    unique = max(len(np.unique(r)) for r in rows)
    bits = _bits(unique)
    encoded = int(np.ceil(values.size * bits / 8))
    return bits, unique, encoded, len(rows) * unique * values.dtype.itemsize


def compress_tflite(tflite_bytes, *, max_unique=None, leave=None):
    """LUT-compress every conv / fully-connected weight with at most ``max_unique`` values per channel.

    ``max_unique`` (default 16, 4-bit indices; at most 128) bounds the distinct
    values per output channel a weight may have to be compressed; a weight is
    also left alone when its indices and tables would not be smaller.
    Returns ``(compressed_bytes, info)``; ``info["tensors"]`` lists each
    compressed weight (layer, op, channel axis, bits, bytes before and after),
    ``info["skipped"]`` the weights left as they were and why, and
    ``info["decompression_bytes"]`` the decoded bytes alive at once (see the
    module docstring). ``leave``: {tensor name: reason} of weights to store uncompressed
    (listed among the skipped with that reason). The same input gives the same output bytes.
    """
    limit = DEFAULT_MAX_UNIQUE if max_unique is None else max_unique
    integer = isinstance(limit, (int, np.integer)) and not isinstance(limit, bool)
    if not integer or not 1 <= limit <= 2 ** MAX_INDEX_BITS:
        raise RecipeError(f"max_unique={max_unique!r}: give an integer from 1 to {2 ** MAX_INDEX_BITS} "
                          "(16 for 4-bit indices, 8 for 3-bit)")
    parsed = read_tflite(bytes(tflite_bytes))  # file and structure checks with their clear errors
    if any(op.op == f"CUSTOM:{DECODE_OP}" for op in parsed.operators):
        raise RecipeError("this model is already LUT-compressed (it has DECODE operators); "
                          "compress the uncompressed .tflite")
    compress, model_editor, spec = _compression_modules()
    model = model_editor.read(bytes(tflite_bytes))
    subgraph = model.subgraphs[0]
    layers = {op.index: op.layer for op in parsed.operators}
    specs, chosen, skipped, seen = [], [], [], set()
    for position, op in enumerate(subgraph.operators):
        if op.opcode_name not in WEIGHT_INPUTS:
            continue
        slot, axis = WEIGHT_INPUTS[op.opcode_name]
        tensor = op.inputs[slot] if slot < len(op.inputs) else None
        if tensor is None or tensor.buffer is None or not len(tensor.buffer) or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        index = subgraph.tensors.index(tensor)
        entry = {"tensor": tensor.name, "layer": layers.get(position, "?"), "op": op.opcode_name,
                 "shape": [int(s) for s in tensor.shape], "original_bytes": len(tensor.buffer)}
        type_name = _type_name(tensor.dtype)
        if leave and tensor.name in leave:
            skipped.append({**entry, "reason": leave[tensor.name]})
            continue
        if type_name not in COMPRESSIBLE_TYPES:
            skipped.append({**entry, "reason": f"{type_name} weights are not LUT-compressed "
                                               "(quantize to int8 first)"})
            continue
        axis = axis % len(tensor.shape)
        scales = len(tensor.quantization.scales) if tensor.quantization is not None else 0
        if scales != int(tensor.shape[axis]):
            # Measured: per-channel tables over a per-tensor-quantized weight (QAT's per-tensor
            # heads) decode wrongly in TFLite Micro (255 LSB off at a small CNN's logits).
            skipped.append({**entry, "reason": f"quantized per tensor ({scales} scale(s) for "
                                               f"{int(tensor.shape[axis])} channels): the installed "
                                               "TFLite Micro decodes only per-channel tables right"})
            continue
        bits, unique, encoded, table = _lut_plan(tensor.array, axis)
        if unique > limit:
            skipped.append({**entry, "unique": int(unique),
                            "reason": f"{unique} distinct values per channel > max_unique={limit}; "
                                      "cluster this layer to compress it"})
            continue
        if encoded + table + DCM_BYTES >= entry["original_bytes"]:
            skipped.append({**entry, "unique": int(unique),
                            "reason": f"indices ({encoded} B) and value tables ({table} B) would not be "
                                      f"smaller than the {entry['original_bytes']} B it stores"})
            continue
        specs.append(spec.Tensor(subgraph=0, tensor=index, compression=[
            spec.LookUpTableCompression(bits, spec.PerChannel(axis=axis))]))
        chosen.append({**entry, "axis": axis, "bits": bits, "unique": int(unique),
                       "encoded_bytes": encoded, "table_bytes": table,
                       # the trade: flash saved, and the int8 weights DECODE rebuilds in the arena
                       "flash_saved_bytes": entry["original_bytes"] - encoded - table - DCM_BYTES,
                       "decoded_bytes": entry["original_bytes"]})
    if not specs:
        raise RecipeError(
            f"no int8 weight tensor would shrink under LUT compression with at most {limit} "
            "distinct values per channel; cluster the model first "
            "(edgezoo.converters.clustering.cluster) or raise max_unique. Skipped: "
            + "; ".join(f"{s['layer']}: {s['reason']}" for s in skipped))
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("always")
        out = _drop_encoded_quantization(bytes(compress.compress(bytes(tflite_bytes), specs)))
    peak, total = decompression_bytes(out)
    info = {"original_bytes": len(tflite_bytes), "compressed_bytes": len(out),
            "max_unique": int(limit), "tensors": chosen, "skipped": skipped,
            "decode_ops": sum(1 for op in read_tflite(out).operators if op.op == f"CUSTOM:{DECODE_OP}"),
            "decompression_bytes": peak, "decoded_bytes_total": total,
            "warnings": [str(w.message) for w in caught]}
    return out, info


def _drop_encoded_quantization(data):
    """Clear the int8 quantization the wheel's compressor leaves on each encoded (uint8) tensor.

    Its model editor writes ``quantization = None`` only to its wrapper, so the
    flatbuffer keeps e.g. 64 per-channel scales on a (1152,) uint8 index tensor:
    TFLite Micro ignores them, but a flatbuffer checker rightly calls it corrupt.
    """
    import importlib
    import tempfile
    from pathlib import Path

    _, model_editor, _ = _compression_modules()
    align = importlib.import_module("tflite_micro.tensorflow.lite.micro.tools."
                                    "tflite_flatbuffer_align_wrapper")
    model = model_editor.read(data)
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.custom_code == DECODE_OP:
                for encoded in op.inputs[::2]:  # (encoded, ancillary) pairs
                    encoded.quantization = None
                    encoded._fb.quantization = None
    with tempfile.TemporaryDirectory(prefix="edgezoo-lut-") as tmp:
        src, dst = Path(tmp) / "in.tflite", Path(tmp) / "out.tflite"
        src.write_bytes(bytes(model.build()))
        align.align_tflite_model(str(src), str(dst))  # buffers aligned as TFLite Micro expects
        return dst.read_bytes()


def decompression_bytes(tflite_bytes):
    """(largest bytes one DECODE operator outputs, bytes all DECODE outputs add up to)."""
    _, model_editor, _ = _compression_modules()
    try:
        model = model_editor.read(bytes(tflite_bytes))
    except Exception as exc:  # the editor's reader has no error of its own
        raise ModelFileError(f"cannot read this .tflite for its DECODE operators: {exc}") from exc
    sizes = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.custom_code == DECODE_OP:
                sizes.append(sum(int(np.prod(t.shape)) * t.numpy_dtype.itemsize for t in op.outputs))
    return (max(sizes) if sizes else 0), sum(sizes)


def _type_name(dtype):
    from edgezoo.converters.tflite_model import TYPE_NAMES

    return TYPE_NAMES.get(dtype, str(dtype))
