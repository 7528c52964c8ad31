"""`make judge`: promote the challenger when the evidence says so; roll back a bad champion.

The evidence is the same labelled traffic answered by both: the champion's predictions and the
shadow challenger's, against the feedback, paired row by row.
- Classifiers: McNemar's exact test on the rows where exactly one of the two is right
  (one-sided: is the challenger right more often than the champion?).
- Regressors: Wilcoxon's signed-rank test on the paired absolute errors (one-sided).
The challenger is promoted only with at least `--min-labels` paired rows, p < `--alpha`, and no
worse on errors (its shadow failure rate at most the champion's 5xx rate) and latency (its p95
inference time at most `--latency-tolerance` above the champion's, plus half a millisecond,
below which requests cannot tell). Otherwise nothing changes and the reason is printed.

A promotion moves `production` (training.lifecycle.promote, with the figures recorded on the
version), points `challenger` at the previous champion so it keeps scoring in shadow, and opens
a watch of `--watch-minutes`. While it lasts, each run compares the new champion with its
predecessor in the same way and rolls back (training.lifecycle.rollback, the reason recorded)
if the predecessor is significantly better, or if since the promotion more than `--error-slo`
of prediction requests failed or their p95 latency passed `--latency-slo`.
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from server import quality
from training.errors import TrainingError, one_line
from training.lifecycle import DEFAULT_MODEL
from training.registry import open_registry
from training.retrain import check_store_uri
from training.server_metrics import ServingFigures, scrape

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from server.store import PairedRow

WATCH_TAG = "judge_watch"
DECISION_TAG = "judge_decision"
PROMOTION_TAG = "judge_promotion"
ROLLBACK_TAG = "judge_rollback"
_LATENCY_SLACK_SECONDS = 0.0005
_MIN_REQUESTS_FOR_SLO = 100  # fewer requests than this say nothing about an error rate


@dataclass(frozen=True)
class JudgeOptions:
    model: str = DEFAULT_MODEL
    store_uri: str = ""
    metrics_urls: tuple[str, ...] = ()
    min_labels: int = 200
    rollback_min_labels: int = 50
    alpha: float = 0.05
    since_hours: float = 168.0
    watch_minutes: float = 30.0
    error_slo: float = 0.01
    latency_slo: float = 0.5
    latency_tolerance: float = 0.25
    max_rows: int = 100_000
    force: bool = False

    def validate(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise TrainingError(f"--alpha must be between 0 and 0.5, got {self.alpha}")
        if self.min_labels < 10 or self.rollback_min_labels < 10:
            raise TrainingError("--min-labels and --rollback-min-labels must be at least 10")
        if self.watch_minutes < 0:
            raise TrainingError("--watch-minutes must not be negative")
        check_store_uri(self.store_uri)


@dataclass(frozen=True)
class Comparison:
    """Challenger against champion on the same labelled rows."""

    metric: str
    n: int
    champion: quality.Estimate
    challenger: quality.Estimate
    p_value: float  # one-sided: the challenger is better
    test: str

    def better(self, alpha: float) -> bool:
        ahead = (self.challenger.value > self.champion.value) == quality.HIGHER_IS_BETTER[
            self.metric
        ]
        return self.p_value < alpha and ahead and self.challenger.value != self.champion.value

    def describe(self, first: str = "challenger", second: str = "champion") -> str:
        name = "" if self.metric == "accuracy" else f"{self.metric.upper()} "
        return (
            f"{first} {name}{quality.describe(self.challenger)} on {self.n} labels vs "
            f"{second} {name}{quality.describe(self.champion)}"
        )

    def evidence(self) -> str:
        return f"{self.test}, one-sided p = {self.p_value:.2g}"


def compare(rows: "list[PairedRow]") -> Comparison:
    """The paired test and both sides' figures (accuracy, or MAE for regressors)."""
    from scipy import stats

    if not rows:
        raise ValueError("no paired rows")
    if isinstance(rows[0].truth, str):
        champion_right = np.asarray([r.champion == r.truth for r in rows])
        challenger_right = np.asarray([r.challenger == r.truth for r in rows])
        only_champion = int(np.count_nonzero(champion_right & ~challenger_right))
        only_challenger = int(np.count_nonzero(~champion_right & challenger_right))
        discordant = only_champion + only_challenger
        p = (
            float(stats.binomtest(only_challenger, discordant, 0.5, alternative="greater").pvalue)
            if discordant
            else 1.0
        )
        return Comparison(
            "accuracy",
            len(rows),
            quality.wilson(int(champion_right.sum()), len(rows)),
            quality.wilson(int(challenger_right.sum()), len(rows)),
            p,
            "McNemar exact test",
        )
    truth = np.asarray([float(r.truth) for r in rows])
    champion_error = np.abs(np.asarray([float(r.champion) for r in rows]) - truth)
    challenger_error = np.abs(np.asarray([float(r.challenger) for r in rows]) - truth)
    difference = champion_error - challenger_error
    p = (
        float(stats.wilcoxon(difference, alternative="greater").pvalue)
        if np.any(difference != 0)
        else 1.0
    )

    def mae(errors: np.ndarray) -> quality.Estimate:
        sums = quality.ErrorSums(
            len(errors), float(errors.sum()), float((errors**2).sum()), float((errors**4).sum())
        )
        return quality.regression(sums)["mae"]

    return Comparison(
        "mae", len(rows), mae(champion_error), mae(challenger_error), p, "Wilcoxon signed-rank test"
    )


