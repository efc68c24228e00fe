"""The model registry finds models by name and refuses unknown names and hyperparameters."""

import pytest

from tfrec.models import available_models, build_model, model_defaults


def test_deepfm_is_registered_with_defaults():
    assert "deepfm" in available_models()
    assert model_defaults("deepfm")["dnn_units"] == (400, 400, 400)


def test_unknown_model_and_hyperparameter(tiny_data):
    with pytest.raises(ValueError, match="Received: model='nope'"):
        build_model("nope", {})
    with pytest.raises(TypeError, match=r"\['dnn_unit'\]"):
        build_model("deepfm", tiny_data.example_table(), dnn_unit=(3,))
