"""`python -m training.lifecycle`: list a model's versions, promote one to an alias, roll back.

The alias history lives in the registry itself, as the registered-model tag `alias_history`
(JSON: alias -> the versions it pointed at before each promotion, oldest first), so any machine
that can reach the registry can roll back. Promotion checks the candidate first (see
training.model_check) unless forced; rollback does not, because every version in the history
once served behind that alias and a rollback is what you reach for when something is wrong.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from training.errors import TrainingError, one_line
from training.registration import PRODUCTION_ALIAS
from training.tracking import connect, redacted

if TYPE_CHECKING:
    from mlflow.entities.model_registry import RegisteredModel
    from mlflow.tracking import MlflowClient

HISTORY_TAG = "alias_history"
HISTORY_LIMIT = 50  # entries kept per alias: enough to walk back through, small enough for a tag
DEFAULT_MODEL = "iris-classifier"


@dataclass(frozen=True)
class VersionRow:
    version: str
    created: datetime
    aliases: list[str]
    metrics: dict[str, float]


def _client() -> "MlflowClient":
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _registered_model(client: "MlflowClient", name: str) -> "RegisteredModel":
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    known = sorted(m.name for m in client.search_registered_models())
    hint = f"registered: {', '.join(known)}" if known else "the registry is empty; run make train"
    raise TrainingError(f"no registered model {name!r} ({hint})")


def _versions(client: "MlflowClient", name: str) -> list[str]:
    found = client.search_model_versions(f"name='{name}'")
    return sorted((str(v.version) for v in found), key=int)


def _aliases(model: "RegisteredModel") -> dict[str, str]:
    return {alias: str(version) for alias, version in model.aliases.items()}


def read_history(model: "RegisteredModel") -> dict[str, list[str]]:
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


def _write_history(client: "MlflowClient", name: str, history: dict[str, list[str]]) -> None:
    trimmed = {alias: versions[-HISTORY_LIMIT:] for alias, versions in history.items() if versions}
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(trimmed, sort_keys=True))


def _restore_history_tag(client: "MlflowClient", name: str, raw: str | None) -> None:
    if raw is None:
        client.delete_registered_model_tag(name, HISTORY_TAG)
    else:
        client.set_registered_model_tag(name, HISTORY_TAG, raw)


def list_versions(client: "MlflowClient", name: str) -> list[VersionRow]:
    """Every version of the model, newest first, with its training metrics and aliases."""
    model = _registered_model(client, name)
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(_aliases(model).items()):
        by_version.setdefault(version, []).append(alias)
    rows = []
    for found in client.search_model_versions(f"name='{name}'"):
        version = str(found.version)
        metrics = client.get_run(found.run_id).data.metrics if found.run_id else {}
        rows.append(
            VersionRow(
                version=version,
                created=datetime.fromtimestamp(found.creation_timestamp / 1000, tz=UTC),
                aliases=by_version.get(version, []),
                metrics=dict(sorted(metrics.items())),
            )
        )
    return sorted(rows, key=lambda row: int(row.version), reverse=True)


def format_versions(
    name: str, uri: str, rows: list[VersionRow], history: dict[str, list[str]]
) -> str:
    lines = [
        f"{name} in {redacted(uri)}",
        f"  {'version':<8} {'created (UTC)':<20} {'aliases':<22} metrics",
    ]
    for row in rows:
        metrics = " ".join(f"{key}={value:.4f}" for key, value in row.metrics.items())
        created = row.created.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"  {row.version:<8} {created:<20} {','.join(row.aliases) or '-':<22} {metrics}"
        )
    for alias, versions in sorted(history.items()):
        if versions:
            lines.append(f"  {alias} before: {' -> '.join(versions)} (make rollback ALIAS={alias})")
    return "\n".join(lines)


def promote(
    client: "MlflowClient",
    name: str,
    version: str,
    alias: str = PRODUCTION_ALIAS,
    *,
    force: bool = False,
) -> str:
    """Point `alias` at `version`, recording where it pointed before; return what happened."""
    if not version.isdigit() or int(version) < 1:
        raise TrainingError(f"VERSION must be a version number like 3, got {version!r}")
    version = str(int(version))
    model = _registered_model(client, name)
    versions = _versions(client, name)
    if version not in versions:
        raise TrainingError(
            f"{name} has no version {version} (versions: {', '.join(versions) or 'none'}); "
            "nothing changed"
        )
    current = _aliases(model).get(alias)
    if current == version:
        return f"{alias} of {name} already points at version {version}; nothing changed"
    if not force:
        from training import model_check

        try:
            model_check.check_promotable(name, version, current)
        except TrainingError as exc:
            raise TrainingError(
                f"refused: {exc}; nothing changed (FORCE=1 to promote anyway)"
            ) from exc
    raw_history = model.tags.get(HISTORY_TAG)
    if current is not None:
        history = read_history(model)
        history.setdefault(alias, []).append(current)
        # History first: if the alias then fails to move, the tag is put back as it was.
        _write_history(client, name, history)
    try:
        client.set_registered_model_alias(name, alias, version)
    except BaseException:
        if current is not None:
            _restore_history_tag(client, name, raw_history)
        raise
    before = f"version {current}" if current is not None else "nothing"
    forced = " (checks skipped: FORCE)" if force else ""
    return f"{alias} of {name}: {before} -> version {version}{forced}"


def rollback(client: "MlflowClient", name: str, alias: str = PRODUCTION_ALIAS) -> str:
    """Point `alias` back at the version it pointed at before the last promotion."""
    model = _registered_model(client, name)
    history = read_history(model)
    current = _aliases(model).get(alias)
    existing = set(_versions(client, name))
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
    client.set_registered_model_alias(name, alias, target)
    try:
        _write_history(client, name, history)
    except BaseException:
        # The alias moved but its history did not: put the alias back, so a retry is clean.
        if current is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, current)
        raise
    note = f" (skipped deleted version {', '.join(skipped)})" if skipped else ""
    before = f"version {current}" if current is not None else "nothing"
    return f"rolled back {alias} of {name}: {before} -> version {target}{note}"


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
    models = commands.add_parser("models", help="list versions, creation times, metrics, aliases")
    models.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    promote_parser = commands.add_parser(
        "promote",
        help="point an alias at a version, after checking it loads and matches the one it replaces",
    )
    promote_parser.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    promote_parser.add_argument("--version", required=True, help="the version number to promote")
    promote_parser.add_argument("--alias", default=PRODUCTION_ALIAS, help="default production")
    promote_parser.add_argument(
        "--force", action="store_true", help="skip the load and compatibility checks"
    )
    rollback_parser = commands.add_parser(
        "rollback", help="point an alias back at the version it pointed at before"
    )
    rollback_parser.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    rollback_parser.add_argument("--alias", default=PRODUCTION_ALIAS, help="default production")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mlflow.exceptions import MlflowException

    try:
        uri = connect()
        client = _client()
        if args.command == "models":
            model = _registered_model(client, args.model)
            rows = list_versions(client, args.model)
            print(format_versions(args.model, uri, rows, read_history(model)))
        elif args.command == "promote":
            print(promote(client, args.model, args.version, args.alias, force=args.force))
        else:
            print(rollback(client, args.model, args.alias))
    except TrainingError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except (MlflowException, OSError) as exc:
        print(f"error: MLflow: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
