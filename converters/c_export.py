"""C export for TFLite Micro firmware: the model as a 16-byte-aligned array, its I/O quantization,
an arena-size constant and a ``MicroMutableOpResolver`` registration of exactly the ops it uses."""
import math
import re

# MicroMutableOpResolver method names that the plain CamelCase rule gets wrong.
_METHOD_FIXES = {"Matmul": "MatMul", "Lstm": "LSTM", "Cumsum": "CumSum", "Padv2": "PadV2",
                 "Pcan": "PCAN", "Ethosu": "EthosU"}
ARENA_MARGIN = 0.10  # headroom over the arena measured on a 64-bit host
ALIGNMENT = 16


def resolver_method(op):
    """``CONV_2D`` -> ``AddConv2D``: the MicroMutableOpResolver method registering ``op``."""
    parts = []
    for part in op.split("_"):
        word = part.capitalize()
        if word[:1].isdigit():
            word = word.upper()  # 2d -> 2D
        parts.append(_METHOD_FIXES.get(word, word))
    return "Add" + "".join(parts)


def arena_constant(arena_bytes, margin=ARENA_MARGIN, minimum_bytes=None):
    """The larger of the recorded arena and the bisected minimum, plus ``margin``, rounded
    up to the alignment: so ``minimum <= constant < max(recorded, minimum) * (1 + margin) + 16``."""
    base = max(arena_bytes or 0, minimum_bytes or 0)
    return int(math.ceil(base * (1 + margin) / ALIGNMENT) * ALIGNMENT)


def arena_lines(arena, minimum_bytes=None, margin=ARENA_MARGIN):
    """The header's arena comment and ``EDGEZOO_TENSOR_ARENA_SIZE`` line(s).

    ``arena``: an ``edgezoo.edge.arena.arena_summary`` dict, or the recorded arena
    total in bytes (then ``minimum_bytes``, the bisected minimum, if known), or None.
    """
    if isinstance(arena, dict):
        recorded, minimum = arena.get("recorded_bytes"), arena.get("minimum_bytes")
        margin = arena.get("margin", margin)
    else:
        recorded, minimum = arena, minimum_bytes
    if not recorded and not minimum:
        return ["// TFLite Micro arena not measured: convert with a microcontroller --target to get it."]
    constant = arena_constant(recorded, margin, minimum)
    base = max(recorded or 0, minimum or 0)
    total = f"recorded allocation total {recorded} B" if recorded else "allocation total not recorded"
    if minimum:
        lines = [f"// TFLite Micro arena (measured on a 64-bit host): minimum {minimum} B (the smallest",
                 f"// multiple of {ALIGNMENT} B that prepares and invokes the model: {minimum - ALIGNMENT} B "
                 f"fails); {total}.",
                 f"// EDGEZOO_TENSOR_ARENA_SIZE = max(minimum, recorded) + {margin:.0%} margin, rounded "
                 f"up to {ALIGNMENT} B:"]
    else:
        lines = [f"// TFLite Micro arena (measured on a 64-bit host): {total}; the minimum was not",
                 "// bisected (Prepare's temporary buffers can need more than the recorded total).",
                 f"// EDGEZOO_TENSOR_ARENA_SIZE = recorded + {margin:.0%} margin, rounded up to "
                 f"{ALIGNMENT} B:"]
    lines += [f"// {constant} B = {base} B + {constant - base} B. A 32-bit target's pointers are "
              "smaller, so it needs",
              "// a bit less (the host figure is an upper bound in practice).",
              f"#define EDGEZOO_TENSOR_ARENA_SIZE {constant}"]
    return lines


def _float(value):
    return f"{float(value):.9g}f"


