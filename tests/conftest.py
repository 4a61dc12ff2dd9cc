import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the shared helper, tests/model_case.py

import edgezoo  # noqa: E402,F401  (Keras 2 mode before anything imports TensorFlow)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEZOO_SHARED", ROOT.parent / "shared"))
MLPERF = SHARED / "reference-models" / "mlperf-tiny"


@pytest.fixture(scope="session")
def mlperf_dir():
    if not MLPERF.is_dir():
        pytest.fail(f"reference models not found at {MLPERF}; set EDGEZOO_SHARED to the shared/ folder")
    return MLPERF


@pytest.fixture(scope="session")
def digits16():
    from edgezoo.zoo.data import load_digits

    return load_digits((16, 16, 1))


@pytest.fixture(scope="session")
def digits32():
    from edgezoo.zoo.data import load_digits

    return load_digits((32, 32, 1))


@pytest.fixture(scope="session")
def digits8():
    from edgezoo.zoo.data import load_digits

    return load_digits((8, 8, 1))


def ad_autoencoder(seed=0):
    """The MLPerf Tiny anomaly-detection autoencoder's architecture (640 -> [Dense 128, batch norm,
    ReLU] x4 -> 8 -> x4 -> 640), random weights, batch-norm statistics away from the identity."""
    import numpy as np
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inp = keras.Input((640,))
    h = inp
    for units in [128] * 4 + [8] + [128] * 4:
        h = keras.layers.Dense(units)(h)
        bn = keras.layers.BatchNormalization()
        h = bn(h)
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([rng.uniform(0.5, 2.0, gamma.shape), rng.normal(0, 0.5, beta.shape),
                        rng.normal(0, 0.5, mean.shape), rng.uniform(0.2, 3.0, var.shape)])
        h = keras.layers.ReLU()(h)
    return keras.Model(inp, keras.layers.Dense(640)(h))


def shifted_micro(k):
    """Negative control for the per-op gate: TFLite Micro's real outputs with ``k`` added to every
    integer value, clipped to its type's range."""
    import numpy as np

    from edgezoo.edge import op_compare

    def micro(jobs):
        shifted = []
        for outs in op_compare.run_micro_jobs(jobs):
            row = []
            for out in outs:
                if out.dtype.kind in "iu":
                    info = np.iinfo(out.dtype)
                    out = np.clip(out.astype(np.int64) + k, info.min, info.max).astype(out.dtype)
                row.append(out)
            shifted.append(row)
        return shifted

    return micro


def with_zero_point(data, op_name, position, value):
    """``data`` (a .tflite) with the zero point of input ``position`` of its first ``op_name``
    set to ``value``: a model the loader accepts (in range) that a kernel may refuse."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    from edgezoo.edge.op_compare import pack_model, read_model_t

    model = read_model_t(data)
    sg = model.subgraphs[0]
    code = getattr(schema.BuiltinOperator, op_name)
    for op in sg.operators:
        opcode = model.operatorCodes[op.opcodeIndex]
        if max(opcode.builtinCode, opcode.deprecatedBuiltinCode) == code:
            q = sg.tensors[op.inputs[position]].quantization
            q.zeroPoint = np.full(len(q.zeroPoint), value, np.int64)
            return pack_model(model)
    raise AssertionError(f"no {op_name}")


# The longest test files (seconds on 2 cores, from --durations), handed out first: `make test`
# gives each xdist worker one file at a time in collection order, so a long file started last
# would run alone at the end while the other worker idles.
LONGEST_FILES_FIRST = ("test_deformable_detr.py", "test_demo.py", "test_perceiver.py",
                       "test_port.py", "test_detr.py", "test_convert.py", "test_cswin.py",
                       "test_qat.py", "test_clustering.py", "test_cpu_form.py", "test_pruning.py",
                       "test_micro_support.py", "test_set_loss.py", "test_compress.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within kept
