"""What a result was measured on: CPU, cores, OS, Python and library versions, date."""

import datetime
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

_PACKAGES = ("onnxruntime", "scikit-learn", "mlflow", "starlette", "uvicorn", "numpy")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict[str, Any]:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": load,
        "versions": versions,
    }


def one_line(machine: dict[str, Any]) -> str:
    load = machine.get("load_average_at_start")
    busy = f", load average {load[0]} at start" if load else ""
    return f"{machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python {machine['python']}, {machine['date']}{busy}"
