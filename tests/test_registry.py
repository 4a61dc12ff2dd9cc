import pytest

from edgezoo.base.errors import UnknownModelError
from edgezoo.zoo import create_model, list_models, model_info, register_model


def test_list_models_and_task_filter():
    names = list_models()
    assert {"vit_b16", "vit_micro"} <= set(names)
    assert names == sorted(names)
    assert "vit_micro" in list_models(task="classification")
    with pytest.raises(UnknownModelError, match="unknown task 'no_such_task'; known: classification"):
        list_models(task="no_such_task")


def test_model_info_fields():
    info = model_info("vit_b16")
    assert info["arxiv"] == "2010.11929"
    assert info["paper"].startswith("An Image is Worth 16x16 Words")
    assert info["family"] == "vit"
    assert info["task"] == "classification"
    assert info["input_shape"] == [224, 224, 3]
    assert info["num_classes"] == 1000


def test_unknown_model_lists_closest_names():
    with pytest.raises(UnknownModelError, match=r"unknown model 'vit_b61'.*Closest: vit_b16"):
        create_model("vit_b61")
    with pytest.raises(KeyError):  # also a KeyError, for callers that expect one
        model_info("resnet9000")


def test_overrides_num_classes_and_input_shape():
    model = create_model("vit_micro", num_classes=3, input_shape=(8, 8, 1), depth=1)
    assert model.output_shape == (None, 3)
    assert model.input_shape == (None, 8, 8, 1)
    assert sum(1 for layer in model.layers if layer.name.endswith("_attn")) == 1
    assert model.name == "vit_micro"


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("vit_micro", lambda **kw: None, family="vit", task="x", paper="p",
                       arxiv="0", input_shape=(1, 1, 1), num_classes=1)
