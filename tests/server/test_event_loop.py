"""running_loop and current_task: the same answers as asyncio's, whichever loop or thread asks."""

import asyncio
import os
import threading

import pytest
import uvloop

from server.event_loop import current_task, running_loop


async def _both() -> tuple[bool, bool]:
    return running_loop() is asyncio.get_running_loop(), current_task() is asyncio.current_task()


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run])
def test_each_new_loop_is_the_one_answered(run: object) -> None:
    for _ in range(3):  # one loop after another on the same thread
        assert run(_both()) == (True, True)  # type: ignore[operator]


def test_a_loop_on_another_thread_is_not_taken_for_this_threads() -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[object] = []

    async def elsewhere() -> None:
        seen.append(running_loop())
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait)

    other = threading.Thread(target=asyncio.run, args=(elsewhere(),))
    other.start()
    started.wait()
    try:
        assert asyncio.run(_both()) == (True, True)
        assert seen[0] is not None
    finally:
        release.set()
        other.join()


def test_outside_a_loop_it_refuses_as_asyncio_does() -> None:
    asyncio.run(_both())  # a loop remembered, now closed
    with pytest.raises(RuntimeError):
        running_loop()


def test_a_forked_child_does_not_answer_its_parents_loop() -> None:
    async def fork_inside() -> int:
        running_loop()  # remembered in the parent
        child = os.fork()
        if child == 0:  # pragma: no cover - the child process
            # The copy of the running loop is not running here; asking must not return it.
            try:
                running_loop()
            except RuntimeError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(child, 0)
        return os.waitstatus_to_exitcode(status)

    assert asyncio.run(fork_inside()) == 0
