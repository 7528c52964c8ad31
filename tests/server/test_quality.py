"""Live quality figures and their intervals, checked against scikit-learn and by simulation."""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from server import quality


def test_wilson_matches_the_textbook_interval() -> None:
    # Newcombe (1998), table I: 81 of 263, 95% Wilson interval 0.2553 to 0.3662.
    estimate = quality.wilson(81, 263)
    assert estimate.value == pytest.approx(81 / 263)
    assert estimate.lower == pytest.approx(0.2553, abs=1e-4)
    assert estimate.upper == pytest.approx(0.3662, abs=1e-4)


def test_wilson_stays_inside_zero_and_one() -> None:
    assert quality.wilson(0, 10).lower == 0.0
    assert quality.wilson(10, 10).upper == 1.0
    assert quality.wilson(10, 10).lower < 1.0  # ten right answers do not prove perfection


def test_accuracy_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    truth, n, trials = 0.9, 150, 2000
    covered = 0
    for successes in rng.binomial(n, truth, size=trials):
        estimate = quality.wilson(int(successes), n)
        covered += estimate.lower <= truth <= estimate.upper
    assert 0.93 <= covered / trials <= 0.97


def test_macro_f1_is_scikit_learns() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 500)
    predicted = np.where(rng.random(500) < 0.8, labels, rng.integers(0, 3, 500))
    names = np.asarray(["setosa", "versicolor", "virginica"])
    cells: dict[tuple[str, str], int] = {}
    for p, a in zip(names[predicted], names[labels], strict=True):
        cells[(str(p), str(a))] = cells.get((str(p), str(a)), 0) + 1
    figures = quality.classification(cells)
    assert figures["f1_macro"].value == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert figures["accuracy"].value == pytest.approx(np.mean(labels == predicted))
    f1 = figures["f1_macro"]
    assert f1.lower < f1.value < f1.upper
    assert f1.upper - f1.lower < 0.1  # 500 labels pin macro F1 to a few points


def test_a_class_never_predicted_counts_as_zero_f1() -> None:
    cells = {("a", "a"): 10, ("a", "b"): 10}
    assert quality.classification(cells)["f1_macro"].value == pytest.approx(
        f1_score(["a"] * 10 + ["b"] * 10, ["a"] * 20, average="macro")
    )


def test_regression_figures_and_intervals() -> None:
    rng = np.random.default_rng(3)
    errors = rng.normal(0, 10, 400)
    sums = quality.ErrorSums(
        len(errors),
        float(np.abs(errors).sum()),
        float((errors**2).sum()),
        float((errors**4).sum()),
    )
    figures = quality.regression(sums)
    assert figures["mae"].value == pytest.approx(np.abs(errors).mean())
    assert figures["rmse"].value == pytest.approx(math.sqrt((errors**2).mean()))
    # For normal errors the truth is MAE = 10·sqrt(2/pi), RMSE = 10.
    assert figures["mae"].lower < 10 * math.sqrt(2 / math.pi) < figures["mae"].upper
    assert figures["rmse"].lower < 10 < figures["rmse"].upper


def test_describe_prints_figure_and_half_width() -> None:
    assert quality.describe(quality.Estimate(0.94, 0.92, 0.96)) == "0.94 ± 0.02"


def test_no_labels_is_an_error_not_a_figure() -> None:
    with pytest.raises(ValueError, match="no"):
        quality.classification({})
    with pytest.raises(ValueError, match="no"):
        quality.wilson(0, 0)
