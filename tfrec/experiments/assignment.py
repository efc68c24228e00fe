"""Deterministic assignment of users to the variants of an experiment by salted hashing.

A user must see the same variant on every request, from every server process, on every day
of the test, without a lookup table: the variant is a pure function of ``(user id, salt)``.
Python's ``hash()`` is randomised per process, so ids are hashed here with a fixed 64-bit
function, vectorised over numpy arrays (no Python step per user): the experiment's salt
(through BLAKE2b) draws one odd 64-bit multiplier per character position, an id's Unicode code
points are combined as ``sum(code[i] * multiplier[i]) mod 2^64`` (a multilinear hash, one
integer matrix-vector product for all ids; the zero padding of shorter ids adds nothing, so
a hash does not depend on the other ids in the batch), and two rounds of MurmurHash3's 64-bit
finaliser keyed by the salt spread every input bit over the result. Each salt thus picks its
own hash function: experiments with different salts split users independently.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

import numpy as np

_MIX_1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX_2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SPLIT_1 = np.uint64(0xBF58476D1CE4E5B9)
_SPLIT_2 = np.uint64(0x94D049BB133111EB)
_BLOCK = 1 << 16


def _as_unicode(ids) -> np.ndarray:
    """A 1-D ``<U`` array of the ids; integers become their decimal strings, bytes UTF-8."""
    array = np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(f"`ids` must be one-dimensional. Received: ids with shape {array.shape}")
    kind = array.dtype.kind
    if kind == "U":
        return array.astype("<U" + str(max(array.dtype.itemsize // 4, 1)), copy=False)
    if kind in "iu":
        return array.astype(str)
    if kind == "S":
        try:
            return array.astype(str)  # ASCII, vectorised
        except UnicodeDecodeError:
            return np.char.decode(array, "utf-8")
    if kind == "O":  # one Python call per id: convert to a str array first for speed
        return np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in array])
    raise ValueError(
        f"`ids` must be strings, bytes or integers. Received: ids with dtype {array.dtype}"
    )


def _salt_key(salt: str) -> int:
    if not isinstance(salt, str) or not salt:
        raise ValueError(
            "`salt` must be a non-empty string, one per experiment (e.g. 'deepfm-v2-vs-v1'). "
            f"Received: salt={salt!r}"
        )
    return int.from_bytes(hashlib.blake2b(salt.encode("utf-8"), digest_size=8).digest(), "little")


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * _MIX_1
    h = h ^ (h >> np.uint64(33))
    h = h * _MIX_2
    return h ^ (h >> np.uint64(33))


def _multipliers(key: int, width: int) -> np.ndarray:
    """One odd 64-bit multiplier per character position, drawn from the salt (SplitMix64)."""
    z = np.uint64(key) + np.arange(1, width + 1, dtype=np.uint64) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _SPLIT_1
    z = (z ^ (z >> np.uint64(27))) * _SPLIT_2
    return (z ^ (z >> np.uint64(31))) | np.uint64(1)


def hash_ids(ids, salt: str) -> np.ndarray:
    """64-bit hashes (``uint64``) of `ids` under `salt`; identical in every process and run.

    Integer ids hash like their decimal strings (``196`` and ``"196"`` agree).
    """
    key = _salt_key(salt)
    text = _as_unicode(ids)
    n, width = text.shape[0], text.dtype.itemsize // 4
    codes = np.ascontiguousarray(text).view("<u4").reshape(n, width)
    weights = _multipliers(key, width)
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, _BLOCK):  # blocks of rows bound the uint64 copy's memory
        block = codes[start : start + _BLOCK].astype(np.uint64)
        out[start : start + _BLOCK] = block @ weights  # wraps modulo 2^64
    return _fmix64(_fmix64(out ^ np.uint64(key)) + np.uint64(key))


def unit_interval(ids, salt: str) -> np.ndarray:
    """Each id's position in [0, 1) under `salt` (the top 53 bits of its hash)."""
    return (hash_ids(ids, salt) >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclasses.dataclass(frozen=True)
class Assignment:
    """The variant split of one experiment: a salt and the weight of each variant.

    It exists so that the application (choosing which TF Serving label to call), the logs
    and the offline analysis all derive a user's variant the same way. `weights` maps variant
    names to fractions summing to 1, in order (the first is the control by convention); it is
    stored as a tuple of ``(name, weight)`` pairs. Each variant owns a fixed slice of [0, 1),
    so a user's variant never changes while the salt and weights stay the same; a new
    experiment needs a new salt, or the same users would land in the same arms again.

    Example:
      >>> split = Assignment("deepfm-v2", {"control": 0.5, "treatment": 0.5})
      >>> split.variants(["196", "186", "22"]).tolist()  # the same in every process
      ['treatment', 'control', 'control']
    """

    salt: str
    weights: tuple[tuple[str, float], ...]

    def __post_init__(self):
        _salt_key(self.salt)
        pairs = tuple(self.weights.items()) if isinstance(self.weights, Mapping) else None
        if pairs is None or len(pairs) < 2:
            raise ValueError(
                "`weights` must map at least two variant names to fractions, e.g. "
                f"{{'control': 0.5, 'treatment': 0.5}}. Received: weights={self.weights!r}"
            )
        values = np.array([w for _, w in pairs], dtype=np.float64)
        names = [name for name, _ in pairs]
        if not all(isinstance(name, str) and name for name in names):
            raise ValueError(f"Variant names must be non-empty strings. Received: {names!r}")
        if (values <= 0).any() or not np.isclose(values.sum(), 1.0, atol=1e-9):
            raise ValueError(
                "Variant weights must be positive and sum to 1 (add an explicit 'holdout' "
                f"variant for traffic outside the test). Received: weights={self.weights!r}"
            )
        object.__setattr__(self, "weights", tuple((n, float(w)) for n, w in pairs))

    @property
    def arms(self) -> tuple[str, ...]:
        """Variant names in order (index 0 is the control by convention)."""
        return tuple(name for name, _ in self.weights)

    @property
    def shares(self) -> tuple[float, ...]:
        """Variant weights in the order of `arms`."""
        return tuple(weight for _, weight in self.weights)

    def indices(self, ids) -> np.ndarray:
        """Each id's variant as an index into `arms` (``int64``)."""
        edges = np.cumsum(self.shares)
        edges[-1] = 1.0
        position = unit_interval(ids, self.salt)
        return np.minimum(np.searchsorted(edges, position, side="right"), len(edges) - 1)

    def variants(self, ids) -> np.ndarray:
        """Each id's variant name."""
        return np.asarray(self.arms)[self.indices(ids)]

    def counts(self, ids) -> dict[str, int]:
        """How many of `ids` fall in each variant (what the SRM check compares)."""
        found = np.bincount(self.indices(ids), minlength=len(self.arms))
        return {name: int(count) for name, count in zip(self.arms, found, strict=True)}
