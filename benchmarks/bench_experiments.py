"""Benchmark of tfrec.experiments: assignment speed, and the statistics' error rates.

Why this exists: assignment runs on every request and on every log line of an experiment,
so hashing 10^6 ids must be fast (and is compared with a per-id BLAKE2b loop in Python); and
the analysis is only useful if its error rates are what it claims, so this measures, with
more repetitions than the tests can afford, the power of simulated tests at the planned size,
the false positive rate between identical recommenders, and how often continuous monitoring
crosses alpha under the null with the mSPRT versus naive repeated z-tests.

Run: ``.venv/bin/python benchmarks/bench_experiments.py`` (``--quick`` for fewer repetitions).
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import argparse
import hashlib
import time

import numpy as np
from _bench_utils import emit, machine_info, median_time
from scipy.stats import norm

from tfrec.experiments import ABSimulation, Assignment, ClickModel, false_positive_rate, hash_ids
from tfrec.experiments.sequential import msprt_batch


def bench_assignment(n: int) -> dict:
    ids = np.char.add("user_", np.arange(n).astype(str))
    as_list = ids.tolist()
    vectorised = median_time(lambda: hash_ids(ids, "bench"))
    split = Assignment("bench", {"control": 0.5, "treatment": 0.5})
    assign = median_time(lambda: split.indices(ids))

    def loop():
        return [hashlib.blake2b(f"bench:{i}".encode(), digest_size=8).digest() for i in as_list]

    looped = median_time(loop, repeats=1)
    return {
        "ids": n,
        "hash_ids s": vectorised,
        "hash_ids ids/s": n / vectorised,
        "Assignment.indices ids/s": n / assign,
        "blake2b per-id loop s": looped,
        "speed-up vs loop": looped / vectorised,
    }


def _recommenders(users=2000, items=1000, k=10, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, items, size=(users, 3))

    def recommender(share):
        recs = rng.integers(0, items, size=(users, k))
        lucky = rng.random(users) < share
        slot = rng.integers(0, k, size=users)
        recs[lucky, slot[lucky]] = truth[lucky, 0]
        return recs

    return recommender(0.20), recommender(0.26), truth


def bench_simulation(reps: int) -> dict:
    control, treatment, truth = _recommenders()
    model = ClickModel(p_hit=0.5, p_background=0.01)
    simulation = ABSimulation(control, treatment, truth, model)
    plan = simulation.design(power=0.8)
    print(plan)
    start = time.perf_counter()
    power = simulation.estimate_power(plan, reps=reps, seed=1, progress=True)
    seconds = time.perf_counter() - start
    print(power)
    fpr = false_positive_rate(control, truth, plan, reps=reps, click_model=model, seed=2)
    print(fpr)
    return {
        "planned per arm": plan.n_control,
        "design power": plan.power,
        "simulated power": power.power,
        "power s.e.": power.standard_error(power.power),
        "false positive rate": fpr.false_positive_rate,
        "fpr s.e.": fpr.standard_error(fpr.false_positive_rate),
        "simulated tests/s": reps / seconds,
    }


def bench_monitoring(sequences: int, n: int = 2000, every: int = 10) -> dict:
    rng = np.random.default_rng(3)
    looks = np.arange(every, n + 1, every)
    rates = {}
    for chunk in range(0, sequences, 1000):
        size = min(1000, sequences - chunk)
        y = rng.normal(0.0, 1.0, (2, size, n))
        s1 = np.cumsum(y, axis=-1)[..., looks - 1]
        s2 = np.cumsum(y * y, axis=-1)[..., looks - 1]
        mean = s1 / looks
        var = (s2 - looks * mean**2) / (looks - 1)
        variance = var[0] / looks + var[1] / looks
        difference = mean[1] - mean[0]
        p, _, _ = msprt_batch(difference, variance, tau=0.1, valid=looks >= 100)
        naive = 2 * norm.sf(np.abs(difference) / np.sqrt(variance))
        naive = np.where(looks >= 100, naive, 1.0)
        for name, values in (("mSPRT", p), ("naive z-test", naive)):
            rates[name] = rates.get(name, 0) + int((values < 0.05).any(axis=1).sum())
    out = {f"{name} ever below 0.05": count / sequences for name, count in rates.items()}
    out["sequences"], out["looks"] = sequences, looks.size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer ids and repetitions")
    args = parser.parse_args()
    print(machine_info())
    results = {
        "assignment": bench_assignment(100_000 if args.quick else 1_000_000),
        "simulation": bench_simulation(300 if args.quick else 2000),
        "monitoring": bench_monitoring(1000 if args.quick else 5000),
    }
    for name, row in results.items():
        print(f"\n{name}:")
        for key, value in row.items():
            print(f"  {key}: {value:,.4g}" if isinstance(value, float) else f"  {key}: {value:,}")
        emit(f"experiments:{name}", row)


if __name__ == "__main__":
    main()
