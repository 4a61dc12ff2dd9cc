"""A compression recipe: plain data naming every step from a float model to a TFLite flatbuffer.

Recipes come from code, from CLI flags or from a JSON file, and are checked as a
whole before any work starts, so a contradiction (2:4 sparsity with
``prune=0.3``, QAT without integer quantization) is an error, not a surprise
half an hour into fine-tuning.
"""
import dataclasses
import math

from edgezoo.converters.quantize import MICRO_REFUSES, QUANTIZATION_MODES
from edgezoo.base.errors import RecipeError

# Upper bounds of counts in a recipe: beyond them a value is a typo, not a plan.
LIMITS = {"finetune_epochs": 10_000, "batch_size": 1 << 16, "calibration_samples": 1 << 20,
          "lottery_rounds": 100}

PRUNE_SCHEDULES = ("constant", "polynomial")
PRUNE_POLICIES = (None, "xnnpack")
# Integer modes whose converter honours the fake-quant ranges QAT learns.
QAT_MODES = ("int8",)
LR_SCHEDULES = ("constant", "cosine")
# How clustering finds each layer's K values: TFMOT's k-means then fine-tuning with the task's
# loss (needs training data or a teacher), or post-training on calibration inputs
# (converters.ptq_clusters: no labels, no training).
CLUSTER_FITS = {"finetune": "TFMOT clustering, fine-tuned",
                "calibration": "input-weighted k-means on calibration inputs (post-training)",
                "gptq": "k-means values, GPTQ-compensated assignment on calibration inputs "
                        "(post-training)"}
