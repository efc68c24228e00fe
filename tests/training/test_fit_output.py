"""What `fit(verbose="auto")` writes (issue 14, finding 12): a progress bar on a terminal, one
line per epoch otherwise, so `make run > log` holds no carriage-return progress bars."""

import tfrec  # noqa: F401  # isort: skip
import io
import re
import sys

import pytest

from tfrec.data import SplitData
from tfrec.data.synthetic import synthetic_movielens
from tfrec.models import build_model
from tfrec.training import fit


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(scope="module")
def data():
    ml = synthetic_movielens(num_users=20, num_movies=30, ratings_per_user=6, seed=4)
    return SplitData.from_movielens(ml)


def _fit_output(data, monkeypatch, stream, epochs) -> str:
    monkeypatch.setattr(sys, "stdout", stream)
    model = build_model("deepfm", data, embedding_dim=4, dnn_units=[4], history_length=3)
    fit(model, data, epochs=epochs, batch_size=32, num_negatives=1, verbose="auto")
    monkeypatch.undo()
    return stream.getvalue()


def test_auto_writes_one_line_per_epoch_when_stdout_is_not_a_terminal(data, monkeypatch):
    out = _fit_output(data, monkeypatch, io.StringIO(), epochs=2)
    assert "\r" not in out and "\b" not in out
    lines = out.splitlines()
    epochs = [i for i, line in enumerate(lines) if line in ("Epoch 1/2", "Epoch 2/2")]
    assert len(epochs) == 2
    for i in epochs:  # verbose=2: "10/10 - 1s - loss: ... - val_full_ndcg@10: ..."
        assert re.match(r"\d+/\d+ - \d+s - (.* - )?loss: .* - val_full_ndcg@10: ", lines[i + 1])


def test_auto_shows_the_progress_bar_on_a_terminal(data, monkeypatch):
    out = _fit_output(data, monkeypatch, _Terminal(), epochs=1)
    assert "\r" in out and "[==" in out
