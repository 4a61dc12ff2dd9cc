"""Fuzzing the loader and TFLite Micro with mutated KWS models: a clear edgezoo error or a run.

Mutations change the structure (shapes, buffer, opcode and tensor indices, types,
quantization) through the flatbuffers object API and re-pack it, or change raw
bytes and lengths. Every input must be refused with an EdgezooError or go
through MicroRunner's child process; crashes and hangs there become errors.
"""
import collections
import hashlib

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgezoo.edge.loader import check_structure, load_tflite
from edgezoo.edge.runners.micro import MicroRunner, run_many
from edgezoo.base.errors import EdgezooError, ModelFileError, RuntimeFailure

PER_MODEL_TIMEOUT = 20
FLUSH_EVERY = 100  # survivors run in batches, so memory stays flat over 10,000 inputs


def unpack(data):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))


def pack(model):
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def weight_regions(data):
    """(start, length) in ``data`` of every constant buffer's bytes."""
    model = unpack(data)
    regions = []
    for buf in model.buffers:
        if buf.data is not None and len(buf.data) >= 4:
            start = data.find(np.asarray(buf.data, np.uint8).tobytes())
            if start >= 0:
                regions.append((start, len(buf.data)))
    return regions


# --- structural mutations, on the object API ------------------------------------------------

def _tensor(model, t):
    tensors = model.subgraphs[0].tensors
    return tensors[t % len(tensors)]


def _set_shape(model, t, dim, value):
    tensor = _tensor(model, t)
    shape = list(tensor.shape) if tensor.shape is not None else []
    if shape:
        shape[dim % len(shape)] = value
    else:
        shape = [value]
    tensor.shape = shape


def _set_rank(model, t, grow):
    tensor = _tensor(model, t)
    shape = list(tensor.shape) if tensor.shape is not None else []
    tensor.shape = shape + [1] if grow or not shape else shape[:-1]


def _set_buffer(model, t, value):
    _tensor(model, t).buffer = value


def _set_opcode(model, op, value):
    ops = model.subgraphs[0].operators
    ops[op % len(ops)].opcodeIndex = value


def _set_op_tensor(model, op, outputs, pos, value):
    ops = model.subgraphs[0].operators
    operator = ops[op % len(ops)]
    arr = list(operator.outputs if outputs else operator.inputs)
    arr[pos % len(arr)] = value
    if outputs:
        operator.outputs = arr
    else:
        operator.inputs = arr


def _set_io(model, outputs, value):
    sg = model.subgraphs[0]
    if outputs:
        sg.outputs = [value]
    else:
        sg.inputs = [value]


def _set_type(model, t, value):
    _tensor(model, t).type = value


def _set_scale(model, t, value):
    q = _tensor(model, t).quantization
    if q is not None and q.scale is not None and len(q.scale):
        scale = np.array(q.scale, np.float32)
        scale[0] = value if value is not None else scale[0] * 2
        q.scale = scale


def _set_zero_point(model, t, value):
    q = _tensor(model, t).quantization
    if q is not None and q.zeroPoint is not None and len(q.zeroPoint):
        zero = np.array(q.zeroPoint, np.int64)
        zero[0] = value
        q.zeroPoint = zero


def _set_builtin(model, code, value):
    opcode = model.operatorCodes[code % len(model.operatorCodes)]
    opcode.builtinCode = value
    opcode.deprecatedBuiltinCode = min(value, 127)


def _set_version(model, code, value):
    model.operatorCodes[code % len(model.operatorCodes)].version = value


def _resize_buffer(model, b, delta):
    with_data = [buf for buf in model.buffers if buf.data is not None and len(buf.data)]
    buf = with_data[b % len(with_data)]
    data = np.asarray(buf.data, np.uint8)
    buf.data = data[: len(data) + delta] if delta < 0 else np.concatenate([data, np.full(delta, 7, np.uint8)])


STRUCTURAL = {"shape": _set_shape, "rank": _set_rank, "buffer": _set_buffer, "opcode": _set_opcode,
              "op_tensor": _set_op_tensor, "io": _set_io, "type": _set_type, "scale": _set_scale,
              "zero_point": _set_zero_point, "builtin": _set_builtin, "version": _set_version,
              "buffer_size": _resize_buffer}


# --- raw mutations, on the bytes ------------------------------------------------------------

def _flip(data, regions, pos, bit):
    b = bytearray(data)
    b[pos % len(b)] ^= 1 << bit
    return bytes(b)


