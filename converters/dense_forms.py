"""How Dense layers reach the .tflite: one row per form, with what it costs where.

TFLite Micro keeps a per-channel layer's output multipliers and shifts (8 B a channel) in its
arena, so per-channel Dense layers cost RAM a per-tensor FULLY_CONNECTED does not: the MLPerf
Tiny AD autoencoder (Dense 128 x4, 8, 128 x4, 640) needs 19,152 B of arena as per-channel
FULLY_CONNECTED, 25,168 B as per-channel 1x1 CONV_2D and 4,080 B as per-tensor
FULLY_CONNECTED (the official file's form; 3,984 B recorded there).
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class DenseForm:
    name: str
    conv1x1: bool  # rewrite Dense to PointwiseDense (1x1 CONV_2D) on a TFLite Micro target
    per_tensor: bool  # per-tensor weight scales for Dense (the converter's dense-layer switch)
    why: str
    per_layer: bool = False  # converted both ways; each layer's form chosen (edgezoo.dense_choice)


DENSE_FORMS = {f.name: f for f in (
    DenseForm("conv1x1", True, False,
              "1x1 CONV_2D with per-channel weights: bit-exact between TFLite Micro and LiteRT's "
              "reference kernels; per-channel multipliers in the arena"),
    DenseForm("fc_per_channel", False, False,
              "FULLY_CONNECTED with per-channel weights: TFLite Micro rounds about 0.2 % of "
              "its outputs 1 LSB apart from LiteRT's reference kernel; per-channel multipliers "
              "in the arena"),
    DenseForm("fc_per_tensor", False, True,
              "FULLY_CONNECTED with one weight scale a layer: no per-channel arrays in the "
              "arena (the smallest RAM), coarser weights"),
    DenseForm("fc_per_layer", False, False,
              "FULLY_CONNECTED, each layer per-tensor where the agreement gate allows (measured "
              "in TFLite Micro on the validation split), per-channel where it does not",
              per_layer=True),
)}
DEFAULT_DENSE_FORM = "conv1x1"
