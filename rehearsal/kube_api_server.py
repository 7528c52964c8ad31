"""A minimal Kubernetes API for the rehearsal: list and watch pods and services over TLS.

It answers what the standalone Prometheus's `kubernetes_sd_configs` asks the real API server,
with the rehearsal's running pods and the rendered Services, and authorises every request
against the rendered Role bound to the caller's service account, as the API server's RBAC does.
Standard library only: it runs inside a container from an image that has Python.

    python kube_api_server.py <state dir>   # reads state.json, tls.crt, tls.key; listens on 6443
"""

from __future__ import annotations

import json
import re
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

PORT = 6443
WATCH_SECONDS = 5.0
_PATH = re.compile(r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<resource>pods|services|endpoints)$")


def load_state(directory: Path) -> dict[str, Any]:
    """The rehearsal's current objects; it rewrites state.json whenever a pod starts or stops."""
    loaded: dict[str, Any] = json.loads((directory / "state.json").read_text())
    return loaded


def allowed(state: dict[str, Any], token: str, namespace: str, resource: str, verb: str) -> bool:
    """RBAC: does the service account behind this token hold verb on resource in namespace?"""
    account = state["tokens"].get(token)
    if account is None:
        return False
    for rule in state["rules"]:
        if rule["namespace"] != namespace or account not in rule["subjects"]:
            continue
        if (
            "" in rule["apiGroups"]
            and (resource in rule["resources"] or "*" in rule["resources"])
            and (verb in rule["verbs"] or "*" in rule["verbs"])
        ):
            return True
    return False


def matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based label selectors (`a=b,c!=d`), the kind Prometheus sends."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    """GET list and watch of pods, services and endpoints; 403 for anything RBAC would deny."""

    directory: Path = Path()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "reason": reason,
            "message": message,
            "code": code,
        }

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path in ("/version", "/api", "/apis", "/healthz", "/readyz"):
            self._send(200, {"kind": "APIVersions", "versions": ["v1"], "gitVersion": "v1.35.0"})
            return
        match = _PATH.match(url.path)
        if match is None:
            self._send(404, self._status(404, "NotFound", f"{url.path} is not served here"))
            return
        state = load_state(self.directory)
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        namespace, resource = match.group("ns") or "", match.group("resource")
        watch = query.get("watch") in ("1", "true")
        verb = "watch" if watch else "list"
        if not allowed(state, token, namespace, resource, verb):
            message = (
                f'{resource} is forbidden: cannot {verb} resource "{resource}" in "{namespace}"'
            )
            self._send(403, self._status(403, "Forbidden", message))
            return
        if watch:
            self._watch(query)
            return
        selector = query.get("labelSelector", "")
        items = [
            o
            for o in state[resource]
            if o["metadata"]["namespace"] == namespace
            and matches(o["metadata"]["labels"], selector)
        ]
        kind = {"pods": "PodList", "services": "ServiceList", "endpoints": "EndpointsList"}[
            resource
        ]
        version = str(state["version"])
        self._send(
            200,
            {
                "kind": kind,
                "apiVersion": "v1",
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    def _watch(self, query: dict[str, str]) -> None:
        """Hold the watch; when the objects change, say the version is gone so the client re-lists."""
        since = query.get("resourceVersion", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        deadline = time.monotonic() + min(
            float(query.get("timeoutSeconds", WATCH_SECONDS)), WATCH_SECONDS
        )
        while time.monotonic() < deadline:
            if since and str(load_state(self.directory)["version"]) != since:
                event = {
                    "type": "ERROR",
                    "object": self._status(410, "Expired", "too old resource version"),
                }
                self.wfile.write(json.dumps(event).encode() + b"\n")
                self.wfile.flush()
                break
            time.sleep(0.5)
        self.close_connection = True


def serve(directory: Path) -> None:
    Handler.directory = directory
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 - inside its container
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
