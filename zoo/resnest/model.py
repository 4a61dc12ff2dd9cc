"""ResNeSt: "Split-Attention Networks" (Zhang et al., arXiv 2004.08955).

A ResNet-D (deep 3x3 stem, average-pool shortcut downsampling) whose bottleneck
3x3 convolution is a split-attention convolution: a grouped convolution makes
``radix`` feature-map splits per cardinal group, their sum is pooled into a
small two-layer attention MLP, and an r-softmax over the splits weighs them
back into one map. Strided blocks put the stride in a 3x3 average pool after
the split-attention convolution ("avd", ``avd_first=False`` in the reference
code). Widths, padding and pooling follow the authors' code and timm's
``resnest50d`` / ``resnest101e`` / ``resnest200e`` / ``resnest269e``, whose
parameter counts these variants match exactly.

PyTorch pads stride-2 windows symmetrically, TensorFlow's "same" padding does
not, so every strided 3x3 window here is an explicit ZeroPadding2D followed by
a "valid" convolution or pool: the maths is the reference's, value for value.
"""
import sys

import tf_keras as keras

from edgezoo.base.errors import InputShapeError
from edgezoo.zoo.resnest.layers import RadixSoftmax, RadixSum

PAPER = "ResNeSt: Split-Attention Networks"
ARXIV = "2004.08955"


def total_stride(num_stages):
    """Stem conv (2) x stem max pool (2) x one stride-2 stage after the first."""
    return 4 * 2 ** (num_stages - 1)


def _check_input_shape(input_shape, stride):
    if len(input_shape) != 3 or any(s is None or int(s) <= 0 for s in input_shape):
        raise InputShapeError(
            "ResNeSt takes a static (height, width, channels) input shape, "
            f"got {tuple(input_shape)}"
        )
    h, w, _ = (int(s) for s in input_shape)
    if h < stride or w < stride:
        raise InputShapeError(
            f"ResNeSt input {h}x{w} is too small: height and width must be at least the total "
            f"stride {stride}"
        )
    if h % stride or w % stride:
        raise InputShapeError(
            f"ResNeSt input {h}x{w} does not divide evenly: height and width must be multiples of "
            f"the total stride {stride}"
        )


