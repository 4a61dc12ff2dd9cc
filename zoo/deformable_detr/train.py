"""Deformable DETR's auxiliary decoding outputs for training: the set loss (focal, with the
paper's matcher and weights) on every decoder layer's predictions, and for the two-stage model
on its encoder proposals too."""
import tf_keras as keras


def with_auxiliary_outputs(model):
    """Model -> Model: the same layers, returning ``[logits, boxes]`` of every decoder layer,
    the last layer's last. With box refinement each layer has its own heads (already in the
    graph); without, the shared heads are applied to each layer around the same reference
    points. The two-stage model also returns, first, every encoder token's proposal logits and
    boxes: the reference trains them class-agnostically (every target labelled class 0, the
    class its top-k selection scores by), so the trainer's ``class_agnostic_pairs`` names that
    pair."""
    names = {layer.name for layer in model.layers}
    outputs, agnostic = [], ()
    if "proposals" in names:
        from edgezoo.zoo.deformable_detr.layers import ProposalBoxes

        select = model.get_layer("proposals")
        boxes = ProposalBoxes(select.shapes, name="encoder_proposal_boxes")(
            model.get_layer("proposal_box_delta").output)
        outputs, agnostic = [model.get_layer("proposal_logits").output, boxes], (0,)
    count = sum(1 for n in names if n.startswith("decoder") and n.endswith("_ffn_norm"))
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
    trainer = keras.Model(model.inputs, outputs + list(model.outputs), name=f"{model.name}_aux")
    trainer.class_agnostic_pairs = agnostic
    return trainer
