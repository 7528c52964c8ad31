"""Request ids: unique across replicas, ordered by time, and clients' ids checked before echoing."""

import os
import random
import threading
import time

import pytest

from server.request_ids import new_request_id, usable


def test_the_random_part_does_not_come_from_python_s_random() -> None:
    """Ids from a Mersenne Twister can be predicted from a few hundred of them."""
    random.seed(1)
    first = new_request_id()
    random.seed(1)
    assert new_request_id()[12:] != first[12:]


def test_new_ids_are_32_hex_digits_and_unique() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert ids[0].decode() == ids[0].decode().lower()


def test_ids_made_on_many_threads_at_once_are_unique() -> None:
    made: list[list[bytes]] = [[] for _ in range(8)]

    def make(into: list[bytes]) -> None:
        for _ in range(5000):
            into.append(new_request_id())

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for into in made for i in into]
    assert len(set(every)) == len(every) == 40_000


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    """Workers started by fork share nothing random with the process they came from."""
    new_request_id()  # whatever the parent has drawn ahead of use
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write, b"".join(new_request_id()[12:] for _ in range(10)))
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 4096)
    os.close(read)
    ours = b"".join(new_request_id()[12:] for _ in range(10))
    assert len(theirs) == len(ours) == 200
    assert {theirs[i : i + 20] for i in range(0, 200, 20)}.isdisjoint(
        {ours[i : i + 20] for i in range(0, 200, 20)}
    )


def test_new_ids_sort_in_the_order_they_were_made() -> None:
    """What keeps recorded rows at the end of the store's request-id index."""
    made = []
    for _ in range(5):
        made.append(new_request_id())
        time.sleep(0.002)  # a later millisecond
    assert made == sorted(made)
    assert abs(int(made[0][:12], 16) - time.time() * 1000) < 60_000  # the time is in front


@pytest.mark.parametrize(
    ("value", "ok"),
    [(b"abc-123", True), (b"x" * 128, True), (b"", False), (b"x" * 129, False),
     (b"a b", False), (b"\x7f", False), ("é".encode(), False)],
)  # fmt: skip
def test_a_clients_id_is_echoed_only_when_visible_ascii_and_short(value: bytes, ok: bool) -> None:
    assert usable(value) is ok
