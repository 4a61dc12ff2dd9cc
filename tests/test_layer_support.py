"""The layer-support table (edgezoo.converters.layer_support): complete, true to the layers, and
true to what pruning, clustering and QAT do with them."""
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from edgezoo.base.errors import RecipeError
from edgezoo.converters import clustering, pruning
from edgezoo.converters.activations import MICRO_ACTIVATIONS
from edgezoo.converters.finetune import FinetuneData
from edgezoo.converters.gelu import micro_gelu
from edgezoo.converters.cpu_layernorm import CpuLayerNormalization
from edgezoo.converters.layer_support import (
    LAYER_SUPPORT,
    NO_WEIGHTS,
    TFMOT,
    missing_rows,
    registered_edgezoo_objects,
    support_for,
)
from edgezoo.converters.qat import check_qat
from edgezoo.converters.quantize_configs import CUSTOM_OBJECTS, LAYER_CONFIGS
from edgezoo.converters.transpose import MicroTranspose
from edgezoo.zoo.cswin.layers import CrossShapedWindowAttention
from edgezoo.zoo.layers import ClassToken, MultiHeadSelfAttention, PointwiseDense, StochasticDepth, TokenSelect
from edgezoo.zoo.perceiver.layers import CrossAttention, FourierPositionEncoding, LatentArray
from edgezoo.zoo.deformable_detr.layers import (EncoderReferencePoints, GroupNorm, KeepAuxiliary,
                                                LevelPositions, MaskProposals,
                                                MultiScaleDeformableAttention, ProposalBoxes,
                                                ProposalPositions,
                                                QueryEmbeddings, RefineBoxes, SelectProposals,
                                                SplitHalves, StopGradient)
from edgezoo.zoo.detr.layers import (AddSinePositions, DetrAttention, LearnedPositions2D,
                                     ObjectQueries, ZerosLike)
from edgezoo.zoo.resnest.layers import RadixSoftmax, RadixSum
from edgezoo.zoo.vit.layers import PositionEmbedding

L = keras.layers


def _tokens(layer, n=4, d=8):
    return [keras.Input((n, d))], lambda ins: layer(ins[0])


def _on(shape, layer):
    return [keras.Input(shape)], lambda ins: layer(ins[0])


