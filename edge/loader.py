"""Load untrusted .tflite bytes safely: identifier, LiteRT's flatbuffer verifier, then parsing."""
from pathlib import Path

from edgezoo.converters.tflite_model import read_tflite
from edgezoo.errors import ModelFileError


def read_model_bytes(source):
    """Bytes of a .tflite given as a path or bytes, with a clear error for a missing file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    return path.read_bytes()


def verify_flatbuffer(data, source="model"):
    """Run LiteRT's flatbuffer verifier over ``data``; raise ModelFileError if it fails.

    Building a LiteRT interpreter from a buffer verifies it before anything
    reads it; tensors are not allocated here.
    """
    from ai_edge_litert.interpreter import Interpreter

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(
            f"{source} is not a TFLite model: the 'TFL3' identifier is missing "
            f"({len(data)} bytes read). Pass a .tflite flatbuffer."
        )
    try:
        Interpreter(model_content=data)
    except ValueError as exc:
        raise ModelFileError(
            f"{source} failed LiteRT's flatbuffer verification (truncated or corrupted?): "
            f"{str(exc).strip().splitlines()[-1]}"
        ) from None


def load_tflite(source):
    """(bytes, parsed model) of a verified .tflite from a path or bytes."""
    data = read_model_bytes(source)
    name = str(source) if not isinstance(source, (bytes, bytearray, memoryview)) else "model"
    verify_flatbuffer(data, name)
    return data, read_tflite(data)
