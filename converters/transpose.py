"""TFLite Micro rewrite: transposes above 4-D become reshape, lower-rank transpose, reshape.

TFLite Micro's TRANSPOSE refuses more than 5 dimensions ("Transpose op only
supports 1D-5D input arrays"), and window partitions write 6-D ones:
(B, H/w, w, W/w, w, C) permuted by (0, 1, 3, 2, 4, 5). Input axes that are
neighbours and stay neighbours, in order, in the output move as one block, so
they can be merged into one axis (and size-1 axes dropped) without changing a
single value: that permutation is (B*H/w, w, W/w, w*C) by (0, 2, 1, 3).
``MicroTranspose`` does that; it replaces ``Permute`` layers and ``tf.transpose``
calls (TFOpLambda) of rank above 4 whenever merging lowers the rank.
"""
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters.graph import model_nodes, rewrite_layers, walk

MAX_RANK = 4  # transposes of this rank or less are left alone


def merged_transpose(shape, perm):
    """(input shape, permutation, output shape) of the smallest equivalent transpose.

    ``shape``: the input dimensions (None for unknown, which must not be merged
    into a size-1 test); ``perm``: output axis i takes input axis perm[i].
    Returns shapes with -1 for unknown sizes.
    """
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(len(shape))):
        raise ValueError(f"perm {perm} is not a permutation of the {len(shape)} axes of {list(shape)}")
    kept = [p for p in perm if shape[p] != 1]  # size-1 axes move nowhere
    groups = []  # runs of consecutive input axes, in output order
    for p in kept:
        if groups and p == groups[-1][-1] + 1:
            groups[-1].append(p)
        else:
            groups.append([p])
    by_input = sorted(range(len(groups)), key=lambda g: groups[g][0])

    def size(axes):
        dims = [shape[a] for a in axes]
        if any(d is None for d in dims):
            return -1
        n = 1
        for d in dims:
            n *= int(d)
        return n

    merged_shape = [size(groups[g]) for g in by_input]
    merged_perm = [by_input.index(g) for g in range(len(groups))]
    out_shape = [-1 if shape[p] is None else int(shape[p]) for p in perm]
    return merged_shape, merged_perm, out_shape


def reduced_rank(shape, perm):
    """Rank of the transpose ``MicroTranspose`` runs for this input shape and permutation."""
    return len(merged_transpose(shape, perm)[1])


@keras.saving.register_keras_serializable(package="edgezoo")
class MicroTranspose(keras.layers.Layer):
    """``tf.transpose(x, perm)`` (perm includes the batch axis) at the lowest rank it reduces to.

    ``call`` also takes ``tf.transpose``'s keyword arguments, so it can stand in
    a TFOpLambda's place in a functional graph; ``perm`` there must match.
    """

    def __init__(self, perm, **kwargs):
        super().__init__(**kwargs)
        self.perm = [int(p) for p in perm]

    def call(self, x, perm=None, conjugate=False, name=None):
        if perm is not None and [int(p) for p in perm] != self.perm:
            raise ValueError(f"{self.name}: called with perm {list(perm)}, built for {self.perm}")
        shape = x.shape.as_list()
        merged_shape, merged_perm, out_shape = merged_transpose(shape, self.perm)
        if out_shape.count(-1) > 1:  # several unknown sizes: a reshape cannot infer them
            return tf.transpose(x, self.perm)
        y = tf.reshape(x, merged_shape)
        if merged_perm != sorted(merged_perm):
            y = tf.transpose(y, merged_perm)
        return tf.reshape(y, out_shape)

    def compute_output_shape(self, input_shape):
        dims = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([dims[p] for p in self.perm])

    def get_config(self):
        return {**super().get_config(), "perm": list(self.perm)}


def _node_perm(layer, node):
    """The full permutation (with batch axis) of one call of a Permute or tf.transpose layer,
    else None."""
    if type(layer) is keras.layers.Permute:
        return [0, *layer.dims]
    config = layer.get_config()
    if type(layer).__name__ == "TFOpLambda" and config.get("function", "").endswith("transpose"):
        perm = node.call_kwargs.get("perm", node.call_args[1] if len(node.call_args) > 1 else None)
        if perm is None or node.call_kwargs.get("conjugate"):
            return None
        return [int(p) for p in perm]
    return None


def _node_shape(node):
    shape = node.input_shapes
    shape = list(shape[0] if isinstance(shape, list) else shape)
    shape[0] = 1 if shape[0] is None else shape[0]  # conversion traces at batch size 1
    return shape


def _targets(model):
    """{id(layer): perm} of the transposes above 4-D that merging lowers in rank, read from the
    calls in the graph that holds each layer (nested models included): one permutation for
    every such call, each of whose ranks drops."""
    targets = {}
    for owner, layer in walk(model):
        nodes = model_nodes(owner, layer)
        perms = [_node_perm(layer, node) for node in nodes]
        perm = perms[0] if perms else None
        if perm is None or len(perm) <= MAX_RANK or any(p != perm for p in perms):
            continue
        if all(reduced_rank(_node_shape(node), perm) < len(perm) for node in nodes):
            targets[id(layer)] = perm
    return targets


def rewrite_transposes(model):
    """Model -> Model: Permute / tf.transpose above 4-D become ``MicroTranspose``; bit-exact."""
    targets = _targets(model)
    if not targets:
        return model

    def replace(layer):
        perm = targets.get(id(layer))
        return None if perm is None else MicroTranspose(perm, name=layer.name)

    return rewrite_layers(model, replace)
