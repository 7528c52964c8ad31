"""`make loop-demo`: the closed loop with real processes on loopback, start to finish.

MLflow (`mlflow server`), PostgreSQL (the shared prediction store), two model-server replicas
following `@production` with `@challenger` in shadow, the seeded traffic and delayed feedback of
demo.traffic. Then, in order, each step waiting for what it needs and failing loudly if it does
not come within its time limit:
1. live accuracy falls after the shift and the alert condition holds;
2. drift is reported;
3. `make retrain` registers a challenger from production data;
4. the shadow challenger's live accuracy beats the champion's;
5. `make judge` promotes it;
6. both replicas hot-swap with zero failed requests;
7. live accuracy recovers.
Second run: a deliberately worse challenger (a one-split tree) is judged and production is left
untouched. Third run: the same challenger is forced into production (FORCE=1) and the judge's
watch rolls it back automatically.

Prints a timeline; writes it as JSON and saves a PNG of live accuracy per version over time.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.postgres import postgres_server
from demo.traffic import Traffic
from loadtest import machine
from loadtest.processes import Service, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = "iris-classifier"
QUIET_MLFLOW_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


class StepFailed(RuntimeError):
    """A step's condition did not hold within its time limit."""


@dataclass
class Event:
    seconds: float
    step: str
    text: str


@dataclass
class Sample:
    seconds: float
    version: str
    variant: str
    accuracy: float
    lower: float
    upper: float
    labels: int


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    measured_on: dict[str, Any] = field(default_factory=machine.describe)
    events: list[Event] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started

    def add(self, step: str, text: str) -> None:
        event = Event(round(self.now(), 1), step, text)
        self.events.append(event)
        print(line(event), flush=True)


def line(event: Event) -> str:
    return f"[{event.seconds:6.1f}s] {event.step:<10} {event.text}"


def timeline_markdown(events: list[Event], measured_on: dict[str, Any]) -> str:
    """The timeline as the docs show it (docs/results/loop-demo.md), with what it ran on."""
    lines = "\n".join(line(event) for event in events)
    return (
        f"```\n{lines}\n```\n\n"
        f"_`make loop-demo` on {machine.one_line(measured_on)}. Every step waits for its "
        "condition, so the times stretch with the machine's load; each `make retrain` and "
        "`make judge` runs as its own process, as a user would run it._\n"
    )


@dataclass(frozen=True)
class DemoConfig:
    out_dir: Path
    seed: int = 7
    rate: float = 80.0
    label_share: float = 0.5
    feedback_delay: float = 1.0
    quality_window: float = 20.0
    min_labels: int = 40  # live quality's alert needs this many labels
    retrain_min_labels: int = 150
    judge_min_labels: int = 120
    rollback_min_labels: int = 40
    watch_minutes: float = 0.3
    step_timeout: float = 90.0