def serving_verdict(figures: ServingFigures, tolerance: float) -> str | None:
    """Why the challenger is worse on errors or latency than the champion, or None."""
    champion_errors = figures.error_rate or 0.0
    challenger_errors = figures.challenger_error_rate()
    if challenger_errors is not None and challenger_errors > champion_errors + 0.001:
        return (
            f"its shadow failure rate {challenger_errors:.2%} is above the champion's "
            f"error rate {champion_errors:.2%}"
        )
    champion_p95 = figures.inference.get("champion")
    challenger_p95 = figures.inference.get("challenger")
    if champion_p95 is None or challenger_p95 is None:
        return "the servers report no inference times for both variants"
    ours, theirs = challenger_p95.quantile(0.95), champion_p95.quantile(0.95)
    if ours is None or theirs is None:
        return "the servers report no inference times for both variants"
    if ours > theirs * (1 + tolerance) + _LATENCY_SLACK_SECONDS:
        return f"its p95 inference time {ours * 1000:.3g} ms is above the champion's {theirs * 1000:.3g} ms"
    return None


def slo_breach(since: ServingFigures, error_slo: float, latency_slo: float) -> str | None:
    """Why the serving figures since the promotion breach the objectives, or None."""
    if since.requests >= _MIN_REQUESTS_FOR_SLO:
        rate = since.errors / since.requests
        if rate > error_slo:
            return f"{rate:.2%} of {since.requests:.0f} prediction requests failed (objective {error_slo:.2%})"
        p95 = since.latency.quantile(0.95)
        if p95 is not None and p95 > latency_slo:
            return f"p95 latency {p95 * 1000:.0f} ms (objective {latency_slo * 1000:.0f} ms)"
    return None


@dataclass(frozen=True)
class Decision:
    action: str  # promoted, rolled_back, unchanged, watching, watch_over
    message: str


