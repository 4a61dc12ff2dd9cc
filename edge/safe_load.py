"""Model files are refused before anything loads them if loading or running them would run the
file's own code or touch files or the system.

Each check reads only the file's description, never running any of it: ``config.json`` in a
.keras zip, the ``model_config`` attribute of an .h5 file, ``saved_model.pb`` and the Keras
metadata of a SavedModel folder, and the operator codes of a .tflite. What is refused and why
is kept in the tables below. ``trust_model_code=True`` (CLI ``--trust-model-code``) skips the
checks on Keras model files, and only those, for a file the user trusts. Nothing gets past the
.tflite checks.
"""
import contextlib
import json
import zipfile
from pathlib import Path

from edgezoo.base.errors import ModelFileError, UnsafeModelError

# --- Keras model files (.keras, .h5, SavedModel metadata) -----------------------------------

# Module prefixes a .keras config may name for Keras to import: installed packages edgezoo trusts.
TRUSTED_MODULES = {
    "keras": "TF-Keras built-ins (tf_keras reads keras.* names as its own)",
    "tf_keras": "TF-Keras built-ins",
    "edgezoo": "edgezoo's own layers, losses and circuits, from the installed package",
}
# Serialized classes that carry Python code.
CODE_CLASSES = {
    "Lambda": "its Python function is stored in the file (as marshalled bytecode, or a name "
              "to look up) and would run when the model is loaded or called",
    "__lambda__": "it holds a Python lambda stored as marshalled bytecode, which would run when "
                  "the model is loaded or called",
}
# Config keys whose value "lambda" means marshalled bytecode (Lambda's function and output shape).
BYTECODE_KEYS = ("function_type", "output_shape_type")
# Layers that call a TensorFlow API symbol named in their config (the tf.* calls of a functional
# model): layer class -> the config field with the symbol.
TF_SYMBOL_FIELDS = {"TFOpLambda": "function", "SlicingOpLambda": "function",
                    "ClassMethod": "cls_symbol"}
# TensorFlow API namespaces and names such a layer must not call (after compat.v1/compat.v2).
DENIED_TF_SYMBOLS = {
    "io": "reads and writes files", "gfile": "reads and writes files",
    "read_file": "reads files", "write_file": "writes files", "matching_files": "lists files",
    "raw_ops": "reaches every TensorFlow op, file and system ones included",
    "py_function": "runs Python", "numpy_function": "runs Python", "py_func": "runs Python",
    "print": "can print to a file", "summary": "writes event files",
    "saved_model": "loads and saves models", "train": "reads and writes checkpoints",
    "data": "reads files and can run Python", "lookup": "its table initializers read files",
    "load_library": "loads native code", "load_op_library": "loads native code",
    "debugging": "can dump tensors to files", "experimental": "reaches unstable APIs",
    "distribute": "changes how and where the process runs",
    "config": "changes process-wide settings", "autograph": "converts and runs Python code",
    "tpu": "drives TPU systems", "profiler": "writes profiles to files",
    "sysconfig": "reads the installation", "test": "test utilities",
    "__internal__": "TensorFlow's internal API",
    "WholeFileReader": "reads files", "TextLineReader": "reads files",
    "TFRecordReader": "reads files", "FixedLengthRecordReader": "reads files",
    "LMDBReader": "reads files", "python_io": "reads and writes files",
    "resource_loader": "reads files", "Session": "runs graphs",
}
# Keras layers whose config may name a file that is read when the layer is built.
FILE_FIELDS = {"TextVectorization": "vocabulary", "StringLookup": "vocabulary",
               "IntegerLookup": "vocabulary"}
# Public Keras namespaces a serialized function may come from (looked up, never imported).
KERAS_FUNCTION_MODULES = ("activations", "losses", "metrics", "initializers", "regularizers",
                          "constraints")
MAX_CONFIG_BYTES = 64 * 2**20

# --- SavedModel graphs -----------------------------------------------------------------------

