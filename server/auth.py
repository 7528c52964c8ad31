"""API keys: `Authorization: Bearer <key>`, compared in constant time, per route group.

With keys set, inference always needs one and probes never do (the kubelet sends none); the
other groups (metrics, model metadata, API docs) need one unless OPEN_ROUTES names them. The key
file is read again every API_KEYS_RELOAD_SECONDS, so a rotated Kubernetes Secret (updated in
place in the mounted volume) takes effect without a restart; a file that cannot be read or holds
no keys keeps the keys in use and is logged.
"""

import asyncio
import hmac
import logging
from collections.abc import Iterable

from starlette.requests import Request

from server.errors import Unauthorized
from server.settings import Settings, SettingsError, read_key_file

log = logging.getLogger("server.auth")

# The access groups a route belongs to (`Route.group`). Inference always needs a key when keys
# are configured, probes never; the rest unless OPEN_ROUTES names them (settings.ROUTE_GROUPS).
INFERENCE, PROBES, METRICS, METADATA, DOCS = "inference", "probes", "metrics", "metadata", "docs"
GROUPS = (INFERENCE, PROBES, METRICS, METADATA, DOCS)


def needs_key(group: str, open_routes: frozenset[str]) -> bool:
    """Whether routes of this group need a key when keys are configured."""
    if group not in GROUPS:
        raise ValueError(f"unknown route group {group!r}")
    return group == INFERENCE or (group != PROBES and group not in open_routes)


class ApiKeys:
    """The bearer check; open when no keys are configured."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [k.encode() for k in sorted(keys)]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @property
    def count(self) -> int:
        return len(self._keys)

    def replace(self, keys: Iterable[str]) -> None:
        """Use these keys from the next request on (one assignment: requests see old or new)."""
        self._keys = [k.encode() for k in sorted(keys)]

    def check(self, request: Request) -> None:
        if not self._keys:
            return
        self.check_authorization(request.headers.get("authorization", ""))

    def check_authorization(self, header: str) -> None:
        """Check an `Authorization` value (an HTTP header, or gRPC metadata)."""
        if not self._keys:
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
        presented = token.strip().encode()
        # Compare against every key, in constant time, so timing reveals neither key nor match.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(presented, key)
        if not matched:
            raise Unauthorized("the API key is not valid")

    async def reload_forever(self, settings: Settings) -> None:
        """Read API_KEYS_FILE again every API_KEYS_RELOAD_SECONDS; swap in the keys on a change."""
        path = settings.api_keys_file
        if path is None or not settings.api_keys_reload_seconds:
            return
        from_variable = settings.api_keys_from_variable
        current = settings.api_keys
        failed: str | None = None
        while True:
            await asyncio.sleep(settings.api_keys_reload_seconds)
            try:
                keys = from_variable | await asyncio.to_thread(read_key_file, path)
            except SettingsError as exc:
                if str(exc) != failed:  # once per distinct problem, not every few seconds
                    log.error("API key file not reloaded; the keys in use stay", extra={
                        "error": str(exc)})  # fmt: skip
                failed = str(exc)
                continue
            failed = None
            if keys != current:
                self.replace(keys)
                log.info(
                    "API keys reloaded",
                    extra={"keys": len(keys), "added": len(keys - current),
                           "removed": len(current - keys)},
                )  # fmt: skip
                current = keys
