"""CSWin Transformer: "A General Vision Transformer Backbone with Cross-Shaped Windows"
(Dong et al., arXiv 2107.00652).

A convolutional token embedding (7x7 stride-4 conv + LayerNorm), four stages of
pre-norm CSWin blocks separated by convolutional merging (3x3 stride-2 conv
doubling the width + LayerNorm), a final LayerNorm, global average pooling and
a linear head. A CSWin block is x + proj(CSWinAttention(qkv(LN(x)))) followed
by x + MLP(LN(x)) (ratio 4, exact GELU), each branch with stochastic depth.
Cross-shaped attention gives half of the heads vertical stripes and half
horizontal stripes of width ``sw`` (1, 2, 7, 7 at 224x224); LePE adds a 3x3
depthwise convolution of V inside each stripe window. The last stage always
attends globally, as in the reference code (its stripe width 7 is the whole
7x7 map at 224), and so does any stage whose stripe width equals its map.

The graph stays a (B, H, W, C) feature map throughout: Dense and LayerNorm act
on the channel axis, so token and image layouts never need converting.
Padding, widths and module structure follow the authors' ``models/cswin.py``
(PyTorch pads the stem by 2 and the merge convs by 1 on every side; explicit
ZeroPadding2D + "valid" convolutions do the same here).
"""
import sys

import tf_keras as keras

from edgezoo.base.errors import InputShapeError
from edgezoo.zoo.cswin.layers import CrossShapedWindowAttention
from edgezoo.zoo.layers import StochasticDepth

PAPER = "CSWin Transformer: A General Vision Transformer Backbone with Cross-Shaped Windows"
ARXIV = "2107.00652"


def total_stride(num_stages):
    """Stem (4) x one stride-2 merge between consecutive stages."""
    return 4 * 2 ** (num_stages - 1)


def stage_attention(stage_size, stripe_width, last_stage, global_last_stage=True):
    """Stripe width a stage's attention layer uses; ``None`` means global attention."""
    h, w = stage_size
    if (last_stage and global_last_stage) or stripe_width is None or stripe_width == h == w:
        return None
    return int(stripe_width)


