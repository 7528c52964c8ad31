"""The verdict of a check, written as JSON (every detail) and Markdown (the docs' table)."""

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arm64.bundle import metadata, read_manifest
from arm64.compare import answer_differences, check_outputs
from loadtest import machine
from loadtest.table import duration, render


def percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile: the smallest value with `percent`% of values at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def compare(bundle: Path, candidate: dict[str, Any]) -> dict[str, Any]:
    """The candidate's observation against the bundle's reference, model by model."""
    reference: dict[str, Any] = json.loads((bundle / "reference.json").read_text())
    models = []
    for entry in read_manifest(bundle)["models"]:
        name = entry["name"]
        outputs = check_outputs(
            name,
            metadata(bundle, entry),
            reference["outputs"][name],
            candidate["outputs"].get(name, {"batch": {}, "rows": {}}),
        )
        answers = {
            request: answer_differences(expected, candidate["answers"][name][request])
            for request, expected in reference["answers"][name].items()
        }
        models.append(
            {
                "name": name,
                "task": entry["task"],
                "held_out_rows": entry["held_out_rows"],
                "outputs": outputs.to_dict(),
                "answers": {
                    request: {"same": not problems, "differences": problems[:5]}
                    for request, problems in answers.items()
                },
                "inference_time_ms": {
                    "candidate": latency_summary(candidate["inference_time_ms"][name]),
                    "reference": latency_summary(reference["inference_time_ms"][name]),
                },
            }
        )
    passed = all(
        model["outputs"]["passed"] and all(a["same"] for a in model["answers"].values())
        for model in models
    )
    side = ("label", "machine", "versions", "emulated", "elapsed_seconds", "server_start_seconds")
    return {
        "passed": passed,
        "host": machine.describe(),
        "reference": {key: reference.get(key) for key in side},
        "candidate": {key: candidate.get(key) for key in side},
        "models": models,
    }


def _gap(model: dict[str, Any]) -> str:
    outputs = model["outputs"]
    if outputs["bit_identical"]:
        return "0 (bit-identical)"
    gap = outputs["max_probability_diff"]
    if gap is None:
        gap = outputs["max_value_diff"]
    return f"{gap:.2g}"


def markdown(result: dict[str, Any], command: str) -> str:
    """The table the docs page shows, with where and how it was measured."""
    candidate, reference = result["candidate"], result["reference"]
    emulated = " (emulated: an upper bound, not a native figure)" if candidate["emulated"] else ""
    rows = []
    for model in result["models"]:
        outputs = model["outputs"]
        labels = (
            "identical"
            if outputs["label_mismatches"] == 0
            else (f"{outputs['label_mismatches']} differ" if outputs["label_mismatches"] else "-")
        )
        same = sum(answer["same"] for answer in model["answers"].values())
        times = model["inference_time_ms"]
        rows.append(
            [
                model["name"],
                str(model["held_out_rows"]),
                labels,
                _gap(model),
                f"{same} of {len(model['answers'])} identical",
                f"{duration(times['candidate']['p50'])} / {duration(times['candidate']['p99'])}",
                f"{duration(times['reference']['p50'])} / {duration(times['reference']['p99'])}",
            ]
        )
    table = render(
        [
            "Model",
            "Held-out rows",
            "Labels",
            "Largest gap",
            "Server answers",
            f"In-server inference p50 / p99, {candidate['machine']}{emulated}",
            f"p50 / p99, {reference['machine']}",
        ],
        rows,
        markdown=True,
    )
    verdict = "passed" if result["passed"] else "FAILED"
    cost = f"{candidate['elapsed_seconds']:.0f} s of checks on {candidate['machine']}"
    if "root_seconds" in result:
        cost += f" after {result['root_seconds']:.0f} s building or finding the arm64 root"
    built = []
    for step, what in (("root", "the root (debootstrap)"), ("runtime", "its runtime set (pip)")):
        record = result.get("root_build", {}).get(step)
        if record:
            built.append(
                f"{what} in {record['seconds']} s on {record['built'][:10]} "
                f"(load average {record['load_average']})"
            )
    if built:
        cost += "; this machine built " + " and ".join(built)
    return (
        f"`{command}`: {verdict}. {candidate['label']} (onnxruntime "
        f"{candidate['versions']['onnxruntime']}, numpy {candidate['versions']['numpy']}) against "
        f"{reference['label']} (onnxruntime {reference['versions']['onnxruntime']}); "
        f"measured on {machine.one_line(result['host'])}. Inference times are the server's own "
        f"`inference_time_ms` over {times['candidate']['count']} one-row /predict requests. "
        f"Took {cost}.\n\n"
        f"{table}\n"
    )


def write(result: dict[str, Any], command: str, out: Path) -> tuple[Path, Path]:
    """`out`.json with everything, `out`.md with the table; returns both paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(json.dumps({**result, "command": command}, indent=2) + "\n")
    markdown_path.write_text(markdown(result, command))
    return json_path, markdown_path