def _set_byte(data, regions, pos, value):
    b = bytearray(data)
    b[pos % len(b)] = value
    return bytes(b)


def _weights(data, regions, region, offset, value):
    start, length = regions[region % len(regions)]
    b = bytearray(data)
    b[start + offset % length] = value
    return bytes(b)


def _truncate(data, regions, keep):
    return data[: keep % (len(data) + 1)]


def _append(data, regions, extra):
    return data + extra


def _zero_run(data, regions, pos, length):
    pos %= len(data)
    return data[:pos] + bytes(min(length, len(data) - pos)) + data[pos + length:]


RAW = {"flip": _flip, "set_byte": _set_byte, "weights": _weights, "truncate": _truncate,
       "append": _append, "zero_run": _zero_run}

# --- strategies -----------------------------------------------------------------------------

ANY = st.integers(0, 2**16)  # which tensor/operator/buffer to change (taken modulo the count)
INDEX = st.one_of(st.integers(-2, 45), st.sampled_from([2**31 - 1, -(2**31)]))  # ~37 tensors/buffers
UINDEX = st.one_of(st.integers(0, 45), st.sampled_from([2**32 - 1, 2**31]))
DIM = st.one_of(st.integers(-2, 70), st.sampled_from([1000, 2**16, 2**31 - 1, -(2**31)]))
SCALE = st.one_of(st.none(), st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e-30, 1e30]))

STRUCTURAL_ARGS = {
    "shape": st.tuples(ANY, st.integers(0, 3), DIM),
    "rank": st.tuples(ANY, st.booleans()),
    "buffer": st.tuples(ANY, UINDEX),
    "opcode": st.tuples(ANY, UINDEX),
    "op_tensor": st.tuples(ANY, st.booleans(), st.integers(0, 3), INDEX),
    "io": st.tuples(st.booleans(), INDEX),
    "type": st.tuples(ANY, st.integers(0, 26)),
    "scale": st.tuples(ANY, SCALE),
    "zero_point": st.tuples(ANY, st.integers(-300, 300)),
    "builtin": st.tuples(ANY, st.integers(0, 210)),
    "version": st.tuples(ANY, st.integers(-1, 12)),
    "buffer_size": st.tuples(ANY, st.integers(-8, 8).filter(bool)),
}
RAW_ARGS = {
    "flip": st.tuples(ANY, st.integers(0, 7)),
    "set_byte": st.tuples(ANY, st.integers(0, 255)),
    "weights": st.tuples(ANY, ANY, st.integers(0, 255)),
    "truncate": st.tuples(ANY),
    "append": st.tuples(st.binary(min_size=1, max_size=64)),
    "zero_run": st.tuples(ANY, st.integers(1, 64)),
}


def _kind(kinds):
    return st.sampled_from(sorted(kinds)).flatmap(lambda k: kinds[k].map(lambda args: (k, *args)))


# Half structural, half raw; one or two mutations per input.
MUTATIONS = st.lists(st.one_of(_kind(STRUCTURAL_ARGS), _kind(RAW_ARGS)), min_size=1, max_size=2)


def mutate(base, regions, mutations):
    """``base`` with ``mutations`` applied: weight bytes first (``regions`` are offsets in ``base``),
    then structural ones (re-packed), then the other raw ones."""
    data = base
    for kind, *args in mutations:
        if kind == "weights":
            data = _weights(data, regions, *args)
    structural = [m for m in mutations if m[0] in STRUCTURAL]
    if structural:
        model = unpack(data)
        for kind, *args in structural:
            STRUCTURAL[kind](model, *args)
        data = pack(model)
    for kind, *args in mutations:
        if kind in RAW and kind != "weights" and (data or kind == "append"):
            data = RAW[kind](data, regions, *args)
    return data


