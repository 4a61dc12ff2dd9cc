"""The operators the installed TFLite Micro build registers, read from the wheel's own library.

The Python interpreter of the ``tflite-micro`` wheel links one kernel per
operator, each behind a ``tflite::Register_<OP>()`` function. We read those
symbol names from the shared library's dynamic symbol table (plain bytes, no
extra tools) and keep the ones that are TFLite builtin operators: the table
follows whatever nightly is installed.
"""
import functools
import re
from importlib import util
from pathlib import Path

from edgezoo.converters.tflite_model import OP_NAMES

# Itanium mangling: tflite::Register_ADD() -> _ZN6tflite12Register_ADDEv (length-prefixed names).
_SYMBOL = re.compile(rb"(\d+)(Register_[A-Z0-9_]+)")

# Types TFLite Micro has no kernels for at all.
MICRO_UNSUPPORTED_TYPES = {
    "FLOAT16": "TFLite Micro has no float16 kernels",
    "FLOAT64": "TFLite Micro has no float64 kernels",
    "COMPLEX64": "TFLite Micro has no complex kernels",
    "COMPLEX128": "TFLite Micro has no complex kernels",
    "STRING": "TFLite Micro has no string tensors",
}


def runtime_library():
    spec = util.find_spec("tflite_micro.python.tflite_micro._runtime")
    if spec is None or spec.origin is None:
        raise ImportError("the tflite-micro wheel is not installed (pip install edgezoo pins it)")
    return Path(spec.origin)


@functools.lru_cache(maxsize=1)
def micro_op_table():
    """Builtin operator names the installed TFLite Micro interpreter can resolve."""
    data = runtime_library().read_bytes()
    names = set()
    for match in _SYMBOL.finditer(data):
        length, symbol = int(match.group(1)), match.group(2)
        if length <= len(symbol):
            names.add(symbol[len(b"Register_"):length].decode())
    return frozenset(names & set(OP_NAMES.values()))
