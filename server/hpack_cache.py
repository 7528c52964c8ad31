"""HPACK decoding with a cache of header blocks that decode the same way every time.

A gRPC client sends the same header block on every call of a method once its encoder has put
the fields in the dynamic table: indexed fields, and literals it chose not to index (:path and
content-length for nghttp2, grpc-timeout for grpc core). Decoding it again costs a pure-Python
pass per field (Huffman included); its meaning, though, depends on the dynamic table, so a
cached result is used only when it is provably what a fresh decode would give:
- only blocks that cannot change the table are cached: indexed fields and literals without
  indexing or never indexed, no literal with incremental indexing, no table size update. Such a
  block's fields follow from its bytes and the table alone, and skipping its decode leaves the
  decoder exactly where decoding would;
- each entry records the table's generation, which changes whenever a decode changes the table
  (an entry added, evicted or resized away), and is used only at the generation it was made in.
  A change is seen by holding the table's newest entry and its length: every addition puts a new
  tuple first, every eviction without one shortens the table. The old generation's entries can
  never be used again, so a change empties the cache.
The decoded fields kept are capped at MAX_CACHED_BYTES per connection (each field counted as
HPACK counts it, name + value + 32), so a client cannot grow a connection's memory through it.
"""

from typing import Any

from hpack import Decoder

MAX_CACHED_BYTES = 16 * 1024
Fields = list[tuple[bytes, bytes]]


def _skip_integer(block: bytes, i: int, prefix_mask: int) -> tuple[int, int]:
    """The HPACK integer at `i` (RFC 7541, section 5.1) and the index after it."""
    value = block[i] & prefix_mask
    i += 1
    if value == prefix_mask:
        shift = 0
        while True:
            if i >= len(block):
                return -1, len(block) + 1
            byte = block[i]
            i += 1
            value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
    return value, i


def table_neutral(block: bytes) -> bool:
    """Whether decoding `block` leaves the dynamic table as it is: only indexed fields and
    literals without indexing or never indexed (RFC 7541, sections 6.1, 6.2.2, 6.2.3), whole."""
    i, end = 0, len(block)
    while i < end:
        byte = block[i]
        if byte & 0x80:  # indexed
            _, i = _skip_integer(block, i, 0x7F)
            continue
        if byte & 0xE0:  # with incremental indexing (01), or a table size update (001)
            return False
        index, i = _skip_integer(block, i, 0x0F)  # without indexing (0000), never (0001)
        for _ in range(2 if index == 0 else 1):  # a literal name, then the value
            if i >= end:
                return False
            length, i = _skip_integer(block, i, 0x7F)
            i += length
    return i == end


def fields_size(fields: Fields) -> int:
    """Bytes the fields count for, as HPACK counts a header list."""
    return sum(len(name) + len(value) + 32 for name, value in fields)


class CachedDecoder:
    """An HPACK decoder for one connection, with its cache of fully indexed blocks."""

    def __init__(self, max_header_list_size: int) -> None:
        self.decoder = Decoder(max_header_list_size=max_header_list_size)
        self._table = self.decoder.header_table.dynamic_entries
        self.generation = 0
        self._cache: dict[bytes, tuple[int, Any]] = {}
        self._cached_bytes = 0

    def decode(self, block: bytes) -> Fields:
        """The block's fields, as bytes; raises hpack's errors as a fresh decode would."""
        table = self._table
        newest = table[0] if table else None  # held: its identity cannot be reused meanwhile
        length = len(table)
        try:
            fields: Fields = self.decoder.decode(block, raw=True)  # type: ignore[assignment]
        finally:  # a block that fails half-way may have changed the table before it failed
            if len(table) != length or (table[0] if table else None) is not newest:
                self.generation += 1
                self._cache.clear()
                self._cached_bytes = 0
        return fields

    def lookup(self, block: bytes) -> Any:
        """What was stored for `block` at this generation, or None."""
        entry = self._cache.get(block)
        if entry is None or entry[0] != self.generation:
            return None
        return entry[1]

    def store(self, block: bytes, fields: Fields, value: Any) -> None:
        """Keep `value` (what `fields`, decoded from `block`, mean) if the block may be cached."""
        size = fields_size(fields) + len(block)
        if self._cached_bytes + size > MAX_CACHED_BYTES or not table_neutral(block):
            return
        self._cache[block] = (self.generation, value)
        self._cached_bytes += size
