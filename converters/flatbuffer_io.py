"""A .tflite flatbuffer as the schema's object API (``schema.ModelT``) and back to bytes, for the
rewrites that edit a converted model (calibration statistics, one-op models)."""
import numpy as np
from ai_edge_litert import schema_py_generated as schema


def read_model_t(model_bytes):
    """The flatbuffer's object API model (``schema.ModelT``)."""
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(model_bytes), 0))


class AlignedBufferT(schema.BufferT):
    """A buffer whose data starts 16-byte aligned, as the TFLite converter writes them."""

    def Pack(self, builder):
        data = None
        if self.data is not None:
            payload = np.asarray(self.data, np.uint8).tobytes()
            builder.StartVector(1, len(payload), 16)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


def pack_model(model_t):
    """Bytes of a ``schema.ModelT``."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model_t.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
