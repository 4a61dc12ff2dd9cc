"""Reading and rewriting a functional Keras graph by the calls that belong to one model.

A layer object can belong to several models: TFMOT's wrap and strip steps
(``prune_low_magnitude``, ``strip_pruning``, ``cluster_weights``,
``strip_clustering``) clone a model with a clone function that hands back every
layer it leaves alone, so the original, the wrapped and the stripped model
share those layers, and each model's call adds an inbound node to them.
``layer.input``, ``layer.output`` and ``layer.inbound_nodes[0]`` are the
*first* model's call, whose tensors cannot be reached from the stripped model's
inputs ("Graph disconnected"); other nodes may see a TFMOT wrapper as their
inbound layer. What reads a layer's graph must read the nodes of the model at
hand: ``model_nodes``. ``rewrite_layers`` is the one Model -> Model surgery the
TFLite Micro rewrites use; it descends into nested models.
"""
import tf_keras as keras


def is_graph_model(model):
    """True for a functional (or Sequential with known input) model, whose calls form a graph."""
    return isinstance(model, keras.Model) and bool(getattr(model, "_is_graph_network", False))


def model_nodes(model, layer):
    """The inbound nodes of ``layer`` that are calls in ``model``'s own graph, in call order.

    A model without a graph (subclassed, or Sequential without an input) has
    no nodes of its own; every node of ``layer`` is returned then.
    """
    if not is_graph_model(model):
        return list(layer._inbound_nodes)
    own = {id(node) for nodes in model._nodes_by_depth.values() for node in nodes}
    return [node for node in layer._inbound_nodes if id(node) in own]


def node_input(node):
    """The first positional argument of a call (a tensor or a nested structure of tensors)."""
    return node.input_tensors


def walk(model):
    """(owner, layer) for every layer of ``model`` and of the graph models nested in it, depth
    first. ``owner`` is the model whose graph holds the layer's calls, for ``model_nodes``.

    A nested subclassed model is a leaf: its calls are not a graph that can be
    probed or cloned (what it computes is checked on the converted ops).
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        yield model, layer
        if is_graph_model(layer):
            yield from walk(layer)


def layers_where(model, predicate):
    """Layers of ``model`` (nested models included) for which ``predicate(layer)`` holds."""
    return [layer for _owner, layer in walk(model) if predicate(layer)]


def rewrite_layers(model, replace):
    """Model -> Model: a clone in which ``replace(layer)`` stands for each layer it returns
    a layer for (None: a plain copy from the layer's config); weights are copied.

    Built on ``clone_model``, which rebuilds the graph from ``model``'s own calls
    (so layers shared with other models, such as those TFMOT's strip steps
    leave, are cloned from this model's calls alone), and recurses into nested
    functional and Sequential models. A replacement must hold the same weights,
    in the same order, as the layer it stands for. Returns ``model`` itself when
    no layer is replaced.
    """
    replaced = []

    def clone(layer):
        if isinstance(layer, keras.Model) and is_graph_model(layer):
            return keras.models.clone_model(layer, clone_function=clone)  # keeps its name
        new = replace(layer)
        if new is None:
            return layer.__class__.from_config(layer.get_config())
        replaced.append(layer.name)
        return new

    rewritten = keras.models.clone_model(model, clone_function=clone)
    if not replaced:
        return model
    old, new = model.weights, rewritten.weights
    if [tuple(w.shape) for w in old] != [tuple(w.shape) for w in new]:
        raise ValueError(f"rewriting {model.name!r} ({', '.join(replaced)}) changed its weights: "
                         f"{[tuple(w.shape) for w in old]} -> {[tuple(w.shape) for w in new]}")
    rewritten.set_weights(model.get_weights())
    return rewritten
