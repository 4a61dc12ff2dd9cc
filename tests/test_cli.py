"""The CLI is a thin layer: exit codes and one-line errors, checked in a real process."""
import json

import numpy as np
import pytest
from cli_fixtures import edgezoo_process


@pytest.mark.parametrize("args, message", [
    (["convert", "vit_b61", "--out", "{tmp}/o"], "unknown model 'vit_b61'. Closest: vit_b16"),
    (["convert", "vit_micro", "--target", "arduino", "--out", "{tmp}/o"], "unknown target 'arduino'"),
    (["convert", "vit_micro", "--quantize", "float16", "--target", "nrf52840", "--out", "{tmp}/o"],
     "--quantize float16 cannot run on a microcontroller target"),
    (["convert", "vit_micro", "--quantize", "dynamic", "--target", "nrf52840", "--out", "{tmp}/o"],
     "--quantize dynamic cannot run on a microcontroller target"),
    (["convert", "vit_micro", "--input-shape", "18,16,1", "--calib", "digits", "--out", "{tmp}/o"],
     "cannot be cut into 4x4 patches"),
    (["convert", "{tmp}/missing.keras", "--out", "{tmp}/o"], "no such model file"),
    (["convert", "vit_micro", "--prune", "0.3", "--prune-2of4", "--calib", "digits", "--out", "{tmp}/o"],
     "2:4 structured sparsity is exactly 50 % but prune=0.3"),
    (["convert", "vit_micro", "--recipe", "{tmp}/recipe.json", "--calib", "digits", "--out", "{tmp}/o"],
     "unknown recipe keys ['clusters']"),
    (["convert", "vit_micro", "--calib", "{tmp}/wrong.npy", "--out", "{tmp}/o"],
     "has shape (4, 8, 8, 1); the model takes (N, 16, 16, 1)"),
    (["convert", "vit_micro", "--target", "nrf52840", "--out", "{tmp}/o"],
     "--quantize int8 needs calibration data"),
    (["convert", "{mlperf}/pretrainedResnet.h5", "--quantize", "int8", "--target", "stm32l4r5",
      "--out", "{tmp}/o"], "--quantize int8 needs calibration data"),
    (["convert", "{mlperf}/pretrainedResnet.h5", "--calib", "natural_patches", "--out", "{tmp}/o"],
     "records no input range, so the natural_patches data set cannot be brought into it: pass "
     "--input-range LOW,HIGH"),
    (["convert", "vit_micro", "--calib", "{tmp}/nan.npy", "--out", "{tmp}/o"],
     "holds 4096 NaN or infinite value(s)"),
    (["convert", "vit_micro", "--calib", "{tmp}/huge.npy", "--out", "{tmp}/o"],
     "holds values up to 1e+20; beyond 1e+06 quantization scales overflow"),
    (["convert", "vit_micro", "--calib", "{tmp}/empty.npy", "--out", "{tmp}/o"], "is empty"),
    (["convert", "vit_micro", "--calib", "{tmp}/strings.npy", "--out", "{tmp}/o"],
     "has dtype <U1; samples must be numbers"),
    (["convert", "vit_micro", "--calib", "{tmp}/range.npy", "--out", "{tmp}/o"],
     "has values in [0, 255] but the model takes [0, 1] (registry entry vit_micro)"),
    (["convert", "vit_micro", "--calib", "digits", "--input-range", "1,0", "--out", "{tmp}/o"],
     "input range [1.0, 0.0] is not a range"),
    (["convert", "vit_micro", "--calib", "digits", "--out", "{tmp}/afile"], "is a file"),
    (["test", "{mlperf}/kws_ref_model.tflite", "--target", "nrf52840", "--data", "digits"],
     "records no input range, so the digits data set cannot be brought into it"),
    (["test", "{mlperf}/kws_ref_model.tflite", "--target", "nrf52840", "--data", "digits",
      "--input-range=-123,26"], "digits are 8x8 grey images and are resized only to square"),
    (["test", "{mlperf}/kws_ref_model.tflite", "--target", "nrf52840", "--data", "{tmp}/kwsnan.npy"],
     "holds 490 NaN or infinite value(s)"),
    (["test", "{mlperf}/kws_ref_model.tflite", "--target", "nrf52840", "--float",
      "{mlperf}/kws_ref_model_float32.tflite"], "comparing with the float model needs data"),
    (["convert", "vit_micro", "--cluster", "8", "--calib", "{tmp}/wrong16.npy", "--out", "{tmp}/o"],
     "the data has no labels: add --distill TEACHER"),
    (["test", "{tmp}/junk.tflite", "--target", "nrf52840"], "is not a TFLite model"),
    (["test", "{tmp}/cut.tflite", "--target", "nrf52840"], "failed LiteRT's flatbuffer verification"),
    (["test", "{mlperf}/kws_ref_model_float32.tflite", "--target", "nrf52840"],
     "TFLite Micro cannot run this model:\n  - CONV_2D (FLOAT32/INT8) from layer 'activation': hybrid op"),
    (["train", "vit_micro", "--epochs", "0", "--out", "{tmp}/o"], "--epochs must be 1 or more, got 0"),
    (["train", "vit_micro", "--seed", "-1", "--out", "{tmp}/o"], "--seed must be 0 or more, got -1"),
    (["train", "vit_micro", "--out", "{tmp}/afile"], "is a file"),
    (["list", "--task", "foo"], "unknown task 'foo'; known: classification"),
    (["convert", "vit_micro", "--input-shape", "100000,100000,1", "--out", "{tmp}/o"],
     "has 10,000,000,000 values a sample"),
    (["convert", "vit_micro", "--recipe", "{tmp}", "--calib", "digits", "--out", "{tmp}/o"],
     "is not a file"),
    (["convert", "vit_micro", "--recipe", "{tmp}/latin1.json", "--calib", "digits", "--out",
      "{tmp}/o"], "is not UTF-8 text"),
    (["convert", "vit_micro", "--calib", "{tmp}/labels.npz", "--out", "{tmp}/o"],
     "range over [0, 12]; the model has 10 classes"),
    (["test", "{mlperf}/kws_ref_model.tflite", "--target", "b", "--profiles", "{tmp}/nan.json"],
     "is not valid JSON: NaN is not a JSON number"),
])
def test_bad_input_exits_2_with_one_clear_line(tmp_path, mlperf_dir, capsys, args, message):
    """In-process through the CLI's main(argv): the same code path, without 15 s of imports."""
    from edgezoo.cli import main

    (tmp_path / "junk.tflite").write_bytes(b"definitely not a model" * 4)
    (tmp_path / "recipe.json").write_text('{"prune": 0.5, "clusters": 8}')
    np.save(tmp_path / "wrong.npy", np.zeros((4, 8, 8, 1), np.float32))
    np.save(tmp_path / "wrong16.npy", np.random.default_rng(0).uniform(size=(64, 16, 16, 1)))
    (tmp_path / "cut.tflite").write_bytes((mlperf_dir / "kws_ref_model.tflite").read_bytes()[:5000])
    np.save(tmp_path / "nan.npy", np.full((16, 16, 16, 1), np.nan, np.float32))
    np.save(tmp_path / "huge.npy", np.full((16, 16, 16, 1), 1e20, np.float32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 16, 16, 1), np.float32))
    np.save(tmp_path / "strings.npy", np.full((4, 16, 16, 1), "a"))
    np.save(tmp_path / "range.npy", np.linspace(0, 255, 4 * 256, dtype=np.float32).reshape(4, 16, 16, 1))
    np.save(tmp_path / "kwsnan.npy", np.full((1, 49, 10, 1), np.nan, np.float32))
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "latin1.json").write_bytes(b'{"note": "caf\xe9"}')
    (tmp_path / "nan.json").write_text('{"b": {"clock_mhz": NaN}}')
    np.savez(tmp_path / "labels.npz", x=np.zeros((13, 16, 16, 1), np.float32), y=np.arange(13))
    code = main([a.replace("{tmp}", str(tmp_path)).replace("{mlperf}", str(mlperf_dir)) for a in args])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert message in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_help_is_plain_text_listing_targets_data_sets_and_tasks(capsys):
    from edgezoo.cli import main

    for argv in (["--help"], ["convert", "--help"], ["test", "--help"], ["list", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert "``" not in text and ":func:" not in text  # no reStructuredText
        assert "nrf52840 (tflite-micro)" in text and "rpi4 (litert)" in text
        assert "data sets: digits, natural_patches, natural_patch_grid" in text
        assert "tasks: classification" in text


def _main(capsys, *args):
    """The CLI in-process: (exit code, stdout, stderr)."""
    from edgezoo.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_test_command_on_a_real_model(mlperf_dir, capsys):
    code, out, err = _main(capsys, "test", mlperf_dir / "pretrainedResnet_quant.tflite",
                           "--target", "stm32l4r5", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["tflite_bytes"] == 98496 and report["arena"]["recorded_bytes"] == 55984
    assert report["arena_bytes"] >= report["arena"]["minimum_bytes"]
    assert report["fits"] is True and report["target"] == "stm32l4r5"
    assert report["checks"]["micro_vs_reference_per_op"]["passed"]
    assert report["timings"]["litert_ms"] > 0


def test_test_command_fails_when_the_model_does_not_fit(tmp_path, mlperf_dir, capsys):
    boards = tmp_path / "boards.json"
    boards.write_text(json.dumps({"tiny": dict(
        description="too small", core="cortex-m0plus", clock_mhz=48, flash_bytes=48 * 1024,
        ram_bytes=32 * 1024, flash_reserve_bytes=0, ram_margin_bytes=0, runtime="tflite-micro")}))
    code, out, err = _main(capsys, "test", mlperf_dir / "kws_ref_model.tflite", "--target", "tiny",
                           "--profiles", boards)
    assert code == 1, err
    assert "fits           False" in out
    assert "FAILED" in out.split("fits ")[-1] and "FAIL: does not fit tiny's flash" in out


def test_train_saves_a_model_that_records_its_input_range(tmp_path, capsys):
    """``edgezoo train`` (in-process, on a small labelled file): a progress bar, the validation
    accuracy, and a .keras file that records the registry's input range (the convert/test round
    trip runs on the demo's model, in test_demo.py)."""
    from edgezoo.cli import main
    from edgezoo.zoo.data.contract import read_from_keras_file

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", x=rng.uniform(0, 1, (60, 16, 16, 1)).astype(np.float32),
             y=np.arange(60) % 10)
    assert main(["train", "vit_micro", "--data", str(tmp_path / "small.npz"), "--epochs", "2",
                 "--out", str(tmp_path / "runs")]) == 0
    out, err = capsys.readouterr()
    assert "val accuracy" in out and "2/2" in err  # the progress bar
    contract = read_from_keras_file(tmp_path / "runs" / "vit_micro.keras")
    assert (contract.low, contract.high) == (0.0, 1.0)


@pytest.mark.slow  # about 100 s; same-seed bytes by default: test_demo, test_recipe
def test_convert_with_a_recipe_is_byte_identical(tmp_path, digits32):
    """Same recipe, model and data: the same .tflite and C array, and a report that says how
    (on 400 digits: a 60/20/20 split of the file, so fine-tuning and checks stay short)."""
    np.savez(tmp_path / "digits.npz", x=digits32.train.x[:400], y=digits32.train.y[:400])
    args = ["convert", "resnest_micro", "--prune", "0.5", "--prune-schedule", "constant",
            "--finetune-epochs", "1", "--target", "nrf52840", "--calib", tmp_path / "digits.npz"]
    procs = [edgezoo_process(*args, "--out", tmp_path / out) for out in ("a", "b")]  # side by side
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        codes.append(proc.returncode)
        assert proc.returncode in (0, 1), err
    for name in ("model.tflite", "model_data.cc", "model_data.h"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    # an untrained model pruned and fine-tuned for one epoch no longer agrees with its random
    # original (measured: 0.0, and the original calls every digit a 4): the report says so, and
    # so does the exit code
    assert not report["checks"]["agreement_top1"]["passed"] and codes == [1, 1]
    recipe = report["provenance"]["recipe"]
    assert recipe["prune"] == 0.5 and recipe["steps"] == ["prune", "quantize:int8"]
    assert report["provenance"]["seed"] == 0
    assert report["provenance"]["packages"]["tensorflow-model-optimization"] == "0.8.1"
    sparsity = report["weights"]["sparsity_by_layer"]
    pruned = [layer for layer, s in sparsity.items() if s > 0.4]
    assert len(pruned) >= 10 and all(abs(sparsity[layer] - 0.5) <= 0.02 for layer in pruned)
    assert report["fits"] is True and report["agreement"]["samples"] == 80
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()
    page = (tmp_path / "a" / "report.md").read_text()
    assert "Steps: `prune` → `quantize:int8`" in page and "| 50.00 % |" in page


def test_parser_choices_match_the_tables_and_import_no_tensorflow():
    """--task and --dense-form offer exactly the contracts and forms that exist, and building
    the parser (for --help) stays free of TensorFlow."""
    import subprocess
    import sys

    from edgezoo.cli.main import CPU_FORM_NAMES, DENSE_FORM_NAMES, TASK_NAMES
    from edgezoo.converters.cpu_forms import CPU_FORM_CHOICES
    from edgezoo.converters.dense_forms import DENSE_FORMS
    from edgezoo.zoo.tasks import TASKS

    assert set(TASK_NAMES) == set(TASKS) and set(DENSE_FORM_NAMES) == set(DENSE_FORMS)
    assert CPU_FORM_NAMES == CPU_FORM_CHOICES
    out = subprocess.run([sys.executable, "-c", "import sys; from edgezoo.cli import build_parser; "
                          "build_parser(); print('tensorflow' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
