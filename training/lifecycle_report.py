"""Plain-text tables for `make models` and `make promote`."""

from training.lifecycle import (
    MAIN_PARAMS,
    SPLIT_PARAMS,
    Comparison,
    VersionSummary,
    main_metric,
)
from training.registry import TASK_TAG, RegisteredModel
from training.tracking import redacted

_VERDICTS = {
    "better": "better",
    "equal": "equal",
    "worse": "worse",
    "unknown": "cannot compare",
    "new": "",
}


def table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        (
            indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _metric_note(metric: str | None, higher_is_better: bool) -> str:
    if metric is None:
        return "main metric: unknown (no task tag and no accuracy or rmse)"
    direction = "higher" if higher_is_better else "lower"
    return f"main metric: {metric} ({direction} is better)"


def format_versions(
    model: RegisteredModel, uri: str, rows: list[VersionSummary], history: dict[str, list[str]]
) -> str:
    metrics = sorted({key for row in rows for key in row.metrics})
    params = [p for p in MAIN_PARAMS if any(p in row.params for row in rows)]
    metric, higher = main_metric(model.tags.get(TASK_TAG))
    if metric is not None and metric in metrics:  # the main metric first
        metrics.remove(metric)
        metrics.insert(0, metric)
    header = ["version", "created (UTC)", "aliases", *params, *metrics]
    body = [
        [
            row.version,
            row.created.strftime("%Y-%m-%d %H:%M") if row.created else "-",
            ",".join(row.aliases) or "-",
            *(row.params.get(p, "-") for p in params),
            *(_metric(row.metrics.get(m)) for m in metrics),
        ]
        for row in rows
    ]
    lines = [f"{model.name} in {redacted(uri)}", f"  {_metric_note(metric, higher)}"]
    lines += table([header, *body])
    for alias, versions in sorted(history.items()):
        if versions:
            lines.append(f"  {alias} before: {' -> '.join(versions)} (make rollback ALIAS={alias})")
    return "\n".join(lines)


def format_comparison(comparison: Comparison) -> str:
    """The candidate beside the version it would replace: main metric first, then the rest."""
    candidate, current = comparison.candidate, comparison.current
    columns = [candidate] if current is None else [current, candidate]

    def label(summary: VersionSummary) -> str:
        if summary is candidate:
            return f"version {summary.version} (candidate)"
        return f"version {summary.version} ({comparison.alias} now)"

    metrics = sorted({key for summary in columns for key in summary.metrics})
    if comparison.metric in metrics:
        metrics.remove(comparison.metric)
        metrics.insert(0, comparison.metric)
    params = [p for p in MAIN_PARAMS if any(p in summary.params for summary in columns)]
    rows = [["", *(label(summary) for summary in columns), ""]]
    for metric in metrics:
        verdict = _VERDICTS[comparison.verdict] if metric == comparison.metric else ""
        rows.append(
            [metric, *(_metric(summary.metrics.get(metric)) for summary in columns), verdict]
        )
    for param in params:
        rows.append([param, *(summary.params.get(param, "-") for summary in columns), ""])
    lines = table(rows)
    lines.append(f"  {_metric_note(comparison.metric, comparison.higher_is_better)}")
    if current is not None and not comparison.same_split:
        differ = [
            f"{p} {current.params.get(p, '-')} vs {candidate.params.get(p, '-')}"
            for p in SPLIT_PARAMS
            if current.params.get(p) != candidate.params.get(p)
        ]
        lines.append(
            f"  note: evaluated on different held-out rows ({', '.join(differ)}), "
            "so the metrics are only roughly comparable"
        )
    return "\n".join(lines)
