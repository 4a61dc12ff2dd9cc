"""Deformable DETR's auxiliary decoding outputs for training: the set loss (focal, with the
paper's matcher and weights) on every decoder layer's predictions."""
import tf_keras as keras

from edgezoo.base.errors import RecipeError


def with_auxiliary_outputs(model):
    """Model -> Model: the same layers, returning ``[logits, boxes]`` of every decoder layer,
    the last layer's last. With box refinement each layer has its own heads (already in the
    graph); without, the shared heads are applied to each layer around the same reference
    points. The two-stage model also trains its encoder proposals, which is not built: refused."""
    names = {layer.name for layer in model.layers}
    if "proposals" in names:
        raise RecipeError(f"{model.name}: training the two-stage model needs the encoder proposal "
                         "loss, which edgezoo does not have yet; train the box-refinement model")
    count = sum(1 for n in names if n.startswith("decoder") and n.endswith("_ffn_norm"))
    outputs = []
    for i in range(count - 1):
        if f"decoder{i}_logits" in names:
            outputs += [model.get_layer(f"decoder{i}_logits").output,
                        model.get_layer(f"decoder{i}_boxes").output]
            continue
        y = model.get_layer(f"decoder{i}_ffn_norm").output
        delta = y
        for head in ("box_mlp0", "box_mlp1", "box_delta"):
            delta = model.get_layer(head)(delta)
        reference = model.get_layer("reference_points").output
        outputs += [model.get_layer("logits")(y), model.get_layer("boxes")([delta, reference])]
    return keras.Model(model.inputs, outputs + list(model.outputs), name=f"{model.name}_aux")
