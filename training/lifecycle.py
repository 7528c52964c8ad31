"""`python -m training.lifecycle`: list a model's versions, promote one to an alias, roll back.

The alias history lives in the registry itself, as the registered-model tag `alias_history`
(JSON: alias -> the versions it pointed at before each promotion, oldest first), so any machine
that can reach the registry can roll back. Promotion compares the candidate's held-out metrics
with the current version's and checks that the server could load it (training.model_check),
unless forced; rollback does not, because every version in the history once served behind that
alias and a rollback is what you reach for when something is wrong.

Promotions and rollbacks are safe to run at the same time: each reads and writes the alias and
its history under exclusive access (Registry.update), and a promotion whose checks ran against a
version that has since been replaced checks again. No MLflow import: see training.registry.
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime

from training.errors import TrainingError, one_line
from training.registry import (
    HISTORY_TAG,
    PRODUCTION_ALIAS,
    TASK_TAG,
    ModelVersion,
    NotFound,
    RegisteredModel,
    Registry,
    RegistryError,
    open_registry,
)
from training.registry_lock import is_lock_name

HISTORY_LIMIT = 50  # entries kept per alias: enough to walk back through, small enough for a tag
DEFAULT_MODEL = "iris-classifier"
ATTEMPTS = 5  # promotions checked again because the alias moved meanwhile, before giving up
# The task's main metric and whether higher is better: what promotion refuses to make worse.
MAIN_METRICS = {"classification": ("accuracy", True), "regression": ("rmse", False)}
MAIN_PARAMS = ("n_estimators", "max_depth", "test_size", "random_state")
SPLIT_PARAMS = ("dataset", "test_size", "random_state")  # equal: the same held-out rows
_ALIAS = re.compile(r"^[\w-]{1,255}$")


@dataclass(frozen=True)
class VersionSummary:
    """One version as `make models` and `make promote` show it."""

    version: str
    created: datetime | None = None
    aliases: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """A candidate's metrics beside those of the version it would replace."""

    alias: str
    metric: str | None  # the task's main metric; None when the task is unknown
    higher_is_better: bool
    candidate: VersionSummary
    current: VersionSummary | None

    @property
    def verdict(self) -> str:
        """better, equal, worse, unknown (a value is missing), or new (nothing to replace)."""
        if self.current is None:
            return "new"
        if self.metric is None:
            return "unknown"
        ours = self.candidate.metrics.get(self.metric)
        theirs = self.current.metrics.get(self.metric)
        if ours is None or theirs is None or ours != ours or theirs != theirs:  # missing or NaN
            return "unknown"
        if ours == theirs:
            return "equal"
        return "better" if (ours > theirs) == self.higher_is_better else "worse"

    @property
    def same_split(self) -> bool:
        """Whether both versions were evaluated on the same held-out rows."""
        if self.current is None:
            return True
        return all(self.candidate.params.get(p) == self.current.params.get(p) for p in SPLIT_PARAMS)


@dataclass(frozen=True)
class Promotion:
    name: str
    alias: str
    version: str
    previous: str | None
    changed: bool
    forced: bool
    comparison: Comparison | None

    @property
    def message(self) -> str:
        if not self.changed:
            return (
                f"{self.alias} of {self.name} already points at version {self.version}; "
                "nothing changed"
            )
        before = f"version {self.previous}" if self.previous is not None else "nothing"
        forced = " (checks skipped: FORCE)" if self.forced else ""
        return f"{self.alias} of {self.name}: {before} -> version {self.version}{forced}"


@dataclass(frozen=True)
class Rollback:
    name: str
    alias: str
    version: str
    previous: str | None
    skipped: list[str]

    @property
    def message(self) -> str:
        note = f" (skipped deleted version {', '.join(self.skipped)})" if self.skipped else ""
        before = f"version {self.previous}" if self.previous is not None else "nothing"
        return f"rolled back {self.alias} of {self.name}: {before} -> version {self.version}{note}"


class Refused(TrainingError):
    """Promotion refused; `comparison` holds the metrics that were compared, when they were."""

    def __init__(self, message: str, comparison: Comparison | None) -> None:
        super().__init__(message)
        self.comparison = comparison


def _registered_model(registry: Registry, name: str) -> RegisteredModel:
    try:
        return registry.model(name)
    except NotFound:
        pass
    known = [n for n in registry.model_names() if not is_lock_name(n)]
    hint = f"registered: {', '.join(known)}" if known else "the registry is empty; run make train"
    raise TrainingError(f"no registered model {name!r} ({hint})") from None