# Ops a SavedModel's graph must not hold: op -> what it does.
DENIED_OPS = {
    "ReadFile": "reads a file", "WriteFile": "writes a file", "MatchingFiles": "lists files",
    "ImmutableConst": "memory-maps a file", "RecordInput": "reads files",
    "WholeFileReader": "reads files", "WholeFileReaderV2": "reads files",
    "TextLineReader": "reads files", "TextLineReaderV2": "reads files",
    "FixedLengthRecordReader": "reads files", "FixedLengthRecordReaderV2": "reads files",
    "TFRecordReader": "reads files", "TFRecordReaderV2": "reads files", "LMDBReader": "reads files",
    "Save": "writes a checkpoint", "SaveV2": "writes a checkpoint",
    "SaveSlices": "writes a checkpoint",
    "MergeV2Checkpoints": "merges and deletes checkpoint files",
    "Restore": "reads a checkpoint", "RestoreV2": "reads a checkpoint",
    "RestoreSlice": "reads a checkpoint", "LoadAndRemapMatrix": "reads a checkpoint",
    "GenerateVocabRemapping": "reads vocabulary files",
    "InitializeTableFromTextFile": "reads a file", "InitializeTableFromTextFileV2": "reads a file",
    "DecodeProtoV2": "can read a descriptor file", "EncodeProto": "can read a descriptor file",
    "PyFunc": "runs Python", "PyFuncStateless": "runs Python", "EagerPyFunc": "runs Python",
    "PrintV2": "can print to a file",
    "DebugIdentity": "can dump tensors to files", "DebugIdentityV2": "can dump tensors to files",
    "DebugIdentityV3": "can dump tensors to files", "DebugNanCount": "can dump to files",
    "DebugNumericSummary": "can dump to files", "DebugNumericSummaryV2": "can dump to files",
    "CreateSummaryFileWriter": "writes event files", "CreateSummaryDbWriter": "writes a database",
    "SummaryWriter": "writes event files", "WriteSummary": "writes event files",
    "WriteScalarSummary": "writes event files", "WriteHistogramSummary": "writes event files",
    "WriteImageSummary": "writes event files", "WriteAudioSummary": "writes event files",
    "WriteRawProtoSummary": "writes event files", "WriteGraphSummary": "writes event files",
    "ImportEvent": "writes event files", "FlushSummaryWriter": "writes event files",
    "CloseSummaryWriter": "writes event files",
    "StatsAggregatorSetSummaryWriter": "writes event files",
    "TFRecordDataset": "reads files", "TFRecordDatasetV2": "reads files",
    "FixedLengthRecordDataset": "reads files", "FixedLengthRecordDatasetV2": "reads files",
    "TextLineDataset": "reads files", "CSVDataset": "reads files", "CSVDatasetV2": "reads files",
    "ExperimentalCSVDataset": "reads files", "SqlDataset": "reads a database",
    "ExperimentalSqlDataset": "reads a database", "LMDBDataset": "reads files",
    "ExperimentalLMDBDataset": "reads files", "MatchingFilesDataset": "lists files",
    "ExperimentalMatchingFilesDataset": "lists files",
    "SaveDataset": "writes files", "SaveDatasetV2": "writes files", "LoadDataset": "reads files",
    "DistributedSave": "writes files", "SnapshotDataset": "reads and writes files",
    "SnapshotDatasetV2": "reads and writes files", "SnapshotDatasetReader": "reads files",
    "SnapshotChunkDataset": "reads files", "ListSnapshotChunksDataset": "lists files",
    "CacheDataset": "can cache to files", "CacheDatasetV2": "can cache to files",
    "DatasetToTFRecord": "writes files", "ExperimentalDatasetToTFRecord": "writes files",
    "DataServiceDataset": "talks to servers", "DataServiceDatasetV2": "talks to servers",
    "DataServiceDatasetV3": "talks to servers", "DataServiceDatasetV4": "talks to servers",
    "RegisterDataset": "talks to servers", "RegisterDatasetV2": "talks to servers",
    "FileSystemSetConfiguration": "reconfigures file systems",
}
# Checkpoint ops every SavedModel carries in its saver functions (with tf_keras 2.18:
# __inference__traced_save_<n> and __inference__traced_restore_<n>, named by the meta graph's
# saver_def). They are allowed there, and only in functions nothing else calls.
CHECKPOINT_OPS = {"Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints", "Restore", "RestoreV2",
                  "RestoreSlice"}

