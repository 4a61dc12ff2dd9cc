"""The Model -> Model rewrites applied for TFLite Micro targets, in order, as data."""
from edgezoo.converters.dense_conv import dense_to_pointwise
from edgezoo.converters.gelu import rewrite_gelu

# name -> (rewrite, why). Each rewrite returns its input unchanged when nothing applies.
MICRO_REWRITES = {
    "gelu": (rewrite_gelu, "TFLite Micro has no GELU kernel"),
    "dense_as_conv1x1": (dense_to_pointwise, "int8 FULLY_CONNECTED differs from LiteRT's "
                                             "reference kernel; CONV_2D is bit-exact"),
}


def apply_micro_rewrites(model):
    """(rewritten model, names of the rewrites that changed something)."""
    applied = []
    for name, (rewrite, _why) in MICRO_REWRITES.items():
        rewritten = rewrite(model)
        if rewritten is not model:
            applied.append(name)
            model = rewritten
    return model, applied
