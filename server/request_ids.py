"""Request ids: the client's X-Request-ID when usable, else a new time-ordered one.

A new id is 32 hex digits: the Unix time in milliseconds (12 digits), then 80 random bits (20
digits), as UUIDv7 lays them out. The random part keeps ids from different replicas apart (the
prediction store is shared, and feedback finds a prediction by its id alone); the time part makes
ids sort in the order they were made, so a recorded prediction lands at the end of the store's
request-id index rather than on a random page of it. With random ids every recorded row dirtied
a page of that index: 3.6 KB written and 13 µs of CPU per row in the embedded store, against
0.5 KB and 6 µs with ordered ids (200,000 rows in batches of 1000).
"""

import os
import re
import time

_PRINTABLE = re.compile(rb"[\x21-\x7e]+")  # visible ASCII: safe to echo in a header and a log
MAX_LENGTH = 128


def new_request_id() -> bytes:
    """A new id: milliseconds since the epoch, then 80 random bits, in lower-case hex.

    The random bits come from the operating system, not `random`: a client that saw a few hundred
    ids from a Mersenne Twister could work out the ids of other clients' predictions and send
    feedback for them, skewing live quality and the judge. It costs about 0.6 µs more.
    """
    return b"%012x" % (time.time_ns() // 1_000_000) + os.urandom(10).hex().encode()


def usable(value: bytes) -> bool:
    """Whether a client's id can be echoed in a header and a log line as it is."""
    return 0 < len(value) <= MAX_LENGTH and _PRINTABLE.fullmatch(value) is not None
