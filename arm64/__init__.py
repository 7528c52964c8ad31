"""arm64 checks: the locked runtime, the model's answers and the server, against x86-64.

Under qemu user-mode emulation on an x86-64 machine (`make verify-arm64`) and natively on an arm64
machine (`make arm64-check`, `make arm64-bench`, the arm64 CI job). See docs/architectures.md.
"""
