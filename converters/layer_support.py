"""What each zoo layer supports, as one table: QAT config, pruning, clustering, preserve, Micro.

Rows cover every layer class registered under the ``edgezoo`` Keras package
(``edgezoo>Name`` in ``tf_keras.saving.get_custom_objects()``): the zoo's
shared and family layers, and the layers the TFLite Micro rewrites put in a
model (``MicroTranspose``). The activation functions registered there
(``micro_gelu`` and the other rewritten activations) appear as
``keras.layers.Activation`` rows keyed by their name. Built-in Keras layers
have rows only where edgezoo states a fact TFMOT's registries do not
(a QuantizeConfig of ours, a weight left alone on purpose, a folding rule).
The ``edgezoo.quantum`` package's layers (TensorFlow Quantum circuits) are not
rows: they never reach the TFMOT or TFLite paths.

``quantize_configs``, ``pruning`` and ``clustering`` read their facts from
here; tests/test_layer_support.py fails for a registered layer with no row, a
row naming a weight its layer lacks, and rows whose facts no longer hold.
"""
import dataclasses

import tf_keras as keras

from edgezoo.converters.cpu_layernorm import CpuLayerNormalization
from edgezoo.converters.transpose import MicroTranspose
from edgezoo.zoo.cswin.layers import CrossShapedWindowAttention
from edgezoo.zoo.deformable_detr.layers import (EncoderReferencePoints, GroupNorm, KeepAuxiliary,
                                                LevelPositions, MaskProposals,
                                                MultiScaleDeformableAttention, ProposalBoxes,
                                                ProposalPositions,
                                                QueryEmbeddings, RefineBoxes, SelectProposals,
                                                SplitHalves, StopGradient)
from edgezoo.zoo.detr.layers import (AddSinePositions, DetrAttention, LearnedPositions2D,
                                     ObjectQueries, ZerosLike)
from edgezoo.zoo.layers import ClassToken, MultiHeadSelfAttention, PointwiseDense, StochasticDepth, TokenSelect
from edgezoo.zoo.perceiver.layers import CrossAttention, FourierPositionEncoding, LatentArray
from edgezoo.zoo.resnest.layers import RadixSoftmax, RadixSum
from edgezoo.zoo.vit.layers import PositionEmbedding

BOTH = ("sparsity", "cluster")
TFMOT = "tfmot"  # ``quantize``: TFMOT's own 8-bit registry annotates the layer
PROJECTIONS = ("query.kernel", "key.kernel", "value.kernel", "out.kernel")


@dataclasses.dataclass(frozen=True)
class LayerSupport:
    """One layer class (or one Activation function) and what each compression path does with it.

    ``quantize``: the registered name of the ``edgezoo.converters.quantize_configs``
    QuantizeConfig used for QAT annotation, ``"tfmot"`` for TFMOT's own, or None
    (QAT refuses the layer); ``quantize_args``: fixed constructor arguments
    (``preserve`` is passed on where the config takes it); ``quantize_why``:
    what is fake-quantized and why. ``folded_into``: TFMOT quantizes the layer
    only folded into a preceding layer of these classes.
    ``prunable`` / ``clusterable``: dotted weight attributes TFMOT prunes /
    clusters; when empty, ``prune_why`` / ``cluster_why`` say why (reported
    with the layer, except ``UNREPORTED`` reasons). ``preserve``: which
    collaborative QAT modes keep a pruned / clustered layer's weights (both,
    for a layer with none to keep); ``preserve_why``: why not, or a caveat.
    ``micro``: what TFLite Micro runs it as, and the rewrite that produces or
    needs it.
    """

    layer: type
    quantize: str | None
    quantize_why: str
    micro: str
    activation: str | None = None
    quantize_args: tuple = ()
    folded_into: tuple = ()
    prunable: tuple = ()
    prune_why: str = ""
    clusterable: tuple = ()
    cluster_why: str = ""
    preserve: tuple = BOTH
    preserve_why: str = ""

    @property
    def name(self):
        """The row's key: the class name, or ``Activation(name)``."""
        return f"Activation({self.activation})" if self.activation else self.layer.__name__

    def __post_init__(self):
        for names, why, what in ((self.prunable, self.prune_why, "prunable"),
                                 (self.clusterable, self.cluster_why, "clusterable")):
            if not names and not why:
                raise ValueError(f"{self.name}: no {what} weights needs a reason")
        partial = set(self.preserve) != set(BOTH)
        if set(self.preserve) - set(BOTH) or (partial and not self.preserve_why):
            raise ValueError(f"{self.name}: preserve must be a subset of {BOTH}, with a reason "
                             "when not both")