# row name -> () -> (layer, inputs, call): the smallest model each row's layer sits in.
BUILDERS = {
    "MultiHeadSelfAttention": lambda: _tokens(MultiHeadSelfAttention(2)),
    "PointwiseDense": lambda: _tokens(PointwiseDense(4)),
    "ClassToken": lambda: _tokens(ClassToken(initializer="ones")),
    "TokenSelect": lambda: _tokens(TokenSelect()),
    "StochasticDepth": lambda: _tokens(StochasticDepth(0.1)),
    "PositionEmbedding": lambda: _on((5, 8), PositionEmbedding((2, 2))),
    "RadixSum": lambda: _on((1, 1, 8), RadixSum(2)),
    "RadixSoftmax": lambda: _on((1, 1, 8), RadixSoftmax(2)),
    "CrossShapedWindowAttention": lambda: _on((4, 4, 24), CrossShapedWindowAttention(2, 2)),
    "CrossAttention": lambda: ([keras.Input((3, 8)), keras.Input((5, 6))],
                               lambda ins, layer=CrossAttention(2): layer(ins)),
    "LatentArray": lambda: _tokens(LatentArray(3, 8)),
    "FourierPositionEncoding": lambda: _on((4, 4, 3), FourierPositionEncoding(2)),
    "DetrAttention": lambda: ([keras.Input((3, 8)), keras.Input((5, 8)), keras.Input((5, 8))],
                              lambda ins, layer=DetrAttention(2): layer(ins)),
    "AddSinePositions": lambda: _tokens(AddSinePositions(2, 2)),
    "ObjectQueries": lambda: _tokens(ObjectQueries(3, 8)),
    "LearnedPositions2D": lambda: _tokens(LearnedPositions2D(2, 2)),
    "ZerosLike": lambda: _tokens(ZerosLike()),
    "MultiScaleDeformableAttention": lambda: (
        [keras.Input((3, 8)), keras.Input((5, 8)), keras.Input((3, 2))],
        lambda ins, layer=MultiScaleDeformableAttention([(1, 4), (1, 1)], 2, 2): layer(ins)),
    "GroupNorm": lambda: _on((2, 2, 8), GroupNorm(4)),
    "LevelPositions": lambda: _tokens(LevelPositions([(1, 4), (1, 1)]), n=5),
    "EncoderReferencePoints": lambda: _tokens(EncoderReferencePoints([(1, 4), (1, 1)]), n=5),
    "QueryEmbeddings": lambda: _tokens(QueryEmbeddings(3, 8)),
    "RefineBoxes": lambda: ([keras.Input((3, 4)), keras.Input((3, 2))],
                            lambda ins, layer=RefineBoxes(): layer(ins)),
    "StopGradient": lambda: _tokens(StopGradient()),
    "KeepAuxiliary": lambda: ([keras.Input((3, 4)), keras.Input((3, 4))],
                              lambda ins, layer=KeepAuxiliary(): layer(ins)),
    "MaskProposals": lambda: _tokens(MaskProposals([(1, 4), (1, 1)]), n=5),
    "SelectProposals": lambda: ([keras.Input((5, 3)), keras.Input((5, 4))],
                                lambda ins, layer=SelectProposals([(1, 4), (1, 1)], 2): layer(ins)),
    "ProposalPositions": lambda: _on((3, 4), ProposalPositions(8)),
    "ProposalBoxes": lambda: _on((5, 4), ProposalBoxes([(1, 4), (1, 1)])),
    "SplitHalves": lambda: _tokens(SplitHalves()),
    "MicroTranspose": lambda: _on((2, 3, 4, 5, 6), MicroTranspose([0, 1, 3, 2, 4, 5])),
    "Activation(micro_gelu)": lambda: _on((4,), L.Activation(micro_gelu)),
    **{f"Activation(micro_{name})": (lambda fn=fn: _on((4,), L.Activation(fn)))
       for name, (fn, *_rest) in MICRO_ACTIVATIONS.items()},
    "LayerNormalization": lambda: _tokens(L.LayerNormalization()),
    "CpuLayerNormalization": lambda: _tokens(CpuLayerNormalization()),
    "Multiply": lambda: ([keras.Input((4,)), keras.Input((4,))],
                         lambda ins, layer=L.Multiply(): layer(ins)),
    "BatchNormalization": lambda: _on((4, 4, 2), L.BatchNormalization()),
    "DepthwiseConv2D": lambda: _on((4, 4, 2), L.DepthwiseConv2D(3)),
}


def _built(name):
    """(layer, model) with the row's layer called once in a functional model."""
    inputs, call = BUILDERS[name]()
    out = call(inputs)
    model = keras.Model(inputs, out)
    layer = next(l for l in model.layers if not isinstance(l, L.InputLayer))
    return layer, model


@pytest.fixture(scope="module")
def built():
    return {row.name: _built(row.name)[0] for row in LAYER_SUPPORT}


def test_every_registered_edgezoo_layer_has_a_row():
    objects = registered_edgezoo_objects()
    assert any(isinstance(o, type) and issubclass(o, L.Layer) for o in objects.values())
    assert missing_rows(objects) == [], "add rows to edgezoo.converters.layer_support"


def test_missing_rows_names_a_layer_and_an_activation_without_one():
    class ProbeLayer(L.Layer):
        pass

    def probe_activation(x):
        return x

    objects = {**registered_edgezoo_objects(), "edgezoo_test_probe>ProbeLayer": ProbeLayer,
               "edgezoo_test_probe>probe_activation": probe_activation,
               "edgezoo_test_probe>NotALayer": type("NotALayer", (), {})}
    assert missing_rows(objects) == ["edgezoo_test_probe>ProbeLayer",
                                     "edgezoo_test_probe>probe_activation"]


def test_rows_are_registered_or_built_in_and_name_real_configs():
    registered = set(registered_edgezoo_objects().values())
    for row in LAYER_SUPPORT:
        assert row.layer in registered or row.layer.__module__.startswith("tf_keras"), row.name
        if row.activation:
            assert keras.saving.get_custom_objects()[f"edgezoo>{row.activation}"].__name__ \
                == row.activation
        assert row.quantize in (None, TFMOT) or row.quantize in CUSTOM_OBJECTS, row.name
        if row.quantize not in (None, TFMOT) and row.activation is None:
            assert type(LAYER_CONFIGS[row.layer][0](None)).__name__ == row.quantize
        assert row.micro, row.name
    assert set(BUILDERS) == {row.name for row in LAYER_SUPPORT}, "a builder per row"


