"""edgezoo.edge: device profiles, safe loading, runtimes, budgets and reports."""
from edgezoo.edge.budget import check_budget
from edgezoo.edge.compare import compare_runtimes
from edgezoo.edge.loader import load_tflite
from edgezoo.edge.micro_ops import micro_op_table
from edgezoo.edge.profiles import DeviceProfile, get_profile, load_profiles
from edgezoo.edge.runners.litert import LiteRTRunner
from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops

__all__ = [
    "DeviceProfile",
    "LiteRTRunner",
    "MicroRunner",
    "check_budget",
    "check_micro_ops",
    "compare_runtimes",
    "get_profile",
    "load_profiles",
    "load_tflite",
    "micro_op_table",
]
