"""`python -m training`: the entry point `make train` wraps."""

from training.cli import main

raise SystemExit(main())
