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
def digits8():
    from edgezoo.zoo.data import load_digits

    return load_digits((8, 8, 1))