# --- .tflite ---------------------------------------------------------------------------------

# Custom ops a .tflite may hold: custom_code -> why it is safe. Everything else is refused.
ALLOWED_CUSTOM_OPS = {
    "TFLM_DECODE": "TFLite Micro's LUT weight decompression: TFLite Micro links the kernel "
                   "itself, and edgezoo's micro compression writes it",
}
FLEX_PREFIX = "Flex"  # SELECT_TF_OPS: a full TensorFlow kernel, run by the Flex delegate

TRUST_HINT = ("Only for a file you made or trust: pass --trust-model-code (API: "
              "trust_model_code=True), which loads it and runs that code")


def _trusted_module(module):
    return any(module == p or module.startswith(p + ".") for p in TRUSTED_MODULES)


def _registered(name):
    """Whether Keras resolves ``name`` from its registry of imported custom objects."""
    import tf_keras as keras

    return isinstance(name, str) and keras.saving.get_registered_object(name) is not None


def _registered_suffix(name):
    """Whether a registered custom object's name ends in ``name``: how Keras finds a function a
    .keras file names without its package (``hinge_accuracy`` for
    ``edgezoo.quantum>hinge_accuracy``), before it would try importing anything."""
    import tf_keras as keras

    return isinstance(name, str) and bool(name) and any(
        key.endswith(name) for key in keras.saving.get_custom_objects())


def _keras_function(name):
    """Whether ``name`` is a public Keras built-in function (activation, loss, ...)."""
    import tf_keras as keras

    if not isinstance(name, str) or name.startswith("_"):
        return False
    for namespace in KERAS_FUNCTION_MODULES:
        fn = getattr(getattr(keras, namespace), name, None)
        if callable(fn) and str(getattr(fn, "__module__", "")).startswith(("tf_keras", "keras")):
            return True
    return False


def denied_tf_symbol(symbol):
    """The reason a TensorFlow API symbol (``io.write_file``) must not be called, or None."""
    parts = str(symbol).split(".")
    while parts[:2] in (["compat", "v1"], ["compat", "v2"]):
        parts = parts[2:]
    for k in range(1, len(parts) + 1):
        reason = DENIED_TF_SYMBOLS.get(".".join(parts[:k]))
        if reason is not None:
            return reason
    return None


def _object_problem(obj):
    """What is wrong with one serialized object (a dict with ``class_name``), or None."""
    cls, config = obj.get("class_name"), obj.get("config")
    inner = config if isinstance(config, dict) else {}
    if cls in CODE_CLASSES:
        return CODE_CLASSES[cls]
    if cls in TF_SYMBOL_FIELDS:
        symbol = inner.get(TF_SYMBOL_FIELDS[cls])
        reason = denied_tf_symbol(symbol)
        if reason is not None:
            return f"it calls tf.{symbol}, which {reason}"
    if cls in FILE_FIELDS and isinstance(inner.get(FILE_FIELDS[cls]), str):
        return (f"its {FILE_FIELDS[cls]} names a file ({inner[FILE_FIELDS[cls]]!r}), read when "
                "the layer is built")
    if cls == "function":
        if not (_registered(config) or _keras_function(config) or _registered_suffix(config)):
            return (f"it names the function {config!r} (module {obj.get('module')!r}), neither "
                    "a Keras built-in nor a registered custom object: Keras would look it up in "
                    "or import that module, and the model would call it")
        return None
    module = obj.get("module")
    if isinstance(module, str) and not _trusted_module(module):
        name = obj.get("registered_name") or cls
        if not _registered(name):
            return (f"it is {cls!r} from module {module!r}, an unregistered custom object: Keras "
                    "would import that module, which runs its code")
    return None