NO_WEIGHTS = "no weights"
# Reasons that are facts but not news: pruning and clustering do not report these layers.
NO_KERNEL = "no kernel: TFMOT's registry lists none of its weights by design"
UNREPORTED = (NO_WEIGHTS, NO_KERNEL)
_NO_CLUSTER = ("TFMOT cannot cluster {} layers: its clustering registry matches built-in Keras "
               "classes exactly and the layer implements no ClusterableLayer")


def _weightless(layer, quantize, quantize_why, micro, **extra):
    """A row for a layer with no weights: nothing to prune, cluster or preserve."""
    return LayerSupport(layer, quantize, quantize_why, micro, prune_why=NO_WEIGHTS,
                        cluster_why=NO_WEIGHTS, **extra)


def _activation(name, rewrite, ops):
    return _weightless(
        keras.layers.Activation, None,
        f"none: neither TFMOT's Activation config nor ours knows {name!r}, so QAT refuses it",
        f"{ops}; written by the {rewrite!r} micro rewrite", activation=name)


LAYER_SUPPORT = (
    # --- zoo layers shared by families (edgezoo.zoo.layers)
    LayerSupport(
        MultiHeadSelfAttention, "ProjectionsQuantizeConfig",
        "q/k/v/out kernels (per channel when the projections are 1x1 convs, per tensor as "
        "Dense) and the output; scores, softmax and context are calibrated by the converter",
        "FULLY_CONNECTED projections, or CONV_2D after the dense_as_conv1x1 rewrite "
        "(pointwise_projections=True); 4-D RESHAPE/TRANSPOSE, BATCH_MATMUL, SOFTMAX, MUL",
        prunable=PROJECTIONS,
        cluster_why=_NO_CLUSTER.format("MultiHeadSelfAttention"),
        preserve=(),
        preserve_why="its projection kernels live in sub-layers, which TFMOT's sparsity- "
                     "and cluster-preserving quantizers cannot reach"),
    LayerSupport(
        PointwiseDense, "KernelQuantizeConfig",
        "kernel per channel (it becomes a CONV_2D filter) and the output",
        "RESHAPE + 1x1 CONV_2D (bit-exact with LiteRT, unlike int8 FULLY_CONNECTED); what the "
        "dense_as_conv1x1 rewrite turns Dense into",
        quantize_args=(("per_axis", True),),
        prunable=("kernel",),
        preserve_why="with preserve='cluster' the kernel is quantized per tensor: TFMOT's "
                     "cluster-preserving quantizer assigns to the kernel variable itself and "
                     "cannot see the per-channel 4-D filter view",
        cluster_why=_NO_CLUSTER.format("PointwiseDense")
        + " (a Dense subclass is not Dense to it)"),
    LayerSupport(
        ClassToken, "PassThroughQuantizeConfig",
        "none: CONCATENATION keeps one scale, which the converter calibrates",
        "CONCATENATION of the token (broadcast over the batch) and the sequence",
        prune_why="a learned token, not a kernel: pruning it removes no multiply-accumulates",
        cluster_why=_NO_CLUSTER.format("ClassToken")),
    _weightless(TokenSelect, "PassThroughQuantizeConfig",
                "none: STRIDED_SLICE keeps its input's scale", "STRIDED_SLICE"),
    _weightless(StochasticDepth, "PassThroughQuantizeConfig", "none: the identity at inference",
                "nothing: the identity at inference"),
    # --- family layers
    LayerSupport(
        PositionEmbedding, "OutputQuantizeConfig",
        "output only: the table is an ADD constant; the sum is the residual stream",
        "ADD of a constant table",
        prune_why="a learned position table, not a kernel",
        cluster_why=_NO_CLUSTER.format("PositionEmbedding")),
    _weightless(RadixSum, "OutputQuantizeConfig",
                "output only: a chain of ADDs over the radix splits",
                "SPLIT + a chain of ADDs (int8 ADD_N is not assumed)"),
    _weightless(RadixSoftmax, "PassThroughQuantizeConfig",
                "none: int8 SOFTMAX / LOGISTIC outputs have the fixed scale 1/256 the converter "
                "sets",
                "RESHAPE/TRANSPOSE of at most 4-D around SOFTMAX on the last axis; LOGISTIC for "
                "radix 1"),
    LayerSupport(
        CrossShapedWindowAttention, "OutputQuantizeConfig",
        "output only: it takes the qkv projection's output; its LePE depthwise kernels and the "
        "stripe attention are quantized and calibrated by the converter",
        "SPLIT, 4-D RESHAPE/TRANSPOSE window cuts, BATCH_MATMUL, SOFTMAX, DEPTHWISE_CONV_2D "
        "(LePE), ADD, CONCATENATION",
        prune_why="its only weights are the LePE depthwise 3x3 kernels, left dense "
                  "as TFMOT leaves DepthwiseConv2D (its q/k/v and output "
                  "projections are separate Dense layers, which are pruned)",
        cluster_why=_NO_CLUSTER.format("CrossShapedWindowAttention"),
        preserve=(),
        preserve_why="its LePE depthwise kernels live in sub-layers and get no "
                     "weight fake-quant at all"),
    LayerSupport(
        CrossAttention, "ProjectionsQuantizeConfig", "as MultiHeadSelfAttention",
        "as MultiHeadSelfAttention (queries and keys/values from two inputs)",
        prunable=PROJECTIONS,
        cluster_why=_NO_CLUSTER.format("CrossAttention"),
        preserve=(), preserve_why="as MultiHeadSelfAttention"),
    LayerSupport(
        LatentArray, "OutputQuantizeConfig",
        "output only: the learned latents, a constant the converter quantizes",
        "a constant, broadcast over the batch",
        prune_why="a learned latent array, not a kernel",
        cluster_why=_NO_CLUSTER.format("LatentArray")),
    _weightless(FourierPositionEncoding, "PassThroughQuantizeConfig",
                "none: constant features concatenated to the input, calibrated by the converter",
                "a constant, broadcast over the batch (no weights)"),
    LayerSupport(
        DetrAttention, "ProjectionsQuantizeConfig",
        "q/k/v/out kernels and the output, as MultiHeadSelfAttention (separate query, key and "
        "value inputs)",
        "FULLY_CONNECTED projections, or CONV_2D after the dense_as_conv1x1 rewrite; 4-D "
        "RESHAPE/TRANSPOSE, BATCH_MATMUL, SOFTMAX, MUL",
        prunable=PROJECTIONS,
        cluster_why=_NO_CLUSTER.format("DetrAttention"),
        preserve=(),
        preserve_why="its projection kernels live in sub-layers, which TFMOT's sparsity- "
                     "and cluster-preserving quantizers cannot reach"),
    _weightless(AddSinePositions, "PassThroughQuantizeConfig",
                "none: ADD of a constant, calibrated by the converter",
                "ADD of a constant (the fixed sine positions)"),
    LayerSupport(
        ObjectQueries, "OutputQuantizeConfig",
        "output only: the learned queries, a constant the converter quantizes",
        "a constant, broadcast over the batch",
        prune_why="learned query positions, not a kernel",
        cluster_why=_NO_CLUSTER.format("ObjectQueries")),
    LayerSupport(
        LearnedPositions2D, "OutputQuantizeConfig",
        "output only: learned positions plus scaled features, calibrated by the converter",
        "MUL and ADD of a constant (the learned row and column positions)",
        prune_why="learned positions, not a kernel",
        cluster_why=_NO_CLUSTER.format("LearnedPositions2D")),
    _weightless(ZerosLike, "PassThroughQuantizeConfig",
                "none: a constant zero tensor", "a constant (folded by the converter)"),
    LayerSupport(
        MultiScaleDeformableAttention, None,
        "none yet: no QuantizeConfig covers its four projections and the sampling between them; "
        "QAT refuses it (post-training int8 calibrates it)",
        "FULLY_CONNECTED projections; bilinear sampling as a float FLOOR island, CAST to int32 "
        "indices (int32 ADD/MUL/MINIMUM/MAXIMUM, comparisons), int8 GATHER, MUL, MEAN, SOFTMAX; "
        "runs in TFLite Micro (deformable_detr_micro), one int8 MUL 1 LSB off LiteRT's "
        "reference kernel, where TFLite Micro equals the NumPy derivation of its arithmetic "
        "(edge/int8_reference.py: LiteRT is the one off)",
        prunable=(),
        prune_why="its projection kernels live in sub-layers TFMOT's registry cannot see",
        cluster_why=_NO_CLUSTER.format("MultiScaleDeformableAttention")),
    LayerSupport(
        GroupNorm, "OutputQuantizeConfig",
        "output only: MEAN-based statistics calibrated by the converter",
        "RESHAPE, MEAN, SQUARED_DIFFERENCE, RSQRT, MUL, ADD (MEAN, not SUM: TFLite Micro's int8 "
        "SUM differs from LiteRT's reference kernel by up to 167 LSB)",
        prune_why="a norm's scale and shift, not a kernel",
        cluster_why=_NO_CLUSTER.format("GroupNorm")),
    LayerSupport(
        LevelPositions, "OutputQuantizeConfig",
        "output only: tokens plus constant positions and level embeddings",
        "ADD of constants (sine positions, gathered level embeddings)",
        prune_why="learned level embeddings, not a kernel",
        cluster_why=_NO_CLUSTER.format("LevelPositions")),
    _weightless(EncoderReferencePoints, "PassThroughQuantizeConfig",
                "none: a constant", "a constant, broadcast over the batch"),
    LayerSupport(
        QueryEmbeddings, "OutputQuantizeConfig",
        "output only: the learned query embeddings, a constant the converter quantizes",
        "a constant, broadcast over the batch, split in two",
        prune_why="learned query embeddings, not a kernel",
        cluster_why=_NO_CLUSTER.format("QueryEmbeddings")),
    _weightless(RefineBoxes, None,
                "none yet: inverse sigmoid (LOG, DIV) then LOGISTIC; QAT refuses it",
                "MINIMUM/MAXIMUM, LOG, DIV, ADD, LOGISTIC"),
    _weightless(StopGradient, "PassThroughQuantizeConfig",
                "none: an identity at inference", "nothing: the converter removes it"),
    _weightless(KeepAuxiliary, "PassThroughQuantizeConfig",
                "none: returns its first input",
                "nothing: the converter prunes the auxiliary heads that feed only it"),
    _weightless(MaskProposals, "PassThroughQuantizeConfig",
                "none: MUL by a constant 0/1 mask, calibrated by the converter",
                "MUL of a constant"),
    _weightless(SelectProposals, None,
                "none yet: top-k indices and a gather; QAT refuses it",
                "TOPK_V2, which TFLite Micro has no kernel for (the two-stage model is a row of "
                "MICRO_UNSUPPORTED); SELECT_V2, GATHER"),
    _weightless(ProposalBoxes, None,
                "none: training only (the two-stage encoder loss); never in a converted graph",
                "ADD, SELECT_V2, LOGISTIC (float); only the auxiliary trainer has it"),
    _weightless(ProposalPositions, None,
                "none yet: LOGISTIC, SIN and COS of the proposal boxes; QAT refuses it",
                "LOGISTIC, MUL, SIN, COS, SELECT_V2 (float; after the TOPK_V2 of SelectProposals)"),
    _weightless(SplitHalves, "PassThroughQuantizeConfig",
                "none: two channel slices", "STRIDED_SLICE"),
    # --- layers the TFLite Micro rewrites put in a model
    _weightless(MicroTranspose, None,
                "none: QAT has no QuantizeConfig for it yet and refuses it (TRANSPOSE keeps its "
                "input's scale; PassThroughQuantizeConfig would fit); run QAT before the rewrite",
                "RESHAPE + TRANSPOSE of at most 4-D + RESHAPE; written by the transpose_above_4d "
                "rewrite for Permute / tf.transpose above 4-D"),
    _weightless(keras.layers.Activation, "OutputQuantizeConfig",
                "output only: x*sigmoid(a*x + b*x^3) becomes MUL/ADD/LOGISTIC, whose inner tensors "
                "the converter calibrates",
                "MUL/ADD/LOGISTIC; written by the 'gelu' micro rewrite (TFLite Micro has no GELU)",
                activation="micro_gelu"),
    _activation("micro_mish", "mish", "LOGISTIC, SUB, RSQRT, MUL, ADD (exact Mish)"),
    _activation("micro_softplus", "softplus",
                "LOGISTIC, ABS, RELU, MUL, ADD (softplus within 1.22e-3)"),
    _activation("micro_elu", "elu", "RELU, SUB, LOGISTIC, RSQRT, MUL, ADD (exact ELU)"),
    _activation("micro_selu", "selu", "RELU, SUB, LOGISTIC, RSQRT, MUL, ADD (exact SELU)"),
    _activation("micro_softsign", "softsign", "ABS, ADD, RSQRT, MUL (exact softsign)"),
    # --- built-in Keras layers with a fact of edgezoo's own
    LayerSupport(
        keras.layers.LayerNormalization, "OutputQuantizeConfig",
        "output only: gamma and beta become MUL/ADD constants the converter quantizes; mean, "
        "variance and RSQRT are calibrated by the converter",
        "MEAN, SQUARED_DIFFERENCE, RSQRT, MUL, ADD",
        prune_why="TFMOT's registry lists no prunable weights for LayerNormalization",
        cluster_why=NO_KERNEL),
    LayerSupport(
        CpuLayerNormalization, "OutputQuantizeConfig",
        "output only, as LayerNormalization: gamma and beta are MUL/ADD constants; mean and "
        "variance int8, SQRT, MAXIMUM and DIV stay float (an island XNNPACK runs)",
        "not for TFLite Micro: its float SQRT/DIV island needs float kernels; the LiteRT "
        "(CPU) rewrite only",
        prune_why="as LayerNormalization: a scale and a shift, no kernel",
        cluster_why=NO_KERNEL),
    _weightless(keras.layers.Multiply, "OutputQuantizeConfig",
                "output only: MUL (TFMOT's registry lacks it; ResNeSt's split-attention weighting)",
                "MUL"),
    LayerSupport(
        keras.layers.BatchNormalization, TFMOT,
        "TFMOT's own, only folded into the convolution before it",
        "folded into the preceding CONV_2D / DEPTHWISE_CONV_2D by the converter",
        folded_into=(keras.layers.Conv2D, keras.layers.DepthwiseConv2D),
        prune_why="TFMOT's registry lists no prunable weights for BatchNormalization",
        cluster_why=NO_KERNEL),
    LayerSupport(
        keras.layers.DepthwiseConv2D, TFMOT, "TFMOT's own (per-channel kernel)",
        "DEPTHWISE_CONV_2D",
        prune_why="depthwise kernels are left dense, as in TFMOT's registry "
                  "(few weights, each carrying a whole channel)",
        cluster_why="TFMOT does not cluster DepthwiseConv2D kernels "
                    "(too few weights per channel; large accuracy loss)"),
)

