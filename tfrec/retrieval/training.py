"""Training batches and leave-one-out metrics for two-tower retrieval models.

Exists because retrieval trains on positives only (the in-batch softmax makes its own
negatives) and is judged on full-corpus recall at large cut-offs (is the held-out movie among
the top 100 a ranker will see?), neither of which the ranking trainer provides. Metrics reuse
`tfrec.evaluation.full_ranking`, with the user's train/valid movies masked, through a score
function that dots each user vector with every movie vector computed once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.evaluation import full_ranking

RETRIEVAL_KS = (10, 50, 100)


def positives_dataset(model, data, batch_size=1024, num_negatives=0, seed=0):
    """Training batches of `data` (a `RankingData`) for a `TwoTower` `model`.

    With ``num_negatives=0`` (the default) batches hold only the training interactions,
    shuffled anew each epoch, with the towers' preprocessed inputs gathered per row
    (`RankingData.inputs`); the model's in-batch softmax makes the negatives. With
    ``num_negatives > 0`` this is `RankingData.dataset`: every positive comes with that many
    uniformly sampled movies labelled 0, which a TwoTower with ``mixed_negatives=True`` adds
    as extra negatives.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: {batch_size!r}")
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 0:
        raise ValueError(
            f"`num_negatives` must be an integer >= 0. Received: num_negatives={num_negatives!r}"
        )
    if num_negatives:
        return data.dataset(model, num_negatives=num_negatives, batch_size=batch_size, seed=seed)
    inputs = data.inputs(model, "train")
    rows = {
        "user_index": data.train["user_index"].astype(np.int64),
        "movie_index": data.train["movie_index"].astype(np.int64),
        "row": np.arange(len(data.train["user_index"]), dtype=np.int64),
    }
    ds = tf.data.Dataset.from_tensor_slices(rows)
    ds = ds.shuffle(len(rows["row"]), seed=seed, reshuffle_each_iteration=True).batch(batch_size)

    @tf.autograph.experimental.do_not_convert  # plain ops; no source parsing needed
    def gather(rows):
        return inputs.gather(rows["user_index"], rows["movie_index"], rows["row"])

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _chunks(fn, features: dict, size: int, batch_size: int) -> np.ndarray:
    parts = [
        np.asarray(fn({k: v[i : i + batch_size] for k, v in features.items()}))
        for i in range(0, size, batch_size)
    ]
    return np.concatenate(parts, axis=0)


def catalogue_vectors(model, data, split="test", batch_size=65536) -> np.ndarray:
    """`TwoTower.movie_vectors` of every movie of `data`, ``[num_movies, d]``, in chunks."""
    per_movie = data.inputs(model, split).per_movie
    return _chunks(model.movie_vectors, per_movie, data.movielens.num_movies, batch_size)


def retrieval_score_fn(model, data, split="test"):
    """A `tfrec.evaluation` score function for a two-tower model: user · movie dot products.

    Movie vectors are computed once for the whole catalogue; each call embeds its users with
    their features and history as of `split` and scores the requested items.
    """
    inputs = data.inputs(model, split)
    movies = catalogue_vectors(model, data, split)

    def score(user_index, item_index):
        users = tf.constant(np.asarray(user_index, np.int64))
        features = {k: tf.gather(v, users) for k, v in inputs.per_user.items()}
        queries = np.asarray(model.user_vectors(features))
        items = np.asarray(item_index)
        if items.shape[1] == movies.shape[0] and (items == np.arange(movies.shape[0])).all():
            return queries @ movies.T  # full ranking: every movie, in order
        return np.einsum("bd,bcd->bc", queries, movies[items])

    return score


def evaluate_retrieval(model, data, split="test", ks=RETRIEVAL_KS) -> dict:
    """Full-corpus leave-one-out metrics (HR/recall/NDCG at each k, MRR) of a two-tower model.

    The user's train (and, for test, valid) movies are masked, as in `RankingData.evaluate`.
    """
    users, targets = data.targets(split)
    return full_ranking(
        retrieval_score_fn(model, data, split),
        users,
        targets,
        data.movielens.num_movies,
        data.exclude_set(split),
        ks=ks,
    )
