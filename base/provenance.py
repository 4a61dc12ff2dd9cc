"""Provenance recorded in every report: seed, package versions, the recipe."""
import platform
from importlib import metadata

PACKAGES = ("edgezoo", "tensorflow", "tf-keras", "tensorflow-model-optimization",
            "ai-edge-litert", "tflite-micro", "numpy", "scikit-learn")


def package_versions():
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(seed=None, recipe=None):
    return {"seed": seed, "recipe": recipe or {}, "packages": package_versions(),
            "python": platform.python_version(), "machine": platform.machine()}
