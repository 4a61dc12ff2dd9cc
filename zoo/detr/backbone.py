"""The ResNet backbone of DETR and Deformable DETR: torchvision's / timm's ResNet-50 and -101
(bottleneck v1.5: the stride in the 3x3 convolution), batch norms frozen (their statistics and
affine terms are fixed: non-trainable, inference arithmetic in training too).

PyTorch pads strided windows symmetrically and TensorFlow's "same" does not, so every strided
window (the 7x7 stem, the max pool, the strided 3x3s) is an explicit ZeroPadding2D and a
"valid" convolution or pool. After the stem's ReLU every value is >= 0, so zero padding before
the max pool equals PyTorch's -inf padding.
"""
import tf_keras as keras

BN_EPSILON = 1e-5
EXPANSION = 4
RESNET_DEPTHS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
RESNET_WIDTHS = (64, 128, 256, 512)  # bottleneck widths; outputs are EXPANSION times these


def _bn(x, name, frozen):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, trainable=not frozen, name=name)(x)


def _conv(x, filters, kernel, stride, name):
    if stride > 1 and kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if kernel > 1 else "valid"
    return keras.layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False,
                               name=name)(x)


def bottleneck(x, width, stride, name, frozen=True):
    """conv 1x1 -> conv 3x3 (stride) -> conv 1x1 (4 x width), with a 1x1 projection shortcut
    where the shape changes."""
    out = width * EXPANSION
    shortcut = x
    if stride != 1 or int(x.shape[-1]) != out:
        shortcut = _bn(_conv(x, out, 1, stride, f"{name}_down_conv"), f"{name}_down_bn", frozen)
    y = keras.layers.ReLU(name=f"{name}_relu1")(_bn(_conv(x, width, 1, 1, f"{name}_conv1"),
                                                     f"{name}_bn1", frozen))
    y = keras.layers.ReLU(name=f"{name}_relu2")(_bn(_conv(y, width, 3, stride, f"{name}_conv2"),
                                                     f"{name}_bn2", frozen))
    y = _bn(_conv(y, out, 1, 1, f"{name}_conv3"), f"{name}_bn3", frozen)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([y, shortcut]))


def resnet_features(x, depths=RESNET_DEPTHS["resnet50"], widths=RESNET_WIDTHS, stem_width=64,
                    frozen_bn=True, prefix="backbone"):
    """The feature map of each stage (strides 4, 8, 16, 32) of a ResNet on image tensor ``x``."""
    x = _conv(x, stem_width, 7, 2, f"{prefix}_stem_conv")
    x = keras.layers.ReLU(name=f"{prefix}_stem_relu")(_bn(x, f"{prefix}_stem_bn", frozen_bn))
    x = keras.layers.ZeroPadding2D(1, name=f"{prefix}_stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, 2, name=f"{prefix}_stem_pool")(x)
    features = []
    for s, (depth, width) in enumerate(zip(depths, widths)):
        for b in range(depth):
            x = bottleneck(x, width, 2 if (b == 0 and s > 0) else 1, f"{prefix}_s{s + 1}_b{b}",
                           frozen_bn)
        features.append(x)
    return features