class Fuzz:
    """Loads each input; runs the survivors through TFLite Micro in batches; counts outcomes."""

    def __init__(self, base):
        self.base, self.regions = base, weight_regions(base)
        self.outcomes = collections.Counter()
        self.inputs, self.reached_invoke, self.seen = 0, 0, set()
        self.pending, self.crashes = [], []

    def feed(self, mutations):
        data = mutate(self.base, self.regions, mutations)
        self.inputs += 1
        self.seen.add(hashlib.sha1(data).digest())
        try:
            loaded, parsed = load_tflite(data)
            runner = MicroRunner(loaded, parsed, timeout=PER_MODEL_TIMEOUT)
        except EdgezooError as exc:
            assert str(exc).strip(), "an edgezoo error must say what is wrong"
            if "crashed LiteRT's model reader" in str(exc):
                self.outcomes["refused: LiteRT's reader crashed (worker process only)"] += 1
            else:
                self.outcomes[f"refused: {type(exc).__name__}"] += 1
            return
        self.pending.append((runner, mutations))
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self):
        results = run_many([r for r, _ in self.pending], samples=1, timeout=PER_MODEL_TIMEOUT)
        for result, (_, mutations) in zip(results, self.pending):
            assert result.error is None or isinstance(result.error, EdgezooError), result.error
            self.reached_invoke += result.reached_invoke
            if result.error is None:
                self.outcomes["ran"] += 1
            elif isinstance(result.error, RuntimeFailure) and "crashed" in str(result.error):
                self.outcomes["TFLite Micro crashed (child only)"] += 1
                self.crashes.append((mutations, str(result.error)))
            elif isinstance(result.error, RuntimeFailure) and "did not finish" in str(result.error):
                self.outcomes["TFLite Micro hung (stopped)"] += 1
            else:
                self.outcomes[f"TFLite Micro refused: {type(result.error).__name__}"] += 1
        self.pending = []

    def run(self, examples):
        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(MUTATIONS)
        def one(mutations):
            self.feed(mutations)

        one()
        self.flush()
        return self

    def report(self):
        share = self.reached_invoke / self.inputs
        lines = [f"{self.inputs} inputs ({len(self.seen)} distinct), {self.reached_invoke} reached "
                 f"invoke ({100 * share:.1f} %)"] + [f"  {n:6d}  {k}" for k, n in self.outcomes.most_common()]
        return "\n".join(lines)


@pytest.fixture(scope="module")
def kws(mlperf_dir):
    return (mlperf_dir / "kws_ref_model.tflite").read_bytes()


def _check(fuzz, minimum):
    print("\n" + fuzz.report())
    assert fuzz.inputs >= minimum
    assert sum(fuzz.outcomes.values()) == fuzz.inputs  # every input ended in a result we counted
    assert len(fuzz.seen) >= 0.8 * fuzz.inputs
    assert fuzz.reached_invoke >= 0.30 * fuzz.inputs
    assert fuzz.outcomes["ran"] > 0 and any(k.startswith("refused") for k in fuzz.outcomes)


def test_fuzzed_models_give_an_edgezoo_error_or_a_run(kws):
    _check(Fuzz(kws).run(500), 500)


@pytest.mark.slow
def test_fuzzed_models_10000(kws):
    _check(Fuzz(kws).run(10_000), 10_000)


def test_mutations_change_what_they_say(kws):
    """The mutation helpers do what the fuzzer counts on (re-packing alone changes nothing)."""
    regions = weight_regions(kws)
    assert len(regions) >= 10 and sum(n for _, n in regions) > 20_000
    same = pack(unpack(kws))
    data, model = load_tflite(same)
    assert model.op_names == load_tflite(kws)[1].op_names
    grown = unpack(mutate(kws, regions, [("rank", 0, True)]))
    assert len(grown.subgraphs[0].tensors[0].shape) == len(unpack(kws).subgraphs[0].tensors[0].shape) + 1
    assert len(mutate(kws, regions, [("truncate", 1000)])) == 1000


@pytest.mark.parametrize("mutation, message", [
    (("buffer", 5, 99), r"tensor 5 .* refers to buffer 99, but the model has 37 buffers"),
    (("opcode", 3, 99), r"operator 3 has opcode index 99, but the model has 6 operator codes"),
    (("op_tensor", 3, False, 0, 99), r"operator 3 \(inputs\) refers to tensor 99, but the subgraph has 35"),
    (("op_tensor", 3, True, 0, 40), r"operator 3 \(outputs\) refers to tensor 40"),
    (("io", False, 35), r"subgraph 0 inputs refer to tensor 35"),
    (("shape", 17, 1, 1000), r"tensor 17 .* needs 256,000 bytes of constant data, but its buffer 18 holds 2,560"),
    (("shape", 20, 1, -1), r"tensor 20 .* has a negative dimension in its shape \(64, -1, 1, 64\)"),
    (("shape", 20, 1, 2**31 - 1), r"tensor 20 .* would take .* bytes \(at most 2,147,483,647\)"),
    (("buffer_size", 0, 4), r"needs .* bytes of constant data, but its buffer .* holds"),
    (("scale", 20, float("nan")), r"tensor 20 .* negative or non-finite quantization scale"),
    (("zero_point", 20, 200), r"tensor 20 .* zero point outside the INT8 range \[-128, 127\]"),
    (("type", 20, 99), r"tensor 20 .* unknown type code 99"),
])
def test_structural_problems_are_named(kws, mutation, message):
    with pytest.raises(ModelFileError, match=message):
        load_tflite(mutate(kws, [], [mutation]))


