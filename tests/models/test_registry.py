"""The registry: the one home of model defaults, training settings and presets."""

import tfrec  # noqa: F401  # isort: skip
import inspect
import re

import pytest

from tfrec.models import (
    DCN,
    FFM,
    FM,
    GMF,
    NCFMLP,
    PRESETS,
    TRAIN_DEFAULTS,
    BERT4Rec,
    DeepFM,
    GRU4Rec,
    NeuMF,
    Recommender,
    SASRec,
    TwoTower,
    WideDeep,
    available_models,
    build_model,
    model_class,
    model_defaults,
    preset,
    register_model,
)
from tfrec.training import fit

CLASSES = {
    "bert4rec": BERT4Rec,
    "dcn": DCN,
    "deepfm": DeepFM,
    "ffm": FFM,
    "fm": FM,
    "gmf": GMF,
    "gru4rec": GRU4Rec,
    "ncf_mlp": NCFMLP,
    "neumf": NeuMF,
    "sasrec": SASRec,
    "two_tower": TwoTower,
    "wide_deep": WideDeep,
}


def test_every_model_is_registered_by_being_defined():
    assert available_models() == sorted(CLASSES)
    for name, cls in CLASSES.items():
        assert model_class(name) is cls and cls.registry_name == name
        assert issubclass(cls, Recommender)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_defaults_are_exactly_the_builders_keywords(name):
    builder = inspect.signature(model_class(name).from_data).parameters
    defaults = model_defaults(name)
    assert set(defaults) == set(builder) - {"data"}
    # No default anywhere else: the builder and the constructor's hyperparameters have none.
    assert all(p.default is inspect.Parameter.empty for p in builder.values())
    init = inspect.signature(model_class(name).__init__).parameters
    own = [
        p for k, p in init.items() if k in defaults and k not in ("task", "history_length", "l2")
    ]
    assert all(p.default is inspect.Parameter.empty for p in own), name
    assert "history_length" in defaults  # a model setting, saved with the model
    defaults["embedding_dim"] = -1  # a copy: the registry is untouched
    assert model_defaults(name)["embedding_dim"] != -1


def test_deepfm_defaults_are_the_papers():
    defaults = model_defaults("deepfm")
    assert defaults["dnn_units"] == (400, 400, 400) and defaults["embedding_dim"] == 16
    assert model_defaults("wide_deep")["dropout"] == 0.1


def test_registering_with_missing_or_extra_defaults_raises():
    class Toy(Recommender):
        @classmethod
        def from_data(cls, data, embedding_dim, history_length):
            raise AssertionError("never built")

    with pytest.raises(
        TypeError, match=r"takes \['embedding_dim', 'history_length'\].*\['embedding_dim'\]"
    ):
        register_model("toy", embedding_dim=4)(Toy)
    with pytest.raises(
        TypeError, match=r"defaults for \['dropout', 'embedding_dim', 'history_length'\]"
    ):
        register_model("toy", embedding_dim=4, history_length=0, dropout=0.1)(Toy)
    assert "toy" not in available_models()


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="already registered as 'deepfm'"):
        register_model("deepfm", **model_defaults("deepfm"))(DeepFM)
    assert model_class("deepfm") is DeepFM


def test_unknown_model_and_hyperparameter(tiny_data):
    with pytest.raises(ValueError, match="Received: model='nope'.*deepfm"):
        build_model("nope", tiny_data)
    with pytest.raises(TypeError, match=r"\['dnn_unit'\]"):
        build_model("deepfm", tiny_data, dnn_unit=(3,))
    with pytest.raises(TypeError, match=r"model 'fm' \['dnn_units'\]. Valid: \['embedding_dim'"):
        build_model("fm", tiny_data, dnn_units=(3,))


def test_build_model_from_split_data_and_from_a_joined_table(tiny_data, ranking_table):
    from_split = build_model("deepfm", tiny_data, embedding_dim=4, dnn_units=(8,), history_length=3)
    assert isinstance(from_split, DeepFM) and from_split.history_length == 3
    assert from_split.dnn_units == [8] and from_split.query_tower.embedding_dim == 4
    vocabulary = from_split.query_tower.encoder("user_id").vocabulary
    assert sorted(vocabulary) == sorted(set(tiny_data.train["user_id"]))
    from_table = build_model("deepfm", ranking_table, embedding_dim=4, dnn_units=(8,))
    assert from_table.history_length == model_defaults("deepfm")["history_length"]
    assert sorted(from_table.candidate_tower.encoder("movie_id").vocabulary) == sorted(
        set(ranking_table["movie_id"])
    )
    with pytest.raises(TypeError, match="SplitData or a joined table.*Received: data=list"):
        build_model("fm", [1, 2])


def test_presets():
    run = preset("movielens-100k")
    assert run.model == "deepfm"
    assert run.hparams == {"embedding_dim": 32, "dnn_units": [128, 64], "dropout": 0.1}
    assert run.train == {"epochs": 12, "num_negatives": 8, "monitor": "val_sampled_ndcg@10"}
    for name, item in PRESETS.items():
        assert set(item.hparams) <= set(model_defaults(item.model)), name
        assert set(item.train) <= set(TRAIN_DEFAULTS), name
    with pytest.raises(ValueError, match="Received: preset='nope'.*movielens-100k"):
        preset("nope")


def test_train_defaults_are_exactly_what_fit_reads():
    source = inspect.getsource(inspect.getmodule(fit))  # fit and the batches it builds
    read = set(re.findall(r'cfg\["(\w+)"\]', source))
    assert read == set(TRAIN_DEFAULTS)
