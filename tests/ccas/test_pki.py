"""ccas/pki.py: a CA and its certificates at any paths, kept while usable, remade when near their end or signed by another CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ccas import pki


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_and_a_certificate_go_where_they_are_told(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "public" / "ca.crt", tmp_path / "secret" / "ca.key", "Test CA")
    assert ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test CA"
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    made = pki.ensure_certificate(ca, tmp_path / "kafka" / "tls.crt", tmp_path / "kafka" / "tls.key", "ccas-kafka",
                                  ("kafka", "127.0.0.1"))
    assert made
    cert = x509.load_pem_x509_certificate((tmp_path / "kafka" / "tls.crt").read_bytes())
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.rfc4514_string() == "CN=ccas-kafka"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kafka"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
    assert _mode(tmp_path / "secret" / "ca.key") == _mode(tmp_path / "kafka" / "tls.key") == 0o600
    assert _mode(tmp_path / "public" / "ca.crt") == _mode(tmp_path / "kafka" / "tls.crt") == 0o644
    assert not list(tmp_path.rglob("*.partial"))


def test_a_usable_certificate_is_kept_and_one_of_another_ca_is_remade(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "s3.crt", tmp_path / "s3.key"
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "Test CA")
    pki.ensure_certificate(ca, cert_path, key_path, "ccas-s3", ("s3",))
    first = cert_path.read_bytes()
    again = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "Test CA")
    assert again.cert == ca.cert  # the CA on disk is reused, not replaced
    assert not pki.ensure_certificate(again, cert_path, key_path, "ccas-s3", ("s3",))
    assert cert_path.read_bytes() == first
    other = pki.ensure_ca(tmp_path / "other" / "ca.crt", tmp_path / "other" / "ca.key", "Another CA")
    assert pki.ensure_certificate(other, cert_path, key_path, "ccas-s3", ("s3",))
    x509.load_pem_x509_certificate(cert_path.read_bytes()).verify_directly_issued_by(other.cert)


def test_a_certificate_near_its_end_is_not_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "Test CA")
    monkeypatch.setattr(pki, "CERTIFICATE_VALIDITY", pki.RENEW_BEFORE - dt.timedelta(days=1))
    pki.ensure_certificate(ca, tmp_path / "a.crt", tmp_path / "a.key", "ccas-a", ("a",))
    assert not pki.usable(tmp_path / "a.crt")
    assert pki.usable(tmp_path / "ca.crt", ca.cert)  # self-signed: its own issuer
    assert not pki.usable(tmp_path / "missing.crt")