def test_data_must_flow_forward(kws):
    """An operator reading a tensor no earlier operator wrote, or overwriting a constant, is refused."""
    model = unpack(kws)
    first, second = model.subgraphs[0].operators[:2]
    first.inputs = list(first.inputs)
    first.inputs[0] = second.outputs[0]  # the first op reads what the second writes
    with pytest.raises(ModelFileError, match=r"operator 0 reads tensor \d+ .* before any operator writes it"):
        load_tflite(pack(model))
    model = unpack(kws)
    op = model.subgraphs[0].operators[0]
    op.outputs = [op.inputs[1]]  # writes into its own filter
    with pytest.raises(ModelFileError, match=r"operator 0 writes tensor \d+ .*, which is a constant"):
        load_tflite(pack(model))


def test_check_structure_passes_real_models(mlperf_dir):
    for name in ("kws_ref_model.tflite", "pretrainedResnet_quant.tflite", "kws_ref_model_float32.tflite"):
        check_structure((mlperf_dir / name).read_bytes(), name)


def test_a_crash_or_hang_in_a_batch_ends_only_that_model(kws, tmp_path, monkeypatch):
    """run_many: the model that kills or hangs the child is reported; the others still run."""
    from edgezoo.edge.runners import micro

    child = tmp_path / "child.py"
    child.write_text(
        "import os, signal, sys, time\n"
        f"sys.path.insert(0, {str(micro.CHILD.parent)!r})\n"
        "import _micro_child as real\n"
        "run_one = real._run_one\n"
        "def faulty(runtime, work, entry):\n"
        "    if entry['id'] == 1:\n"
        "        os.kill(os.getpid(), signal.SIGSEGV)\n"
        "    if entry['id'] == 3:\n"
        "        time.sleep(60)\n"
        "    return run_one(runtime, work, entry)\n"
        "real._run_one = faulty\n"
        "real.main(sys.argv[1])\n")
    monkeypatch.setattr(micro, "CHILD", child)
    loaded = load_tflite(kws)
    runners = [MicroRunner(*loaded) for _ in range(5)]
    x = np.random.default_rng(0).integers(-128, 128, (2, 49, 10, 1)).astype(np.int8)
    results = run_many(runners, [x] * 5, timeout=3)
    assert [r.error is None for r in results] == [True, False, True, False, True]
    assert "crashed (SIGSEGV)" in str(results[1].error)
    assert "did not finish this model within 3 s" in str(results[3].error)
    assert all(isinstance(r.error, RuntimeFailure) for r in results if r.error is not None)
    expected = MicroRunner(*loaded).run_raw(x)
    for r in (results[0], results[2], results[4]):
        assert r.reached_invoke and np.array_equal(r.outputs, expected)
    assert runners[4].arena_bytes == 24272


# Found by the fuzzer: zeroing one vtable byte of the root table makes LiteRT's interpreter
# builder dereference a missing table; its flatbuffer verifier lets the file through.
LITERT_CRASHER = [("zero_run", 18, 2)]


def test_a_model_that_crashes_litert_is_an_error_not_a_crash(kws, tmp_path):
    import subprocess
    import sys

    data = mutate(kws, [], LITERT_CRASHER)
    path = tmp_path / "crasher.tflite"
    path.write_bytes(data)
    # In-process, LiteRT itself dies on it (run in a throwaway interpreter to show it).
    proc = subprocess.run([sys.executable, "-c", "from ai_edge_litert.interpreter import Interpreter; "
                           f"Interpreter(model_content=open({str(path)!r}, 'rb').read())"],
                          capture_output=True, timeout=120)
    assert proc.returncode < 0
    # Through edgezoo it is one clear error, and the loader keeps working afterwards.
    with pytest.raises(ModelFileError, match=r"crashed LiteRT's model reader \(SIGSEGV\)"):
        load_tflite(path)
    assert load_tflite(kws)[1].op_names[0] == "AVERAGE_POOL_2D"
