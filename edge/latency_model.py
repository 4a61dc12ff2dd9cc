"""Latency estimate for a board: MACs and elements per op times per-core cycle costs, over the clock.

An estimate, not a measurement: the constants (``core_costs.json``) are per
core type, calibrated once for the Cortex-M4 on published MLPerf Tiny
latencies and scaled to the other cores by stated factors.
"""
import dataclasses
import functools
import json
import math
from importlib import resources

from edgezoo.edge.macs import MAC_OPS, model_work
from edgezoo.edge.profiles import DeviceProfile, ProfileError, get_profile

BASIS = ("estimate: MACs and elements per operator x per-core cycle costs (edgezoo.edge "
         "core_costs.json, calibrated on MLPerf Tiny v0.5 KWS/IC on a Cortex-M4), not a measurement")


@dataclasses.dataclass(frozen=True)
class CoreCosts:
    core: str
    cycles_per_mac: dict
    cycles_per_output: float
    cycles_per_element: dict
    cycles_per_op: float
    source: str


@dataclasses.dataclass(frozen=True)
class LatencyEstimate:
    ms: float
    cycles: float
    macs: int
    core: str
    clock_mhz: float
    ops: tuple
    notes: tuple = ()

    def as_dict(self):
        return {"estimate_ms": self.ms, "cycles": int(round(self.cycles)), "macs": self.macs,
                "core": self.core, "clock_mhz": self.clock_mhz, "basis": BASIS, "notes": list(self.notes)}


@functools.lru_cache(maxsize=1)
def cost_table():
    """The parsed ``core_costs.json``."""
    return json.loads(resources.files("edgezoo.edge").joinpath("core_costs.json").read_text())


def _resolve(name, cores):
    entry = cores[name]
    if "scale_from" in entry:
        base = _resolve(entry["scale_from"], cores)
        f = entry["factors"]
        return CoreCosts(
            name,
            {op: c * f["mac"] for op, c in base.cycles_per_mac.items()},
            base.cycles_per_output * f["element"],
            {g: c * f["element"] for g, c in base.cycles_per_element.items()},
            base.cycles_per_op * f["op"],
            entry["source"],
        )
    return CoreCosts(
        name,
        {op: entry["mac_scale"] * r for op, r in entry["mac_ratios"].items()},
        float(entry["cycles_per_output"]),
        {g: float(c) for g, c in entry["cycles_per_element"].items()},
        float(entry["cycles_per_op"]),
        entry["source"],
    )


@functools.lru_cache(maxsize=None)
def core_costs(core):
    """CoreCosts of ``core`` (one object per core: every model on that core uses the same)."""
    cores = cost_table()["cores"]
    if core not in cores:
        raise ProfileError(f"no latency constants for core {core!r}; known cores: {', '.join(sorted(cores))}")
    return _resolve(core, cores)


@functools.lru_cache(maxsize=1)
def _groups():
    return {op: group for group, ops in cost_table()["op_groups"].items() for op in ops}


def op_group(op):
    """Element-wise cost group of a non-MAC op (``other`` when not listed)."""
    return _groups().get(op, "other")


def op_cycles(work, costs):
    """Cycles of one OpWork under ``costs``."""
    if work.op in MAC_OPS:
        compute = costs.cycles_per_mac[work.op] * work.macs + costs.cycles_per_output * work.elements
    else:
        compute = costs.cycles_per_element[op_group(work.op)] * work.elements
    return compute + costs.cycles_per_op


def no_estimate_reason(profile):
    """Why ``profile`` (a DeviceProfile) gets no latency estimate, or None when it gets one."""
    if not profile.clock_mhz:
        return f"{profile.name} has no clock frequency (clock_mhz {profile.clock_mhz:g})"
    cores = cost_table()["cores"]
    if profile.core not in cores:
        return f"core {profile.core!r} has no cycle model; known: {', '.join(sorted(cores))}"
    return None


def estimate_latency(model, profile, model_bytes=None):
    """LatencyEstimate of the parsed ``model`` on ``profile`` (a DeviceProfile or its name).

    Raises ProfileError with ``no_estimate_reason`` when the board has no clock or its core
    no cycle model (``verify`` reports that reason instead of dropping the estimate)."""
    if not isinstance(profile, DeviceProfile):
        profile = get_profile(profile)
    reason = no_estimate_reason(profile)
    if reason is not None:
        raise ProfileError(reason)
    costs = core_costs(profile.core)
    works = model_work(model, model_bytes)
    ops = tuple({**w.as_dict(), "cycles": op_cycles(w, costs)} for w in works)
    cycles = sum(o["cycles"] for o in ops)
    notes = []
    floats = sorted({w.op for w in works if w.dtype == "FLOAT32" and w.op in MAC_OPS})
    if floats:
        notes.append(f"float32 {', '.join(floats)} estimated with int8 kernel costs; "
                     "the constants are calibrated for int8 models only")
    return LatencyEstimate(cycles / (profile.clock_mhz * 1e3), cycles, sum(w.macs for w in works),
                           profile.core, profile.clock_mhz, ops, tuple(notes))


def fit_mac_scale(points, core="cortex-m4"):
    """The ``mac_scale`` of ``core`` that best fits ``points`` [(model, model_bytes, clock_mhz, ms)].

    Least squares in log latency, every other constant held: how the shipped
    Cortex-M4 value was obtained (see ``calibration`` in core_costs.json).
    """
    from scipy.optimize import minimize_scalar

    entry = cost_table()["cores"][core]
    base = _resolve(core, cost_table()["cores"])
    terms = []
    for model, data, clock_mhz, ms in points:
        per_scale, fixed = 0.0, 0.0
        for w in model_work(model, data):
            cycles = op_cycles(w, base)
            if w.op in MAC_OPS:
                mac_part = base.cycles_per_mac[w.op] * w.macs
                per_scale += mac_part / entry["mac_scale"]
                cycles -= mac_part
            fixed += cycles
        terms.append((per_scale, fixed, clock_mhz * 1e3 * ms))

    def loss(scale):
        return sum(math.log((scale * a + b) / target) ** 2 for a, b, target in terms)

    return float(minimize_scalar(loss, bounds=(0.01, 1000.0), method="bounded").x)
