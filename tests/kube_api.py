"""A stand-in for the Kubernetes API server on loopback, for the one thing the parameter-store
script asks of a cluster: server-side apply of Secrets with kubectl.

It answers kubectl's discovery and its apply PATCH, keeps the Secrets it was sent, and counts
how many requests changed one; a real API server leaves an object untouched when the same field
manager applies the same content, and so does this one. There is no Kubernetes on this machine:
the real kubectl runs against this.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

DISCOVERY: dict[str, dict[str, Any]] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "secrets",
                "singularName": "secret",
                "namespaced": True,
                "kind": "Secret",
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
        ],
    },
}


@dataclass
class KubeApi:
    url: str = ""
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    patches: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    changes: int = 0
    # When set, every apply is refused with this message (as a 422 from the server).
    refuse_with: str | None = None

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig whose only context is this server."""
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
                    "users": [{"name": "stand-in", "user": {"token": "stand-in"}}],
                    "contexts": [
                        {"name": "stand-in", "context": {"cluster": "stand-in", "user": "stand-in"}}
                    ],
                    "current-context": "stand-in",
                }
            )
        )
        return path


def _invalid(name: str, message: str) -> dict[str, Any]:
    """A 422 Status as the API server words a rejected object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": f'Secret "{name}" is invalid: {message}',
        "reason": "Invalid",
        "details": {
            "name": name,
            "kind": "Secret",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": "data"}],
        },
        "code": 422,
    }


def _handler(api: KubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path in DISCOVERY:
                self._send(200, DISCOVERY[path])
            else:
                self._send(404, {"kind": "Status", "status": "Failure", "code": 404})

        def do_PATCH(self) -> None:
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            body = yaml.safe_load(self.rfile.read(int(self.headers["Content-Length"])))
            api.patches.append((self.headers["Content-Type"], params))
            _, _, _, _, namespace, _, name = path.split("/")
            if api.refuse_with is not None:
                self._send(422, _invalid(name, api.refuse_with))
                return
            stored = api.secrets.get((namespace, name))
            content = {k: body.get(k) for k in ("data", "type")} | {
                "labels": body["metadata"].get("labels")
            }
            if stored is None or stored["content"] != content:
                api.changes += 1
                version = (stored["version"] if stored else 0) + 1
                api.secrets[(namespace, name)] = {"content": content, "version": version}
            answer = dict(body)
            answer["metadata"] = {
                **body["metadata"],
                "resourceVersion": str(api.secrets[(namespace, name)]["version"]),
            }
            self._send(200, answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def kube_api() -> Iterator[KubeApi]:
    """Serve a KubeApi on a free loopback port for the duration of the block."""
    api = KubeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
