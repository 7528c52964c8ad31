"""The REST registry's TLS settings, read from the variables MLflow's own client reads."""

import ssl
from pathlib import Path

from training.registry_rest import ssl_context

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def test_certificates_are_verified_by_default() -> None:
    context = ssl_context({})
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_insecure_tls_turns_verification_off() -> None:
    context = ssl_context({"MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


def test_a_ca_bundle_is_loaded(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(CA_BUNDLE.read_bytes())
    default_count = len(ssl.create_default_context(cafile=str(bundle)).get_ca_certs())
    context = ssl_context({"MLFLOW_TRACKING_SERVER_CERT_PATH": str(bundle)})
    assert len(context.get_ca_certs()) == default_count > 0
