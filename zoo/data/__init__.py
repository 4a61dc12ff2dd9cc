"""Data that ships with a package or is generated here: nothing is downloaded."""
from edgezoo.base.errors import DataError
from edgezoo.zoo.data.digits import Dataset, Split, load_digits
from edgezoo.zoo.data.natural_patches import (
    load_natural_patch_grid,
    load_natural_patches,
    natural_patch_grid,
)

DATASETS = {"digits": load_digits, "natural_patches": load_natural_patches,
            "natural_patch_grid": load_natural_patch_grid}


def load_dataset(name, input_shape):
    """Load a named data set resized to ``input_shape``."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}") from None
    return loader(input_shape)


__all__ = ["DATASETS", "Dataset", "Split", "load_dataset", "load_digits", "load_natural_patch_grid",
           "load_natural_patches", "natural_patch_grid"]
