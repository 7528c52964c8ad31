"""The in-process cost of a prediction: scikit-learn against onnxruntime, no HTTP anywhere.

Each figure is the median over repeats of (time for a loop of calls / calls), timed with the
garbage collector off, like timeit, on the CPU the caller pinned this process to.
"""

import gc
import time
from collections.abc import Callable

from loadtest.stats import Spread, spread


def per_call_seconds(call: Callable[[], object], *, repeats: int, seconds: float) -> Spread:
    """Median seconds per call over `repeats` loops of about `seconds` each."""
    call()  # first-call costs (allocation, lazy init) are not part of the steady state
    started = time.perf_counter()
    call()
    once = max(time.perf_counter() - started, 1e-7)
    loops = max(1, int(seconds / once))
    results = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(loops):
                call()
            results.append((time.perf_counter() - started) / loops)
    finally:
        if enabled:
            gc.enable()
    return spread(results)
