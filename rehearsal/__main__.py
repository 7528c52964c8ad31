"""The command line of the rehearsal: `python -m rehearsal --env production`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import rehearsal
from rehearsal.scenario import ENVIRONMENTS, main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal",
        description=rehearsal.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--env",
        default="",
        choices=sorted(ENVIRONMENTS),
        help="values file: staging, production, or empty for the chart's defaults",
    )
    parser.add_argument(
        "--image",
        default=os.environ.get("IMAGE", "mlops-model-server:dev"),
        help="tag of the API image `make image` builds (default: $IMAGE or mlops-model-server:dev)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra helm --set for every revision (repeatable), to rehearse your own values",
    )
    parser.add_argument("--workdir", type=Path, help="keep volumes and build logs here")
    parser.add_argument(
        "--keep", action="store_true", help="leave the containers and network running"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    sys.exit(main(args.env, args.image, args.keep, args.workdir, tuple(args.sets)))
