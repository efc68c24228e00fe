"""Offline A/B tests of two recommenders: hashing, simulated clicks, analysis, power, FPR.

Before spending weeks of real traffic on a test, simulate it: each arm's top-k lists (e.g.
from two exported models) and each user's held-out items give, through a `ClickModel`, the
probability that a user converts (clicks at least once) or how many items they click. Users
are split by the same salted hash as production (`Assignment`), clicks are drawn, and the
same analysis decides. Repeating that with fresh salts and seeds answers the questions a
plan needs: how often the test picks the truly better recommender at the planned size
(power), and how often it declares a winner between two identical arms (false positives).

Visitors are drawn with replacement from the users (a user of a small data set such as
ml-100k stands for many similar people), each with their own id, so the planned sample size
is not limited by the data set; the stream runs until both arms reach their plan, as a real
fixed-horizon test would. Everything is vectorised over visitors; repetitions loop in Python
(each costs a few milliseconds) and are analysed in one batch.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfrec.experiments import _deps
from tfrec.experiments.analysis import planned_sizes, proportion_test, welch_test
from tfrec.experiments.assignment import Assignment
from tfrec.experiments.batch import welch_batch, z_test_batch
from tfrec.experiments.clicks import ClickModel
from tfrec.experiments.design import SampleSize, continuous_sample_size, conversion_sample_size
from tfrec.experiments.results import ComparisonResult, PowerEstimate

METRICS = ("conversion", "clicks")


@dataclasses.dataclass(frozen=True)
class SimulatedExperiment:
    """One simulated test: each visitor's arm (0 control, 1 treatment), population row and
    outcome, and the analysis a team would have run on them."""

    salt: str
    arms: np.ndarray
    profiles: np.ndarray
    outcomes: np.ndarray
    result: ComparisonResult


class ABSimulation:
    """Simulated A/B tests of a control and a treatment recommender on held-out truth.

    Args:
      recs_control, recs_treatment: ``[num_users, k]`` item indices each arm would show each
        user (-1 pads short lists).
      truth: Held-out items per user, ``[num_users, m]`` padded with -1 or ``[num_users]``.
      click_model: A `ClickModel` (default: p_hit 0.5, background 0.01, no position bias).
      metric: ``"conversion"`` (clicked at least once; z-test) or ``"clicks"`` (number of
        clicks; Welch's t-test).
      user_ids: The users' ids, hashed when every real user is assigned once (`run` without
        a plan); default their row numbers as strings.
    """

    def __init__(
        self,
        recs_control,
        recs_treatment,
        truth,
        click_model: ClickModel | None = None,
        *,
        metric: str = "conversion",
        user_ids=None,
    ):
        if metric not in METRICS:
            raise ValueError(f"`metric` must be one of {METRICS}. Received: metric={metric!r}")
        self.click_model = click_model or ClickModel()
        control = np.asarray(recs_control)
        treatment = np.asarray(recs_treatment)
        if control.shape != treatment.shape:
            raise ValueError(
                "Both arms must recommend k items to the same users. Received shapes: "
                f"recs_control {control.shape}, recs_treatment {treatment.shape}"
            )
        self.metric = metric
        self.probabilities = np.stack(
            [
                self.click_model.probabilities(control, truth),
                self.click_model.probabilities(treatment, truth),
            ]
        )
        self.conversion = 1.0 - np.prod(1.0 - self.probabilities, axis=2)  # [2, num_users]
        num_users = control.shape[0]
        self.user_ids = (
            np.arange(num_users).astype(str) if user_ids is None else np.asarray(user_ids)
        )
        if self.user_ids.shape != (num_users,):
            raise ValueError(
                f"`user_ids` needs one id per user ({num_users}). Received shape "
                f"{self.user_ids.shape}"
            )
        self._visitor_ids = np.arange(0).astype(str)

    @property
    def true_means(self) -> tuple[float, float]:
        """The metric's expectation per visitor in (control, treatment): the truth to find."""
        if self.metric == "conversion":
            means = self.conversion.mean(axis=1)
        else:
            means = self.probabilities.sum(axis=2).mean(axis=1)
        return float(means[0]), float(means[1])

    @property
    def true_stds(self) -> tuple[float, float]:
        """The metric's standard deviation per visitor in (control, treatment)."""
        if self.metric == "conversion":
            p = np.asarray(self.true_means)
            return tuple(float(v) for v in np.sqrt(p * (1 - p)))
        p = self.probabilities
        second = (p * (1 - p)).sum(axis=2) + p.sum(axis=2) ** 2
        variance = second.mean(axis=1) - np.asarray(self.true_means) ** 2
        return tuple(float(v) for v in np.sqrt(variance))

    def design(self, **kwargs) -> SampleSize:
        """The sample-size plan for the true effect (keyword arguments go to the design)."""
        control, treatment = self.true_means
        if math.isclose(control, treatment, rel_tol=1e-12, abs_tol=1e-15):
            raise ValueError(
                "Both arms have the same expected metric, so no effect can be designed for. "
                f"Received: true means {control!r} and {treatment!r}. Fix: pass an explicit "
                "planned size to estimate_power (that is the false positive rate)."
            )
        if self.metric == "conversion":
            return conversion_sample_size(control, absolute_mde=treatment - control, **kwargs)
        # One std whose two-sample variance equals var_c / n_c + var_t / n_t at the split.
        c_share, t_share = kwargs.get("shares", (0.5, 0.5))
        var_c, var_t = (s**2 for s in self.true_stds)
        std = math.sqrt((var_c / c_share + var_t / t_share) / (1 / c_share + 1 / t_share))
        return continuous_sample_size(
            std, absolute_mde=treatment - control, baseline_mean=control, **kwargs
        )

    def run(
        self, salt: str, planned=None, *, seed=None, alpha=None, alternative=None, shares=None
    ) -> SimulatedExperiment:
        """One simulated test under `salt`.

        With `planned` (a `SampleSize`, int or pair), visitors stream in until both arms reach
        it. Without, every real user is assigned once by hashing their id (the data set's
        own size, analysed with no plan).
        """
        rng = np.random.default_rng(seed)
        split = self._assignment(salt, planned, shares)
        if planned is None:
            arms, profiles = split.indices(self.user_ids), np.arange(self.user_ids.size)
        else:
            arms = self._stream(split, planned_sizes(planned))
            profiles = rng.integers(self.user_ids.size, size=arms.size)
        outcomes = self._outcomes(arms, profiles, rng)
        kwargs = dict(planned=planned, alpha=alpha, alternative=alternative, shares=split.shares)
        if self.metric == "conversion":
            n_t = int(arms.sum())
            result = proportion_test(
                int(outcomes[arms == 0].sum()),
                arms.size - n_t,
                int(outcomes[arms == 1].sum()),
                n_t,
                **kwargs,
            )
        else:
            result = welch_test(outcomes[arms == 0], outcomes[arms == 1], **kwargs)
        return SimulatedExperiment(
            salt=salt, arms=arms, profiles=profiles, outcomes=outcomes, result=result
        )

    def estimate_power(
        self,
        planned,
        reps: int = 500,
        *,
        seed: int = 0,
        salt_prefix="sim",
        alpha=None,
        alternative=None,
        shares=None,
        srm_threshold: float = 0.001,
        progress: bool = False,
    ) -> PowerEstimate:
        """How often `reps` simulated tests at the `planned` size pick the truly better arm.

        Each repetition uses its own salt (``"<salt_prefix>-<r>"``) and random stream. When
        both arms are identical, `PowerEstimate.significant` is the false positive rate.
        """
        if not (isinstance(reps, int) and reps > 0):
            raise ValueError(f"`reps` must be a positive int. Received: reps={reps!r}")
        sizes = planned_sizes(planned)
        if sizes is None:
            raise ValueError("`planned` must give the per-arm sample size. Received: None")
        design = planned if isinstance(planned, SampleSize) else None
        alpha = alpha if alpha is not None else (design.alpha if design else 0.05)
        alternative = alternative or (design.alternative if design else "two-sided")
        rng = np.random.default_rng(seed)
        stats = np.zeros((reps, 2, 3))  # [rep, arm, (n, sum, sum of squares)]
        reps_iter = range(reps)
        if progress:
            from tqdm.auto import tqdm

            reps_iter = tqdm(reps_iter, desc="simulated A/B tests", unit="test")
        for r in reps_iter:
            split = self._assignment(f"{salt_prefix}-{r}", planned, shares)
            arms = self._stream(split, sizes)
            y = self._outcomes(arms, rng.integers(self.user_ids.size, size=arms.size), rng)
            for column, weights in enumerate((None, y, y * y)):
                stats[r, :, column] = np.bincount(arms, weights=weights, minlength=2)
        n, s1, s2 = stats[..., 0], stats[..., 1], stats[..., 2]
        if self.metric == "conversion":
            out = z_test_batch(s1[:, 0], n[:, 0], s1[:, 1], n[:, 1], alpha, alternative)
        else:
            mean = s1 / n
            var = (s2 - n * mean**2) / (n - 1)
            out = welch_batch(
                mean[:, 0], var[:, 0], n[:, 0], mean[:, 1], var[:, 1], n[:, 1], alpha, alternative
            )
        shares = np.asarray(split.shares)
        srm_p = (
            _deps.scipy_stats().chisquare(n, n.sum(axis=1, keepdims=True) * shares, axis=1).pvalue
        )
        significant = (out["p_value"] < alpha) & (srm_p >= srm_threshold)
        positive = out["difference"] > 0
        control, treatment = self.true_means
        better = 0 if treatment == control else (1 if treatment > control else -1)
        return PowerEstimate(
            reps=reps,
            planned=sizes,
            alpha=float(alpha),
            alternative=alternative,
            metric=self.metric,
            true_control=control,
            true_treatment=treatment,
            picked_treatment=float(np.mean(significant & positive)),
            picked_control=float(np.mean(significant & ~positive)),
            srm_rate=float(np.mean(srm_p < srm_threshold)),
            mean_users=float(n.sum(axis=1).mean()),
            better=better,
        )

    def _assignment(self, salt, planned, shares) -> Assignment:
        if shares is None:
            shares = planned.shares if isinstance(planned, SampleSize) else (0.5, 0.5)
        control, treatment = (float(s) for s in shares)
        total = control + treatment
        return Assignment(salt, {"control": control / total, "treatment": treatment / total})

    def _stream(self, split: Assignment, sizes) -> np.ndarray:
        """Arms of visitors arriving until both arms reach `sizes` (0 control, 1 treatment)."""
        n_c, n_t = sizes
        c_share, t_share = split.shares
        need = max(n_c / c_share, n_t / t_share)
        count = math.ceil(need + 6 * math.sqrt(need)) + 16
        while True:
            if self._visitor_ids.size < count:
                self._visitor_ids = np.arange(count).astype(str)
            arms = split.indices(self._visitor_ids[:count])
            treated = np.cumsum(arms)
            controls = np.arange(1, count + 1) - treated
            if controls[-1] >= n_c and treated[-1] >= n_t:
                stop = max(np.searchsorted(controls, n_c), np.searchsorted(treated, n_t)) + 1
                return arms[:stop]
            count *= 2

    def _outcomes(self, arms, profiles, rng) -> np.ndarray:
        if self.metric == "conversion":
            return (rng.random(arms.size) < self.conversion[arms, profiles]).astype(np.float64)
        p = self.probabilities[arms, profiles]
        return (rng.random(p.shape) < p).sum(axis=1).astype(np.float64)


def false_positive_rate(
    recommendations,
    truth,
    planned,
    reps: int = 1000,
    *,
    click_model: ClickModel | None = None,
    metric: str = "conversion",
    **kwargs,
) -> PowerEstimate:
    """Simulated tests with the same recommender in both arms: `significant` is the FPR.

    It should stay near alpha; more means the analysis (or the simulation) is broken.
    Keyword arguments go to `ABSimulation.estimate_power`.
    """
    simulation = ABSimulation(recommendations, recommendations, truth, click_model, metric=metric)
    return simulation.estimate_power(planned, reps, **kwargs)