def config_problems(config):
    """Every code-carrying object in a Keras model config, as 'where: why' strings."""
    problems, stack = [], [(config, None)]
    while stack:
        obj, owner = stack.pop()
        if isinstance(obj, list):
            stack.extend((v, owner) for v in reversed(obj))
            continue
        if not isinstance(obj, dict):
            continue
        if "class_name" in obj:
            inner = obj.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            name = name if isinstance(name, str) else obj.get("name")
            if isinstance(name, str):
                owner = name
            reason = _object_problem(obj)
            if reason is not None:
                where = f"layer {owner!r}" if owner else "the model"
                problems.append(f"{where} ({obj.get('class_name')}): {reason}")
                if obj.get("class_name") in CODE_CLASSES:
                    continue  # refused whole: what it holds needs no second mention
        elif any(obj.get(key) == "lambda" for key in BYTECODE_KEYS):
            where = f"layer {owner!r}" if owner else "the model"
            problems.append(f"{where}: it holds a Python function stored as marshalled bytecode, "
                            "which would run when the model is loaded or called")
        stack.extend((v, owner) for v in reversed(list(obj.values())))
    return list(dict.fromkeys(problems))


def _refuse(source, problems, hint, what="loading it would run code from the file"):
    shown = problems[:5] + ([f"and {len(problems) - 5} more"] if len(problems) > 5 else [])
    raise UnsafeModelError(f"{source}: edgezoo refuses to load it: {'; '.join(shown)}. "
                           f"{what[0].upper()}{what[1:]}. {hint}")


def _parse_json(text, source, part):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{source} is not a loadable Keras model: its {part} is not valid "
                             f"JSON ({type(exc).__name__})") from None


def keras_zip_configs(path):
    """The JSON of a .keras zip's config.json (read without Keras)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ModelFileError(f"{path}: its config.json is {info.file_size:,} bytes "
                                     f"(at most {MAX_CONFIG_BYTES:,})")
            text = archive.read(info)
    except KeyError:
        raise ModelFileError(f"{path} is not a loadable Keras model: the .keras archive has no "
                             "config.json") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path} is not a loadable Keras model: {exc}") from None
    return [_parse_json(text, path, "config.json")]


def h5_configs(path):
    """The JSON of an .h5 model's model_config and training_config attributes (read with h5py,
    without Keras: loading a Lambda layer from an .h5 runs its marshalled bytecode)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in ("model_config", "training_config") if k in f.attrs}
    except OSError as exc:
        raise ModelFileError(f"{path} is not a loadable Keras model: {exc}") from None
    if "model_config" not in attrs:
        raise ModelFileError(f"{path} is not a loadable Keras model: the HDF5 file holds no "
                             "model_config (weights only?)")
    return [_parse_json(v.decode() if isinstance(v, bytes) else str(v), path, k)
            for k, v in attrs.items()]


