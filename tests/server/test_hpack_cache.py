"""server/hpack_cache.py: cached decodes always equal fresh ones, and the cache is capped."""

import random
from typing import Any

import pytest
from hpack import Decoder, Encoder, HPACKError

from server.hpack_cache import MAX_CACHED_BYTES, CachedDecoder, table_neutral

NAMES = [":path", "content-type", "authorization", "x-request-id", "grpc-timeout", "te"]


def decode_both(cached: CachedDecoder, fresh: Decoder, block: bytes) -> bool:
    """Decode `block` through the cache as the server does, and freshly; they must agree."""
    expected: object
    try:
        expected = fresh.decode(block, raw=True)
    except HPACKError as exc:
        expected = type(exc)
    got: object = cached.lookup(block)
    hit = got is not None
    if got is None:
        try:
            fields = cached.decode(block)
        except HPACKError as exc:
            got = type(exc)
        else:
            cached.store(block, fields, list(fields))
            got = fields
    if isinstance(got, list):
        assert isinstance(expected, list)
        assert [tuple(f) for f in got] == [tuple(f) for f in expected]
    else:
        assert got == expected
    return hit


@pytest.mark.parametrize("seed", range(60))
def test_cached_decodes_always_equal_fresh_ones(seed: int) -> None:
    """Random calls from an encoder whose table churns (small sizes, new values, size
    updates, never-indexed literals, old blocks replayed): repeated blocks hit the cache;
    every answer must equal a fresh decoder's."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible fuzz, not a secret
    encoder = Encoder()
    cached, fresh = CachedDecoder(65536), Decoder(max_header_list_size=65536)
    sent: list[bytes] = []
    last: list[Any] = [(":path", "/a")]
    hits = 0
    for _ in range(400):
        roll = rng.random()
        if roll < 0.3 and sent:  # the same fields again: fully indexed once in the table
            block = bytes(encoder.encode(last))
        elif roll < 0.4 and sent:  # an old block replayed: its indices may mean other fields now
            block = rng.choice(sent)
        elif roll < 0.45:  # a table size change, as a client may send
            encoder.header_table_size = rng.choice([0, 256, 1024, 4096])
            block = bytes(encoder.encode([(":path", "/a")]))
        else:
            # Some fields never indexed (literals that leave the table as it is).
            last = [(name, f"v{rng.randrange(6)}", rng.random() < 0.3)
                    for name in rng.sample(NAMES, 3)]  # fmt: skip
            block = bytes(encoder.encode(last, huffman=rng.random() < 0.5))
        sent.append(block)
        hits += decode_both(cached, fresh, block)
    assert hits  # the cache was used, not only bypassed


def test_a_repeated_table_neutral_block_is_cached_until_the_table_changes() -> None:
    encoder = Encoder()
    cached = CachedDecoder(65536)
    fields = [(":path", "/s/M"), ("authorization", "Bearer k")]
    cached.decode(bytes(encoder.encode(fields)))  # literals with indexing: the table changes
    again = bytes(encoder.encode(fields))
    assert table_neutral(again)
    decoded = cached.decode(again)
    cached.store(again, decoded, "meaning")
    assert cached.lookup(again) == "meaning"
    cached.decode(bytes(encoder.encode([("x-other", "1")])))  # a new entry: a new generation
    assert cached.lookup(again) is None


def test_the_cache_holds_at_most_max_cached_bytes() -> None:
    cached, encoder = CachedDecoder(1 << 20), Encoder()
    fields = [(f"x-{i}", "v" * 90) for i in range(30)]  # ~4 KiB: the whole table
    cached.decode(bytes(encoder.encode(fields)))
    hits = 0
    for n in range(1, 31):  # blocks of the first n entries, each fully indexed
        block = bytes(encoder.encode(fields[-n:]))
        assert table_neutral(block)
        decoded = cached.decode(block)
        cached.store(block, decoded, n)
        assert cached._cached_bytes <= MAX_CACHED_BYTES
        hits += cached.lookup(block) == n
    assert 0 < hits < 30  # the first blocks are kept, the rest are not


@pytest.mark.parametrize(
    ("block", "indexed"),
    [(b"\x82\x86\x84", True), (b"\xff\x80\x01", True), (b"\x82\x40\x01a\x01b", False),
     (b"\x3f\xe1\x1f", False), (b"\xff\x80", False), (b"", True),
     (b"\x04\x02/a", True), (b"\x00\x01a\x01b", True), (b"\x10\x01a\x01b", True),
     (b"\x04\x05/a", False), (b"\x00\x01a", False), (b"\x0f\x10\x01x\x82", True),
     (b"\x00\x7f\x80\x01" + b"a" * 255 + b"\x00", True)],
)  # fmt: skip
def test_table_neutral(block: bytes, indexed: bool) -> None:
    assert table_neutral(block) is indexed
