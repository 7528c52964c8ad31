"""The closed loop end to end, with real processes on loopback: what `make loop-demo` shows.

demo.loop.run raises StepFailed, naming the step, as soon as a condition does not hold within
its time limit (the alert condition after the shift, drift, a challenger from production data
beating the champion in shadow, promotion, hot swaps with no failed request, recovery, a worse
challenger turned down, a forced bad promotion rolled back); here the order is checked too.
"""

from pathlib import Path

import pytest

from demo.loop import DemoConfig, run, save

pytestmark = [pytest.mark.integration, pytest.mark.loop]

STEPS = [
    "start", "train", "serve", "baseline", "shift", "alert", "drift", "retrain", "shadow",
    "judge", "hot-swap", "recovered", "watch", "retrain-2", "judge-2", "untouched", "force",
    "rollback", "end", "memory",
]  # fmt: skip


@pytest.mark.timeout(1800)  # minutes on a quiet machine; a loaded one stretches every step
def test_the_closed_loop(tmp_path: Path) -> None:
    timeline = run(DemoConfig(out_dir=tmp_path))
    assert [event.step for event in timeline.events] == STEPS
    text = {event.step: event.text for event in timeline.events}
    assert text["judge"].startswith("production of iris-classifier: version 1 -> version 2")
    assert text["hot-swap"].endswith("failed requests so far: 0")
    assert "not better" in text["judge-2"]
    assert text["rollback"].startswith(
        "rolled back production of iris-classifier: version 3 -> version 2"
    )
    assert ", 0 failed;" in text["end"]
    assert text["memory"].count("peak") == 2  # both replicas measured
    data, chart = save(timeline, tmp_path)
    assert data.is_file()
    page = (tmp_path / "loop-demo.md").read_text()  # what docs/results/loop-demo.md holds
    assert text["rollback"] in page
    assert "cores" in page
    assert chart.stat().st_size > 10_000
    assert {s.version for s in timeline.samples} == {"1", "2", "3"}
