"""``edgezoo test`` and the pytest plugin give the same verdict on bit-flipped KWS models.

Each mutant is the MLPerf Tiny KWS model with 1-3 seeded bit flips (every other
mutant's flips all in its first 8 KiB), checked on a LiteRT board (rpi4) or a
TFLite Micro board (nrf52840) through ``edgezoo.cli.main(["test", ...])`` and
``EdgeCheck(board)(path)``, both in this process: no traceback anywhere, a CLI exit
code of 0, 1 or 2, and the same verdict (0: the plugin passes; 1 or 2: it fails,
for the same reason). The runtimes run in child processes, so a mutant that crashes
one cannot take this process down.
"""
import collections
import re
import sys

import numpy as np
import pytest

from edgezoo import cli
from edgezoo.edge.loader import load_tflite
from edgezoo.edge.pytest_plugin import EdgeCheck
from edgezoo.base.errors import EdgezooError

MUTANTS = 200
SAMPLE = 24  # a seeded sample of the 200 (about 30 s on 2 cores)
BOARDS = ("rpi4", "nrf52840")  # LiteRT (XNNPACK ships) and TFLite Micro (KWS's arena fits)
HEAD = 8 * 1024
TRACEBACK = "Traceback (most recent call last)"


def mutant(base, i):
    """Mutant ``i``: 1-3 bit flips, all in the first 8 KiB when ``i`` is even."""
    rng = np.random.default_rng([20240, i])
    data = bytearray(base)
    span = HEAD if i % 2 == 0 else len(data)
    for pos in rng.choice(span, int(rng.integers(1, 4)), replace=False):
        data[int(pos)] ^= 1 << int(rng.integers(0, 8))
    return bytes(data)