_BY_KEY = {(row.layer, row.activation): row for row in LAYER_SUPPORT}
if len(_BY_KEY) != len(LAYER_SUPPORT):
    raise ValueError("two layer-support rows for one layer class / activation")


def activation_name(layer):
    """The registered name of an Activation layer's function."""
    return getattr(layer.activation, "__name__", str(layer.activation))


def support_for(layer, inherit=False):
    """The row of ``layer`` (an instance or class), or None.

    Exact class by default, as TFMOT's registries match; ``inherit`` also
    takes the row of the nearest base class. An Activation's row is keyed by
    its function's name.
    """
    cls = layer if isinstance(layer, type) else type(layer)
    activation = None
    if issubclass(cls, keras.layers.Activation) and not isinstance(layer, type):
        activation = activation_name(layer)
    for base in (cls.__mro__ if inherit else (cls,)):
        row = _BY_KEY.get((base, activation))
        if row is not None:
            return row
    return None


def missing_rows(objects):
    """Names of the layer classes and activation functions in ``objects`` that have no row.

    ``objects``: ``{registered name: object}`` as ``get_custom_objects()``
    gives; objects that are neither layer classes nor plain functions
    (QuantizeConfigs, optimizers) are not rows and are ignored.
    """
    missing = []
    for key, obj in objects.items():
        if isinstance(obj, type):
            if issubclass(obj, keras.layers.Layer) and (obj, None) not in _BY_KEY:
                missing.append(key)
        elif callable(obj) and (keras.layers.Activation, key.split(">")[-1]) not in _BY_KEY:
            missing.append(key)
    return sorted(missing)


def registered_edgezoo_objects():
    """``{"edgezoo>Name": object}`` registered once the zoo and the converters are imported."""
    import edgezoo.converters  # noqa: F401  (registers the converters' layers and activations)
    import edgezoo.converters.qat  # noqa: F401
    import edgezoo.zoo  # noqa: F401

    return {key: obj for key, obj in keras.saving.get_custom_objects().items()
            if key.startswith("edgezoo>")}
