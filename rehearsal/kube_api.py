"""The host side of the rehearsal's Kubernetes API: TLS material, tokens, RBAC rules and the
objects it serves, written where kube_api_server.py (in its container) reads them.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rehearsal.manifests import Manifest

HOST = "kubernetes.default.svc"
ALIASES = ("kubernetes", "kubernetes.default", HOST, "kubernetes.default.svc.cluster.local")
PORT = 6443


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def tls_material() -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key) in PEM, the server named as in-cluster."""
    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("rehearsal-ca"))
        .issuer_name(_name("rehearsal-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in ALIASES]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def rbac_rules(objects: Iterable[Manifest], namespace: str) -> list[dict[str, Any]]:
    """Each rendered Role's rules with the service accounts its RoleBindings grant them to."""
    objects = list(objects)
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Role"}
    rules = []
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        ref = binding["roleRef"]
        if ref["kind"] != "Role" or ref["name"] not in roles:
            continue
        subjects = [
            s["name"]
            for s in binding.get("subjects") or []
            if s["kind"] == "ServiceAccount" and s.get("namespace", namespace) == namespace
        ]
        for rule in roles[ref["name"]].get("rules") or []:
            rules.append(
                {
                    "namespace": namespace,
                    "subjects": subjects,
                    "apiGroups": list(rule.get("apiGroups") or []),
                    "resources": list(rule.get("resources") or []),
                    "verbs": list(rule.get("verbs") or []),
                }
            )
    return rules


def pod_object(
    name: str, namespace: str, labels: dict[str, str], spec: Manifest, ip: str
) -> Manifest:
    """A running, ready Pod as the API server would return it."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": name, "labels": labels},
        "spec": {
            "nodeName": "rehearsal",
            "containers": [
                {"name": c["name"], "image": c["image"], "ports": c.get("ports") or []}
                for c in spec["containers"]
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "hostIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def service_object(service: Manifest) -> Manifest:
    """A rendered Service as served (no cluster IP: the rehearsal resolves Services by name)."""
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": service["metadata"]["name"],
            "namespace": service["metadata"]["namespace"],
            "labels": service["metadata"].get("labels") or {},
        },
        "spec": {**service["spec"], "clusterIP": "None"},
    }


@dataclass
class ApiState:
    """What the rehearsal's API serves, rewritten to state.json on every change."""

    directory: Path
    namespace: str
    rules: list[dict[str, Any]]
    services: list[Manifest]
    pods: dict[str, Manifest] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> service account
    version: int = 1

    def token_for(self, service_account: str) -> str:
        for token, account in self.tokens.items():
            if account == service_account:
                return token
        token = secrets.token_urlsafe(32)
        self.tokens[token] = service_account
        self.write()
        return token

    def set_pod(self, name: str, pod: Manifest | None) -> None:
        if pod is None:
            self.pods.pop(name, None)
        else:
            self.pods[name] = pod
        self.version += 1
        self.write()

    def write(self) -> None:
        body = {
            "version": self.version,
            "pods": list(self.pods.values()),
            "services": self.services,
            "endpoints": [],
            "tokens": self.tokens,
            "rules": self.rules,
        }
        tmp = self.directory / "state.json.tmp"
        tmp.write_text(json.dumps(body))
        tmp.chmod(0o644)
        tmp.replace(self.directory / "state.json")