MAX_LUT_CLUSTERS = 128  # TFLite Micro's LUT indices are at most 7 bits


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every step is optional except ``quantize``; the order is fixed: distillation (alone) or
    pruning, clustering, the target's rewrites, quantization-aware training, conversion, LUT
    compression."""

    quantize: str = "int8"
    target: str | None = None
    prune: float | None = None
    prune_schedule: str = "polynomial"
    prune_2of4: bool = False
    prune_policy: str | None = None
    lottery_rounds: int = 0
    cluster: int | dict | None = None  # K, or {layer: K} with "*" for every other layer
    cluster_fit: str = "finetune"  # a row of CLUSTER_FITS: how the K values are found
    gptq_damping: float = 0.01  # cluster_fit gptq: fraction of the Hessian's mean diagonal added
    qat: bool = False
    distill: str | None = None  # teacher: a registry name, a .keras file, or "self" (the float model)
    temperature: float = 4.0
    micro_compression: bool = True  # LUT-compress clustered weights (TFLite Micro DECODE)
    finetune_epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"  # or "cosine": decays to 0 over each training step
    calibration_samples: int = 300
    dense_form: str = "conv1x1"  # how Dense layers are converted (converters.dense_forms)
    xnnpack_layernorm: bool = False  # LiteRT (CPU) int8: LayerNorm in XNNPACK's form (opt-in)
    cpu_form: str = "auto"  # LiteRT boards, int8: a row of converters.cpu_forms, or measured
    max_latency_ms: float | None = None  # LiteRT boards: measured host latency the form must meet
    ranges: str = "minmax"  # int8 activation ranges: a row of converters.ptq_ranges.RANGE_METHODS
    adaround: bool = False  # weights rounded by per-layer optimisation (converters.ptq_weights)
    bias_correction: bool = False  # biases corrected for the weights' rounding (ptq_weights)
    seed: int = 0

    def __post_init__(self):
        self.validate()

    @property
    def trains(self):
        """Whether any step fine-tunes the model (then it needs data with labels or a teacher)."""
        return (self.prune is not None or self.prune_2of4 or self.qat or self.distill is not None
                or self.clusters_by_training)

    @property
    def clusters_by_training(self):
        """Clustering that fine-tunes (TFMOT), not the post-training fit."""
        return self.cluster is not None and self.cluster_fit == "finetune"

    @property
    def clusters_post_training(self):
        """Clusters fitted after training on calibration inputs (every other CLUSTER_FITS row)."""
        return self.cluster is not None and self.cluster_fit != "finetune"

    @property
    def sparsity(self):
        """The sparsity pruning aims for (2:4 is 50 %)."""
        return 0.5 if self.prune_2of4 and self.prune is None else self.prune

    def cluster_counts(self):
        """{layer or None (every other layer): K} from ``cluster``."""
        if self.cluster is None:
            return {}
        if isinstance(self.cluster, dict):
            return {None if k == "*" else k: v for k, v in self.cluster.items()}
        return {None: self.cluster}

    def steps(self, micro=None):
        """Names of the steps this recipe runs, in order (rows of ``converters.steps.STEPS``;
        ``micro``: False leaves out what only a TFLite Micro target runs)."""
        from edgezoo.converters.steps import TARGET_STEPS, recipe_steps

        return [s.title(self) for s in recipe_steps(self, micro) if s.name not in TARGET_STEPS]

    def training_steps(self):
        """The steps that fine-tune the model."""
        from edgezoo.converters.steps import recipe_steps

        return [s.title(self) for s in recipe_steps(self) if s.trains]

    def validate(self):
        """Raise RecipeError naming the first contradiction (or out-of-range value)."""
        if self.quantize not in QUANTIZATION_MODES:
            raise RecipeError(f"unknown quantization {self.quantize!r}; choose one of "
                              f"{', '.join(QUANTIZATION_MODES)}")
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise RecipeError(f"prune sparsity must be between 0 and 1 (exclusive), got {self.prune}")
        if self.prune_2of4 and self.prune is not None and abs(self.prune - 0.5) > 1e-9:
            raise RecipeError(f"2:4 structured sparsity is exactly 50 % but prune={self.prune} was "
                              "asked for: drop the sparsity or set it to 0.5")
        if self.prune_schedule not in PRUNE_SCHEDULES:
            raise RecipeError(f"unknown prune schedule {self.prune_schedule!r}; choose one of "
                              f"{', '.join(PRUNE_SCHEDULES)}")
        if self.prune_policy not in PRUNE_POLICIES:
            raise RecipeError(f"unknown prune policy {self.prune_policy!r}; the one policy is 'xnnpack'")
        if self.lottery_rounds < 0:
            raise RecipeError(f"lottery_rounds must be 0 or more, got {self.lottery_rounds}")
        if self.lottery_rounds and self.sparsity is None:
            raise RecipeError("lottery-ticket rounds need a pruning sparsity (--prune S)")
        if self.lottery_rounds and self.prune_2of4:
            raise RecipeError("lottery-ticket pruning is unstructured; it cannot make 2:4 sparsity")
        for layer, k in self.cluster_counts().items():
            if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 256:
                where = "" if layer is None else f" for layer {layer!r}"
                raise RecipeError(f"cluster count{where} must be between 2 and 256 (int8 has 256 "
                                  f"values), got {k}")
        if self.cluster_fit not in CLUSTER_FITS:
            raise RecipeError(f"unknown cluster_fit {self.cluster_fit!r}; choose one of "
                              f"{', '.join(CLUSTER_FITS)}")
        if not 0 < self.gptq_damping <= 10:
            raise RecipeError(f"gptq_damping must be in (0, 10], got {self.gptq_damping}")
        if self.gptq_damping != 0.01 and self.cluster_fit != "gptq":
            raise RecipeError(f"gptq_damping dampens cluster_fit gptq; this recipe's cluster_fit "
                              f"is {self.cluster_fit}: set cluster_fit gptq or drop gptq_damping")
        if self.cluster_fit != "finetune" and self.cluster is None:
            raise RecipeError(f"cluster_fit {self.cluster_fit} says how clusters are found, but "
                              "the recipe clusters nothing: add a cluster count (--cluster K)")
        from edgezoo.converters.dense_forms import DENSE_FORMS

        if self.dense_form not in DENSE_FORMS:
            raise RecipeError(f"unknown dense_form {self.dense_form!r}; choose one of "
                              f"{', '.join(DENSE_FORMS)}")
        if DENSE_FORMS[self.dense_form].per_tensor and self.quantize not in ("int8", "int16x8"):
            raise RecipeError(f"dense_form {self.dense_form} sets integer weight scales; it needs "
                              f"--quantize int8 or int16x8, not {self.quantize}")
        if DENSE_FORMS[self.dense_form].per_layer and self.quantize != "int8":
            raise RecipeError(f"dense_form {self.dense_form} chooses between int8 weight scales; "
                              f"it needs --quantize int8, not {self.quantize}")
        if DENSE_FORMS[self.dense_form].per_layer and self.cluster is not None \
                and self.micro_compression:
            raise RecipeError(f"dense_form {self.dense_form} chooses each layer's form after "
                              "conversion, but LUT compression encodes the weights before that: "
                              "use fc_per_channel or fc_per_tensor with clustering, or set "
                              "micro_compression to false")
        from edgezoo.converters.cpu_forms import CPU_FORM_CHOICES

        if self.cpu_form not in CPU_FORM_CHOICES:
            raise RecipeError(f"unknown cpu_form {self.cpu_form!r}; choose one of "
                              f"{', '.join(CPU_FORM_CHOICES)}")
        if self.cpu_form != "auto" and self.quantize != "int8":
            raise RecipeError(f"cpu_form {self.cpu_form} chooses the form of an int8 model; it "
                              f"needs --quantize int8, not {self.quantize}")
        self._validate_ptq()
        if self.max_latency_ms is not None and not (math.isfinite(self.max_latency_ms)
                                                    and self.max_latency_ms > 0):
            raise RecipeError(f"max_latency_ms must be a positive number, got {self.max_latency_ms}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise RecipeError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of "
                              f"{', '.join(LR_SCHEDULES)}")
        if self.qat and self.quantize not in QAT_MODES:
            raise RecipeError(f"quantization-aware training trains for int8, but the recipe converts "
                              f"with --quantize {self.quantize}; use --quantize int8 or drop --qat")
        if self.trains and self.finetune_epochs < 1:
            raise RecipeError(f"{', '.join(self.training_steps())} fine-tune the "
                              f"model, but finetune_epochs is {self.finetune_epochs}; use 1 or more")
        if self.temperature <= 0:
            raise RecipeError(f"distillation temperature must be positive, got {self.temperature}")
        if self.batch_size < 1 or self.learning_rate <= 0 or self.calibration_samples < 1:
            raise RecipeError("batch_size and calibration_samples must be at least 1 and "
                              "learning_rate positive")
        if not 0 <= self.seed < 2**32:
            raise RecipeError(f"seed must be a whole number in [0, 2**32), got {self.seed}")
        for name in ("finetune_epochs", "batch_size", "calibration_samples", "lottery_rounds"):
            if getattr(self, name) > LIMITS[name]:
                raise RecipeError(f"{name} is {getattr(self, name)}; more than {LIMITS[name]:,} "
                                  "is surely a typo")
        for name in ("prune", "temperature", "learning_rate"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise RecipeError(f"{name} must be a finite number, got {value}")

    def _validate_ptq(self):
        """The post-training options: int8 with calibration data, and no step that sets the
        weights or ranges itself."""
        from edgezoo.converters.ptq_ranges import RANGE_METHODS

        if self.ranges not in RANGE_METHODS:
            raise RecipeError(f"unknown ranges {self.ranges!r}; choose one of "
                              f"{', '.join(RANGE_METHODS)}")
        chosen = [name for name, on in (("ranges " + self.ranges, self.ranges != "minmax"),
                                        ("adaround", self.adaround),
                                        ("bias_correction", self.bias_correction)) if on]
        if chosen and self.quantize != "int8":
            raise RecipeError(f"{', '.join(chosen)} work on calibration data for full-int8 "
                              f"conversion; --quantize {self.quantize} takes no calibration data: "
                              "use --quantize int8 or drop them")
        if chosen and self.qat:
            raise RecipeError(f"quantization-aware training learns the int8 ranges and weights "
                              f"itself; {', '.join(chosen)} would overwrite what it learned: "
                              "choose one")
        if self.clusters_post_training and self.quantize != "int8":
            raise RecipeError(f"cluster_fit {self.cluster_fit} puts each channel's K values on its "
                              f"int8 grid; --quantize {self.quantize} has none: use --quantize int8")
        if self.clusters_post_training and self.qat:
            raise RecipeError("quantization-aware training moves every weight, so the K values "
                              "fitted after training would not survive it: use cluster_fit "
                              "finetune with --qat, or drop --qat")
        if self.adaround and self.cluster is not None:
            raise RecipeError("adaround re-rounds every weight, so clustered weights would lose "
                              "their K shared values (and their LUT compression): drop one")

    def check_target(self, micro):
        """Steps a target cannot use: float16/dynamic on a microcontroller, XNNPACK policy there."""
        if micro and self.quantize in MICRO_REFUSES:
            raise RecipeError(f"--quantize {self.quantize} cannot run on a microcontroller target: "
                              f"{MICRO_REFUSES[self.quantize]}. Use int8 (or int16x8).")
        if micro and self.xnnpack_layernorm:
            raise RecipeError("xnnpack_layernorm rewrites LayerNorm for LiteRT's XNNPACK, with a "
                              "float SQRT/DIV island a TFLite Micro target cannot run; drop it")
        if micro and self.cpu_form not in ("auto", "full_int8"):
            raise RecipeError(f"cpu_form {self.cpu_form} is a form for LiteRT (CPU) boards; a "
                              "TFLite Micro target runs full int8: drop it")
        if micro and self.max_latency_ms is not None:
            raise RecipeError("max_latency_ms bounds the latency measured in LiteRT on this host; a "
                              "microcontroller's latency is an estimate: bound it with the "
                              "verification threshold max_estimated_ms instead")
        from edgezoo.converters.dense_forms import DENSE_FORMS

        if DENSE_FORMS[self.dense_form].per_layer and not micro:
            raise RecipeError(f"dense_form {self.dense_form} chooses each layer's form by TFLite "
                              "Micro's arena; it needs a microcontroller --target")
        if micro and self.prune_policy == "xnnpack":
            raise RecipeError("the XNNPACK pruning policy shapes sparsity for LiteRT's XNNPACK "
                              "kernels, which a TFLite Micro target does not run; drop it")

    def as_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """A recipe from a mapping; unknown keys and wrong types are errors, not ignored."""
        if not isinstance(data, dict):
            raise RecipeError(f"a recipe is a JSON object of steps, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise RecipeError(f"unknown recipe keys {unknown}; known: {', '.join(fields)}")
        values = {}
        for key, value in data.items():
            values[key] = _coerce(key, value, cls.__dataclass_fields__[key].default)
        return cls(**values)

    @classmethod
    def from_file(cls, path):
        from edgezoo.base.files import read_json

        return cls.from_dict(read_json(path, "recipe file", RecipeError))

    def replace(self, **changes):
        """A new recipe with ``changes`` (None values leave a field as it is)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _coerce(key, value, default):
    """Check a JSON value against the field's default type (int for float fields is fine)."""
    if value is None:
        return None
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    expected = type(default) if default is not None else None
    if key == "cluster" and isinstance(value, dict):
        return dict(value)  # counts are checked by validate()
    if expected is None:  # optional fields: prune (float), cluster (int), target/distill/policy (str)
        expected = {"prune": float, "cluster": int, "max_latency_ms": float}.get(key, str)
    if isinstance(value, bool) and expected is not bool:
        raise RecipeError(f"recipe key {key!r} must be {expected.__name__}, got a boolean")
    if not isinstance(value, kinds[expected]):
        raise RecipeError(f"recipe key {key!r} must be {expected.__name__}, got {value!r}")
    return expected(value)
