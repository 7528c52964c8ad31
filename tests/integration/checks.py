"""Assertions on a server's JSON log shared by the hostile-input, overload and fuzz tests."""

import orjson


def server_errors(log: str) -> list[dict[str, object]]:
    """Log entries for 5xx answers other than 503 (readiness and shedding), and unhandled errors."""
    found = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        entry = orjson.loads(line)
        status = entry.get("status")
        if (isinstance(status, int) and status >= 500 and status != 503) or (
            entry.get("level") in ("error", "critical") and status is None
        ):
            found.append(entry)
    return found
