"""Rehearse a Helm release without Kubernetes: run what the chart renders, as rendered, in Docker.

`python -m rehearsal --env production` (or `make rehearse ENV=production`) renders the chart with
an environment's values plus only what a user supplies, runs every workload whose image can be
built here, polls every probe, registers the first model the way the docs say, runs the helm test
Pods, checks the standalone Prometheus and rehearses a rollback. One line per workload and check.
"""
