"""Deformable DETR: "Deformable Transformers for End-to-End Object Detection" (Zhu et al., arXiv
2010.04159).

The ResNet's stride-8, -16 and -32 maps and one extra stride-64 level (a 3x3 stride-2
convolution), each projected to ``d_model`` with a 1x1 (3x3) convolution and GroupNorm(32);
sine positions plus a learned level embedding; a post-norm encoder of multi-scale deformable
self-attention (each token samples ``num_points`` points per level around its own pixel centre);
a decoder of self-attention and deformable cross-attention around per-query reference points
(a linear map of the query positions, sigmoid); per query sigmoid class logits (no no-object
class) and boxes refined from the reference point: sigmoid(delta + inverse_sigmoid(reference)).
Layer for layer the reference implementation's (Hugging Face ``DeformableDetrForObjectDetection``).
Iterative box refinement and the two-stage variant are not built yet.
"""
import tf_keras as keras

from edgezoo.zoo.deformable_detr.layers import (EncoderReferencePoints, GroupNorm, LevelPositions,
                                                MultiScaleDeformableAttention, QueryEmbeddings,
                                                RefineBoxes)
from edgezoo.zoo.detr.backbone import RESNET_DEPTHS, RESNET_WIDTHS, resnet_features
from edgezoo.zoo.detr.layers import DetrAttention
from edgezoo.zoo.detr.model import _ffn, _norm, _residual, check_input_shape, stride_of

PAPER = "Deformable DETR: Deformable Transformers for End-to-End Object Detection"
ARXIV = "2010.04159"
GROUPS = 32
GN_EPSILON = 1e-5


def _project(x, d_model, kernel, stride, name):
    if stride > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(d_model, kernel, stride, name=f"{name}_conv")(x)
    return GroupNorm(GROUPS, GN_EPSILON, name=f"{name}_norm")(x)


def deformable_detr(input_shape=(800, 800, 3), num_classes=91, backbone="resnet50",
                    backbone_depths=None, backbone_widths=RESNET_WIDTHS, stem_width=64,
                    d_model=256, num_heads=8, ffn_dim=1024, encoder_layers=6, decoder_layers=6,
                    num_queries=300, num_levels=4, num_points=4, dropout=0.1,
                    name="deformable_detr"):
    """Outputs ``[logits (B, Q, classes), boxes (B, Q, 4)]`` (sigmoid scoring)."""
    depths = tuple(backbone_depths or RESNET_DEPTHS[backbone])
    stride = stride_of(len(depths)) * 2 ** max(num_levels - 3, 0)
    check_input_shape(input_shape, stride)
    inputs = keras.Input(input_shape, name="image")
    stages = resnet_features(inputs, depths, backbone_widths, stem_width)
    maps = [_project(f, d_model, 1, 1, f"input_proj{k}") for k, f in enumerate(stages[-3:])]
    source = stages[-1]
    for k in range(len(maps), num_levels):
        maps.append(_project(source, d_model, 3, 2, f"input_proj{k}"))
        source = maps[-1]
    shapes = [(int(m.shape[1]), int(m.shape[2])) for m in maps]
    tokens = [keras.layers.Reshape((h * w, d_model), name=f"flatten{k}")(m)
              for k, (m, (h, w)) in enumerate(zip(maps, shapes))]
    x = keras.layers.Concatenate(axis=1, name="tokens")(tokens)
    positions = LevelPositions(shapes, name="positions")
    encoder_refs = EncoderReferencePoints(shapes, name="encoder_reference_points")(x)
    for i in range(encoder_layers):
        attn = MultiScaleDeformableAttention(shapes, num_heads, num_points, name=f"encoder{i}_attn")
        x = _residual(x, attn([positions(x), x, encoder_refs]), dropout, f"encoder{i}_attn")
        x = _norm(keras.layers.Add(name=f"encoder{i}_ffn_add")(
            [x, _ffn(x, ffn_dim, dropout, f"encoder{i}_ffn")]), f"encoder{i}_ffn_norm")
    memory = x
    query_pos, y = QueryEmbeddings(num_queries, d_model, name="query_embeddings")(x)
    reference = keras.layers.Dense(2, activation="sigmoid", name="reference_points")(query_pos)
    for i in range(decoder_layers):
        qk = keras.layers.Add(name=f"decoder{i}_self_pos")([y, query_pos])
        y = _residual(y, DetrAttention(num_heads, name=f"decoder{i}_self_attn")([qk, qk, y]),
                      dropout, f"decoder{i}_self_attn")
        q = keras.layers.Add(name=f"decoder{i}_cross_pos")([y, query_pos])
        attn = MultiScaleDeformableAttention(shapes, num_heads, num_points,
                                             name=f"decoder{i}_cross_attn")
        y = _residual(y, attn([q, memory, reference]), dropout, f"decoder{i}_cross_attn")
        y = _norm(keras.layers.Add(name=f"decoder{i}_ffn_add")(
            [y, _ffn(y, ffn_dim, dropout, f"decoder{i}_ffn")]), f"decoder{i}_ffn_norm")
    logits = keras.layers.Dense(num_classes, name="logits")(y)
    delta = keras.layers.Dense(d_model, activation="relu", name="box_mlp0")(y)
    delta = keras.layers.Dense(d_model, activation="relu", name="box_mlp1")(delta)
    delta = keras.layers.Dense(4, name="box_delta")(delta)
    boxes = RefineBoxes(name="boxes")([delta, reference])
    return keras.Model(inputs, [logits, boxes], name=name)
