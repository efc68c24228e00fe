"""An A/B test of two exported recommenders on MovieLens-100k, simulated from design to verdict.

Why this exists: before real traffic decides between the live model and a candidate, the whole
test can be rehearsed offline with the same code a team would run: two held-out exports
(``as_of="test"``: they know train + valid, never the test interactions), each user's top-10
from the exports' own ``recommend`` signatures, clicks drawn from the held-out interactions
(`tfrec.experiments.ClickModel`), users hashed into arms with a salt, and the fixed-horizon
analysis at the planned sample size. Repeating it answers what a plan must know: how often the
test picks the truly better model (power) and how often it declares a winner between two
copies of the same model (false positive rate, which should be alpha).

Arms: control = GMF without history (matrix factorisation, the "live" model), treatment =
the `make run` DeepFM (preset ``movielens-100k``). The offline comparison with paired
bootstrap intervals (`tfrec.serving.compare_exports`) is printed first, as a team would look
at it before spending traffic.

Run: ``.venv/bin/python benchmarks/bench_ab_simulation.py`` (``--quick``: fewer epochs and
repetitions).
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _bench_utils import emit, machine_info

from tfrec.data import SplitData, load_movielens
from tfrec.experiments import ABSimulation, ClickModel, false_positive_rate, truth_matrix
from tfrec.models import preset
from tfrec.serving import ServedExport, compare_exports, export_model
from tfrec.workflow import train_model

K = 10


def top_k_indices(path, data: SplitData, k: int) -> np.ndarray:
    """Every user's top-k from the export's ``recommend``, as catalogue indices (-1 = none)."""
    ids, _, _ = ServedExport(path).recommend(data.user_ids, k)
    order = np.argsort(data.item_ids)
    position = np.minimum(np.searchsorted(data.item_ids, ids, sorter=order), data.num_items - 1)
    index = order[position]
    return np.where(data.item_ids[index] == ids, index, -1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulated tests per estimate")
    parser.add_argument("--p-hit", type=float, default=0.3)
    parser.add_argument("--p-background", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(machine_info())
    data = SplitData.from_movielens(load_movielens("100k"))
    chosen = preset("movielens-100k")
    train_cfg = dict(chosen.train, **({"epochs": 2} if args.quick else {}))
    arms = {
        "control": ("gmf", {"history_length": 0}, dict(train_cfg)),
        "treatment": (chosen.model, dict(chosen.hparams), train_cfg),
    }
    out, recs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for arm, (name, hparams, cfg) in arms.items():
            start = time.perf_counter()
            result = train_model(name, data, hparams, cfg, verbose=0)
            paths[arm] = export_model(result.model, data, as_of="test", base_dir=Path(tmp),
                                      name=arm, warmup=False)  # fmt: skip
            recs[arm] = top_k_indices(paths[arm], data, K)
            print(f"{arm}: {name} {hparams}, {result.metrics['epochs']} epochs, "
                  f"{time.perf_counter() - start:.0f} s, test full HR@10 "
                  f"{result.metrics['full_hr@10']:.4f}")  # fmt: skip
        comparison = compare_exports(paths["control"], paths["treatment"], data, ks=(K,), reps=2000)
    print("\nOffline: treatment (B) - control (A) on the test split, paired bootstrap over users")
    print(comparison.table())
    out["offline"] = {
        name: {"a": d.a, "b": d.b, "low": d.low, "high": d.high}
        for name, d in comparison.differences.items()
        if name in ("full_hr@10", "full_ndcg@10", "sampled_hr@10")
    }

    users, targets = data.targets("test")
    truth = truth_matrix(users, targets, data.num_users)
    clicks = ClickModel(p_hit=args.p_hit, p_background=args.p_background)
    simulation = ABSimulation(
        recs["control"], recs["treatment"], truth, clicks, user_ids=data.user_ids
    )
    control, treatment = simulation.true_means
    plan = simulation.design(alpha=0.05, power=0.8, daily_traffic=1000)
    print(f"\nClick model: {clicks}")
    print(f"true conversion (>= 1 click in the top {K}): control {control:.4f}, "
          f"treatment {treatment:.4f}")  # fmt: skip
    print(f"Design: {plan}")
    single = simulation.run("deepfm-vs-gmf", plan, seed=0)
    print(f"\nOne simulated test (salt 'deepfm-vs-gmf'):\n{single.result}")
    reps = 200 if args.quick else args.reps
    start = time.perf_counter()
    power = simulation.estimate_power(plan, reps=reps, seed=1, progress=True)
    print(f"\n{power}\n({time.perf_counter() - start:.0f} s)")
    fpr = false_positive_rate(recs["treatment"], truth, plan, reps=reps, click_model=clicks,
                              seed=2, progress=True)  # fmt: skip
    print(f"\nBoth arms DeepFM (A/A):\n{fpr}")
    out["simulation"] = {
        "true control": control,
        "true treatment": treatment,
        "planned per arm": plan.n_control,
        "days at 1000 users/day": plan.days,
        "one test p": single.result.p_value,
        "power": power.power,
        "power s.e.": power.standard_error(power.power),
        "false positive rate": fpr.false_positive_rate,
        "fpr s.e.": fpr.standard_error(fpr.false_positive_rate),
        "reps": reps,
    }
    emit("ab_simulation", out)


if __name__ == "__main__":
    main()