class Stack:
    """MLflow, PostgreSQL and two replicas; commands run against them as a user would."""

    def __init__(self, config: DemoConfig, stack: ExitStack) -> None:
        self.config = config
        work = config.out_dir / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        self.work = work
        self.mlflow = self._mlflow(stack)
        self.store_uri = stack.enter_context(postgres_server())
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "MLFLOW_TRACKING_URI": self.mlflow,
            "PREDICTION_STORE_URI": self.store_uri,
            "RECORD_PREDICTIONS": "true",
        }
        self.replicas: list[Service] = []

    def _mlflow(self, stack: ExitStack) -> str:
        port = free_port()
        service = Service(
            "mlflow",
            [
                *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"),
                *("--port", str(port), "--workers", "1"),
                *("--backend-store-uri", f"sqlite:///{self.work / 'mlflow.db'}"),
                *("--serve-artifacts", "--artifacts-destination", str(self.work / "artifacts")),
            ],
            port=port,
            ready_path="/health",
            log_path=self.work / "mlflow.log",
            env=QUIET_MLFLOW_ENV,
            cwd=REPO_ROOT,
        )
        stack.callback(service.stop)
        service.wait_ready(timeout=300, poll=0.2)  # its first start migrates a database
        return service.url

    def start_replicas(self, stack: ExitStack, count: int = 2) -> list[str]:
        for index in range(count):
            port = free_port()
            env = {
                **self.env,
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "MODEL_URI": f"models:/{MODEL}@production",
                "CHALLENGER_URI": f"models:/{MODEL}@challenger",
                "CHALLENGER_MODE": "shadow",
                "MODEL_POLL_SECONDS": "1",
                "MODEL_RETRY_SECONDS": "1",
                "DRIFT_INTERVAL_SECONDS": "1",
                "DRIFT_WINDOW": "300",
                "RECORD_FLUSH_SECONDS": "0.2",
                "QUALITY_WINDOW_SECONDS": str(self.config.quality_window),
                "QUALITY_INTERVAL_SECONDS": "1",
                "QUALITY_MIN_LABELS": str(self.config.min_labels),
                "SHUTDOWN_DELAY_SECONDS": "0",
            }
            service = Service(
                f"replica-{index + 1}",
                [sys.executable, "-m", "server"],
                port=port,
                ready_path="/ready",
                log_path=self.work / f"replica-{index + 1}.log",
                env=env,
                cwd=REPO_ROOT,
            )
            stack.callback(service.stop)
            self.replicas.append(service)
        for service in self.replicas:
            service.wait_ready(timeout=60, poll=0.1)
        return [s.url for s in self.replicas]

    def command(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run a `python -m` command as `make` would; its last output line, or StepFailed."""
        result = subprocess.run(
            [sys.executable, "-m", *args],
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        log = self.work / "commands.log"
        with log.open("a") as out:
            out.write(f"$ python -m {' '.join(args)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise StepFailed(f"python -m {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
        return result.stdout.strip().splitlines()[-1]

    def judge(self, *extra: str) -> str:
        metrics = [f"--metrics-url={s.url}/metrics" for s in self.replicas]
        return self.command(
            "training.judge", "--model", MODEL, *metrics,
            "--min-labels", str(self.config.judge_min_labels),
            "--rollback-min-labels", str(self.config.rollback_min_labels),
            "--watch-minutes", str(self.config.watch_minutes), "--since-hours", "1", *extra,
        )  # fmt: skip


def quality(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/quality", timeout=10).json()
    return answer


def entry(report: dict[str, Any], version: str, variant: str) -> dict[str, Any] | None:
    for item in report.get("versions", []):
        if item["model_version"] == version and item["variant"] == variant:
            return dict(item)
    return None


def served_versions(urls: list[str]) -> list[str]:
    return [httpx.get(f"{u}/model/info", timeout=5).json()["version"] for u in urls]


def wait(what: str, condition: Callable[[], Any], timeout: float, poll: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except (httpx.HTTPError, KeyError, ValueError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise StepFailed(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(poll)


@contextmanager
def sampling(url: str, timeline: Timeline) -> Iterator[None]:
    """Record live accuracy per version and variant every second, for the chart."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(1.0):
            try:
                report = quality(url)
            except (httpx.HTTPError, ValueError):
                continue
            for item in report.get("versions", []):
                accuracy = item["quality"].get("accuracy")
                if accuracy and item["labels"] >= 10:
                    timeline.samples.append(
                        Sample(round(timeline.now(), 1), item["model_version"], item["variant"],
                               accuracy["value"], accuracy["lower"], accuracy["upper"],
                               item["labels"])
                    )  # fmt: skip

    thread = threading.Thread(target=loop, name="quality-sampler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def fmt(item: dict[str, Any]) -> str:
    accuracy = item["quality"]["accuracy"]
    half = (accuracy["upper"] - accuracy["lower"]) / 2
    return f"{accuracy['value']:.2f} ± {half:.2f} on {item['labels']} labels"


def run(config: DemoConfig) -> Timeline:
    """The whole scenario; returns the timeline (raises StepFailed at the first broken step)."""
    timeline = Timeline()
    with ExitStack() as stack:
        timeline.add("start", "starting MLflow and PostgreSQL")
        env_stack = Stack(config, stack)
        timeline.add("train", env_stack.command("training", "--n-estimators", "50"))
        urls = env_stack.start_replicas(stack)
        timeline.add("serve", f"two replicas on {', '.join(urls)}, shadowing @challenger")
        traffic = Traffic(
            urls, seed=config.seed, rate=config.rate, label_share=config.label_share,
            delay=config.feedback_delay,
        )  # fmt: skip
        traffic.start()
        stack.callback(traffic.stop)
        stack.enter_context(sampling(urls[0], timeline))
        timeout = config.step_timeout

        healthy = wait(
            "live accuracy of version 1 on enough labels",
            lambda: (e := entry(quality(urls[0]), "1", "champion")) and e["labels"] >= 60 and e,
            timeout,
        )
        timeline.add("baseline", f"live accuracy of version 1: {fmt(healthy)}")

        traffic.shift()
        timeline.add("shift", "the client now reports petal length and width in millimetres")
        fallen = wait(
            "the alert condition: live accuracy confidently below held-out",
            lambda: (e := entry(quality(urls[1]), "1", "champion")) and e["below_heldout"] and e,
            timeout,
        )
        heldout = fallen["heldout"]["accuracy"]
        timeline.add(
            "alert",
            f"live accuracy of version 1 fell to {fmt(fallen)}; held-out {heldout:.2f}: "
            "the whole interval is below held-out minus the margin (ModelLiveAccuracyBelowHeldOut)",
        )
        drift = wait(
            "drift on the petal features",
            lambda: (
                (d := httpx.get(f"{urls[0]}/drift", timeout=5).json())["features"][
                    "petal length (cm)"
                ]["status"]
                == "drift"
                and d
            ),
            timeout,
        )
        psi = {
            k: round(v["psi"], 2) for k, v in drift["features"].items() if v["status"] == "drift"
        }
        timeline.add("drift", f"GET /drift: {psi}")

        retrain = ["training.retrain", "--model", MODEL, "--since-hours", "1",
                   "--min-labels", str(config.retrain_min_labels), "--n-estimators", "50"]  # fmt: skip
        wait(
            "enough labels after the shift to retrain on",
            lambda: (e := entry(quality(urls[0]), "1", "champion")) and e["labels"] >= 300,
            timeout,
        )
        timeline.add("retrain", env_stack.command(*retrain))
        better = wait(
            "the shadow challenger's live accuracy beating the champion's",
            lambda: _beats(quality(urls[0]), "2", "1", config.min_labels),
            timeout,
        )
        timeline.add("shadow", better)
        wait(
            "enough labels on the shadow challenger for the judge's test",
            lambda: (
                (e := entry(quality(urls[0]), "2", "challenger"))
                and e["labels"] >= config.judge_min_labels
            ),
            timeout,
        )
        judged = wait(
            "make judge promoting version 2",
            lambda: (j := env_stack.judge()) and j.startswith("production") and j,
            timeout,
            poll=1,
        )
        timeline.add("judge", judged)
        wait("both replicas serving version 2", lambda: served_versions(urls) == ["2", "2"], 30)
        timeline.add(
            "hot-swap",
            f"both replicas serve version 2; failed requests so far: {traffic.stats.failed}",
        )
        recovered = wait(
            "live accuracy recovering under version 2",
            lambda: (
                (e := entry(quality(urls[0]), "2", "champion"))
                and e["labels"] >= config.min_labels
                and e["quality"]["accuracy"]["lower"] > fallen["quality"]["accuracy"]["upper"]
                and e
            ),
            timeout,
        )
        timeline.add("recovered", f"live accuracy of version 2: {fmt(recovered)}")
        time.sleep(config.watch_minutes * 60)  # the watch's length: nothing to decide before
        over = wait(
            "the watch on version 2 ending without a rollback",
            lambda: (j := env_stack.judge()) and j.startswith("watch over") and j,
            timeout,
            poll=2,
        )
        timeline.add("watch", over)

        # Run 2: a deliberately worse challenger leaves production untouched.
        worse = [*retrain[:-2], "--n-estimators", "3", "--max-depth", "1"]
        timeline.add("retrain-2", env_stack.command(*worse) + " (a one-split tree)")
        wait(
            "version 3 in shadow with enough paired labels",
            lambda: (
                (e := entry(quality(urls[0]), "3", "challenger"))
                and e["labels"] >= config.judge_min_labels
            ),
            timeout,
        )
        verdict = env_stack.judge()
        if (
            not verdict.startswith("version 3 against production version 2")
            or "not better" not in verdict
        ):
            raise StepFailed(f"the worse challenger was not turned down: {verdict}")
        timeline.add("judge-2", verdict)
        if served_versions(urls) != ["2", "2"]:
            raise StepFailed("production moved although the challenger was worse")
        timeline.add("untouched", "both replicas still serve version 2")

        # Run 3: the worse version is forced into production; the watch rolls it back.
        forced = env_stack.judge("--force")
        timeline.add("force", forced)
        wait("both replicas serving version 3", lambda: served_versions(urls) == ["3", "3"], 30)
        wait(
            "labels on version 3 and its predecessor in shadow",
            lambda: (
                (e := entry(quality(urls[0]), "2", "challenger"))
                and e["labels"] >= config.rollback_min_labels
            ),
            timeout,
        )
        rolled = wait(
            "the watch rolling version 3 back",
            lambda: (j := env_stack.judge()) and j.startswith("rolled back") and j,
            timeout,
            poll=1,
        )
        timeline.add("rollback", rolled)
        wait("both replicas back on version 2", lambda: served_versions(urls) == ["2", "2"], 30)
        traffic.stop()
        timeline.add(
            "end",
            f"{traffic.stats.sent} requests, {traffic.stats.failed} failed; "
            f"{traffic.stats.labelled} labelled; answers by version {traffic.stats.versions}",
        )
        timeline.add("memory", replica_memory(env_stack.replicas))
        if traffic.stats.failed:
            raise StepFailed(f"failed requests: {traffic.stats.failures[:5]}")
    return timeline


def replica_memory(replicas: list[Service]) -> str:
    """Each replica's resident memory now and at its peak: recording to PostgreSQL, shadowing."""
    mib = 1024 * 1024
    return "replicas' memory (PostgreSQL store, shadow challenger): " + "; ".join(
        f"{r.name} {r.rss_bytes() / mib:.0f} MiB, peak {r.rss_bytes(peak=True) / mib:.0f} MiB"
        for r in replicas
    )


def _beats(report: dict[str, Any], challenger: str, champion: str, needed: int) -> str | None:
    ours, theirs = entry(report, challenger, "challenger"), entry(report, champion, "champion")
    if ours is None or theirs is None or ours["labels"] < needed:
        return None
    if ours["quality"]["accuracy"]["lower"] <= theirs["quality"]["accuracy"]["upper"]:
        return None
    return f"shadow version {challenger}: {fmt(ours)} vs champion version {champion}: {fmt(theirs)}"


def _gapped(
    samples: list[Sample], gap: float = 3.0
) -> tuple[list[float], list[float], list[float], list[float]]:
    """The series' columns, broken where it was absent (a version leaving and coming back)."""
    nan = float("nan")
    t: list[float] = []
    value: list[float] = []
    lower: list[float] = []
    upper: list[float] = []
    for sample in samples:
        if t and sample.seconds - t[-1] > gap:
            for column in (value, lower, upper):
                column.append(nan)
            t.append(t[-1] + gap / 2)
        t.append(sample.seconds)
        value.append(sample.accuracy)
        lower.append(sample.lower)
        upper.append(sample.upper)
    return t, value, lower, upper


def save(timeline: Timeline, out_dir: Path) -> tuple[Path, Path]:
    """The timeline as JSON and Markdown, and the chart of live accuracy per version as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / "loop-demo.json"
    data.write_text(
        json.dumps(
            {"measured_on": timeline.measured_on, "events": [vars(e) for e in timeline.events],
             "samples": [vars(s) for s in timeline.samples]},
            indent=1,
        )
    )  # fmt: skip
    (out_dir / "loop-demo.md").write_text(timeline_markdown(timeline.events, timeline.measured_on))
    figure, axes = plt.subplots(figsize=(11, 5))
    series: dict[tuple[str, str], list[Sample]] = {}
    for sample in timeline.samples:
        series.setdefault((sample.version, sample.variant), []).append(sample)
    for (version, variant), samples in sorted(series.items()):
        t, value, lower, upper = _gapped(samples)
        style = "-" if variant == "champion" else "--"
        (line,) = axes.plot(t, value, style, label=f"version {version} ({variant})")
        axes.fill_between(t, lower, upper, color=line.get_color(), alpha=0.15)
    marked = {"shift", "alert", "retrain", "judge", "retrain-2", "force", "rollback"}
    for event in timeline.events:
        if event.step in marked:
            axes.axvline(event.seconds, color="grey", linewidth=0.8, linestyle=":")
            axes.text(event.seconds, 0.02, event.step, rotation=90, fontsize=8, color="grey")
    if timeline.samples:
        axes.set_xlim(left=max(0.0, timeline.samples[0].seconds - 5))
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("seconds since start")
    axes.set_ylabel("live accuracy (95% interval)")
    axes.set_title("Live accuracy per model version (window of the last 20 s of labelled traffic)")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    chart = out_dir / "loop-demo.png"
    figure.savefig(chart, dpi=100)
    plt.close(figure)
    return data, chart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make loop-demo", description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "loadtest" / "results")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=80.0, help="requests per second")
    args = parser.parse_args(argv)
    config = DemoConfig(out_dir=args.out_dir, seed=args.seed, rate=args.rate)
    timeline: Timeline | None = None
    try:
        timeline = run(config)
    except StepFailed as exc:
        print(f"error: {exc} (logs in {config.out_dir / 'work'})", file=sys.stderr)
        return 1
    data, chart = save(timeline, config.out_dir)
    print(f"timeline: {data}\nchart: {chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
