"""`python -m arm64 COMMAND`: the arm64 checks (see docs/architectures.md).

verify     on x86-64: build the reference here, then check the emulated arm64 root against it
reference  on x86-64: build the reference bundle only (the CI job hands it to the arm64 job)
check      on arm64: check this machine, natively, against a reference bundle
bench      on any machine: in-server inference and /predict latency figures
docs       write the latest result files into docs/architectures.md
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from arm64 import bench, bundle, docs, report
from arm64.observe import observe
from arm64.runners import (
    REPO_ROOT,
    Native,
    PrerequisiteMissing,
    build_root,
    check_prerequisites,
    leftovers,
)

DEFAULT_WORK = REPO_ROOT / "build" / "arm64"


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every server and namespace is stopped on the way.
    raise SystemExit(128 + signum)


def uv_command() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(REPO_ROOT / ".tools/uv/bin/uv")
    if not Path(found).exists() and not shutil.which(found):
        raise PrerequisiteMissing("uv is not installed: run make setup")
    return found


def export_requirements(out: Path) -> Path:
    """The server's runtime set, exported from uv.lock with hashes (what the image installs)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    exported = subprocess.run(
        [
            uv_command(),
            "export",
            "--frozen",
            "--no-dev",
            "--no-default-groups",
            "--no-emit-project",
            "--format",
            "requirements-txt",
            "--quiet",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    out.write_text(exported)
    return out


def exported_models(pairs: list[str]) -> dict[str, Path] | None:
    """NAME=DIR options as a mapping, or None to train the models."""
    if not pairs:
        return None
    models = {}
    for pair in pairs:
        name, _, directory = pair.partition("=")
        if not name or not directory:
            raise SystemExit(f"error: --model takes NAME=DIR, got {pair!r}")
        models[name] = Path(directory).resolve()
    return models


def make_reference(work: Path, models: dict[str, Path] | None) -> Path:
    """The bundle in `work`/bundle with this machine's observation as its reference."""
    built = bundle.build(work / "bundle", models)
    print(f"reference: {len(bundle.read_manifest(built)['models'])} models in {built}", flush=True)
    observation = observe(Native(work), built, work / "logs")
    (built / bundle.REFERENCE).write_text(json.dumps(observation) + "\n")
    print(f"reference: answers of {observation['label']} in {built / bundle.REFERENCE}", flush=True)
    return built


def finish(result: dict[str, Any], command: str, out: Path) -> int:
    """Write the result files, print the table and every failure; the exit status."""
    json_path, markdown_path = report.write(result, command, out)
    print()
    print(markdown_path.read_text())
    for model in result["models"]:
        for problem in model["outputs"]["problems"]:
            print(f"FAILED {model['name']}: {problem}")
        for request, answer in model["answers"].items():
            for difference in answer["differences"]:
                print(f"FAILED {model['name']}, {request}: {difference}")
    for leftover in result.get("leftovers", []):
        print(f"FAILED left behind: {leftover}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as handle:
            handle.write(f"### arm64 parity\n\n{markdown_path.read_text()}\n")
    print(f"wrote {json_path} and {markdown_path}")
    return 0 if result["passed"] else 1


def verify(args: argparse.Namespace) -> int:
    """on x86-64: the reference here, then the emulated arm64 root checked against it"""
    if platform.machine() != "x86_64":
        print(
            "error: verify emulates arm64 on x86-64; on arm64 run `make arm64-check`",
            file=sys.stderr,
        )
        return 2
    check_prerequisites()  # before minutes of work, not after
    work: Path = args.work.resolve()
    requirements = export_requirements(work / "runtime-requirements.txt")
    emulated = build_root(requirements, work)
    built = make_reference(work, exported_models(args.model))
    print(f"checking {emulated.label} in {emulated.root}", flush=True)
    try:
        candidate = observe(emulated, built, work / "logs")
    finally:
        left = leftovers(emulated.root)
    result = report.compare(built, candidate)
    result["leftovers"] = left
    result["passed"] = result["passed"] and not left
    result["root_seconds"] = emulated.prepared_seconds
    result["root_build"] = emulated.records
    return finish(result, "make verify-arm64", work / "verify-arm64")


def reference(args: argparse.Namespace) -> int:
    """train the test models and record this machine's answers (the reference bundle)"""
    make_reference(args.work.resolve(), exported_models(args.model))
    return 0


def check(args: argparse.Namespace) -> int:
    """check this machine, natively, against a reference bundle from another architecture"""
    built: Path = args.reference.resolve()
    if not (built / bundle.REFERENCE).is_file():
        print(
            f"error: no reference bundle in {built}: run `make arm64-reference` on x86-64 "
            "(in CI, the arm64 workflow's reference job uploads it)",
            file=sys.stderr,
        )
        return 2
    expected = json.loads((built / bundle.REFERENCE).read_text())
    if expected["machine"] == platform.machine():
        print(
            f"error: the reference was made on {expected['machine']}, like this machine; "
            "a cross-architecture check needs one from another architecture",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="arm64-check-") as logs:
        candidate = observe(Native(built.parent), built, Path(logs))
    result = report.compare(built, candidate)
    return finish(result, "make arm64-check", args.work.resolve() / "check-native")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m arm64", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="bundle, logs and results (build/arm64)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler in (("verify", verify), ("reference", reference)):
        sub = commands.add_parser(name, help=handler.__doc__)
        sub.add_argument(
            "--model",
            action="append",
            default=[],
            metavar="NAME=DIR",
            help="an exported model to use instead of training (repeat for each)",
        )
        sub.set_defaults(run=handler)
    sub = commands.add_parser("check", help=check.__doc__)
    sub.add_argument("--reference", type=Path, required=True, help="the reference bundle")
    sub.set_defaults(run=check)
    bench.add_commands(
        commands,
        DEFAULT_WORK / "bench-native",
        DEFAULT_WORK / "bundle" / "models" / "iris-classifier",
    )
    docs.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    try:
        code: int = args.run(args)
    except PrerequisiteMissing as exc:
        print(f"error: arm64 emulation cannot run here:\n{exc}", file=sys.stderr)
        return 3
    except RuntimeError as exc:  # a build, a model run or a server that failed: its own words
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