def _check_input_shape(input_shape, stripe_widths, global_last_stage):
    if len(input_shape) != 3 or any(s is None or int(s) <= 0 for s in input_shape):
        raise InputShapeError(
            f"CSWin takes a static (height, width, channels) input shape, got {tuple(input_shape)}"
        )
    h, w, _ = (int(s) for s in input_shape)
    stages = len(stripe_widths)
    stride = total_stride(stages)
    if h < stride or w < stride:
        raise InputShapeError(
            f"CSWin input {h}x{w} is too small: height and width must be at least the total "
            f"stride {stride}"
        )
    if h % stride or w % stride:
        raise InputShapeError(
            f"CSWin input {h}x{w} does not divide evenly: height and width must be multiples of "
            f"the total stride {stride}"
        )
    sizes = []
    for i, sw in enumerate(stripe_widths):
        size = (h // (4 * 2 ** i), w // (4 * 2 ** i))
        sw = stage_attention(size, sw, i == stages - 1, global_last_stage)
        if sw is not None and (size[0] % sw or size[1] % sw):
            raise InputShapeError(
                f"CSWin input {h}x{w} gives stage {i + 1} a {size[0]}x{size[1]} feature map that "
                f"its stripe width {sw} does not divide: stage {i + 1}'s height and width must be "
                f"multiples of its stripe width {sw}"
            )
        sizes.append(size)
    return sizes


def _allow_deep_graph(num_blocks):
    """Keras walks a functional graph recursively (about 20 frames per block here): CSWin-S/B/L's
    40 blocks pass Python's default limit of 1000."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 60 * num_blocks + 1000))


def _dense_init():
    return keras.initializers.TruncatedNormal(stddev=0.02)  # the reference's trunc_normal_(.02)


def _norm(x, epsilon, name):
    return keras.layers.LayerNormalization(epsilon=epsilon, name=name)(x)


def cswin_block(x, num_heads, stripe_width, *, mlp_ratio, qkv_bias, dropout, attention_dropout,
                drop_path, layer_norm_epsilon, attention, name):
    """Pre-norm CSWin block on a (B, H, W, C) map: attention branch, then MLP branch.

    Parameters (C channels): norm1 2C + qkv 3C^2 (+3C bias) + LePE 10C + proj C^2 + C
    + norm2 2C + fc1 4C^2 + 4C + fc2 4C^2 + C, i.e. 12 C^2 + 23 C with biases.
    """
    dim = x.shape[-1]
    y = _norm(x, layer_norm_epsilon, f"{name}_norm1")
    y = keras.layers.Dense(3 * dim, use_bias=qkv_bias, kernel_initializer=_dense_init(),
                           name=f"{name}_qkv")(y)
    y = CrossShapedWindowAttention(num_heads, stripe_width, attention=attention,
                                   attention_dropout=attention_dropout, name=f"{name}_attn")(y)
    y = keras.layers.Dense(dim, kernel_initializer=_dense_init(), name=f"{name}_proj")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_proj_drop")(y)
    y = StochasticDepth(drop_path, name=f"{name}_attn_path")(y)
    x = keras.layers.Add(name=f"{name}_attn_add")([x, y])
    y = _norm(x, layer_norm_epsilon, f"{name}_norm2")
    y = keras.layers.Dense(int(dim * mlp_ratio), kernel_initializer=_dense_init(),
                           name=f"{name}_mlp_fc1")(y)
    y = keras.layers.Activation("gelu", name=f"{name}_mlp_gelu")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_mlp_drop1")(y)
    y = keras.layers.Dense(dim, kernel_initializer=_dense_init(), name=f"{name}_mlp_fc2")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_mlp_drop2")(y)
    y = StochasticDepth(drop_path, name=f"{name}_mlp_path")(y)
    return keras.layers.Add(name=f"{name}_mlp_add")([x, y])


def cswin(
    *,
    input_shape=(224, 224, 3),
    num_classes=1000,
    embed_dim=64,
    depths=(1, 2, 21, 1),
    num_heads=(2, 4, 8, 16),
    stripe_widths=(1, 2, 7, 7),
    mlp_ratio=4.0,
    qkv_bias=True,
    dropout=0.0,
    attention_dropout=0.0,
    drop_path_rate=0.0,
    layer_norm_epsilon=1e-5,
    global_last_stage=True,
    attention="dot_product",
    name="cswin",
):
    """Build a CSWin Transformer. ``num_classes=0`` returns the pooled features.

    Stage ``i`` (named ``stage{i+1}``) has ``depths[i]`` blocks of width
    ``embed_dim * 2**i`` with ``num_heads[i]`` heads and stripe width
    ``stripe_widths[i]``; ``drop_path_rate`` rises linearly over all blocks.
    LayerNorm uses PyTorch's epsilon.
    """
    depths, num_heads = tuple(int(d) for d in depths), tuple(int(h) for h in num_heads)
    stripe_widths = tuple(None if s is None else int(s) for s in stripe_widths)
    if not depths or min(depths) < 1:
        raise ValueError(f"CSWin needs at least one stage of at least one block, got {depths}")
    if not len(depths) == len(num_heads) == len(stripe_widths):
        raise ValueError(f"depths {depths}, num_heads {num_heads} and stripe_widths "
                         f"{stripe_widths} must have one entry per stage")
    sizes = _check_input_shape(input_shape, stripe_widths, global_last_stage)
    _allow_deep_graph(sum(depths))
    stages = len(depths)
    for i, heads in enumerate(num_heads):
        width = embed_dim * 2 ** i
        sw = stage_attention(sizes[i], stripe_widths[i], i == stages - 1, global_last_stage)
        branch_heads = heads if sw is None else heads // 2
        if sw is not None and heads % 2:
            raise ValueError(f"stage {i + 1}: cross-shaped attention splits its heads in two, "
                             f"so {heads} heads must be even")
        if branch_heads < 1 or width % heads:
            raise ValueError(f"stage {i + 1}: width {width} is not divisible by {heads} heads")

    inputs = keras.Input(shape=tuple(int(s) for s in input_shape), name="image")
    x = keras.layers.ZeroPadding2D(2, name="stem_pad")(inputs)
    x = keras.layers.Conv2D(embed_dim, 7, strides=4, padding="valid", name="stem_conv")(x)
    x = _norm(x, layer_norm_epsilon, "stem_norm")

    total, index = sum(depths), 0
    for stage, depth in enumerate(depths):
        if stage:
            x = keras.layers.ZeroPadding2D(1, name=f"merge{stage}_pad")(x)
            x = keras.layers.Conv2D(2 * x.shape[-1], 3, strides=2, padding="valid",
                                    name=f"merge{stage}_conv")(x)
            x = _norm(x, layer_norm_epsilon, f"merge{stage}_norm")
        sw = stage_attention(sizes[stage], stripe_widths[stage], stage == stages - 1,
                             global_last_stage)
        for block in range(depth):
            x = cswin_block(
                x, num_heads[stage], sw, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                dropout=dropout, attention_dropout=attention_dropout,
                drop_path=drop_path_rate * index / max(total - 1, 1),
                layer_norm_epsilon=layer_norm_epsilon, attention=attention,
                name=f"stage{stage + 1}_block{block}",
            )
            index += 1
    x = _norm(x, layer_norm_epsilon, "norm")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if num_classes:
        x = keras.layers.Dense(num_classes, kernel_initializer=_dense_init(), name="head")(x)
    return keras.Model(inputs, x, name=name)
