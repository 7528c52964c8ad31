"""bench-protocols' arithmetic: the ratio to /predict comes from paired runs."""

import pytest

from loadtest.protocols import paired_ratio


def runs(one: list[float], paired: list[float]) -> dict[str, list[dict[str, float]]]:
    return {
        "one": [{"cpu_us": cpu} for cpu in one],
        "batch": [],
        "paired": [{"cpu_us": cpu} for cpu in paired],
    }


def test_the_ratio_to_predict_is_the_median_of_the_paired_ratios() -> None:
    # The host slowed down by half between the first pair and the last: each pair still says
    # 1.10x, which a ratio to /predict's runs of another moment would not.
    assert paired_ratio(runs([66, 88, 99], [60, 80, 90])) == pytest.approx(1.1)
    # One disturbed run moves the median no further than its pair.
    assert paired_ratio(runs([66, 200, 66], [60, 60, 60])) == pytest.approx(1.1)


def test_predict_itself_is_one() -> None:
    assert paired_ratio(runs([60, 70, 80], [])) == 1.0
