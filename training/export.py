"""`python -m training.export`: copy a registered model out of MLflow into a plain directory.

The directory (model.onnx, metadata.json, drift_reference.json) is what the server loads from a
local path and what the container image bakes in as its fallback model.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from server.contract import DRIFT_REFERENCE_FILE, EXTRA_FILES_DIR, METADATA_FILE, MODEL_FILE
from training.errors import TrainingError, one_line
from training.tracking import connect


def _resolve_version(model_uri: str) -> tuple[str, str]:
    """Name and version behind models:/<name>@<alias> or models:/<name>/<version>."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if not model_uri.startswith("models:/"):
        raise TrainingError(
            f"expected models:/<name>@<alias> or models:/<name>/<version>: {model_uri}"
        )
    reference = model_uri.removeprefix("models:/")
    client = MlflowClient()
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        name, _, version = reference.partition("/")
        return name, str(client.get_model_version(name, version).version)
    except MlflowException as exc:
        raise TrainingError(f"no registered model version at {model_uri}: {exc.message}") from exc


def export_model(model_uri: str, out: Path) -> Path:
    """Download the registered model and write the serving files into `out`."""
    import mlflow

    connect()
    name, version = _resolve_version(model_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=tmp
            )
        )
        sources = {
            MODEL_FILE: local / MODEL_FILE,
            METADATA_FILE: local / EXTRA_FILES_DIR / METADATA_FILE,
            DRIFT_REFERENCE_FILE: local / EXTRA_FILES_DIR / DRIFT_REFERENCE_FILE,
        }
        missing = [str(path.relative_to(local)) for path in sources.values() if not path.is_file()]
        if missing:
            raise TrainingError(f"{model_uri} is not a serving model: missing {', '.join(missing)}")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[MODEL_FILE], out / MODEL_FILE)
        shutil.copyfile(sources[DRIFT_REFERENCE_FILE], out / DRIFT_REFERENCE_FILE)
        metadata = json.loads(sources[METADATA_FILE].read_text())
        metadata["version"] = version
        (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__)
    parser.add_argument("--model-uri", default="models:/iris-classifier@production")
    parser.add_argument("--out", type=Path, default=Path("build/model"))
    args = parser.parse_args(argv)
    from mlflow.exceptions import MlflowException

    try:
        out = export_model(args.model_uri, args.out)
    except TrainingError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except (MlflowException, OSError) as exc:  # a store or download failure: one line, no traceback
        print(f"error: MLflow: {one_line(exc)}", file=sys.stderr)
        return 1
    print(f"exported {args.model_uri} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
