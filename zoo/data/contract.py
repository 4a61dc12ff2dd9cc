"""A model's input contract: the value range its inputs must be in, and where that fact came from.

Data never reaches a model in a range it was not trained on: every data set
states the range its values are stored in (``Dataset.value_range``) and is
rescaled linearly into the model's range; a user's file is checked against it.
The contract comes from the registry entry, from what a ``.keras`` file saved by
edgezoo records, or from the user (``--input-range LOW,HIGH``), in that order of
precedence reversed: the user's word wins.
"""
import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np

from edgezoo.base.errors import DataError

RECORD = "edgezoo.json"  # the extra member edgezoo writes into a .keras zip


@dataclasses.dataclass(frozen=True)
class InputContract:
    """Inputs lie in [low, high]; ``origin`` says who said so (for the report)."""

    low: float
    high: float
    origin: str
    channel_order: str = "as trained (RGB for colour images)"

    def __post_init__(self):
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise DataError(f"input range [{self.low}, {self.high}] is not a range: give "
                            "--input-range LOW,HIGH with finite LOW < HIGH, e.g. 0,255")

    def as_dict(self):
        return {"range": [self.low, self.high], "origin": self.origin,
                "channel_order": self.channel_order}

    def contains(self, x, rtol=1e-6):
        """Whether every value of ``x`` lies in the range (up to rounding)."""
        slack = rtol * max(abs(self.low), abs(self.high), 1.0)
        return float(np.min(x)) >= self.low - slack and float(np.max(x)) <= self.high + slack


def parse_range(text):
    """``"0,255"`` -> (0.0, 255.0); a DataError naming the flag otherwise."""
    try:
        low, high = (float(v) for v in str(text).split(","))
    except ValueError:
        raise DataError(f"--input-range must be LOW,HIGH (for example 0,1 or 0,255), "
                        f"got {text!r}") from None
    InputContract(low, high, "--input-range")  # validates
    return low, high


def user_contract(input_range):
    """The contract the user gave (a "LOW,HIGH" string or a pair), or None."""
    if input_range is None:
        return None
    low, high = parse_range(input_range) if isinstance(input_range, str) else map(float, input_range)
    return InputContract(low, high, "--input-range")


def record_in_keras_file(path, contract):
    """Write ``contract`` into a .keras zip, so later commands know the model's input range."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(RECORD, json.dumps({"input_range": [contract.low, contract.high],
                                             "origin": contract.origin}))


def read_from_keras_file(path):
    """The contract a .keras file records, or None (other formats record none)."""
    from edgezoo.base.files import keras_zip_record

    path = Path(path)
    try:
        record = keras_zip_record(path, RECORD)
        if record is None:
            return None
        low, high = (float(v) for v in record["input_range"])
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{path}: its {RECORD} record is malformed; re-save the model or "
                        "pass --input-range LOW,HIGH") from None
    return InputContract(low, high, f"recorded in {path.name} ({record.get('origin', 'edgezoo')})")


def rescale(x, source_range, contract):
    """Map values stored in ``source_range`` linearly onto the contract's range."""
    lo, hi = (float(v) for v in source_range)
    if (lo, hi) == (contract.low, contract.high):
        return np.asarray(x, np.float32)
    scale = (contract.high - contract.low) / (hi - lo)
    return ((np.asarray(x, np.float64) - lo) * scale + contract.low).astype(np.float32)
