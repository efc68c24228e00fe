"""Salted hash assignment: stable across processes, uniform, independent across salts."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import chi2_contingency, chisquare

from tfrec.experiments.assignment import Assignment, hash_ids, unit_interval

IDS = np.char.add("user_", np.arange(100_000).astype(str))  # similar ids: a hard case
SPLIT = {"control": 0.5, "treatment": 0.5}


def test_hash_values_are_pinned():
    # Changing the hash would silently move users between arms of running experiments.
    got = hash_ids(["196", "186", "22", "", "ünï"], "deepfm-v2").tolist()
    assert got == [
        17022288069641892303,
        8736775712644925883,
        2481918616907837764,
        7416410630379237323,
        15649890512825020949,
    ]
    variants = Assignment("deepfm-v2", SPLIT).variants(["196", "186", "22", "244", "166"])
    assert variants.tolist() == ["treatment", "control", "control", "treatment", "treatment"]


def test_assignment_is_stable_across_processes():
    # The module needs only numpy, so the other process loads it by path without TensorFlow:
    # an application server can assign users the same way without importing tfrec.
    module = pathlib.Path(__file__).resolve().parents[2] / "tfrec/experiments/assignment.py"
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('assignment', {str(module)!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "sys.modules['assignment'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "assert 'tensorflow' not in sys.modules\n"
        "Assignment = mod.Assignment\n"
        "ids = [f'user_{i}' for i in range(2000)]\n"
        "split = Assignment('exp-7', {'control': 0.5, 'treatment': 0.3, 'other': 0.2})\n"
        "print(json.dumps(split.indices(ids).tolist()))\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    other_process = json.loads(done.stdout.strip().splitlines()[-1])
    split = Assignment("exp-7", {"control": 0.5, "treatment": 0.3, "other": 0.2})
    here = split.indices([f"user_{i}" for i in range(2000)]).tolist()
    assert other_process == here
    assert set(here) == {0, 1, 2}


def test_hash_is_the_same_for_every_input_form_and_batch():
    ids = ["196", "7", "ünïcode", "a" * 40]
    expected = hash_ids(ids, "s")
    as_bytes = np.array([i.encode("utf-8") for i in ids], dtype=object)
    for form in (np.array(ids), np.array(ids, dtype="U64"), np.array(ids, dtype=object), as_bytes):
        np.testing.assert_array_equal(hash_ids(form, "s"), expected)
    np.testing.assert_array_equal(hash_ids(ids[:2], "s"), expected[:2])  # width-independent
    np.testing.assert_array_equal(hash_ids(ids[::-1], "s"), expected[::-1])
    np.testing.assert_array_equal(hash_ids([196, 7], "s"), hash_ids(["196", "7"], "s"))
    np.testing.assert_array_equal(hash_ids(np.array([b"196"]), "s"), expected[:1])
    assert len(set(hash_ids(["a", "a\x00b", "ab", "b", ""], "s").tolist())) == 5


def test_positions_are_uniform():
    position = unit_interval(IDS, "uniformity")
    assert 0 <= position.min() and position.max() < 1
    buckets = np.bincount((position * 100).astype(int), minlength=100)
    assert chisquare(buckets).pvalue > 0.001
    low_bits = (hash_ids(IDS, "uniformity") % np.uint64(97)).astype(int)
    assert chisquare(np.bincount(low_bits, minlength=97)).pvalue > 0.001
    split = Assignment("uniformity", {"a": 0.5, "b": 0.3, "c": 0.2})
    counts = np.bincount(split.indices(IDS), minlength=3)
    assert chisquare(counts, IDS.size * np.array([0.5, 0.3, 0.2])).pvalue > 0.001
    assert split.counts(IDS) == dict(zip("abc", counts.tolist(), strict=True))


def test_integer_ids_are_uniform_too():
    counts = np.bincount(Assignment("ints", SPLIT).indices(np.arange(100_000)), minlength=2)
    assert chisquare(counts).pvalue > 0.001


def test_experiments_with_different_salts_are_independent():
    first = Assignment("experiment-1", SPLIT).indices(IDS)
    second = Assignment("experiment-2", SPLIT).indices(IDS)
    table = np.zeros((2, 2))
    np.add.at(table, (first, second), 1)
    assert chi2_contingency(table).pvalue > 0.001
    assert abs((first == second).mean() - 0.5) < 0.01
    r = np.corrcoef(unit_interval(IDS, "experiment-1"), unit_interval(IDS, "experiment-2"))
    assert abs(r[0, 1]) < 0.01


def test_changing_only_the_salt_reshuffles_and_keeping_it_does_not():
    one = Assignment("x", SPLIT).indices(IDS[:1000])
    np.testing.assert_array_equal(one, Assignment("x", SPLIT).indices(IDS[:1000]))
    assert (one != Assignment("y", SPLIT).indices(IDS[:1000])).any()


@pytest.mark.parametrize(
    "salt, weights, match",
    [
        ("", SPLIT, "salt=''"),
        ("s", {"control": 1.0}, "at least two"),
        ("s", {"control": 0.5, "treatment": 0.4}, "sum to 1"),
        ("s", {"control": 1.2, "treatment": -0.2}, "positive"),
        ("s", [("control", 0.5), ("treatment", 0.5)], "weights="),
        ("s", {"control": 0.5, "": 0.5}, "non-empty"),
    ],
)
def test_bad_assignment_input_names_the_field(salt, weights, match):
    with pytest.raises(ValueError, match=match):
        Assignment(salt, weights)


def test_bad_ids_name_the_problem():
    with pytest.raises(ValueError, match="one-dimensional"):
        hash_ids(np.zeros((2, 2), dtype=int), "s")
    with pytest.raises(ValueError, match="dtype float64"):
        hash_ids(np.array([1.5]), "s")
