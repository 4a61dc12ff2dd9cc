"""Checkpoints on the command line: ``edgezoo port`` writes a .keras file that remembers the
checkpoint, ``edgezoo convert CHECKPOINT`` reads one directly; bad checkpoints end with one line
and nothing written; a trained checkpoint converts for a microcontroller and for a Linux board and
passes the agreement gate."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from cli_fixtures import TRACEBACK, edgezoo
from conftest import SHARED

TIMM_VIT = SHARED / "reference-checkpoints" / "timm" / "vit"
# timm's pretrained_cfg for a model trained on [0, 1] grey images without normalization.
UNIT_RANGE_CFG = {"mean": [0.0], "std": [1.0], "input_size": [1, 16, 16],
                  "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"}


@pytest.fixture(scope="module", autouse=True)
def reference_checkpoints():
    if not TIMM_VIT.is_dir():
        pytest.fail(f"reference checkpoints not found at {TIMM_VIT}; set EDGEZOO_SHARED")


def _main(capsys, *args):
    """The CLI in-process: (exit code, stdout, stderr)."""
    from edgezoo.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _copy(tmp_path, tensors=None, config=None, name="ckpt"):
    """A copy of the timm reference ViT folder, with other tensors or config entries."""
    folder = tmp_path / name
    folder.mkdir()
    tensors = load_file(str(TIMM_VIT / "model.safetensors")) if tensors is None else tensors
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((TIMM_VIT / "config.json").read_text())
    for key, value in (config or {}).items():
        if isinstance(value, dict):
            cfg[key] = {**cfg.get(key, {}), **value}
        else:
            cfg[key] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_port_writes_a_keras_file_that_restores_the_preprocessing(tmp_path, capsys):
    from edgezoo.convert import load_keras_model, model_contract
    from edgezoo.zoo import from_checkpoint, read_preprocessing

    out = tmp_path / "models" / "vit.keras"
    code, stdout, err = _main(capsys, "port", TIMM_VIT, "--out", out)
    assert code == 0, err
    assert stdout.strip() == (f"wrote {out}: timm vit_tiny_patch16_224, 114,250 params, "
                              "preprocessing mean 0.5 std 0.5, 32x32, bicubic, crop 0.9 center, "
                              "inputs in [-1, 1]")
    assert sorted(p.name for p in out.parent.iterdir()) == ["vit.keras"]  # no temporary left
    loaded = load_keras_model(out)
    assert loaded.preprocessing == read_preprocessing(TIMM_VIT)
    assert loaded.checkpoint_source["architecture"] == "vit_tiny_patch16_224"
    assert loaded.checkpoint_source["hub"] == "timm"
    assert loaded.checkpoint_source["file"] == "vit/model.safetensors"
    contract = model_contract(out)
    assert (contract.low, contract.high) == (-1.0, 1.0)
    x = np.load(TIMM_VIT / "reference_io.npz")["pixel_values_nchw"].transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(loaded(x).numpy(), from_checkpoint(TIMM_VIT)(x).numpy())


def test_port_of_a_safetensors_file_with_unknown_preprocessing(tmp_path, capsys):
    """No pretrained_cfg: preprocessing "unknown" is recorded, and no input range is made up."""
    from edgezoo.convert import load_keras_model, model_contract

    folder = _copy(tmp_path, config={"pretrained_cfg": None})
    out = tmp_path / "vit.keras"
    code, stdout, err = _main(capsys, "port", folder / "model.safetensors", "--out", out)
    assert code == 0, err
    assert "preprocessing unknown" in stdout and "inputs in" not in stdout
    loaded = load_keras_model(out)
    assert loaded.preprocessing == "unknown"
    assert loaded.checkpoint_source["file"] == "model.safetensors"
    assert model_contract(out) is None


def test_a_failing_save_leaves_nothing(tmp_path, capsys, monkeypatch):
    import tf_keras as keras

    def broken_save(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    code, _, err = _main(capsys, "port", TIMM_VIT, "--out", tmp_path / "vit.keras")
    assert code == 70 and "disk full" in err
    assert list(tmp_path.iterdir()) == []


def _pickle_bomb(path):
    """A pickle that cannot be unpickled (it names a module that does not exist): opening it
    with pickle would fail loudly instead of giving the refusal message."""
    path.write_bytes(b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x19"
                     b"edgezoo_never_unpickled.x\x94\x93\x94.")
    return path


BAD_CHECKPOINTS = {
    "unsupported architecture": (lambda tmp: _copy(tmp, config={"architecture": "vit_giant_p14"}),
                                 "timm architecture 'vit_giant_p14' is not supported; supported: "
                                 "timm: "),
    "missing tensor": (lambda tmp: _copy(tmp, tensors={
        k: v for k, v in load_file(str(TIMM_VIT / "model.safetensors")).items()
        if k != "blocks.1.attn.qkv.bias"}), "missing tensors: blocks.1.attn.qkv.bias"),
    "leftover tensor": (lambda tmp: _copy(tmp, tensors={
        **load_file(str(TIMM_VIT / "model.safetensors")),
        "blocks.0.ls1.gamma": np.ones(64, np.float32)}),
        "unexpected tensors (not in the mapping): blocks.0.ls1.gamma"),
    "wrong shape": (lambda tmp: _copy(tmp, tensors={
        **load_file(str(TIMM_VIT / "model.safetensors")),
        "head.weight": np.zeros((7, 64), np.float32)}),
        "tensor head.weight has shape (7, 64), the model expects (10, 64)"),
    "truncated file": (lambda tmp: _truncated(tmp), "is not a readable safetensors file"),
    "pickle file": (lambda tmp: _pickle_bomb(tmp / "pytorch_model.bin"),
                    "is a PyTorch pickle file; edgezoo does not open pickles"),
    "folder of pickles": (lambda tmp: _pickle_folder(tmp),
                          "pytorch_model.bin is a PyTorch pickle file"),
    "absent .pth": (lambda tmp: tmp / "weights.pth", "from safetensors.torch import save_file"),
    "unbuildable config": (lambda tmp: _copy(tmp, config={"model_args": {"global_pool": "avg"}}),
                           "global_pool='avg' is not supported by the zoo ViT"),
    "no config": (lambda tmp: _no_config(tmp), "no config.json with a timm 'architecture'"),
}


def _truncated(tmp):
    folder = _copy(tmp)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut inside the JSON header
    return folder


def _pickle_folder(tmp):
    folder = tmp / "hub"
    folder.mkdir()
    (folder / "config.json").write_text((TIMM_VIT / "config.json").read_text())
    _pickle_bomb(folder / "pytorch_model.bin")
    return folder


def _no_config(tmp):
    folder = _copy(tmp)
    (folder / "config.json").unlink()
    return folder


@pytest.mark.parametrize("command", ["port", "convert"])
@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, command, case):
    make, message = BAD_CHECKPOINTS[case]
    source = make(tmp_path)
    before = _files(tmp_path)
    out = tmp_path / ("o.keras" if command == "port" else "o")
    extra = ["--calib", "digits", "--target", "nrf52840"] if command == "convert" else []
    code, stdout, err = _main(capsys, command, source, *extra, "--out", out)
    assert code == 2, err
    assert message in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"edgezoo {command}: error: "), err
    assert TRACEBACK not in err and stdout == ""
    assert not out.exists()
    sets = tmp_path / ".o.sets"  # convert's output set: only its lock, no set
    assert not sets.exists() or [p.name for p in sets.iterdir()] == ["lock"]
    assert _files(tmp_path) == before  # the checkpoint untouched, no temporary left


def _files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and ".o.sets" not in p.parts}


def test_a_pickle_in_a_real_process_is_one_line(tmp_path):
    """As a user runs it: stderr holds the refusal and nothing else (no library log lines)."""
    source = _pickle_folder(tmp_path)
    code, stdout, err = edgezoo("port", source, "--out", tmp_path / "o.keras")
    assert code == 2 and stdout == ""
    assert err.splitlines() == [f"edgezoo port: error: {source / 'pytorch_model.bin'} is a "
                                f"PyTorch pickle file; edgezoo does not open pickles (loading "
                                f"one runs code from the file). Convert it to safetensors where "
                                f"PyTorch is installed and the file is trusted: python -c "
                                f"\"import torch; from safetensors.torch import save_file; "
                                f"save_file(torch.load('pytorch_model.bin', map_location='cpu', "
                                f"weights_only=True), 'model.safetensors')\", then pass the "
                                f".safetensors file (or its folder, with config.json)."], err
    assert not (tmp_path / "o.keras").exists()


@pytest.mark.parametrize("out, message", [
    ("{tmp}", "is a folder; give the .keras file to write"),
    ("{tmp}/model.h5", "does not end in .keras"),
    ("{tmp}/afile/model.keras", "is a file; give a folder"),
])
def test_port_refuses_an_unusable_out(tmp_path, capsys, out, message):
    (tmp_path / "afile").write_text("not a folder")
    code, _, err = _main(capsys, "port", TIMM_VIT, "--out", out.format(tmp=tmp_path))
    assert code == 2 and message in err and TRACEBACK not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("preprocessing, expected", [
    ({"mean": [0.5] * 3, "std": [0.5] * 3}, (-1.0, 1.0)),
    ({"mean": [0.0], "std": [1.0]}, (0.0, 1.0)),
    ({"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}, None),  # per channel
    ({"do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": False}, (0.0, 1.0)),
    ({"do_rescale": False, "do_normalize": False}, (0.0, 255.0)),
    ({"interpolation": "bicubic"}, None),
    ("unknown", None),
])
def test_input_range_from_preprocessing(preprocessing, expected):
    from edgezoo.zoo.record import input_range

    assert input_range(preprocessing) == expected


def test_per_channel_normalization_needs_an_input_range(tmp_path, capsys):
    """ImageNet's mean and std differ per channel: no one range, so a data set is refused
    until the user gives one."""
    folder = _copy(tmp_path, config={"pretrained_cfg": {"mean": [0.485, 0.456, 0.406],
                                                        "std": [0.229, 0.224, 0.225]}})
    code, _, err = _main(capsys, "convert", folder, "--calib", "digits", "--out", tmp_path / "o")
    assert code == 2 and "records no input range" in err and "--input-range" in err, err
    assert not (tmp_path / "o").exists()


def test_convert_reads_a_checkpoint_and_reports_it(tmp_path, capsys):
    """The reference checkpoint (random weights) straight into convert for a LiteRT board; its
    preprocessing gives the input range, and the report records it and the source."""
    folder = _copy(tmp_path, config={"pretrained_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}})
    code, _, err = _main(capsys, "convert", folder, "--quantize", "none", "--out", tmp_path / "o")
    assert code in (0, 1), err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["preprocessing"]["mean"] == [0.5] * 3
    assert report["checkpoint"]["architecture"] == "vit_tiny_patch16_224"
    assert report["checkpoint"]["file"] == "ckpt/model.safetensors"
    assert report["input_contract"]["range"] == [-1.0, 1.0]
    page = (tmp_path / "o" / "report.md").read_text()
    assert "| checkpoint | hub timm; architecture vit_tiny_patch16_224; file ckpt/" in page
    assert "| preprocessing | mean [0.5, 0.5, 0.5]; std [0.5, 0.5, 0.5]" in page


# --- the must-show path: a trained checkpoint, ported and converted for two boards -------------

EPOCHS = 10  # 94 % test accuracy on digits; about 20 s on 2 idle cores

@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A zoo ViT of vit_micro's size (16x16 grey, 4x4 patches, 4 blocks of width 64), trained a
    few epochs on digits and written in timm's layout, with a pretrained_cfg saying its inputs
    are images in [0, 1]: a checkpoint whose float outputs tell digits apart."""
    from edgezoo.zoo import create_model, registry_contract, to_checkpoint
    from edgezoo.zoo.data.sources import load_for_model
    from edgezoo.zoo.training import deterministic, fit_classifier

    deterministic(0)
    model = create_model("vit_micro")
    data = load_for_model("digits", model.input_shape[1:], registry_contract("vit_micro"))
    fit_classifier(model, data, epochs=EPOCHS, progress=False)
    folder = to_checkpoint(model, tmp_path_factory.mktemp("trained") / "vit_digits")
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"] = UNIT_RANGE_CFG
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _check_agreement(report):
    assert {k: report["preprocessing"][k] for k in UNIT_RANGE_CFG} == UNIT_RANGE_CFG
    assert report["checkpoint"]["architecture"] == "vit_tiny_patch16_224"
    assert report["input_contract"]["range"] == [0.0, 1.0]
    agreement = report["agreement"]
    assert agreement["informative"], agreement["reasons"]
    assert agreement["value"] >= 0.98 and "test split" in agreement["inputs"]