def read_history(model: RegisteredModel) -> dict[str, list[str]]:
    raw = model.tags.get(HISTORY_TAG)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
        return {str(alias): [str(v) for v in versions] for alias, versions in parsed.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise TrainingError(
            f"the {HISTORY_TAG} tag of {model.name!r} is not valid JSON history: {raw[:80]!r}"
        ) from exc


def _history_tag(history: dict[str, list[str]]) -> str:
    trimmed = {alias: versions[-HISTORY_LIMIT:] for alias, versions in history.items() if versions}
    return json.dumps(trimmed, sort_keys=True)


def main_metric(task: str | None) -> tuple[str | None, bool]:
    """The metric promotion compares for a task, and whether higher is better."""
    return MAIN_METRICS.get(task or "", (None, True))


def _task(model: RegisteredModel, metrics: dict[str, float]) -> str | None:
    task = model.tags.get(TASK_TAG)
    if task in MAIN_METRICS:
        return task
    return next((t for t, (metric, _) in MAIN_METRICS.items() if metric in metrics), None)


def list_versions(registry: Registry, name: str) -> tuple[RegisteredModel, list[VersionSummary]]:
    """The model and every version, newest first, with its parameters, metrics and aliases."""
    model = _registered_model(registry, name)
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(model.aliases.items()):
        by_version.setdefault(version, []).append(alias)
    rows = []
    for found in registry.versions(name):
        run = registry.run(found.run_id) if found.run_id else None
        rows.append(
            VersionSummary(
                version=found.version,
                created=found.created,
                aliases=by_version.get(found.version, []),
                params=dict(run.params) if run else {},
                metrics=dict(sorted(run.metrics.items())) if run else {},
            )
        )
    return model, sorted(rows, key=lambda row: int(row.version), reverse=True)


def _summary(registry: Registry, model: RegisteredModel, found: ModelVersion) -> VersionSummary:
    run = registry.run(found.run_id) if found.run_id else None
    return VersionSummary(
        version=found.version,
        created=found.created,
        aliases=sorted(a for a, v in model.aliases.items() if v == found.version),
        params=dict(run.params) if run else {},
        metrics=dict(sorted(run.metrics.items())) if run else {},
    )


def compare(
    registry: Registry,
    model: RegisteredModel,
    versions: list[ModelVersion],
    version: str,
    alias: str = PRODUCTION_ALIAS,
) -> Comparison:
    """The candidate's metrics beside those of the version `alias` points at now."""
    by_number = {v.version: v for v in versions}
    candidate = _summary(registry, model, by_number[version])
    current_version = model.aliases.get(alias)
    current = (
        _summary(registry, model, by_number[current_version])
        if current_version in by_number
        else None
    )
    metric, higher = main_metric(_task(model, candidate.metrics))
    return Comparison(alias, metric, higher, candidate, current)


def _check_metrics(comparison: Comparison, name: str) -> None:
    verdict, metric = comparison.verdict, comparison.metric
    current = comparison.current
    if verdict in ("new", "better", "equal") or current is None:
        return
    label = f"{name} version {comparison.candidate.version}"
    if verdict == "unknown":
        what = metric or "a main metric (unknown task)"
        raise TrainingError(
            f"cannot compare {label} with version {current.version} on {what}: a value is missing"
        )
    assert metric is not None
    ours, theirs = comparison.candidate.metrics[metric], current.metrics[metric]
    direction = "lower" if comparison.higher_is_better else "higher"
    raise TrainingError(
        f"{label} has {direction} {metric} ({ours:.4f}) than version {current.version} "
        f"({theirs:.4f}), which {comparison.alias} points at"
    )


def _validate(version: str, alias: str) -> str:
    if not version.isdigit() or int(version) < 1:
        raise TrainingError(f"VERSION must be a version number like 3, got {version!r}")
    if not _ALIAS.match(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise TrainingError(
            f"ALIAS must be letters, digits, _ or - (not latest or v<number>), got {alias!r}"
        )
    return str(int(version))


def promote(
    registry: Registry,
    name: str,
    version: str | int,
    alias: str = PRODUCTION_ALIAS,
    *,
    force: bool = False,
    check_metrics: bool = True,
) -> Promotion:
    """Point `alias` at `version`, recording where it pointed before.

    Unless `force`, refuse (Refused) a version that the server could not load in place of the
    current one, or (unless `check_metrics` is off, for a caller with evidence of its own) that
    is worse on the task's main metric. Safe to run concurrently.
    """
    version = _validate(str(version), alias)
    comparison: Comparison | None = None
    for _ in range(ATTEMPTS):
        model = _registered_model(registry, name)
        versions = registry.versions(name)
        numbers = [v.version for v in versions]
        if version not in numbers:
            raise TrainingError(
                f"{name} has no version {version} (versions: {', '.join(numbers) or 'none'}); "
                "nothing changed"
            )
        current = model.aliases.get(alias)
        if current == version:
            return Promotion(name, alias, version, current, False, force, comparison)
        comparison = compare(registry, model, versions, version, alias)
        if not force:
            _refuse_unless_promotable(
                registry, name, version, current, comparison if check_metrics else None
            )
        purpose = f"promote version {version} of {name} to {alias}"
        with registry.update(name, purpose) as update:
            if update.model.aliases.get(alias) != current:
                continue  # another promotion or rollback got there first: check again
            history = read_history(update.model)
            if current is not None:
                history.setdefault(alias, []).append(current)
                update.set_tag(HISTORY_TAG, _history_tag(history))
            update.set_alias(alias, version)
        return Promotion(name, alias, version, current, True, force, comparison)
    raise TrainingError(
        f"{alias} of {name} kept moving while version {version} was being checked; "
        "nothing changed, try again"
    )


def _refuse_unless_promotable(
    registry: Registry,
    name: str,
    version: str,
    current: str | None,
    comparison: Comparison | None,
) -> None:
    from training import model_check

    try:
        # Whether it can replace the current version at all, then whether it is any good.
        model_check.check_promotable(registry, name, version, current)
        if comparison is not None:
            _check_metrics(comparison, name)
    except TrainingError as exc:
        message = f"refused: {exc}; nothing changed (FORCE=1 to promote anyway)"
        raise Refused(message, comparison) from exc


def rollback(registry: Registry, name: str, alias: str = PRODUCTION_ALIAS) -> Rollback:
    """Point `alias` back at the version it pointed at before the last promotion."""
    _validate("1", alias)
    _registered_model(registry, name)  # a clear error for a missing model, before any lock
    with registry.update(name, f"roll back {alias} of {name}") as update:
        history = read_history(update.model)
        current = update.model.aliases.get(alias)
        existing = update.versions()
        previous = list(history.get(alias, []))
        skipped = []
        target = None
        while previous:
            candidate = previous.pop()
            if candidate == current:
                continue
            if candidate not in existing:
                skipped.append(candidate)
                continue
            target = candidate
            break
        if target is None:
            raise TrainingError(
                f"no earlier version of {alias} is recorded for {name}; nothing changed "
                "(promote a version with make promote VERSION=n)"
            )
        history[alias] = previous
        update.set_alias(alias, target)
        update.set_tag(HISTORY_TAG, _history_tag(history))
    return Rollback(name, alias, target, current, skipped)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.lifecycle",
        description=(
            "List a registered model's versions, point an alias (production by default) at one, "
            "or roll the alias back. Uses MLFLOW_TRACKING_URI, or the local store in .mlflow/."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = f"registered model name (default {DEFAULT_MODEL})"
    models = commands.add_parser(
        "models", help="list versions with their parameters, metrics and aliases"
    )
    models.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    promote_parser = commands.add_parser(
        "promote",
        help=(
            "point an alias at a version, after checking it is no worse on the main metric, "
            "loads, and matches the one it replaces"
        ),
    )
    promote_parser.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    promote_parser.add_argument("--version", required=True, help="the version number to promote")
    promote_parser.add_argument("--alias", default=PRODUCTION_ALIAS, help="default production")
    promote_parser.add_argument(
        "--force", action="store_true", help="skip the metric, load and compatibility checks"
    )
    rollback_parser = commands.add_parser(
        "rollback", help="point an alias back at the version it pointed at before"
    )
    rollback_parser.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    rollback_parser.add_argument("--alias", default=PRODUCTION_ALIAS, help="default production")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training import lifecycle_report as report

    try:
        registry = open_registry()
        if args.command == "models":
            model, rows = list_versions(registry, args.model)
            print(report.format_versions(model, registry.uri, rows, read_history(model)))
        elif args.command == "promote":
            result = promote(registry, args.model, args.version, args.alias, force=args.force)
            if result.comparison is not None:
                print(report.format_comparison(result.comparison))
            print(result.message)
        else:
            print(rollback(registry, args.model, args.alias).message)
    except Refused as exc:
        if exc.comparison is not None:
            print(report.format_comparison(exc.comparison), flush=True)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"error: MLflow: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
