"""The pytest plugin resolves a relative .tflite path, and the marker's relative ``profiles=``,
against the folder of the test file, not the directory pytest runs in."""
import json
import shutil
import textwrap

import pytest

pytest_plugins = ["pytester"]

MINE = dict(description="a LiteRT board of the user's", core="cortex-a72", clock_mhz=1500,
            flash_bytes=2**30, ram_bytes=2**30, flash_reserve_bytes=0, ram_margin_bytes=0,
            runtime="litert")


@pytest.fixture
def suite(pytester, mlperf_dir):
    """suite/ (a test folder) holding data/kws.tflite and boards.json; pytest runs from its
    parent, where data/kws.tflite is a decoy that is no model at all."""
    folder = pytester.mkdir("suite")
    (folder / "data").mkdir()
    shutil.copy(mlperf_dir / "kws_ref_model.tflite", folder / "data" / "kws.tflite")
    (folder / "boards.json").write_text(json.dumps({"mine": MINE}))
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "kws.tflite").write_bytes(b"not a model")
    return folder


def test_relative_paths_resolve_against_the_test_files_folder(pytester, suite):
    (suite / "test_relative.py").write_text(textwrap.dedent("""
        import os
        from pathlib import Path

        import pytest

        def test_runs_elsewhere():
            assert Path.cwd() != Path(__file__).parent

        @pytest.mark.edgezoo_device("rpi4")
        def test_relative_model(edge_check):
            assert edge_check("data/kws.tflite")["tflite_bytes"] == 53936

        @pytest.mark.edgezoo_device("mine", profiles="boards.json")
        def test_relative_profiles(edge_check):
            assert edge_check(Path("data") / "kws.tflite")["device"] == "mine"

        @pytest.mark.edgezoo_device("rpi4")
        def test_wrong_relative_model(edge_check):
            edge_check("kws.tflite")  # it is in data/

        @pytest.mark.edgezoo_device("mine", profiles="missing.json")
        def test_wrong_relative_profiles(edge_check):
            edge_check("data/kws.tflite")
    """))
    result = pytester.runpytest("suite", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        f"*kws.tflite: no such file: {suite / 'kws.tflite'} (a relative path is resolved against "
        f"{suite})*",
        f"*the profiles file {suite / 'missing.json'} does not exist (a relative path is resolved "
        f"against {suite})*",
    ])
    text = result.stdout.str()
    assert "Traceback" not in text and "not a TFLite model" not in text  # the decoy was never read