@pytest.mark.slow  # about 55 s with its training; a checkpoint through convert by default:
# test_convert_reads_a_checkpoint_and_reports_it
def test_trained_checkpoint_converts_for_nrf52840(trained_checkpoint, tmp_path, capsys):
    code, stdout, err = _main(capsys, "convert", trained_checkpoint, "--target", "nrf52840",
                              "--calib", "digits", "--out", tmp_path / "nrf")
    assert code == 0, stdout + err
    report = json.loads((tmp_path / "nrf" / "report.json").read_text())
    assert report["passed"], report["failures"]
    _check_agreement(report)
    assert report["fits"] is True and report["quantize"] == "int8"


@pytest.mark.slow  # about 85 s; the rpi4 form choice by default: test_cpu_form
def test_ported_checkpoint_converts_for_rpi4(trained_checkpoint, tmp_path, capsys):
    """Through ``edgezoo port`` first: the .keras file carries the preprocessing and the input
    range to convert. The int8 model meets the agreement gate in LiteRT's default kernels
    (what rpi4 runs), which agree with LiteRT's reference kernels on the class; their logits
    drift apart by more LSB than on random inputs (10 here), which is reported, not gated."""
    code, _, err = _main(capsys, "port", trained_checkpoint, "--out", tmp_path / "vit.keras")
    assert code == 0, err
    code, stdout, err = _main(capsys, "convert", tmp_path / "vit.keras", "--target", "rpi4",
                              "--cpu-form", "full_int8", "--calib", "digits",
                              "--out", tmp_path / "rpi4")
    report = json.loads((tmp_path / "rpi4" / "report.json").read_text())
    assert code == 0 and report["passed"], stdout + err
    assert report["cpu_form"]["chosen"] == "full_int8"
    assert report["checks"]["default_vs_reference_top1"]["value"] >= 0.99
    assert report["runtimes"]["default_vs_reference_max_lsb"] > 0
    _check_agreement(report)
    assert report["checks"]["agreement_top1"]["passed"] and report["fits"] is True
    assert report["input_contract"]["origin"].startswith("recorded in vit.keras")
    # by default the form is measured: on this trained ViT the dynamic-range form agrees on the
    # validation split and stays in the float graph's XNNPACK partitions; the test split judges it
    code, stdout, err = _main(capsys, "convert", tmp_path / "vit.keras", "--target", "rpi4",
                              "--calib", "digits", "--out", tmp_path / "auto")
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert code == 0 and report["passed"], stdout + err
    rows = report["cpu_form"]["candidates"]
    assert rows["dynamic_int8"]["agreement"] >= 0.99 and rows["full_int8"]["partitions"] > 3
    assert rows["dynamic_int8"]["partitions"] <= rows["float"]["partitions"] <= 3
    assert report["cpu_form"]["chosen"] in rows and report["agreement"]["value"] >= 0.98
    assert "## int8 form for this CPU" in (tmp_path / "auto" / "report.md").read_text()
