"""DETR: "End-to-End Object Detection with Transformers" (Carion et al., arXiv 2005.12872).

A ResNet backbone (frozen batch norm), a 1x1 projection to ``d_model``, fixed 2-D sine
positions, a post-norm Transformer encoder over the feature map and a decoder over
``num_queries`` learned object queries (the decoder starts from zeros; the queries are its
positions, added to its queries and keys at every layer), then per query a class head with a
last no-object class and a 3-layer box MLP ending in a sigmoid: normalised ``cx, cy, w, h``.
Layer for layer the reference implementation's (Hugging Face ``DetrForObjectDetection``):
attention adds positions to queries and keys, never to values; the decoder's output goes through
one more LayerNorm. ``detr_demo`` is the seed article's minimal model instead
(``detr_demo``).
"""
import tf_keras as keras

from edgezoo.base.errors import InputShapeError
from edgezoo.zoo.detr.backbone import RESNET_DEPTHS, RESNET_WIDTHS, resnet_features
from edgezoo.zoo.detr.layers import AddSinePositions, DetrAttention, ObjectQueries, ZerosLike

PAPER = "End-to-End Object Detection with Transformers"
ARXIV = "2005.12872"
LN_EPSILON = 1e-5


def stride_of(num_stages):
    """The backbone's output stride: stem conv and pool (4) x 2 for each stage after the first."""
    return 4 * 2 ** (num_stages - 1)


def check_input_shape(input_shape, stride):
    if len(input_shape) != 3 or any(s is None or int(s) <= 0 for s in input_shape):
        raise InputShapeError(f"DETR takes a static (height, width, channels) input shape, got "
                              f"{tuple(input_shape)}")
    h, w, _ = (int(s) for s in input_shape)
    if h % stride or w % stride:
        raise InputShapeError(f"DETR input {h}x{w}: height and width must be multiples of the "
                              f"backbone's stride {stride}")


def _norm(x, name):
    return keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=name)(x)


def _ffn(x, ffn_dim, dropout, name):
    d = int(x.shape[-1])
    y = keras.layers.Dense(ffn_dim, activation="relu", name=f"{name}_fc1")(x)
    y = keras.layers.Dense(d, name=f"{name}_fc2")(y)
    return keras.layers.Dropout(dropout, name=f"{name}_drop")(y)


def _residual(x, y, dropout, name):
    y = keras.layers.Dropout(dropout, name=f"{name}_drop")(y)
    return _norm(keras.layers.Add(name=f"{name}_add")([x, y]), f"{name}_norm")


def encoder_layer(x, positions, num_heads, ffn_dim, dropout, name):
    """Post-norm: x = LN(x + SA(x + pos, x + pos, x)); x = LN(x + FFN(x))."""
    qk = positions(x)
    x = _residual(x, DetrAttention(num_heads, name=f"{name}_attn")([qk, qk, x]), dropout,
                  f"{name}_attn")
    return _norm(keras.layers.Add(name=f"{name}_ffn_add")([x, _ffn(x, ffn_dim, dropout,
                                                                   f"{name}_ffn")]),
                 f"{name}_ffn_norm")


def decoder_layer(x, queries, memory, memory_qk, num_heads, ffn_dim, dropout, name):
    """Self-attention over the queries, cross-attention into the encoder's memory, FFN; each
    post-norm, query positions added to queries and keys."""
    qk = keras.layers.Add(name=f"{name}_self_pos")([x, queries])
    x = _residual(x, DetrAttention(num_heads, name=f"{name}_self_attn")([qk, qk, x]), dropout,
                  f"{name}_self_attn")
    q = keras.layers.Add(name=f"{name}_cross_pos")([x, queries])
    x = _residual(x, DetrAttention(num_heads, name=f"{name}_cross_attn")([q, memory_qk, memory]),
                  dropout, f"{name}_cross_attn")
    return _norm(keras.layers.Add(name=f"{name}_ffn_add")([x, _ffn(x, ffn_dim, dropout,
                                                                   f"{name}_ffn")]),
                 f"{name}_ffn_norm")


def detection_heads(x, num_classes, box_layers=3):
    """Per query: class logits with a last no-object class, and sigmoid boxes (cx, cy, w, h)
    from a ``box_layers``-layer MLP."""
    d = int(x.shape[-1])
    logits = keras.layers.Dense(num_classes + 1, name="logits")(x)
    y = x
    for i in range(box_layers - 1):
        y = keras.layers.Dense(d, activation="relu", name=f"box_mlp{i}")(y)
    boxes = keras.layers.Dense(4, activation="sigmoid", name="boxes")(y)
    return logits, boxes


def detr(input_shape=(800, 800, 3), num_classes=91, backbone="resnet50",
         backbone_depths=None, backbone_widths=RESNET_WIDTHS, stem_width=64, d_model=256,
         num_heads=8, ffn_dim=2048, encoder_layers=6, decoder_layers=6, num_queries=100,
         dropout=0.1, hf_aux_norm=False, name="detr"):
    """DETR with a ResNet backbone (``backbone``: resnet50 / resnet101, or ``backbone_depths``
    and ``backbone_widths`` for a reduced one). Outputs ``[logits (B, Q, classes + 1),
    boxes (B, Q, 4)]``.

    ``hf_aux_norm``: Hugging Face's DETR with ``auxiliary_loss=True`` feeds each decoder layer
    the previous layer's output after the decoder LayerNorm (the paper's code only collects the
    normed outputs for the auxiliary losses) and norms the last one twice; set for checkpoints
    whose configuration says so, to reproduce their outputs."""
    depths = tuple(backbone_depths or RESNET_DEPTHS[backbone])
    check_input_shape(input_shape, stride_of(len(depths)))
    inputs = keras.Input(input_shape, name="image")
    feature = resnet_features(inputs, depths, backbone_widths, stem_width)[-1]
    h, w = int(feature.shape[1]), int(feature.shape[2])
    x = keras.layers.Conv2D(d_model, 1, name="input_projection")(feature)
    x = keras.layers.Reshape((h * w, d_model), name="flatten")(x)
    positions = AddSinePositions(h, w, name="positions")
    for i in range(encoder_layers):
        x = encoder_layer(x, positions, num_heads, ffn_dim, dropout, f"encoder{i}")
    memory, memory_qk = x, positions(x)
    queries = ObjectQueries(num_queries, d_model, name="object_queries")(x)
    y = ZerosLike(name="decoder_start")(queries)  # the decoder starts from zeros
    norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="decoder_norm")
    for i in range(decoder_layers):
        y = decoder_layer(y, queries, memory, memory_qk, num_heads, ffn_dim, dropout,
                          f"decoder{i}")
        if hf_aux_norm:
            y = norm(y)
    y = norm(y)
    logits, boxes = detection_heads(y, num_classes)
    return keras.Model(inputs, [logits, boxes], name=name)