class Judge:
    """One judgment against the registry, the store and the servers' metrics."""

    def __init__(
        self,
        options: JudgeOptions,
        client: "MlflowClient",
        read_figures: Callable[[], ServingFigures | None] | None = None,
    ) -> None:
        self.options = options
        self.client = client
        self._read_figures = read_figures

    def _paired(self, champion: str, challenger: str, since: float) -> "list[PairedRow]":
        from server.store import PredictionStore, StoreError

        store = PredictionStore(self.options.store_uri)
        try:
            connection = store.connect()
            try:
                return store.paired(
                    connection, self.options.model, champion, challenger, since,
                    self.options.max_rows,
                )  # fmt: skip
            finally:
                connection.close()
        except StoreError as exc:
            raise TrainingError(str(exc)) from exc

    def _figures(self) -> ServingFigures | None:
        if self._read_figures is not None:
            return self._read_figures()
        return scrape(list(self.options.metrics_urls)) if self.options.metrics_urls else None

    def run(self) -> Decision:
        from training.retrain import registered_model

        name = self.options.model
        model = registered_model(self.client, name)
        aliases = {alias: str(v) for alias, v in model.aliases.items()}
        champion, challenger = aliases.get("production"), aliases.get("challenger")
        if champion is None:
            raise TrainingError(f"{name} has no production version")
        raw_watch = model.tags.get(WATCH_TAG)
        if raw_watch:
            watch = json.loads(raw_watch)
            if watch["version"] == champion:
                return self._watch(watch, champion)
            self.client.delete_registered_model_tag(name, WATCH_TAG)  # moved by hand since
        if challenger is None or challenger == champion:
            return Decision(
                "unchanged", f"nothing to judge: no challenger besides version {champion}"
            )
        return self._judge(champion, challenger)

    def _judge(self, champion: str, challenger: str) -> Decision:
        options = self.options
        since = time.time() - options.since_hours * 3600
        rows = self._paired(champion, challenger, since)
        head = f"version {challenger} against production version {champion}: "
        reason: str | None = None
        comparison = compare(rows) if rows else None
        figures = self._figures()
        if comparison is None or comparison.n < options.min_labels:
            n = comparison.n if comparison else 0
            reason = f"{n} paired labels; the test needs at least {options.min_labels}: not enough evidence"
            if comparison is not None:
                reason = f"{comparison.describe()}: {reason}"
        elif not comparison.better(options.alpha):
            reason = (
                f"{comparison.describe()}: not better ({comparison.evidence()}; "
                f"needs p < {options.alpha:g})"
            )
        elif figures is None:
            reason = (
                f"{comparison.describe()}: better, but no --metrics-url to check errors and latency"
            )
        else:
            worse = serving_verdict(figures, options.latency_tolerance)
            if worse is not None:
                reason = f"{comparison.describe()}: better on quality, but {worse}"
        if reason is not None and not options.force:
            self.client.set_model_version_tag(options.model, challenger, DECISION_TAG, reason)
            return Decision("unchanged", head + reason + "; production unchanged")
        summary = (
            f"{comparison.describe()}: better ({comparison.evidence()})"
            if comparison is not None
            else "no paired labels"
        )
        if reason is not None:
            summary = f"FORCE: {reason}"
        return self._promote(champion, challenger, summary, figures)

    def _promote(
        self, champion: str, challenger: str, summary: str, figures: ServingFigures | None
    ) -> Decision:
        from training import lifecycle

        options, name = self.options, self.options.model
        now = time.time()
        note = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))} {summary}"
        self.client.set_model_version_tag(name, challenger, PROMOTION_TAG, note)
        # The paired live evidence above decides; held-out metrics from other data do not.
        moved = lifecycle.promote(
            open_registry(), name, challenger, force=options.force, check_metrics=False
        ).message
        watch = {
            "version": challenger,
            "previous": champion,
            "since": now,
            "until": now + options.watch_minutes * 60,
            "baseline": figures.to_json() if figures is not None else None,
        }
        self.client.set_registered_model_tag(name, WATCH_TAG, json.dumps(watch))
        # The predecessor scores in shadow during the watch: the rollback test is paired too.
        lifecycle.promote(open_registry(), name, champion, "challenger", force=True)
        return Decision(
            "promoted",
            f"{moved}: {summary}; watching it for {options.watch_minutes:g} min "
            f"against version {champion} in shadow",
        )

    def _watch(self, watch: dict[str, Any], champion: str) -> Decision:
        from training import lifecycle

        options, name = self.options, self.options.model
        previous = watch["previous"]
        reason: str | None = None
        rows = self._paired(champion, previous, float(watch["since"]))
        # Here the "challenger" side is the predecessor: better means the new champion is worse.
        comparison = compare(rows) if rows else None
        if (
            comparison is not None
            and comparison.n >= options.rollback_min_labels
            and comparison.better(options.alpha)
        ):
            reason = (
                comparison.describe(f"previous version {previous}", f"new version {champion}")
                + f": the new champion is worse ({comparison.evidence()})"
            )
        figures = self._figures()
        if reason is None and figures is not None and watch.get("baseline"):
            since = figures.minus(ServingFigures.from_json(watch["baseline"]))
            breach = slo_breach(since, options.error_slo, options.latency_slo)
            if breach is not None:
                reason = f"since the promotion {breach}"
        if reason is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.client.set_model_version_tag(name, champion, ROLLBACK_TAG, f"{stamp} {reason}")
            moved = lifecycle.rollback(open_registry(), name).message
            self.client.delete_registered_model_tag(name, WATCH_TAG)
            return Decision("rolled_back", f"{moved}: {reason}")
        # describe() puts the shadow side first; here that is the predecessor.
        status = (
            comparison.describe(f"previous version {previous}", f"new version {champion}")
            if comparison is not None
            else "no paired labels yet"
        )
        if time.time() >= float(watch["until"]):
            self.client.delete_registered_model_tag(name, WATCH_TAG)
            return Decision(
                "watch_over", f"watch over: version {champion} stays in production ({status})"
            )
        left = (float(watch["until"]) - time.time()) / 60
        return Decision(
            "watching",
            f"watching version {champion} for {left:.1f} more min: {status}; no reason to roll back",
        )


