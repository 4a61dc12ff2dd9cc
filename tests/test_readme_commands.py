"""Every shell command of the README's Quick start, CLI and recipe sections works as written.

Commands run in order in a scratch folder beside a link to ../shared (the README's paths are
the repository root's), with ``edgezoo`` from this environment; ``make test`` is skipped, as it
is the command running this test. A command that exits non-zero fails the test.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("## Quick start", "## CLI", "## Compression recipes")
SKIP = {"make test"}  # the README's test command: this test is part of it


def readme_commands(text):
    """The shell commands in the ```bash blocks of SECTIONS, continuation lines joined and
    trailing comments dropped, in order."""
    commands = []
    for part in re.split(r"(?m)^(?=## )", text):
        if not part.startswith(SECTIONS):
            continue
        for block in re.findall(r"```bash\n(.*?)```", part, re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith("#"):
                    commands.append(line)
    return commands


def test_the_readme_has_the_commands_this_test_runs():
    commands = readme_commands((ROOT / "README.md").read_text())
    assert commands[:2] == ["make demo", "make test"]
    assert sum(c.startswith("edgezoo convert") for c in commands) >= 5
    assert any("--prune 0.5" in c and "nrf52840" in c for c in commands)
    assert any("--cluster 8" in c and "nrf52840" in c for c in commands)


@pytest.mark.slow
def test_every_readme_command_exits_0(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(ROOT.parent / "shared", tmp_path / "shared")
    os.symlink(ROOT / "recipes", work / "recipes")
    os.symlink(ROOT / "Makefile", work / "Makefile")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for command in readme_commands((ROOT / "README.md").read_text()):
        if command in SKIP:
            continue
        if command.startswith("make "):  # the Makefile's own .venv, in the repository
            argv, cwd = ["make", "-C", str(ROOT), command.split()[1]], ROOT
        else:
            argv, cwd = ["bash", "-c", command], work
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=3600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    shutil.rmtree(work / "out", ignore_errors=True)
