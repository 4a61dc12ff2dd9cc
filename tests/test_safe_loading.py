"""No loader runs code from a model file by default (edgezoo.edge.safe_load).

Each unsafe file here writes a marker file when its code runs: a Lambda layer in an .h5 and a
.keras, a .keras naming a module whose import writes it, a SavedModel whose graph calls
tf.io.write_file, and a .tflite with the Flex op WriteFile. Every CLI entry point that loads a
user's model (and the pytest plugin) must refuse each one with a single error line naming the
layer or op, exit code 2 and no marker; clean files still load, and --trust-model-code really
runs the code (the marker appears), so the test would see an execution.
"""
import json
import sys
import zipfile

import numpy as np
import pytest

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)
from edgezoo.cli import main
from edgezoo.edge import safe_load
from edgezoo.base.errors import ModelFileError, UnsafeModelError

PROBE = "edgezoo_safe_loading_probe"  # a module whose import writes a marker
LAMBDA_LAYER = "marker_lambda"


def _marker_lambda(path):
    """A Lambda function that writes ``path`` each time it runs (the path baked in as a default,
    so the marshalled bytecode needs no global)."""
    return lambda x, path=str(path): (open(path, "w").write("ran"), x)[1]


def _with_module(src, dst, module):
    """A copy of the .keras ``src`` whose model class comes from ``module``: Keras imports it
    (and takes its ``Functional``) when it loads the file."""
    with zipfile.ZipFile(src) as archive:
        parts = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(parts["config.json"])
    config["module"], config["registered_name"] = module, None
    parts["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every file the tests load, built once; the marker folder is empty when they start."""
    import tensorflow as tf
    import tf_keras as keras

    from edgezoo.converters.quantize import convert

    base = tmp_path_factory.mktemp("safe_loading")
    markers = base / "markers"
    markers.mkdir()
    f = {"base": base, "markers": markers}

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    dense = keras.layers.Dense(3, name="dense")
    clean = keras.Model(inp, dense(inp))
    f["clean_model"] = clean
    for kind, name in (("h5", "clean.h5"), ("keras", "clean.keras")):
        clean.save(base / name)
        f[f"clean_{kind}"] = base / name
    clean.save(base / "clean_sm", save_format="tf")
    f["clean_sm"] = base / "clean_sm"

    for kind, name, fmt in (("h5", "lambda.h5", None), ("keras", "lambda.keras", None),
                            ("sm", "lambda_sm", "tf")):
        # the clean model with an identity Lambda that writes a marker whenever it runs
        inp = keras.Input((4,))
        out = keras.layers.Lambda(_marker_lambda(markers / f"lambda_{kind}"), name=LAMBDA_LAYER)(
            dense(inp))
        keras.Model(inp, out).save(base / name, save_format=fmt)
        f[f"lambda_{kind}"] = base / name

    class FileWriter(keras.layers.Layer):
        """Writes a marker from inside the graph."""

        def call(self, x):
            tf.io.write_file(str(markers / "saved_model"), "ran")
            return x

    inp = keras.Input((4,))
    keras.Model(inp, FileWriter(name="file_writer")(dense(inp))).save(base / "writer_sm",
                                                                      save_format="tf")
    f["writer_sm"] = base / "writer_sm"

    probe_dir = base / "probe"
    probe_dir.mkdir()
    (probe_dir / f"{PROBE}.py").write_text(
        f"import pathlib\npathlib.Path({str(markers / 'module')!r}).write_text('imported')\n"
        "from tf_keras import Model as Functional  # noqa: F401  (what the config asks for)\n")
    f["probe_dir"] = probe_dir
    f["module_keras"] = _with_module(f["clean_keras"], base / "module.keras", PROBE)

    class Flex(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def run(self, x):
            tf.io.write_file(str(markers / "flex"), "ran")
            return x * 2.0

    module = Flex()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.run.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    f["flex_tflite"] = base / "flex.tflite"
    f["flex_tflite"].write_bytes(converter.convert())
    f["float_tflite"] = base / "float.tflite"
    f["float_tflite"].write_bytes(convert(clean, "none"))
    f["x"] = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    np.save(base / "x.npy", f["x"])
    f["x_npy"] = base / "x.npy"

    for marker in markers.iterdir():  # building the Lambda models ran their functions
        marker.unlink()
    return f


@pytest.fixture(autouse=True)
def probe_importable(files, monkeypatch):
    """The probe module can be imported (a broken check would import it) and is not cached."""
    monkeypatch.syspath_prepend(str(files["probe_dir"]))
    sys.modules.pop(PROBE, None)
    yield
    sys.modules.pop(PROBE, None)
    for marker in files["markers"].iterdir():
        marker.unlink()


def _written(files):
    return sorted(p.name for p in files["markers"].iterdir())


def _assert_refused(capsys, files, argv, name):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("edgezoo ") and ": error: " in lines[0], err
    assert name in lines[0]
    assert "Traceback" not in out + err
    assert _written(files) == [] and PROBE not in sys.modules
    return lines[0]


UNSAFE_KERAS = [("lambda_h5", LAMBDA_LAYER), ("lambda_keras", LAMBDA_LAYER),
                ("lambda_sm", LAMBDA_LAYER), ("writer_sm", "WriteFile"), ("module_keras", PROBE)]


@pytest.mark.parametrize("key, name", UNSAFE_KERAS)
def test_convert_refuses_unsafe_model_files(capsys, files, tmp_path, key, name):
    line = _assert_refused(capsys, files, ["convert", files[key], "--target", "rpi4", "--quantize",
                                           "none", "--out", tmp_path / "out"], name)
    assert line.startswith("edgezoo convert: error: ") and "--trust-model-code" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key, name", UNSAFE_KERAS)
def test_convert_refuses_unsafe_teachers(capsys, files, tmp_path, key, name):
    _assert_refused(capsys, files, ["convert", files["clean_h5"], "--distill", files[key],
                                    "--target", "rpi4", "--quantize", "none",
                                    "--out", tmp_path / "out"], name)


@pytest.mark.parametrize("key, name", UNSAFE_KERAS + [("flex_tflite", "WriteFile")])
def test_test_refuses_unsafe_float_models(capsys, files, key, name):
    line = _assert_refused(capsys, files, ["test", files["float_tflite"], "--target", "rpi4",
                                           "--float", files[key], "--data", files["x_npy"]], name)
    assert line.startswith("edgezoo test: error: ")


def test_test_refuses_flex_tflite(capsys, files):
    line = _assert_refused(capsys, files, ["test", files["flex_tflite"], "--target", "rpi4"],
                           "WriteFile")
    assert "Flex" in line and "--trust-model-code" not in line
    # --trust-model-code lifts the Keras checks only, never the .tflite ones
    _assert_refused(capsys, files, ["test", files["flex_tflite"], "--target", "rpi4",
                                    "--trust-model-code"], "WriteFile")


@pytest.mark.parametrize("key, name", [("lambda_keras", LAMBDA_LAYER), ("module_keras", PROBE)])
def test_quantum_export_refuses_unsafe_files(capsys, files, tmp_path, key, name):
    pytest.importorskip("tensorflow_quantum")
    line = _assert_refused(capsys, files, ["quantum", "export", files[key],
                                           "--out", tmp_path / "out"], name)
    assert line.startswith("edgezoo quantum export: error: ") and "trust_model_code=True" in line


@pytest.mark.parametrize("as_bytes", [False, True])
def test_pytest_plugin_refuses_flex_tflite(files, as_bytes):
    from edgezoo.edge.pytest_plugin import EdgeCheck

    source = files["flex_tflite"].read_bytes() if as_bytes else str(files["flex_tflite"])
    with pytest.raises(pytest.fail.Exception, match="WriteFile"):
        EdgeCheck("rpi4")(source)
    assert _written(files) == []


# --- positive controls -----------------------------------------------------------------------

@pytest.mark.parametrize("key", ["clean_h5", "clean_keras", "clean_sm"])
def test_clean_files_load_and_predict_like_the_model(files, key):
    from edgezoo.convert import load_keras_model

    loaded = load_keras_model(files[key])
    np.testing.assert_allclose(loaded.predict(files["x"], verbose=0),
                               files["clean_model"].predict(files["x"], verbose=0), rtol=1e-6)


def test_clean_file_converts_through_the_cli(capsys, files, tmp_path):
    code = main(["convert", str(files["clean_keras"]), "--target", "rpi4", "--quantize", "none",
                 "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    assert (tmp_path / "out" / "model.tflite").is_file() and "PASS" in out


@pytest.mark.parametrize("key", ["lambda_h5", "lambda_keras"])
def test_trusted_lambda_files_load_and_run_their_code(files, key):
    from edgezoo.convert import load_keras_model

    loaded = load_keras_model(files[key], trust_model_code=True)
    assert _written(files) == [key]  # the test can see code from the file run
    np.testing.assert_allclose(loaded.predict(files["x"], verbose=0),
                               files["clean_model"].predict(files["x"], verbose=0), rtol=1e-6)


def test_trust_model_code_through_the_cli_runs_the_code(capsys, files):
    code = main(["test", str(files["float_tflite"]), "--target", "rpi4", "--float",
                 str(files["lambda_h5"]), "--data", str(files["x_npy"]), "--trust-model-code"])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    assert _written(files) == ["lambda_h5"]


def test_trusted_module_is_imported(files):
    from edgezoo.convert import load_keras_model

    load_keras_model(files["module_keras"], trust_model_code=True)
    assert _written(files) == ["module"] and PROBE in sys.modules


# --- the checks themselves -------------------------------------------------------------------

def _layer(cls, config, module="keras.layers", **extra):
    return {"module": module, "class_name": cls, "config": {"name": "probe", **config},
            "registered_name": None, **extra}


@pytest.mark.parametrize("obj, reason", [
    (_layer("Dense", {"activation": {"class_name": "__lambda__", "config": {"value": "..."}}}),
     "marshalled bytecode"),
    (_layer("Dense", {"activation": {"module": "builtins", "class_name": "function",
                                     "config": "exec", "registered_name": "function"}}),
     "'exec'"),
    (_layer("Dense", {"activation": {"module": "os", "class_name": "function",
                                     "config": "system", "registered_name": "function"}}),
     "'system'"),
    (_layer("TFOpLambda", {"function": "io.write_file"}), "tf.io.write_file, which reads and "
                                                          "writes files"),
    (_layer("TFOpLambda", {"function": "compat.v1.io.write_file"}), "writes files"),
    (_layer("TFOpLambda", {"function": "raw_ops.WriteFile"}), "every TensorFlow op"),
    (_layer("TFOpLambda", {"function": "py_function"}), "runs Python"),
    (_layer("ClassMethod", {"cls_symbol": "io.gfile.GFile", "method_name": "write"}), "files"),
    (_layer("StringLookup", {"vocabulary": "/etc/passwd"}), "names a file ('/etc/passwd')"),
    (_layer("Dense", {}, module="evil.layers"), "module 'evil.layers'"),
    (_layer("Custom", {"function": ["AAAA", None, None], "function_type": "lambda"},
            module="edgezoo.zoo.layers"), "marshalled bytecode"),
])
def test_code_carrying_configs_are_named(obj, reason):
    model = {"module": "keras", "class_name": "Functional",
             "config": {"name": "m", "layers": [obj]}}
    problems = safe_load.config_problems(model)
    assert len(problems) == 1 and problems[0].startswith("layer 'probe'") and reason in problems[0]


@pytest.mark.parametrize("obj", [
    _layer("Dense", {"activation": {"module": "builtins", "class_name": "function",
                                    "config": "gelu", "registered_name": "function"}}),
    _layer("Dense", {"activation": {"module": "builtins", "class_name": "function",
                                    "config": "edgezoo>micro_gelu",
                                    "registered_name": "function"}}),
    _layer("TFOpLambda", {"function": "nn.gelu"}, module="tf_keras.src.layers.core.tf_op_layer"),
    _layer("TFOpLambda", {"function": "math.multiply"}),
    _layer("MultiHeadSelfAttention", {}, module="edgezoo.zoo.layers.attention"),
    _layer("StringLookup", {"vocabulary": ["a", "b"]}),
    _layer("Anything", {}, module="elsewhere", registered_name="edgezoo>PointwiseDense"),
])
def test_ordinary_configs_pass(obj):
    import edgezoo.converters  # noqa: F401  (registers micro_gelu, PointwiseDense)

    model = {"class_name": "Functional", "config": {"layers": [obj]}}
    assert safe_load.config_problems(model) == []


def test_plain_tf_module_saved_models_are_refused(files, tmp_path):
    import tensorflow as tf

    from edgezoo.convert import load_keras_model

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            tf.io.write_file(str(files["markers"] / "module_sm"), "ran")
            return x

    class Plain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            return x * 2.0

    tf.saved_model.save(Writer(), str(tmp_path / "writer"))
    tf.saved_model.save(Plain(), str(tmp_path / "plain"))
    with pytest.raises(UnsafeModelError, match=r"function '__inference___call___\d+' runs op "
                                               r"WriteFile"):
        load_keras_model(tmp_path / "writer")
    with pytest.raises(ModelFileError, match="a TensorFlow SavedModel but not a Keras one"):
        load_keras_model(tmp_path / "plain")
    with pytest.raises(ModelFileError, match="a TensorFlow SavedModel but not a Keras model"):
        load_keras_model(tmp_path / "plain", trust_model_code=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="is a folder but not a SavedModel"):
        load_keras_model(tmp_path / "empty")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "saved_model.pb").write_bytes(b"\xff" * 64)
    with pytest.raises(ModelFileError, match="is not a readable SavedModel"):
        load_keras_model(tmp_path / "garbage")
    assert _written(files) == []


def test_saver_functions_alone_may_hold_checkpoint_ops(files):
    """A Keras SavedModel's saver functions (named by its saver_def) hold SaveV2/RestoreV2, and
    pass; the same ops reached from anything else do not."""
    proto = safe_load.read_saved_model(files["clean_sm"])
    meta = proto.meta_graphs[0]
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    savers = sorted(n for n in library if n.startswith(("__inference__traced_save_",
                                                        "__inference__traced_restore_")))
    assert len(savers) == 2 and safe_load.saved_model_op_problems(proto) == []
    call = next(n for n in meta.graph_def.node if n.name == "StatefulPartitionedCall")
    call.attr["f"].func.name = savers[0]  # the serving signature now calls the restorer
    problems = safe_load.saved_model_op_problems(proto)
    assert problems and all("RestoreV2" in p for p in problems)


def test_denied_ops_are_real_tensorflow_ops():
    import tensorflow as tf

    assert [op for op in safe_load.DENIED_OPS if not hasattr(tf.raw_ops, op)] == []
    assert safe_load.CHECKPOINT_OPS <= safe_load.DENIED_OPS.keys()


def _with_opcode(data, custom_code):
    """``data`` with one more (unused) custom operator code."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = custom_code
    model.operatorCodes.append(code)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_only_micro_custom_ops_are_allowed(files, monkeypatch):
    from edgezoo.edge import loader
    from edgezoo.edge.runners.micro import MICRO_CUSTOM_OPS

    assert {f"CUSTOM:{c}" for c in safe_load.ALLOWED_CUSTOM_OPS} >= MICRO_CUSTOM_OPS.keys()
    data = files["float_tflite"].read_bytes()
    safe_load.check_tflite_ops(_with_opcode(data, "TFLM_DECODE"), verified=True)

    def no_litert(*args):  # the refusals below must come before LiteRT sees the bytes
        raise AssertionError("LiteRT's verifier was reached")

    monkeypatch.setattr(loader, "verify_flatbuffer", no_litert)
    with pytest.raises(UnsafeModelError, match=r"custom op\(s\) 'MyOp', which need native code"):
        loader.load_tflite(_with_opcode(data, "MyOp"))
    with pytest.raises(UnsafeModelError, match=r"Flex, SELECT_TF_OPS\) op\(s\) ReadFile"):
        loader.load_tflite(_with_opcode(data, "FlexReadFile"))
    with pytest.raises(UnsafeModelError, match="WriteFile"):
        loader.load_tflite(files["flex_tflite"])
