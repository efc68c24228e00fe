"""MovieLens data layer: fetching, parsing, schema, splits, histories, seen items, negatives.

Why this exists: every tfrec model trains and is evaluated on MovieLens; this package turns any
reachable source (GroupLens, PyPI's RecBole copy, TFDS, files on disk) into one verified,
cached, in-memory form with TFDS's feature meanings, and provides the fast numpy / tf.data
building blocks on top of it, none of which knows about models. See ``tfrec/data/README.md``
for the source-to-field table.

Typical use::

    import tfrec
    from tfrec import data

    ml = data.load_movielens("100k")            # 943 users, 1682 movies, 100,000 ratings
    split = data.SplitData.from_movielens(ml)   # leave-one-out: 98,114 / 943 / 943
    sampler = data.NegativeSampler(split.seen("train"), seed=0)
    batches = data.pointwise_dataset(split.train, sampler, num_negatives=4)

Errors: ``DataError`` (a ValueError: a malformed file or table, naming file, line, field, value
and fix), ``FetchError`` (fetching or verifying failed) and its ``CacheCorruptError``;
``DataWarning`` when loading changed something (duplicates dropped, an entry re-fetched).
"""

from tfrec.data.cache import CacheReport, verify_cache
from tfrec.data.checks import deduplicate_ratings
from tfrec.data.context import last_history, recent_history
from tfrec.data.errors import CacheCorruptError, DataError, DataWarning, FetchError
from tfrec.data.labels import explicit_labels, implicit_labels
from tfrec.data.movielens import MovieLens, from_tables, load_movielens
from tfrec.data.parsers import Tables, detect_layout, parse_directory
from tfrec.data.pipelines import pointwise_dataset, positives_dataset
from tfrec.data.sampling import NegativeSampler
from tfrec.data.schema import GENRE_NAMES, OCCUPATION_NAMES, VARIANTS, ratings_features
from tfrec.data.seen import SeenItems, SeenItemsLookup
from tfrec.data.sequences import sequence_windows
from tfrec.data.slices import time_slice
from tfrec.data.sources import SOURCES, cache_root, fetch_movielens
from tfrec.data.splitdata import AS_OF, SplitData
from tfrec.data.splits import Split, chronological_split, leave_one_out, random_split

__all__ = [
    "AS_OF",
    "GENRE_NAMES",
    "OCCUPATION_NAMES",
    "SOURCES",
    "VARIANTS",
    "CacheCorruptError",
    "CacheReport",
    "DataError",
    "DataWarning",
    "FetchError",
    "MovieLens",
    "NegativeSampler",
    "SeenItems",
    "SeenItemsLookup",
    "Split",
    "SplitData",
    "Tables",
    "cache_root",
    "chronological_split",
    "deduplicate_ratings",
    "detect_layout",
    "explicit_labels",
    "fetch_movielens",
    "from_tables",
    "implicit_labels",
    "last_history",
    "leave_one_out",
    "load_movielens",
    "parse_directory",
    "pointwise_dataset",
    "positives_dataset",
    "random_split",
    "ratings_features",
    "recent_history",
    "sequence_windows",
    "time_slice",
    "verify_cache",
]
