"""The stack's CA and certificates; PostgreSQL takes TLS connections only, and clients verify it by name."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import psycopg2
import pytest
from cryptography import x509

from ccas.stack import tls


@pytest.fixture
def stack_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CCAS_STACK_DIR", str(tmp_path))
    return tmp_path


def test_server_certificate_is_signed_by_the_stack_ca_for_loopback_names(stack_folder: Path) -> None:
    cert_path, key_path = tls.server_certificate("postgres")
    ca = x509.load_pem_x509_certificate(tls.ca_file().read_bytes())
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=365)
    for private in (key_path, stack_folder / "tls" / "ca.key"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert stat.S_IMODE((stack_folder / "tls").stat().st_mode) == 0o700


def test_certificates_are_made_once_and_remade_for_a_new_ca(stack_folder: Path) -> None:
    first = tls.server_certificate("s3")[0].read_bytes()
    assert tls.server_certificate("s3")[0].read_bytes() == first  # kept: same life as the other secrets
    (stack_folder / "tls" / "ca.crt").unlink()  # a new CA: the old certificate no longer verifies and is replaced
    assert tls.server_certificate("s3")[0].read_bytes() != first


def _base_url(url: str) -> str:
    return url.split("?", 1)[0]


def test_postgres_refuses_plaintext(stack_env: dict[str, str]) -> None:
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(_base_url(stack_env["CCAS_DATABASE_URL"]) + "?sslmode=disable", connect_timeout=5)


def test_postgres_verified_tls_connection(stack_env: dict[str, str]) -> None:
    url = stack_env["CCAS_DATABASE_URL"]
    assert "sslmode=verify-full" in url
    with psycopg2.connect(url, connect_timeout=5) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        encrypted, version = cursor.fetchone()
    assert encrypted and version.startswith("TLSv1.")
    connection.close()


def test_postgres_client_rejects_a_server_its_ca_did_not_sign(stack_env: dict[str, str], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCAS_STACK_DIR", str(tmp_path))
    foreign_ca = tls.ensure_ca() and tls.ca_file()
    url = _base_url(stack_env["CCAS_DATABASE_URL"]) + f"?sslmode=verify-full&sslrootcert={foreign_ca}"
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        psycopg2.connect(url, connect_timeout=5)


def test_s3_speaks_tls_only_and_the_bucket_refuses_insecure_transport(stack_env: dict[str, str]) -> None:
    import json

    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, SSLError

    from core.s3 import s3_client

    endpoint, key, secret = stack_env["CCAS_S3_ENDPOINT"], stack_env["CCAS_S3_ACCESS_KEY"], stack_env["CCAS_S3_SECRET_KEY"]
    assert endpoint.startswith("https://")
    verified = s3_client(endpoint, key, secret, ca_file=stack_env["CCAS_S3_CA_FILE"])
    policy = json.loads(verified.get_bucket_policy(Bucket=stack_env["CCAS_S3_BUCKET"])["Policy"])
    insecure = [s for s in policy["Statement"] if s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert insecure and insecure[0]["Effect"] == "Deny"
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        s3_client(endpoint.replace("https://", "http://"), key, secret).list_buckets()
    with pytest.raises(SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        s3_client(endpoint, key, secret).list_buckets()  # the system trust store does not know the stack's CA
