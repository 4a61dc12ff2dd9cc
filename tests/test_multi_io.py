"""A model that is not a classifier through the whole pipeline: two int32 inputs (token ids,
attention mask), two outputs (hidden states, pooled vector). Compressed (pruned, distilled
from itself), converted to int8, run in TFLite Micro and through the verification path,
compared per tensor; the token ids arrive in the .tflite as int32."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.converters.c_export import render_header
from edgezoo.converters.compress import compress
from edgezoo.converters.recipe import Recipe
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge import get_profile, verify
from edgezoo.edge.runners.micro import MicroRunner

T, VOCAB = 16, 40


def tiny_encoder():
    """Embedding (masked) -> MLP -> LayerNorm hidden states; mean-pooled tanh vector."""
    ids = keras.Input((T,), dtype="int32", name="input_ids")
    mask = keras.Input((T,), dtype="int32", name="attention_mask")
    emb = keras.layers.Embedding(VOCAB, 16, name="embed")(ids)
    keep = keras.layers.Embedding(2, 1, embeddings_initializer=keras.initializers.Constant(
        [[0.0], [1.0]]), trainable=False, name="mask_embed")(mask)
    h = keras.layers.Multiply(name="masked")([emb, keep])
    h = keras.layers.Dense(24, activation="relu", name="ffn1")(h)
    h = keras.layers.Dense(16, name="ffn2")(h)
    h = keras.layers.LayerNormalization(name="hidden_states")(h)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    pooled = keras.layers.Dense(8, activation="tanh", name="pooled")(pooled)
    return keras.Model([ids, mask], [h, pooled], name="tiny_encoder")


def token_data(n, seed):
    """Token ids with padded tails (id 0 past each sequence's length) and their masks."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, T + 1, n)
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int32)
    return [rng.integers(1, VOCAB, (n, T)).astype(np.int32) * mask, mask]


@pytest.fixture(scope="module")
def encoder_run():
    keras.utils.set_random_seed(0)
    model = tiny_encoder()
    train, test = token_data(256, 1), token_data(64, 2)  # test: never calibrated or trained on
    recipe = Recipe(prune=0.3, distill="self", finetune_epochs=10, learning_rate=3e-3, seed=0)
    compressed = compress(model, recipe, (train, None), micro=True, task="encoder")
    parsed = read_tflite(compressed.tflite)
    float_outputs = model.predict(test, verbose=0)
    result = verify(compressed.tflite, parsed, get_profile("nrf52840"), test,
                    float_outputs=float_outputs, task="encoder")
    return model, compressed, parsed, test, float_outputs, result


def test_token_ids_stay_int32_and_tensors_keep_the_keras_order(encoder_run):
    _, compressed, parsed, *_ = encoder_run
    assert [(d.name, d.dtype, d.scale) for d in parsed.inputs] == [
        ("serving_default_input_ids:0", "INT32", 0.0),
        ("serving_default_attention_mask:0", "INT32", 0.0)]
    assert [(d.dtype, d.shape) for d in parsed.outputs] == [("INT8", (1, T, 16)), ("INT8", (1, 8))]
    assert compressed.report["task"] == "encoder"
    assert compressed.report["steps"]["prune"]  # trained with the encoder's distillation losses
    header = render_header(parsed, 4096)
    assert '#define EDGEZOO_NUM_INPUTS 2' in header and '#define EDGEZOO_NUM_OUTPUTS 2' in header
    assert '#define EDGEZOO_INPUT_1_TYPE "INT32"' in header
    assert '#define EDGEZOO_INPUT_1_SCALE 0f' in header
    assert f'#define EDGEZOO_OUTPUT_0_SCALE {parsed.outputs[0].scale:.9g}f' in header


def test_verification_compares_every_output_with_the_task_measure(encoder_run):
    model, compressed, parsed, test, float_outputs, result = encoder_run
    assert result["passed"], result["failures"]
    assert result["task"] == "encoder"
    assert set(result["agreement"]["checks"]) == {"hidden_cosine", "pooled_cosine"}
    assert result["checks"]["agreement_hidden_cosine"]["limit"] == 0.99
    assert result["checks"]["micro_vs_reference_per_op"]["passed"]
    assert [row["tensor"] for row in result["output_errors"]] == [d.name for d in parsed.outputs]
    assert result["arena_bytes"] > 0 and result["fits"]
    # independently of verify: TFLite Micro's outputs, dequantized, against the float model's
    micro = MicroRunner(compressed.tflite, parsed).run_all_float(test)
    for f, m, keep in zip(float_outputs, micro, [test[1] > 0, slice(None)]):
        f, m = f[keep], m[keep]  # real tokens (padding's hidden state is all zero)
        cos = (f * m).sum(-1) / (np.linalg.norm(f, axis=-1) * np.linalg.norm(m, axis=-1))
        assert np.median(cos) > 0.99
    ids_first = MicroRunner(compressed.tflite, parsed).run_all_float(
        {"attention_mask": test[1], "input_ids": test[0]}, names=model.input_names)
    np.testing.assert_array_equal(ids_first[0], micro[0])  # by name: the same samples


def test_the_gate_fails_when_an_output_disagrees(encoder_run):
    """Negative control: the same .tflite against float outputs of another model (weights
    perturbed) fails the hidden-state gate, and swapping the inputs is refused or fails."""
    model, compressed, parsed, test, _, _ = encoder_run
    other = keras.models.clone_model(model)
    other.set_weights([w + np.random.default_rng(1).normal(0, 0.5, w.shape) for w in
                       model.get_weights()])
    result = verify(compressed.tflite, parsed, get_profile("nrf52840"), test,
                    float_outputs=other.predict(test, verbose=0), task="encoder")
    assert not result["passed"]
    assert any("hidden states (cosine" in line for line in result["failures"])
    with pytest.raises(Exception, match="name its task"):
        verify(compressed.tflite, parsed, get_profile("nrf52840"), test)
