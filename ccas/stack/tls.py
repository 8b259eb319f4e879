"""The local stack's certificate authority and per-service certificates (ccas/pki.py), made once per stack.

Everything lives in `<stack>/tls/` beside the other generated secrets, keys with mode 0600, and is kept as long as the stack
folder is: a client given `ca.crt` can verify every server of the stack by name (127.0.0.1 and localhost). A certificate
within 30 days of its end, or signed by another CA, is made again at the next `stack up`.
"""

from __future__ import annotations

from pathlib import Path

from ccas import pki, settings

CA_NAME = "CCAS local stack CA"
HOSTS = ("127.0.0.1", "localhost", "::1")


def tls_dir() -> Path:
    return settings.stack_dir() / "tls"


def ca_file() -> Path:
    """The CA certificate every client of the local stack trusts."""
    return tls_dir() / "ca.crt"


def ensure_ca() -> pki.Authority:
    """The stack's CA (created on first use): a P-256 key and a 10-year self-signed certificate."""
    return pki.ensure_ca(ca_file(), tls_dir() / "ca.key", CA_NAME)


def server_certificate(service: str, hosts: tuple[str, ...] = HOSTS) -> tuple[Path, Path]:
    """(certificate, key) of `service` signed by the stack's CA, valid for `hosts`; made when missing or near its end."""
    cert_path, key_path = tls_dir() / f"{service}.crt", tls_dir() / f"{service}.key"
    pki.ensure_certificate(ensure_ca(), cert_path, key_path, f"ccas-{service}", hosts)
    return cert_path, key_path


def scoring_service_env() -> dict[str, str]:
    """What `ccas scoring-service` needs to serve HTTPS with the stack's certificate (the demo's and the tests' service)."""
    cert, key = server_certificate("scoring")
    return {"CCAS_SCORING_TLS_CERT_FILE": str(cert), "CCAS_SCORING_TLS_KEY_FILE": str(key)}


def console_env() -> dict[str, str]:
    """What `ccas console` needs to serve HTTPS with the stack's certificate (the demo's and the tests' console)."""
    cert, key = server_certificate("console")
    return {"CCAS_CONSOLE_TLS_CERT_FILE": str(cert), "CCAS_CONSOLE_TLS_KEY_FILE": str(key)}
