"""Vision Transformer: "An Image is Worth 16x16 Words" (Dosovitskiy et al., arXiv 2010.11929).

Patch embedding (a strided convolution), a learned class token, learned
position embeddings, pre-norm encoder blocks (multi-head self-attention and an
exact-GELU MLP), a final LayerNorm and a linear head on the class token.
"""
import tf_keras as keras

from edgezoo.base.errors import InputShapeError
from edgezoo.zoo.layers import ClassToken, MultiHeadSelfAttention, StochasticDepth, TokenSelect
from edgezoo.zoo.vit.layers import PositionEmbedding

PAPER = "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale"
ARXIV = "2010.11929"


def _check_input_shape(input_shape, patch_size):
    if len(input_shape) != 3 or any(s is None or int(s) <= 0 for s in input_shape):
        raise InputShapeError(
            f"ViT takes a static (height, width, channels) input shape, got {tuple(input_shape)}"
        )
    h, w, _ = (int(s) for s in input_shape)
    if h % patch_size or w % patch_size:
        raise InputShapeError(
            f"ViT input {h}x{w} cannot be cut into {patch_size}x{patch_size} patches: height and "
            f"width must be multiples of the patch size {patch_size}"
        )
    return h // patch_size, w // patch_size


def encoder_block(x, num_heads, mlp_dim, *, dropout, attention_dropout, drop_path,
                  layer_norm_epsilon, attention, name):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""
    dim = x.shape[-1]
    y = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name=f"{name}_norm1")(x)
    y = MultiHeadSelfAttention(num_heads, attention=attention,
                               attention_dropout=attention_dropout, name=f"{name}_attn")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_attn_drop")(y)
    y = StochasticDepth(drop_path, name=f"{name}_attn_path")(y)
    x = keras.layers.Add(name=f"{name}_attn_add")([x, y])
    y = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name=f"{name}_norm2")(x)
    y = keras.layers.Dense(mlp_dim, name=f"{name}_mlp_fc1")(y)
    y = keras.layers.Activation("gelu", name=f"{name}_mlp_gelu")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_mlp_drop1")(y)
    y = keras.layers.Dense(dim, name=f"{name}_mlp_fc2")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_mlp_drop2")(y)
    y = StochasticDepth(drop_path, name=f"{name}_mlp_path")(y)
    return keras.layers.Add(name=f"{name}_mlp_add")([x, y])


def vit(
    *,
    input_shape=(224, 224, 3),
    num_classes=1000,
    patch_size=16,
    hidden_dim=768,
    depth=12,
    num_heads=12,
    mlp_dim=3072,
    dropout=0.0,
    attention_dropout=0.0,
    drop_path_rate=0.0,
    representation_size=None,
    layer_norm_epsilon=1e-6,
    attention="dot_product",
    name="vit",
):
    """Build a ViT. ``num_classes=0`` returns the final class-token features.

    ``representation_size`` adds the paper's pre-logits Dense + tanh layer;
    ``drop_path_rate`` rises linearly over the blocks (DeiT).
    """
    grid = _check_input_shape(input_shape, patch_size)
    if hidden_dim % num_heads:
        raise InputShapeError(f"ViT width {hidden_dim} is not divisible by {num_heads} heads")
    inputs = keras.Input(shape=tuple(int(s) for s in input_shape), name="image")
    x = keras.layers.Conv2D(hidden_dim, patch_size, strides=patch_size, name="patch_embed")(inputs)
    x = keras.layers.Reshape((grid[0] * grid[1], hidden_dim), name="patch_tokens")(x)
    x = ClassToken(name="cls_token")(x)
    x = PositionEmbedding(grid, num_prefix_tokens=1, name="pos_embed")(x)
    x = keras.layers.Dropout(dropout, name="pos_drop")(x)
    for i in range(depth):
        rate = drop_path_rate * i / max(depth - 1, 1)
        x = encoder_block(
            x, num_heads, mlp_dim, dropout=dropout, attention_dropout=attention_dropout,
            drop_path=rate, layer_norm_epsilon=layer_norm_epsilon, attention=attention,
            name=f"block{i}",
        )
    x = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm")(x)
    x = TokenSelect(0, name="cls_pool")(x)
    if representation_size:
        x = keras.layers.Dense(representation_size, activation="tanh", name="pre_logits")(x)
    if num_classes:
        x = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(inputs, x, name=name)
