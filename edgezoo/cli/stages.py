"""Stage lines on stderr ("edgezoo convert: [ 12 s] calibrating ..."), so long steps are never
silent; on for the CLI, off for the Python API unless asked."""
import sys
import time

_state = {"prefix": None, "start": 0.0}


def enable(prefix):
    """Print stages under ``prefix`` (the command, e.g. "edgezoo convert") from now on."""
    _state.update(prefix=prefix, start=time.perf_counter())


def disable():
    _state["prefix"] = None


def stage(text):
    """Say that a step starts: its name and the time since the command began."""
    if _state["prefix"] is None:
        return
    elapsed = time.perf_counter() - _state["start"]
    print(f"{_state['prefix']}: [{elapsed:5.0f} s] {text}", file=sys.stderr, flush=True)
