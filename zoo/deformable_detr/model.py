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

``box_refine``: every decoder layer has its own class and box heads; its boxes are the next
layer's reference boxes (no gradient through them) and the offsets sample around boxes.
``two_stage`` (with ``box_refine``): the encoder output scores every token as a proposal (its
pixel centre, side 0.05 x 2^level); the ``num_queries`` best on the first class become the
decoder's reference boxes, and their sine embeddings (linear + LayerNorm) its queries.
"""
import tf_keras as keras

from edgezoo.zoo.deformable_detr.layers import (EncoderReferencePoints, GroupNorm, KeepAuxiliary,
                                                LevelPositions, MaskProposals,
                                                MultiScaleDeformableAttention, ProposalPositions,
                                                QueryEmbeddings, RefineBoxes, SelectProposals,
                                                SplitHalves, StopGradient)
from edgezoo.zoo.detr.backbone import RESNET_DEPTHS, RESNET_WIDTHS, resnet_features
from edgezoo.zoo.detr.layers import DetrAttention
from edgezoo.zoo.detr.model import _ffn, _norm, _residual, check_input_shape, stride_of

PAPER = "Deformable DETR: Deformable Transformers for End-to-End Object Detection"
ARXIV = "2010.04159"
GROUPS = 32
GN_EPSILON = 1e-5
PROPOSAL_LN_EPSILON = 1e-5  # torch nn.LayerNorm's default, used by the two-stage projections


def _project(x, d_model, kernel, stride, name):
    if stride > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(d_model, kernel, stride, name=f"{name}_conv")(x)
    return GroupNorm(GROUPS, GN_EPSILON, name=f"{name}_norm")(x)


def _box_head(y, reference, d_model, prefix):
    """The 3-layer box MLP of one head, refined from ``reference``: (B, Q, 4) boxes."""
    delta = keras.layers.Dense(d_model, activation="relu", name=f"{prefix}box_mlp0")(y)
    delta = keras.layers.Dense(d_model, activation="relu", name=f"{prefix}box_mlp1")(delta)
    delta = keras.layers.Dense(4, name=f"{prefix}box_delta")(delta)
    return RefineBoxes(name=f"{prefix}boxes")([delta, reference])


def _two_stage_queries(memory, shapes, num_classes, d_model, num_queries):
    """(query positions, decoder start, reference boxes) from the encoder's top proposals."""
    masked = MaskProposals(shapes, name="proposal_mask")(memory)
    y = keras.layers.Dense(d_model, name="enc_output")(masked)
    y = keras.layers.LayerNormalization(epsilon=PROPOSAL_LN_EPSILON, name="enc_output_norm")(y)
    logits = keras.layers.Dense(num_classes, name="proposal_logits")(y)
    delta = keras.layers.Dense(d_model, activation="relu", name="proposal_box_mlp0")(y)
    delta = keras.layers.Dense(d_model, activation="relu", name="proposal_box_mlp1")(delta)
    delta = keras.layers.Dense(4, name="proposal_box_delta")(delta)
    coords = SelectProposals(shapes, num_queries, name="proposals")([logits, delta])
    reference = keras.layers.Activation("sigmoid", name="proposal_boxes")(coords)
    pos = keras.layers.Dense(2 * d_model, name="pos_trans")(
        ProposalPositions(d_model, name="proposal_positions")(coords))
    pos = keras.layers.LayerNormalization(epsilon=PROPOSAL_LN_EPSILON, name="pos_trans_norm")(pos)
    query_pos, start = SplitHalves(name="proposal_queries")(pos)
    return query_pos, start, reference


def deformable_detr(input_shape=(800, 800, 3), num_classes=91, backbone="resnet50",
                    backbone_depths=None, backbone_widths=RESNET_WIDTHS, stem_width=64,
                    d_model=256, num_heads=8, ffn_dim=1024, encoder_layers=6, decoder_layers=6,
                    num_queries=300, num_levels=4, num_points=4, dropout=0.1,
                    box_refine=False, two_stage=False, name="deformable_detr"):
    """Outputs ``[logits (B, Q, classes), boxes (B, Q, 4)]`` (sigmoid scoring)."""
    if two_stage and not box_refine:
        raise ValueError("two-stage Deformable DETR refines its boxes: set box_refine=True")
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
    if two_stage and num_queries > sum(h * w for h, w in shapes):
        raise ValueError(f"two-stage Deformable DETR selects {num_queries} proposals from "
                         f"{sum(h * w for h, w in shapes)} tokens at {input_shape[0]}x"
                         f"{input_shape[1]}: use fewer queries or a larger input")
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
    if two_stage:
        query_pos, y, reference = _two_stage_queries(memory, shapes, num_classes, d_model,
                                                     num_queries)
    else:
        query_pos, y = QueryEmbeddings(num_queries, d_model, name="query_embeddings")(x)
        reference = keras.layers.Dense(2, activation="sigmoid", name="reference_points")(query_pos)
    auxiliary = []
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
        if box_refine and i < decoder_layers - 1:  # this layer's own heads
            auxiliary.append(keras.layers.Dense(num_classes, name=f"decoder{i}_logits")(y))
            boxes = _box_head(y, reference, d_model, f"decoder{i}_")
            reference = StopGradient(name=f"decoder{i}_reference")(boxes)
    if auxiliary:
        y = KeepAuxiliary(name="decoder_output")([y, *auxiliary])
    logits = keras.layers.Dense(num_classes, name="logits")(y)
    boxes = _box_head(y, reference, d_model, "")
    return keras.Model(inputs, [logits, boxes], name=name)
