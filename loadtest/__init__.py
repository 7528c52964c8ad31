"""Load tests and benchmarks: `make loadtest` drives /predict, `make bench` compares servers."""
