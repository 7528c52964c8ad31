"""Clients that honour 503 + Retry-After, in a process of their own.

`python -m loadtest.polite_clients URL BODY_FILE CLIENTS SECONDS OUT_JSON`

Each client keeps one connection and posts BODY_FILE to URL back to back; after a 503 it waits
as long as Retry-After says (as the load shedding asks), plus up to as long again at random so
that shed clients do not all come back in the same instant, before sending again. Prints "connected"
once every client has its connection, and writes the counts of answers by status, and errors,
to OUT_JSON. Bounded: SECONDS from the first connection, then every client stops.
"""

import asyncio
import json
import random
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path

_MAX_RETRY_AFTER = 5.0


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    """Status and headers of one response; its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers


async def _client(
    host: str,
    port: int,
    request: bytes,
    seconds: float,
    counts: Counter[str],
    connected: asyncio.Barrier,
) -> None:
    writer: asyncio.StreamWriter | None
    reader, writer = await asyncio.open_connection(host, port)
    await connected.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            status, headers = await asyncio.wait_for(
                _answer(reader), timeout=max(0.1, deadline - time.monotonic())
            )
        except TimeoutError:
            break
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["error"] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.1)
            continue
        counts[str(status)] += 1
        if headers.get(b"connection", b"").lower() == b"close":
            writer.close()
            writer = None
        if status == 503:
            try:
                pause = min(float(headers.get(b"retry-after", b"1")), _MAX_RETRY_AFTER)
            except ValueError:
                pause = 1.0
            await asyncio.sleep(pause * random.uniform(1.0, 2.0))  # noqa: S311 - jitter, not a secret
    if writer is not None:
        writer.close()


async def run(url: str, body: bytes, clients: int, seconds: float) -> dict[str, object]:
    """Drive `url` with `clients` polite clients for `seconds`; the counts by outcome."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    counts: Counter[str] = Counter()
    connected = asyncio.Barrier(clients + 1)
    tasks = [
        asyncio.create_task(_client(host, port, request, seconds, counts, connected))
        for _ in range(clients)
    ]
    await asyncio.wait_for(connected.wait(), timeout=60)  # a refused connection never arrives
    started = time.monotonic()
    print("connected", flush=True)
    await asyncio.gather(*tasks)
    return {"counts": dict(counts), "seconds": time.monotonic() - started}


def main(url: str, body_file: str, clients: str, seconds: str, out: str) -> int:
    result = asyncio.run(run(url, Path(body_file).read_bytes(), int(clients), float(seconds)))
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:6]))
