"""Simulated A/B tests: hashing as in production, power at the planned size, FPR at alpha."""

from __future__ import annotations

import numpy as np
import pytest

from tfrec.experiments.assignment import Assignment
from tfrec.experiments.clicks import ClickModel, log_position_bias
from tfrec.experiments.simulation import ABSimulation, false_positive_rate

USERS, ITEMS, K = 2000, 1000, 10
MODEL = ClickModel(p_hit=0.5, p_background=0.01)


@pytest.fixture(scope="module")
def setup():
    """Two recommenders over the same users: the treatment puts a held-out item in the list
    for 26% of users, the control for 20%."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, ITEMS, size=(USERS, 3))

    def recommender(share):
        recs = rng.integers(0, ITEMS, size=(USERS, K))
        lucky = rng.random(USERS) < share
        slot = rng.integers(0, K, size=USERS)
        recs[lucky, slot[lucky]] = truth[lucky, 0]
        return recs

    return recommender(0.20), recommender(0.26), truth


def test_true_rates_agree_with_a_direct_monte_carlo(setup):
    control, treatment, truth = setup
    simulation = ABSimulation(control, treatment, truth, MODEL)
    rng = np.random.default_rng(1)
    clicked = rng.random((50, USERS, K)) < MODEL.probabilities(control, truth)
    assert simulation.true_means[0] == pytest.approx(clicked.any(axis=2).mean(), abs=0.003)
    assert simulation.true_means[1] > simulation.true_means[0]
    clicks = ABSimulation(control, treatment, truth, MODEL, metric="clicks")
    assert clicks.true_means[0] == pytest.approx(clicked.sum(axis=2).mean(), abs=0.003)
    assert clicks.true_stds[0] == pytest.approx(clicked.sum(axis=2).std(), abs=0.003)


def test_run_streams_visitors_until_the_plan_and_hashes_them(setup):
    simulation = ABSimulation(*setup, MODEL)
    plan = simulation.design()
    run = simulation.run("exp-1", plan, seed=0)
    n_control, n_treatment = np.bincount(run.arms, minlength=2)
    assert min(n_control - plan.n_control, n_treatment - plan.n_treatment) == 0
    assert n_control >= plan.n_control and n_treatment >= plan.n_treatment
    visitors = np.arange(run.arms.size).astype(str)
    split = Assignment("exp-1", {"control": 0.5, "treatment": 0.5})
    np.testing.assert_array_equal(run.arms, split.indices(visitors))
    assert run.result.n_control == n_control and not run.result.early
    assert run.result.control == pytest.approx(run.outcomes[run.arms == 0].mean())
    assert run.result.srm is not None


def test_run_without_a_plan_hashes_the_real_users_once(setup):
    ids = np.char.add("u", np.arange(USERS).astype(str))
    simulation = ABSimulation(*setup, MODEL, user_ids=ids)
    run = simulation.run("exp-2", seed=0)
    split = Assignment("exp-2", {"control": 0.5, "treatment": 0.5})
    np.testing.assert_array_equal(run.arms, split.indices(ids))
    np.testing.assert_array_equal(run.profiles, np.arange(USERS))
    assert run.result.planned is None and run.result.n_control + run.result.n_treatment == USERS


def test_power_at_the_planned_size_is_near_the_design_target(setup):
    simulation = ABSimulation(*setup, MODEL)
    plan = simulation.design(power=0.8)
    estimate = simulation.estimate_power(plan, reps=500, seed=3)
    assert estimate.better == 1 and estimate.planned == (plan.n_control, plan.n_treatment)
    assert estimate.power == pytest.approx(0.8, abs=3 * estimate.standard_error(0.8))
    assert estimate.false_positive_rate < 0.005  # picking the worse arm: almost never
    assert "power (picked the better arm)" in str(estimate)
    weak = simulation.estimate_power(plan.n_control // 4, reps=300, seed=4)
    assert weak.power < 0.45  # a quarter of the users: about 0.29


def test_false_positive_rate_is_near_alpha_when_arms_are_identical(setup):
    control, _, truth = setup
    estimate = false_positive_rate(control, truth, 3000, reps=1500, click_model=MODEL, seed=5)
    assert estimate.better == 0 and np.isnan(estimate.power)
    se = estimate.standard_error(0.05)
    assert estimate.false_positive_rate == pytest.approx(0.05, abs=3 * se)
    assert estimate.picked_treatment == pytest.approx(estimate.picked_control, abs=4 * se)
    assert estimate.srm_rate < 0.01


def test_clicks_metric_with_position_bias_and_unequal_split(setup):
    model = ClickModel(0.5, 0.01, log_position_bias(K))
    simulation = ABSimulation(*setup, model, metric="clicks")
    plan = simulation.design(shares=(0.7, 0.3))
    assert plan.n_control > plan.n_treatment
    run = simulation.run("exp-3", plan, seed=0)
    assert run.result.test == "Welch's t-test"
    assert abs(run.arms.mean() - 0.3) < 0.02
    estimate = simulation.estimate_power(plan, reps=200, seed=6)
    assert estimate.power == pytest.approx(0.8, abs=0.1)
    assert estimate.srm_rate < 0.02


def test_bad_input_names_the_field(setup):
    control, treatment, truth = setup
    with pytest.raises(ValueError, match="metric='ctr'"):
        ABSimulation(control, treatment, truth, metric="ctr")
    with pytest.raises(ValueError, match="recs_treatment \\(2000, 5\\)"):
        ABSimulation(control, treatment[:, :5], truth)
    identical = ABSimulation(control, control, truth)
    with pytest.raises(ValueError, match="same expected metric"):
        identical.design()
    with pytest.raises(ValueError, match="reps=0"):
        identical.estimate_power(100, reps=0)
    with pytest.raises(ValueError, match="Received: None"):
        identical.estimate_power(None)
