"""Batch recommendations (tfrec/serving/batch.py): every user once, k rows, no seen item,
the export's own lists, CSV read back by Python's csv module, Parquet by pyarrow, and no file
at all when a run fails half-way.

Uses the serving fixtures: an ``as_of="all"`` export of a small DeepFM, whose user "heavy"
has only three unseen movies left (so gets three rows, not k).
"""

import tfrec  # noqa: F401  # isort: skip
import csv
import io
import sys

import numpy as np
import pytest

from tfrec.serving import ServedExport, recommend_all
from tfrec.serving.batch import _csv_field

K = 10


@pytest.fixture(scope="module")
def written(exports, tmp_path_factory):
    out = tmp_path_factory.mktemp("recs")
    report = recommend_all(exports.popular, out / "recs.csv", k=K, batch_size=37, progress=False)
    with open(report.path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return report, rows


def test_every_user_once_with_k_unseen_movies(written, movielens, exports):
    report, rows = written
    served = ServedExport(exports.popular)
    users = np.array([r["user_id"] for r in rows])
    movies = np.array([r["movie_id"] for r in rows])
    distinct, counts = np.unique(users, return_counts=True)
    assert sorted(distinct) == sorted(served.users())
    assert report.users == distinct.size and report.rows == len(rows)
    expected = {u: K for u in distinct}
    expected[movielens.heavy_user] = 3  # rated all but three movies
    assert dict(zip(distinct, counts, strict=True)) == expected
    seen = set(zip(*movielens.seen, strict=True))
    assert not seen & set(zip(users, movies, strict=True))
    for user in distinct:
        mine = [r for r in rows if r["user_id"] == user]
        assert [int(r["rank"]) for r in mine] == list(range(1, len(mine) + 1))
        scores = [float(r["score"]) for r in mine]
        assert scores == sorted(scores, reverse=True)
    ids, _, titles = served.recommend(distinct[:5], K)
    for user, row_ids, row_titles in zip(distinct[:5], ids, titles, strict=True):
        mine = [r for r in rows if r["user_id"] == user]
        assert [r["movie_id"] for r in mine] == [m for m in row_ids if m]
        filled = [t for m, t in zip(row_ids, row_titles, strict=True) if m]
        assert [r["title"] for r in mine] == filled


def test_parquet_holds_the_same_rows(written, exports, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    _, rows = written
    report = recommend_all(exports.popular, tmp_path / "recs.parquet", k=K, progress=False)
    table = pq.read_table(report.path).to_pydict()
    assert table["user_id"] == [r["user_id"] for r in rows]
    assert table["movie_id"] == [r["movie_id"] for r in rows]
    assert table["rank"] == [int(r["rank"]) for r in rows]
    np.testing.assert_allclose(table["score"], [float(r["score"]) for r in rows], rtol=1e-5)


def test_csv_quoting_round_trips():
    values = np.array(["plain", 'say "hi"', "a, b", "two\nlines", ""])
    line = ",".join(_csv_field(values))
    assert next(csv.reader(io.StringIO(line))) == values.tolist()


def test_a_failed_run_leaves_the_previous_file_and_no_temp(exports, tmp_path, monkeypatch):
    output = tmp_path / "recs.csv"
    output.write_text("previous\n")
    served = ServedExport(exports.popular)
    calls = {"n": 0}
    recommend = served.recommend

    def failing(user_ids, k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("server went away")
        return recommend(user_ids, k)

    monkeypatch.setattr(served, "recommend", failing)
    with pytest.raises(RuntimeError, match="went away"):
        recommend_all(served, output, k=K, batch_size=10, progress=False)
    assert output.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["recs.csv"]


def test_bad_arguments_name_the_fix(exports, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="k"):
        recommend_all(exports.popular, tmp_path / "r.csv", k=0)
    with pytest.raises(FileNotFoundError, match="directory"):
        recommend_all(exports.popular, tmp_path / "missing" / "r.csv")
    with pytest.raises(ValueError, match="distinct"):
        recommend_all(exports.popular, tmp_path / "r.csv", users=["1", "1"])
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"tfrec\[parquet\]"):
        recommend_all(exports.popular, tmp_path / "r.parquet", progress=False)
    assert not list(tmp_path.iterdir())
