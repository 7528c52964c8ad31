"""Request ids: unique across replicas, ordered by time, and clients' ids checked before echoing."""

import random
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
