"""Device profiles as data: flash, RAM, reserves and the runtime each board runs."""
import dataclasses
import difflib
import json
from importlib import resources
from pathlib import Path

from edgezoo.base.errors import EdgezooError, UnknownTargetError

RUNTIMES = ("tflite-micro", "litert")
_INT_FIELDS = ("flash_bytes", "ram_bytes", "flash_reserve_bytes", "ram_margin_bytes")


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    core: str
    clock_mhz: float
    flash_bytes: int
    ram_bytes: int
    flash_reserve_bytes: int
    ram_margin_bytes: int
    runtime: str

    @property
    def micro(self):
        """True when the board runs TFLite Micro (a microcontroller)."""
        return self.runtime == "tflite-micro"

    def as_dict(self):
        return dataclasses.asdict(self)


class ProfileError(EdgezooError, ValueError):
    """A profile file or entry with missing or invalid fields."""


def _parse(name, fields, source):
    required = [f.name for f in dataclasses.fields(DeviceProfile) if f.name != "name"]
    missing = [f for f in required if f not in fields]
    if missing:
        raise ProfileError(f"profile {name!r} in {source} is missing {', '.join(missing)}")
    for key in (*_INT_FIELDS, "clock_mhz"):
        value = fields[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ProfileError(f"profile {name!r} in {source}: {key} must be a number >= 0, got {value!r}")
    if fields["runtime"] not in RUNTIMES:
        raise ProfileError(
            f"profile {name!r} in {source}: runtime must be one of {', '.join(RUNTIMES)}, "
            f"got {fields['runtime']!r}"
        )
    values = {k: fields[k] for k in required}
    for key in _INT_FIELDS:
        values[key] = int(values[key])
    return DeviceProfile(name=name, **values)


def load_profiles(extra=None):
    """The bundled profiles, plus (overriding) those in the JSON file ``extra``."""
    text = resources.files("edgezoo.edge").joinpath("profiles.json").read_text()
    profiles = {n: _parse(n, f, "profiles.json") for n, f in json.loads(text).items()}
    if extra is not None:
        from edgezoo.base.files import read_json

        path = Path(extra)
        data = read_json(path, "profile file", ProfileError)
        if not isinstance(data, dict):
            raise ProfileError(f"profile file {path} must hold a JSON object of name -> fields")
        profiles.update({n: _parse(n, f, str(path)) for n, f in data.items()})
    return profiles


def get_profile(name, extra=None):
    """The profile called ``name``; an unknown name lists the known ones."""
    profiles = load_profiles(extra)
    if name not in profiles:
        close = difflib.get_close_matches(str(name), profiles, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownTargetError(
            f"unknown target {name!r}.{hint} Known targets: {', '.join(sorted(profiles))}."
        )
    return profiles[name]