def build_parser() -> argparse.ArgumentParser:
    d = JudgeOptions()
    parser = argparse.ArgumentParser(
        prog="make judge ARGS=... / python -m training.judge",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    parser.add_argument("--model", default=d.model)
    parser.add_argument("--store-uri", default=None, help="default: $PREDICTION_STORE_URI")
    parser.add_argument(
        "--metrics-url",
        action="append",
        default=[],
        help="a server's /metrics (repeat; a name resolving to several addresses scrapes each)",
    )
    parser.add_argument("--min-labels", type=int, default=d.min_labels)
    parser.add_argument("--rollback-min-labels", type=int, default=d.rollback_min_labels)
    parser.add_argument("--alpha", type=float, default=d.alpha)
    parser.add_argument("--since-hours", type=float, default=d.since_hours)
    parser.add_argument("--watch-minutes", type=float, default=d.watch_minutes)
    parser.add_argument("--error-slo", type=float, default=d.error_slo)
    parser.add_argument("--latency-slo", type=float, default=d.latency_slo, help="seconds, p95")
    parser.add_argument("--latency-tolerance", type=float, default=d.latency_tolerance)
    parser.add_argument("--force", action="store_true", help="promote whatever the evidence")
    return parser


def parse_options(argv: list[str] | None = None) -> JudgeOptions:
    from server.settings import default_prediction_store

    args = build_parser().parse_args(argv)
    urls = [u for raw in args.metrics_url for u in raw.split(",") if u.strip()]
    return JudgeOptions(
        model=args.model,
        store_uri=args.store_uri
        or os.environ.get("PREDICTION_STORE_URI")
        or default_prediction_store(),
        metrics_urls=tuple(u.strip() for u in urls),
        min_labels=args.min_labels,
        rollback_min_labels=args.rollback_min_labels,
        alpha=args.alpha,
        since_hours=args.since_hours,
        watch_minutes=args.watch_minutes,
        error_slo=args.error_slo,
        latency_slo=args.latency_slo,
        latency_tolerance=args.latency_tolerance,
        force=args.force,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_options(argv)
        options.validate()
        from training.retrain import registry_client
        from training.tracking import connect

        connect()
        print(Judge(options, registry_client()).run().message)
    except TrainingError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException | OSError):
            print(f"error: MLflow: {one_line(exc)}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
