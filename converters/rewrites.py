"""The Model -> Model rewrites applied for TFLite Micro targets, in order, as data."""
from edgezoo.converters.activations import (
    MICRO_ACTIVATIONS,
    rewrite_elu,
    rewrite_mish,
    rewrite_selu,
    rewrite_softplus,
    rewrite_softsign,
)
from edgezoo.converters.dense_conv import dense_to_pointwise
from edgezoo.converters.gelu import rewrite_gelu
from edgezoo.converters.transpose import rewrite_transposes

# name -> (rewrite, why). Each rewrite returns its input unchanged when nothing applies.
MICRO_REWRITES = {
    "gelu": (rewrite_gelu, "TFLite Micro has no GELU kernel"),
    "mish": (rewrite_mish, MICRO_ACTIVATIONS["mish"][3]),
    "softplus": (rewrite_softplus, MICRO_ACTIVATIONS["softplus"][3]),
    "elu": (rewrite_elu, MICRO_ACTIVATIONS["elu"][3]),
    "selu": (rewrite_selu, MICRO_ACTIVATIONS["selu"][3]),
    "softsign": (rewrite_softsign, MICRO_ACTIVATIONS["softsign"][3]),
    "transpose_above_4d": (rewrite_transposes, "TFLite Micro's TRANSPOSE takes at most 5-D; "
                                               "merged axes keep window partitions at 4-D"),
    # also Dense on (B, N, D), (B, H, W, C) and higher ranks: PointwiseDense reshapes around CONV_2D
    "dense_as_conv1x1": (dense_to_pointwise, "int8 FULLY_CONNECTED differs from LiteRT's "
                                             "reference kernel; CONV_2D is bit-exact"),
}


def apply_micro_rewrites(model, skip=()):
    """(rewritten model, names of the rewrites that changed something); ``skip``: rewrites
    not to apply (``dense_as_conv1x1`` for a recipe that keeps FULLY_CONNECTED)."""
    applied = []
    for name, (rewrite, _why) in MICRO_REWRITES.items():
        if name in skip:
            continue
        rewritten = rewrite(model)
        if rewritten is not model:
            applied.append(name)
            model = rewritten
    return model, applied
