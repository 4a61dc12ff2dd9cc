"""``detr_demo``: the minimal DETR of the paper's demonstration code (the seed article's
``DETRdemo``): torchvision's ResNet-50 with ordinary (trainable) batch norm, a 1x1 projection,
learned 50 x (D / 2) row and column positions added once to the projected features (scaled by
0.1), PyTorch's default ``nn.Transformer`` (post-norm, FFN 2048, dropout 0.1, a final LayerNorm
after encoder and decoder), the 100 learned queries as the decoder's input, and a linear box
head with a sigmoid.
"""
import tf_keras as keras

from edgezoo.zoo.detr.backbone import RESNET_DEPTHS, RESNET_WIDTHS, resnet_features
from edgezoo.zoo.detr.layers import DetrAttention, LearnedPositions2D, ObjectQueries
from edgezoo.zoo.detr.model import LN_EPSILON, _ffn, _norm, _residual, check_input_shape, stride_of


def detr_demo(input_shape=(800, 800, 3), num_classes=91, hidden_dim=256, num_heads=8,
              encoder_layers=6, decoder_layers=6, ffn_dim=2048, num_queries=100, dropout=0.1,
              name="detr_demo"):
    """Outputs ``[logits (B, Q, classes + 1), boxes (B, Q, 4)]``."""
    depths = RESNET_DEPTHS["resnet50"]
    check_input_shape(input_shape, stride_of(len(depths)))
    inputs = keras.Input(input_shape, name="image")
    feature = resnet_features(inputs, depths, RESNET_WIDTHS, 64, frozen_bn=False)[-1]
    h, w = int(feature.shape[1]), int(feature.shape[2])
    x = keras.layers.Conv2D(hidden_dim, 1, name="input_projection")(feature)
    x = keras.layers.Reshape((h * w, hidden_dim), name="flatten")(x)
    x = LearnedPositions2D(h, w, name="positions")(x)
    for i in range(encoder_layers):  # nn.TransformerEncoderLayer: no positions inside
        x = _residual(x, DetrAttention(num_heads, name=f"encoder{i}_attn")([x, x, x]), dropout,
                      f"encoder{i}_attn")
        x = _norm(keras.layers.Add(name=f"encoder{i}_ffn_add")(
            [x, _ffn(x, ffn_dim, dropout, f"encoder{i}_ffn")]), f"encoder{i}_ffn_norm")
    memory = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="encoder_norm")(x)
    y = ObjectQueries(num_queries, hidden_dim, name="object_queries")(x)  # the decoder's input
    for i in range(decoder_layers):
        y = _residual(y, DetrAttention(num_heads, name=f"decoder{i}_self_attn")([y, y, y]),
                      dropout, f"decoder{i}_self_attn")
        y = _residual(y, DetrAttention(num_heads, name=f"decoder{i}_cross_attn")(
            [y, memory, memory]), dropout, f"decoder{i}_cross_attn")
        y = _norm(keras.layers.Add(name=f"decoder{i}_ffn_add")(
            [y, _ffn(y, ffn_dim, dropout, f"decoder{i}_ffn")]), f"decoder{i}_ffn_norm")
    y = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="decoder_norm")(y)
    logits = keras.layers.Dense(num_classes + 1, name="logits")(y)
    boxes = keras.layers.Dense(4, activation="sigmoid", name="boxes")(y)
    return keras.Model(inputs, [logits, boxes], name=name)
