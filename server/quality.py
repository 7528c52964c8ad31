"""Live quality from labelled predictions: the figures and their 95% confidence intervals.

Shared by the server (live quality on /quality and /metrics) and by `make judge`, so a figure
means the same thing wherever it is shown. No HTTP and no store here: counts in, figures out.

- Accuracy: Wilson score interval, which stays inside [0, 1] and is honest at small counts and
  near 0 or 1, where the normal approximation is not.
- Macro F1: percentile bootstrap over the confusion matrix (resampling labelled rows is the same
  as drawing the cells' counts from a multinomial), seeded, so the same counts give the same
  interval.
- MAE and RMSE: normal approximation of the mean absolute error and of the mean squared error
  (its bounds square-rooted), from the sums of |e|, e² and e⁴.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95%
_BOOTSTRAP_SAMPLES = 1000
_BOOTSTRAP_SEED = 20


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% confidence interval."""

    value: float
    lower: float
    upper: float

    @property
    def half_width(self) -> float:
        return (self.upper - self.lower) / 2

    def as_dict(self) -> dict[str, float]:
        return {
            "value": round(self.value, 6),
            "lower": round(self.lower, 6),
            "upper": round(self.upper, 6),
        }


# Which way is better, per metric: the alert and the judge read it from here.
HIGHER_IS_BETTER = {"accuracy": True, "f1_macro": True, "mae": False, "rmse": False}
CLASSIFIER_METRICS = ("accuracy", "f1_macro")
REGRESSOR_METRICS = ("mae", "rmse")


def wilson(successes: int, n: int, z: float = Z_95) -> Estimate:
    """A proportion and its Wilson score interval."""
    if n <= 0:
        raise ValueError("no observations")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    lower = 0.0 if successes == 0 else max(0.0, centre - spread)
    upper = 1.0 if successes == n else min(1.0, centre + spread)  # exact at the ends
    return Estimate(p, lower, upper)


def _macro_f1(counts: np.ndarray, predicted: np.ndarray, actual: np.ndarray, k: int) -> np.ndarray:
    """Macro F1 for each row of `counts` (cells of a confusion matrix as parallel arrays).

    Classes that are neither predicted nor labelled in a sample are left out of the mean, as
    scikit-learn's f1_score(average="macro") does for labels absent from both.
    """
    samples = counts.shape[0]
    true_pos = np.zeros((samples, k))
    pred_total = np.zeros((samples, k))
    label_total = np.zeros((samples, k))
    for cell in range(counts.shape[1]):
        column = counts[:, cell]
        pred_total[:, predicted[cell]] += column
        label_total[:, actual[cell]] += column
        if predicted[cell] == actual[cell]:
            true_pos[:, predicted[cell]] += column
    denominator = pred_total + label_total
    present = denominator > 0
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros_like(true_pos), where=present)
    result: np.ndarray = f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return result


def classification(confusion: Mapping[tuple[str, str], int]) -> dict[str, Estimate]:
    """Accuracy and macro F1 from (predicted, label) -> count."""
    cells = [(p, a, c) for (p, a), c in confusion.items() if c > 0]
    n = sum(c for _, _, c in cells)
    if n == 0:
        raise ValueError("no labelled predictions")
    names = sorted({p for p, _, _ in cells} | {a for _, a, _ in cells})
    index = {name: i for i, name in enumerate(names)}
    predicted = np.asarray([index[p] for p, _, _ in cells])
    actual = np.asarray([index[a] for _, a, _ in cells])
    counts = np.asarray([c for _, _, c in cells], dtype=np.float64)
    correct = int(sum(c for p, a, c in cells if p == a))
    f1 = float(_macro_f1(counts[None, :], predicted, actual, len(names))[0])
    rng = np.random.default_rng(_BOOTSTRAP_SEED)
    resampled = rng.multinomial(n, counts / n, size=_BOOTSTRAP_SAMPLES).astype(np.float64)
    spread = _macro_f1(resampled, predicted, actual, len(names))
    low, high = np.quantile(spread, [0.025, 0.975])
    return {
        "accuracy": wilson(correct, n),
        "f1_macro": Estimate(f1, float(min(low, f1)), float(max(high, f1))),
    }


@dataclass(frozen=True)
class ErrorSums:
    """Sums over labelled predictions of a regressor: n, Σ|e|, Σe², Σe⁴."""

    n: int
    abs_sum: float
    sq_sum: float
    quad_sum: float


def regression(sums: ErrorSums) -> dict[str, Estimate]:
    """MAE and RMSE with normal-approximation intervals."""
    n = sums.n
    if n <= 0:
        raise ValueError("no labelled predictions")
    mae = sums.abs_sum / n
    mse = sums.sq_sum / n
    # var(|e|) = E[e²] - MAE², var(e²) = E[e⁴] - MSE²; n - 1 for the sample variance.
    scale = n / (n - 1) if n > 1 else 0.0
    mae_sd = math.sqrt(max(mse - mae * mae, 0.0) * scale)
    mse_sd = math.sqrt(max(sums.quad_sum / n - mse * mse, 0.0) * scale)
    mae_half = Z_95 * mae_sd / math.sqrt(n) if n > 1 else math.inf
    mse_half = Z_95 * mse_sd / math.sqrt(n) if n > 1 else math.inf
    rmse = math.sqrt(mse)
    return {
        "mae": Estimate(mae, max(0.0, mae - mae_half), mae + mae_half),
        "rmse": Estimate(rmse, math.sqrt(max(0.0, mse - mse_half)), math.sqrt(mse + mse_half)),
    }


def describe(estimate: Estimate) -> str:
    """`0.94 ± 0.02`: the figure and the half-width of its interval, as the judge prints them."""
    return f"{estimate.value:.3g} ± {estimate.half_width:.2g}"