def attention_channels(channels, radix, ratio=0.25, minimum=32, divisor=8):
    """Width of the attention MLP: ``channels * radix * ratio`` rounded to ``divisor``.

    Rounds to nearest, never below ``minimum`` nor more than 10 % under the
    exact value (timm's ``make_divisible``; equal to the reference's
    ``max(channels * radix // 4, 32)`` for every paper variant).
    """
    exact = channels * radix * ratio
    rounded = max(minimum, int(exact + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * exact else rounded


def _allow_deep_graph(num_blocks):
    """Keras walks a functional graph recursively, one Python frame per layer on the longest
    path (about 20 per block): ResNeSt-269's 89 blocks pass Python's default limit of 1000."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 50 * num_blocks + 1000))


def _kernel_init():
    # The reference's init: normal(0, sqrt(2 / (k * k * out_channels))).
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(x, filters, kernel_size, stride=1, *, groups=1, use_bias=False, name):
    """Conv2D with PyTorch's symmetric padding of ``kernel_size // 2``."""
    pad = kernel_size // 2
    if stride > 1 and pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if pad else "valid"
    return keras.layers.Conv2D(filters, kernel_size, strides=stride, padding=padding,
                               groups=groups, use_bias=use_bias,
                               kernel_initializer=_kernel_init(), name=name)(x)


def _bn(x, bn, name):
    return keras.layers.BatchNormalization(**bn, name=name)(x)


def split_attention(x, channels, *, stride=1, radix=2, cardinality=1, attn_channels, bn, name):
    """Split-attention 3x3 convolution (the paper's Fig. 2, right; timm's ``SplitAttn``).

    A conv with ``cardinality * radix`` groups -> BN -> ReLU gives ``radix``
    splits of ``channels``; their sum -> global average -> fc1 (grouped 1x1,
    bias) -> BN -> ReLU -> fc2 (grouped 1x1, bias) -> r-softmax gives one
    weight per split and channel; the output is the weighted sum of the splits.
    """
    y = _conv(x, channels * radix, 3, stride, groups=cardinality * radix, name=f"{name}_conv")
    y = _bn(y, bn, f"{name}_bn0")
    y = keras.layers.ReLU(name=f"{name}_relu0")(y)
    gap = RadixSum(radix, name=f"{name}_split_sum")(y) if radix > 1 else y
    gap = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_gap")(gap)
    gap = keras.layers.Conv2D(attn_channels, 1, groups=cardinality, name=f"{name}_fc1")(gap)
    gap = _bn(gap, bn, f"{name}_bn1")
    gap = keras.layers.ReLU(name=f"{name}_relu1")(gap)
    logits = keras.layers.Conv2D(channels * radix, 1, groups=cardinality, name=f"{name}_fc2")(gap)
    weights = RadixSoftmax(radix, cardinality, name=f"{name}_rsoftmax")(logits)
    out = keras.layers.Multiply(name=f"{name}_weigh")([y, weights])
    return RadixSum(radix, name=f"{name}_out_sum")(out) if radix > 1 else out


def _avd(x, stride, name):
    # nn.AvgPool2d(3, stride, padding=1): the zero padding counts in the average.
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_avd_pad")(x)
    return keras.layers.AveragePooling2D(3, stride, padding="valid", name=f"{name}_avd")(x)


def bottleneck(x, planes, stride, *, radix, cardinality, bottleneck_width, expansion, avd,
               avd_first, avg_down, attn, bn, name):
    """ResNeSt bottleneck: 1x1 -> split-attention 3x3 (stride moved to avd) -> 1x1, + shortcut."""
    group_width = int(planes * bottleneck_width / 64) * cardinality
    out_channels = planes * expansion
    avd_stride = stride if avd and stride > 1 else 0
    conv_stride = 1 if avd_stride else stride

    y = keras.layers.Conv2D(group_width, 1, use_bias=False, kernel_initializer=_kernel_init(),
                            name=f"{name}_conv1")(x)
    y = _bn(y, bn, f"{name}_bn1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    if avd_stride and avd_first:
        y = _avd(y, avd_stride, name)
    y = split_attention(
        y, group_width, stride=conv_stride, radix=radix, cardinality=cardinality,
        attn_channels=attention_channels(group_width, radix, **attn), bn=bn, name=f"{name}_splat",
    )
    if avd_stride and not avd_first:
        y = _avd(y, avd_stride, name)
    y = keras.layers.Conv2D(out_channels, 1, use_bias=False, kernel_initializer=_kernel_init(),
                            name=f"{name}_conv3")(y)
    y = _bn(y, bn, f"{name}_bn3")

    shortcut = x
    if stride != 1 or x.shape[-1] != out_channels:
        if avg_down and stride > 1:  # ResNet-D: average, then a stride-1 projection
            shortcut = keras.layers.AveragePooling2D(stride, stride, padding="valid",
                                                     name=f"{name}_down_pool")(shortcut)
            stride = 1
        shortcut = keras.layers.Conv2D(out_channels, 1, strides=stride, use_bias=False,
                                       kernel_initializer=_kernel_init(),
                                       name=f"{name}_down_conv")(shortcut)
        shortcut = _bn(shortcut, bn, f"{name}_down_bn")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu3")(y)


def resnest(
    *,
    input_shape=(224, 224, 3),
    num_classes=1000,
    layers=(3, 4, 6, 3),
    stem_width=32,
    base_planes=64,
    bottleneck_width=64,
    cardinality=1,
    radix=2,
    expansion=4,
    avd=True,
    avd_first=False,
    avg_down=True,
    attn_ratio=0.25,
    attn_min_channels=32,
    attn_divisor=8,
    dropout=0.0,
    bn_epsilon=1e-5,
    bn_momentum=0.9,
    name="resnest",
):
    """Build a ResNeSt. ``num_classes=0`` returns the pooled features.

    Stage ``i`` (named ``layer{i+1}`` as in the reference) has ``layers[i]``
    bottlenecks of ``base_planes * 2**i`` planes, stride 1 for the first stage
    and 2 after. BatchNorm uses PyTorch's epsilon and momentum.
    """
    layers = tuple(int(n) for n in layers)
    if not layers or min(layers) < 1:
        raise ValueError(f"ResNeSt needs at least one stage of at least one block, got {layers}")
    if radix < 1 or cardinality < 1:
        raise ValueError(f"radix and cardinality must be at least 1, got {radix}, {cardinality}")
    _check_input_shape(input_shape, total_stride(len(layers)))
    _allow_deep_graph(sum(layers))
    bn = {"epsilon": bn_epsilon, "momentum": bn_momentum}
    attn = {"ratio": attn_ratio, "minimum": attn_min_channels, "divisor": attn_divisor}

    inputs = keras.Input(shape=tuple(int(s) for s in input_shape), name="image")
    # Deep stem: three 3x3 convs (the first strided) out to 2 * stem_width, then a 3x3 max pool.
    x = inputs
    for i, (width, stride) in enumerate([(stem_width, 2), (stem_width, 1), (2 * stem_width, 1)]):
        x = _conv(x, width, 3, stride, name=f"stem_conv{i + 1}")
        x = _bn(x, bn, f"stem_bn{i + 1}")
        x = keras.layers.ReLU(name=f"stem_relu{i + 1}")(x)
    # Zero padding equals PyTorch's -inf padding here: the inputs are ReLU outputs, >= 0.
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="valid", name="stem_pool")(x)

    for stage, depth in enumerate(layers):
        planes = base_planes * 2 ** stage
        for block in range(depth):
            stride = 2 if stage > 0 and block == 0 else 1
            x = bottleneck(
                x, planes, stride, radix=radix, cardinality=cardinality,
                bottleneck_width=bottleneck_width, expansion=expansion, avd=avd,
                avd_first=avd_first, avg_down=avg_down, attn=attn, bn=bn,
                name=f"layer{stage + 1}_block{block}",
            )
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_drop")(x)
    if num_classes:
        x = keras.layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, x, name=name)