def board(i):
    """Pairs of mutants (one aimed at the head, one anywhere) alternate between the boards."""
    return BOARDS[(i // 2) % 2]


@pytest.fixture(scope="module")
def kws(mlperf_dir):
    return (mlperf_dir / "kws_ref_model.tflite").read_bytes()


def _cli(path, target, capfd):
    code = cli.main(["test", str(path), "--target", target])
    out, err = capfd.readouterr()
    return code, out, err


def _plugin(path, target, capfd):
    result = message = None
    try:
        result = EdgeCheck(target)(path)
    except pytest.fail.Exception as failed:
        message = str(failed)
    out, err = capfd.readouterr()
    return message, out + err, result


def _outcome(data, code, result):
    if code == 0:
        return "passed, with a note" if result["notes"] else "passed"
    try:
        load_tflite(data)
    except EdgezooError:
        return "refused at load"
    return "failed checks" if code == 1 else "refused by a runtime"


def run_parity(kws, tmp_path, capfd, indices):
    """Both paths on every mutant in ``indices``; the counts of each outcome by board."""
    counts, examples = collections.Counter(), []
    for i in indices:
        target, data = board(i), mutant(kws, i)
        path = tmp_path / f"mutant_{i}.tflite"
        path.write_bytes(data)
        code, out, err = _cli(path, target, capfd)
        message, plugin_output, result = _plugin(path, target, capfd)
        where = f"mutant {i} on {target}: CLI exit {code}, plugin {message!r}\n{out}\n{err}"
        for text in (out, err, plugin_output, message or ""):
            assert TRACEBACK not in text, where
        assert code in (0, 1, 2), where
        assert (code == 0) == (message is None), where  # the same verdict
        if code == 1:  # failed checks: the plugin names each failure the CLI printed
            failures = out.split("FAIL: ", 1)[1].strip().split(" | ")
            assert all(f in message for f in failures), where
        elif code == 2:  # refused: the same error, one line each
            reason = err.split("edgezoo test: error: ", 1)[1].strip()
            assert reason.splitlines()[0] in message, where
        outcome = _outcome(data, code, result)
        counts[(target, outcome)] += 1
        if outcome not in ("passed", "refused at load"):
            said = result["notes"][0] if message is None else message.splitlines()[-1].strip()
            said = said.split(f"cannot run on {target}: ", 1)[-1]
            examples.append(f"  mutant {i} on {target}: {said[:150]}")
    lines = [f"  {n:4d}  {target:9s} {outcome}" for (target, outcome), n in sorted(counts.items())]
    with capfd.disabled():
        print(f"\n{len(indices)} mutants of kws_ref_model.tflite, the same verdict from "
              "`edgezoo test` and edge_check:\n" + "\n".join(lines + examples))
    return counts


def _check_counts(counts, n):
    assert sum(counts.values()) == n
    assert {t for t, _ in counts} == set(BOARDS)  # both boards were exercised
    outcomes = {o for _, o in counts}
    assert "passed" in outcomes and outcomes - {"passed", "passed, with a note"}  # and failures


@pytest.mark.slow  # about 35 s; by default: the refusal parity and the disagreement control below
def test_cli_and_plugin_agree_on_a_sample_of_mutants(kws, tmp_path, capfd):
    indices = sorted(np.random.default_rng(7).choice(MUTANTS, SAMPLE, replace=False).tolist())
    _check_counts(run_parity(kws, tmp_path, capfd, indices), SAMPLE)


@pytest.mark.slow
def test_cli_and_plugin_agree_on_all_200_mutants(kws, tmp_path, capfd):
    _check_counts(run_parity(kws, tmp_path, capfd, range(MUTANTS)), MUTANTS)


@pytest.mark.parametrize("target, code", [("rpi4", 1), ("nrf52840", 0)])
def test_an_xnnpack_refusal_is_the_same_verdict_in_both(kws, tmp_path, capfd, target, code):
    """The issue's case: XNNPACK refuses a zero point at allocate. rpi4 (XNNPACK ships) fails
    naming it; nrf52840 passes with a note; the CLI and the plugin agree, with no traceback."""
    from conftest import with_zero_point

    path = tmp_path / "bias_zero_point.tflite"
    path.write_bytes(with_zero_point(kws, "CONV_2D", 2, 5))
    exit_code, out, err = _cli(path, target, capfd)
    assert TRACEBACK not in out + err and exit_code == code, out + err
    unavailable = "LiteRT default kernels (XNNPACK) unavailable for this model: refused at allocate: " \
                  "unsupported zero-point value (5)"
    if code == 1:
        assert f"FAIL: {unavailable}" in out
        with pytest.raises(pytest.fail.Exception, match=r"on rpi4:\n  - " + re.escape(unavailable)):
            EdgeCheck(target)(path)
    else:
        assert out.rstrip().endswith("PASS")
        result = EdgeCheck(target)(path)
        assert result["passed"] and result["notes"][0].startswith(unavailable)
        assert result["runtimes"]["default"]["available"] is False


def test_the_parity_check_fails_on_a_disagreement(kws, tmp_path, capfd, monkeypatch):
    """Negative control: a CLI that passes what the plugin refuses, or prints a traceback and
    exits 70, fails the check."""
    i = next(i for i in range(MUTANTS) if _refused_at_load(mutant(kws, i)))
    monkeypatch.setattr(cli, "main", lambda argv: 0)
    with pytest.raises(AssertionError, match=rf"mutant {i} on \w+: CLI exit 0, plugin .*cannot run on"):
        run_parity(kws, tmp_path, capfd, [i])

    def crashing(argv):
        print("Traceback (most recent call last):\n  ...\nRuntimeError: boom", file=sys.stderr)
        return 70

    monkeypatch.setattr(cli, "main", crashing)
    with pytest.raises(AssertionError, match="CLI exit 70"):
        run_parity(kws, tmp_path, capfd, [i])


def _refused_at_load(data):
    try:
        load_tflite(data)
    except EdgezooError:
        return True
    return False


def test_the_mutants_are_what_they_claim(kws):
    """Every mutant differs from KWS in 1-3 bytes, one bit each; the even ones in the first 8 KiB."""
    for i in range(MUTANTS):
        data = mutant(kws, i)
        changed = np.flatnonzero(np.frombuffer(data, np.uint8) != np.frombuffer(kws, np.uint8))
        assert len(data) == len(kws) and 1 <= len(changed) <= 3, i
        flipped = np.frombuffer(data, np.uint8)[changed] ^ np.frombuffer(kws, np.uint8)[changed]
        assert all(bin(int(b)).count("1") == 1 for b in flipped), i
        if i % 2 == 0:
            assert changed.max() < HEAD, i
    assert mutant(kws, 3) == mutant(kws, 3) and mutant(kws, 3) != mutant(kws, 5)