def read_saved_model(folder):
    """The SavedModel proto of ``folder`` (saved_model.pb, else saved_model.pbtxt)."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    folder, proto = Path(folder), saved_model_pb2.SavedModel()
    try:
        if (folder / "saved_model.pb").is_file():
            proto.ParseFromString((folder / "saved_model.pb").read_bytes())
        else:
            text_format.Parse((folder / "saved_model.pbtxt").read_text(), proto)
    except (message.DecodeError, text_format.ParseError, OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{folder} is not a readable SavedModel: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return proto


def _called_functions(node, library):
    """Names of library functions a NodeDef calls (as its op or through func attributes)."""
    names = {node.op} & library.keys()
    values = list(node.attr.values())
    while values:
        value = values.pop()
        kind = value.WhichOneof("value")
        funcs = [value.func] if kind == "func" else list(value.list.func) if kind == "list" else []
        for f in funcs:
            names.add(f.name)
            values.extend(f.attr.values())
    return names


def _closure(roots, calls):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in calls and name not in seen:
            seen.add(name)
            todo.extend(calls[name])
    return seen


def saved_model_op_problems(proto):
    """Denied ops in every meta graph's graph and function library, as strings naming the op and
    the function; checkpoint ops pass only in the saver functions, which nothing else calls."""
    problems = []
    for meta in proto.meta_graphs:
        library = {f.signature.name: f for f in meta.graph_def.library.function}
        calls = {name: set().union(*[_called_functions(n, library) for n in f.node_def])
                 for name, f in library.items()}
        saver_def = meta.saver_def
        saver_nodes = {t.lstrip("^").split(":")[0]
                       for t in (saver_def.save_tensor_name, saver_def.restore_op_name) if t}
        top = list(meta.graph_def.node)
        saver = _closure(set().union(*[_called_functions(n, library) for n in top
                                       if n.name in saver_nodes]), calls)
        roots = set().union(*[_called_functions(n, library) for n in top
                              if n.name not in saver_nodes])
        roots |= (set(meta.object_graph_def.concrete_functions) & library.keys()) | (
            library.keys() - saver)
        exempt = saver - _closure(roots, calls)
        places = [("the top-level graph", n, False) for n in top] + [
            (f"function {name!r}", n, name in exempt) for name, f in library.items()
            for n in f.node_def]
        for where, node, is_saver in places:
            if node.op in DENIED_OPS and not (is_saver and node.op in CHECKPOINT_OPS):
                problems.append(f"{where} runs op {node.op} (node {node.name!r}), which "
                                f"{DENIED_OPS[node.op]}")
    return list(dict.fromkeys(problems))


def saved_model_configs(folder, proto):
    """The Keras layer configs a SavedModel records (keras_metadata.pb, else the object graph's
    user-object metadata, as tf_keras reads them); [] when it is no Keras model."""
    from google.protobuf import message
    from tf_keras.protobuf import saved_metadata_pb2

    texts = []
    path = Path(folder) / "keras_metadata.pb"
    if path.is_file():
        metadata = saved_metadata_pb2.SavedMetadata()
        try:
            metadata.ParseFromString(path.read_bytes())
        except message.DecodeError:
            raise ModelFileError(f"{folder}: its keras_metadata.pb is unreadable") from None
        texts = [n.metadata for n in metadata.nodes]
    for meta in proto.meta_graphs:
        texts += [n.user_object.metadata for n in meta.object_graph_def.nodes
                  if n.WhichOneof("kind") == "user_object" and n.user_object.metadata]
    return [_parse_json(t, folder, "Keras metadata") for t in texts if t]


def is_saved_model(path):
    path = Path(path)
    return path.is_dir() and any((path / n).is_file()
                                 for n in ("saved_model.pb", "saved_model.pbtxt"))


def model_file_kind(path):
    """'keras' (a .keras zip), 'h5' or 'saved_model', as Keras would read ``path``; raises
    ModelFileError for anything else."""
    import h5py

    path = Path(path)
    if path.is_dir():
        if is_saved_model(path):
            return "saved_model"
        raise ModelFileError(f"{path} is a folder but not a SavedModel (no saved_model.pb): give a "
                             ".keras or .h5 file or a SavedModel folder")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if str(path).endswith(".keras") and zipfile.is_zipfile(path):
        return "keras"
    if h5py.is_hdf5(path):
        return "h5"
    raise ModelFileError(f"{path} is not a loadable Keras model: neither a .keras zip archive, an "
                         "HDF5 (.h5) file nor a SavedModel folder")


def check_model_file(path, kind=None, hint=TRUST_HINT):
    """Raise UnsafeModelError, naming the layers or ops, if loading or running the Keras model
    at ``path`` would run code from the file or touch files; ModelFileError if it is unreadable.
    ``hint`` ends the message: how a user who trusts the file gets past."""
    path = Path(path)
    kind = kind or model_file_kind(path)
    if kind == "saved_model":
        proto = read_saved_model(path)
        problems = saved_model_op_problems(proto)
        if problems:
            _refuse(path, problems, hint, "its graph would run ops that touch files or the system")
        configs = saved_model_configs(path, proto)
        if not configs:
            raise ModelFileError(f"{path} is a TensorFlow SavedModel but not a Keras one (it has "
                                 "no Keras metadata): edgezoo needs a Keras model; save it with "
                                 "model.save() from tf_keras")
    else:
        configs = keras_zip_configs(path) if kind == "keras" else h5_configs(path)
    problems = [p for config in configs for p in config_problems(config)]
    if problems:
        _refuse(path, list(dict.fromkeys(problems)), hint)


@contextlib.contextmanager
def keras_safe_mode(safe):
    """Keras's own safe mode around a load: the legacy .h5 and SavedModel loaders honour only the
    scope, not the ``safe_mode`` argument."""
    try:
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # a TF-Keras without it: edgezoo's checks above still ran
        yield
        return
    with SafeModeScope(safe):
        yield


def load_model_file(path, trust_model_code=False, compile=False):
    """A Keras model from a .keras or .h5 file or a SavedModel folder, checked first unless
    ``trust_model_code`` (which lets the file's code run: only for files the user trusts)."""
    import tf_keras as keras

    path = Path(path)
    kind = model_file_kind(path)
    if not trust_model_code:
        check_model_file(path, kind)
    try:
        with keras_safe_mode(not trust_model_code):
            model = keras.models.load_model(str(path), compile=compile,
                                            safe_mode=not trust_model_code)
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001  (any loader failure means an unusable file)
        raise ModelFileError(f"{path} is not a loadable Keras model: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"{path} is a TensorFlow SavedModel but not a Keras model: edgezoo "
                             "needs a Keras model; save it with model.save() from tf_keras")
    return model


# --- .tflite ---------------------------------------------------------------------------------

def tflite_custom_ops(data):
    """The custom_code of every custom operator code in .tflite bytes (read in Python, so a
    malformed file raises here, never in native code)."""
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(bytearray(data), 0)
    n = root.OperatorCodesLength()
    if n > len(data) // 4:
        raise ValueError(f"{n} operator codes cannot fit in {len(data)} bytes")
    codes = []
    for i in range(n):
        code = root.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.CUSTOM:
            codes.append((code.CustomCode() or b"").decode(errors="replace"))
    return codes


def check_tflite_ops(data, source="model", verified=False):
    """Refuse a .tflite holding Flex (SELECT_TF_OPS) or unknown custom ops, naming them.

    Run before LiteRT reads the bytes: LiteRT runs Flex ops with full TensorFlow kernels (file
    reads and writes included) and an unknown custom op needs native code linked for it. An
    operator table that does not read is left to the flatbuffer verifier unless ``verified``.
    """
    if len(data) < 8 or data[4:8] != b"TFL3":
        return  # not a .tflite at all: the verifier says so
    try:
        codes = tflite_custom_ops(data)
    except Exception as exc:  # noqa: BLE001  (malformed tables: the verifier refuses them)
        if not verified:
            return
        raise ModelFileError(f"{source} is malformed: its operator codes do not read "
                             f"({type(exc).__name__}: {exc})") from None
    flex = sorted({c[len(FLEX_PREFIX):] for c in codes if c.startswith(FLEX_PREFIX)})
    unknown = sorted({c for c in codes if not c.startswith(FLEX_PREFIX)}
                     - ALLOWED_CUSTOM_OPS.keys())
    parts = []
    if flex:
        parts.append(f"TensorFlow (Flex, SELECT_TF_OPS) op(s) {', '.join(flex)}: Flex ops run "
                     "full TensorFlow kernels, some of which read and write files or the system, "
                     "and no board runtime has them; convert with TFLITE_BUILTINS only")
    if unknown:
        parts.append(f"custom op(s) {', '.join(repr(c) for c in unknown)}, which need native "
                     "code linked in for them (edgezoo allows only "
                     f"{', '.join(sorted(ALLOWED_CUSTOM_OPS))})")
    if parts:
        raise UnsafeModelError(f"{source} uses {'; and '.join(parts)}. edgezoo refuses it before "
                               "LiteRT reads it, and no option lifts this")
