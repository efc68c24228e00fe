"""A split experiment: the catalogue, its users, and what is known at train, valid and test time.

Why this exists: training, evaluation and export must agree on "what is known when". A model
trains on the train split; at validation time it may know the train interactions (they are its
histories and the items it must not rank again); at test time it knows train and valid; an
export for serving knows everything. `SplitData` holds one MovieLens variant and one split, and
answers those questions once, in numpy: the interactions known as of a split, each user's
seen items (one `SeenItems` per split, cached), the held-out targets, and popularity. It knows
nothing about models: `tfrec.training` and `tfrec.evaluation` build model inputs from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfrec.data.movielens import MovieLens
from tfrec.data.seen import SeenItems
from tfrec.data.splits import Split, leave_one_out

AS_OF = ("train", "valid", "test", "all")
"""Points in time: "valid" knows train, "test" knows train + valid, "all" knows every rating
("train" knows train too; training rows get their own strictly-earlier histories)."""


def _concat(*tables: dict) -> dict:
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


@dataclass
class SplitData:
    """One MovieLens variant and one train/valid/test split of its ratings.

    Args:
      movielens: The `MovieLens` tables (catalogue = ``movies``, users, ratings).
      split: The `Split` of ``movielens.ratings`` (default: leave-one-out).

    Example:
      >>> data = SplitData.from_movielens(load_movielens("100k"))  # 98,114 / 943 / 943
      >>> users, targets = data.targets("test")
      >>> data.seen("test").dense_mask(users[:4])  # train + valid items, masked in ranking
    """

    movielens: MovieLens
    split: Split
    _seen: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_movielens(cls, ml: MovieLens, split: Split | None = None) -> SplitData:
        """`ml` split leave-one-out (or by `split`); empty parts are a clear error."""
        split = split or leave_one_out(ml.ratings)
        for name, part in zip(("train", "valid", "test"), split, strict=True):
            if len(part["user_index"]) == 0:
                raise ValueError(
                    f"The {name} split is empty. Fix: use a variant or split whose users have "
                    "at least 3 interactions."
                )
        return cls(ml, split)

    # ------------------------------------------------------------------ catalogue and users

    @property
    def items(self) -> dict:
        """The catalogue's side-feature table (``movie_id``, title, genres), item-index order."""
        return self.movielens.movies

    @property
    def users(self) -> dict:
        """The users' side-feature table in user-index order (just ``user_id`` when absent)."""
        ml = self.movielens
        return dict(ml.users) if ml.users is not None else {"user_id": ml.user_ids}

    @property
    def item_ids(self) -> np.ndarray:
        return self.movielens.movie_ids

    @property
    def user_ids(self) -> np.ndarray:
        return self.movielens.user_ids

    @property
    def num_items(self) -> int:
        return self.movielens.num_movies

    @property
    def num_users(self) -> int:
        return self.movielens.num_users

    @property
    def train(self) -> dict:
        return self.split.train

    # ------------------------------------------------------------------ what is known when

    def known(self, as_of: str) -> dict:
        """The interactions known at `as_of` ("train"/"valid": train; "test": train + valid;
        "all": every rating)."""
        if as_of not in AS_OF:
            raise ValueError(f"`as_of` must be one of {AS_OF}. Received: as_of={as_of!r}")
        if as_of in ("train", "valid"):
            return self.split.train
        if as_of == "test":
            return _concat(self.split.train, self.split.valid)
        return self.movielens.ratings

    def seen(self, as_of: str) -> SeenItems:
        """Each user's items known at `as_of`, as `SeenItems` (cached)."""
        if as_of not in self._seen:
            known = self.known(as_of)
            self._seen[as_of] = SeenItems.from_pairs(
                known["user_index"].astype(np.int64),
                known["movie_index"].astype(np.int64),
                self.num_users,
                self.num_items,
            )
        return self._seen[as_of]

    def targets(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(user_index, item_index)`` of the held-out interactions of "valid" or "test"."""
        if split not in ("valid", "test"):
            raise ValueError(f"`split` must be 'valid' or 'test'. Received: split={split!r}")
        part = self.split.valid if split == "valid" else self.split.test
        return part["user_index"].astype(np.int64), part["movie_index"].astype(np.int64)

    def item_counts(self, as_of: str = "train") -> np.ndarray:
        """Interactions per item known at `as_of` (popularity), ``[num_items]`` int64."""
        items = self.known(as_of)["movie_index"].astype(np.int64)
        return np.bincount(items, minlength=self.num_items)
