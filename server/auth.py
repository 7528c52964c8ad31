"""API keys for the inference routes: `Authorization: Bearer <key>`, compared in constant time."""

import hmac

from starlette.requests import Request

from server.errors import Unauthorized


class ApiKeys:
    """Bearer-token check for inference routes; open when no keys are configured."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._keys = [k.encode() for k in sorted(keys)]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

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