def test_named_weights_exist_and_weightless_rows_have_none(built):
    for row in LAYER_SUPPORT:
        layer = built[row.name]
        assert support_for(layer) is row
        weights = {id(w) for w in layer.weights}
        for dotted in row.prunable + row.clusterable:
            value = layer
            for part in dotted.split("."):
                assert hasattr(value, part), f"{row.name} has no weight {dotted!r}"
                value = getattr(value, part)
            assert id(value) in weights, f"{row.name}.{dotted} is not one of its weights"
        if hasattr(layer, "get_prunable_weights"):  # what TFMOT's wrapper prunes
            assert [id(w) for w in layer.get_prunable_weights()] == \
                [id(w) for w in pruning._prunable_weights(layer)], row.name
        assert (row.prune_why == NO_WEIGHTS) == (not layer.weights), row.name
        assert (row.cluster_why == NO_WEIGHTS) == (not layer.weights), row.name


def test_pointwise_projections_keep_the_prunable_names():
    layer, _ = _built("MultiHeadSelfAttention")
    rewritten = MultiHeadSelfAttention.from_config({**layer.get_config(),
                                                    "pointwise_projections": True})
    rewritten(keras.Input((4, 8)))
    assert len(pruning._prunable_weights(rewritten)) == 4
    assert all(isinstance(getattr(rewritten, p.split(".")[0]), PointwiseDense)
               for p in support_for(rewritten).prunable)


def _prunable_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 8))
    x = PointwiseDense(16, name="pw")(inp)
    x = ClassToken(initializer="ones", name="cls")(x)
    x = TokenSelect(name="pick")(x)
    return keras.Model(inp, L.Dense(3, name="head")(x))


def test_prunable_row_gets_sparsity_and_unprunable_row_is_untouched():
    model = _prunable_model()
    rng = np.random.default_rng(0)
    data = FinetuneData(rng.normal(size=(32, 4, 8)).astype("float32"), rng.integers(0, 3, 32))
    pruned, info = pruning.prune(model, data, sparsity=0.5, schedule="constant", epochs=1,
                                 batch_size=8, learning_rate=1e-3)
    assert info["schedule"]["frequency"] == 1
    assert set(info["pruned"]) == {"pw", "head"}
    assert np.mean(pruned.get_layer("pw").kernel.numpy() == 0) == pytest.approx(0.5)
    assert info["not_pruned"] == {"cls": support_for(ClassToken).prune_why}
    assert np.all(pruned.get_layer("cls").token.numpy() != 0)


def test_unclusterable_rows_are_refused_by_tfmot_and_left_with_their_reason(built):
    for row in LAYER_SUPPORT:
        if not row.clusterable and row.cluster_why.startswith("TFMOT cannot cluster"):
            with pytest.raises(ValueError):
                tfmot.clustering.keras.cluster_weights(built[row.name], number_of_clusters=2)
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 2))
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(inp)
    x = L.Reshape((16, 2))(x)
    x = PointwiseDense(8, name="pw")(x)
    x = L.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, L.Dense(3, name="head")(x))
    rng = np.random.default_rng(0)
    data = FinetuneData(rng.normal(size=(16, 4, 4, 2)).astype("float32"), rng.integers(0, 3, 16))
    _, info = clustering.cluster(model, data, clusters=4, epochs=1, batch_size=8)
    assert info["clustered_layers"] == ["head"]
    assert info["unclustered_layers"] == {"dw": support_for(L.DepthwiseConv2D).cluster_why,
                                          "pw": support_for(PointwiseDense).cluster_why}


def test_preserve_and_quantize_rows_match_qat():
    attention, model = _built("MultiHeadSelfAttention")
    assert not support_for(attention).preserve
    check_qat(model)
    with pytest.raises(RecipeError, match="cannot keep its zeros"):
        check_qat(model, preserve="sparsity")
    _, model = _built("PointwiseDense")
    for preserve in support_for(PointwiseDense).preserve:
        check_qat(model, preserve=preserve)
    assert support_for(MicroTranspose).quantize is None
    with pytest.raises(RecipeError, match="has no QuantizeConfig"):
        check_qat(_built("MicroTranspose")[1])