def tensor_lines(model):
    """Every input and output: count, then per index its name, type, shape, scale and zero
    point (``EDGEZOO_INPUT_1_SCALE``, ...). An int32 tensor (token ids) has scale 0: it is
    passed as it is, never quantized."""
    lines = []
    for kind, tensors in (("INPUT", model.inputs), ("OUTPUT", model.outputs)):
        lines.append(f"#define EDGEZOO_NUM_{kind}S {len(tensors)}")
        for k, t in enumerate(tensors):
            name = re.sub(r"[^A-Za-z0-9_:./;-]", "_", t.name)  # no quote or newline in C
            dims = ", ".join(str(int(d)) for d in t.shape)
            lines += [f"#define EDGEZOO_{kind}_{k}_NAME \"{name}\"",
                      f"#define EDGEZOO_{kind}_{k}_TYPE \"{t.dtype}\"",
                      f"#define EDGEZOO_{kind}_{k}_DIMS {{{dims}}}",
                      f"#define EDGEZOO_{kind}_{k}_SCALE {_float(t.scale)}",
                      f"#define EDGEZOO_{kind}_{k}_ZERO_POINT ({t.zero_point})"]
    return lines


def render_header(model, arena_bytes, symbol="g_model_data", *, minimum_bytes=None):
    """model_data.h for ``model`` (a parsed TFLiteModel).

    ``arena_bytes``: an ``edgezoo.edge.arena.arena_summary`` dict, or the recorded
    arena total (bytes; None: not measured) with ``minimum_bytes`` the bisected
    minimum if known. ``EDGEZOO_TENSOR_ARENA_SIZE`` is the larger of the two plus
    ``ARENA_MARGIN``, so it is never below the minimum that was measured.
    """
    guard = f"EDGEZOO_{symbol.upper()}_H_"
    ops = sorted({o.op for o in model.operators})
    custom = [op for op in ops if op.startswith("CUSTOM:")]
    builtin = [op for op in ops if not op.startswith("CUSTOM:")]
    inp, out = model.inputs[0], model.outputs[0]
    lines = [
        "// Generated by edgezoo: the model, its I/O quantization, arena size and op resolver.",
        f"#ifndef {guard}", f"#define {guard}", "", "#include <stddef.h>", "",
        "#ifdef __cplusplus", 'extern "C" {', "#endif",
        f"extern const unsigned char {symbol}[];  // aligned to {ALIGNMENT} bytes",
        f"extern const size_t {symbol}_len;",
        "#ifdef __cplusplus", "}", "#endif", "",
        *arena_lines(arena_bytes, minimum_bytes),
        # input 0 and output 0 under their historical names; every tensor below, by index
        f"#define EDGEZOO_INPUT_TYPE \"{inp.dtype}\"",
        f"#define EDGEZOO_INPUT_SCALE {_float(inp.scale)}",
        f"#define EDGEZOO_INPUT_ZERO_POINT ({inp.zero_point})",
        f"#define EDGEZOO_OUTPUT_TYPE \"{out.dtype}\"",
        f"#define EDGEZOO_OUTPUT_SCALE {_float(out.scale)}",
        f"#define EDGEZOO_OUTPUT_ZERO_POINT ({out.zero_point})",
        *tensor_lines(model),
        f"#define EDGEZOO_NUM_OPS {len(ops)}", "",
        "#if defined(__cplusplus) && defined(EDGEZOO_WITH_TFLM)",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"', "",
        "// Registers exactly the operators this model uses.",
        "inline TfLiteStatus EdgezooRegisterOps(",
        "    tflite::MicroMutableOpResolver<EDGEZOO_NUM_OPS>& resolver) {",
    ]
    lines += [f"  if (resolver.{resolver_method(op)}() != kTfLiteOk) return kTfLiteError;"
              for op in builtin]
    lines += [f"  // custom op {op[7:]!r}: register it with resolver.AddCustom(...)" for op in custom]
    lines += ["  return kTfLiteOk;", "}", "#endif", "", f"#endif  // {guard}", ""]
    return "\n".join(lines)


def render_source(data, header="model_data.h", symbol="g_model_data"):
    """model_data.cc holding the flatbuffer bytes."""
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12)]
    body = ",\n  ".join(rows)
    return (f'// Generated by edgezoo.\n#include "{header}"\n\n'
            f"alignas({ALIGNMENT}) const unsigned char {symbol}[] = {{\n  {body}\n}};\n"
            f"const size_t {symbol}_len = {len(data)};\n")
