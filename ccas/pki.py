"""A certificate authority and the certificates it signs (Python `cryptography`), kept as PEM files wherever the caller says.

The local stack keeps its CA and certificates in `<stack>/tls/` (ccas/stack/tls.py); `ccas tls init` lays out a deployment's
(ccas/tls_admin.py). Both reuse what is already there: a certificate is made again only when it is missing, within
`RENEW_BEFORE` of its end, or signed by another CA than the current one. Private keys are written with mode 0600, through a
temporary file renamed into place, so a reader never sees half a key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RENEW_BEFORE = dt.timedelta(days=30)
CA_VALIDITY = dt.timedelta(days=3650)
CERTIFICATE_VALIDITY = dt.timedelta(days=825)
# Clocks of the machines that check a fresh certificate may lag a little behind the one that made it.
CLOCK_SKEW = dt.timedelta(minutes=5)


class Authority(NamedTuple):
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def write_file(path: Path, data: bytes, private: bool) -> None:
    """Write `path` (0600 when private, else 0644), creating missing parent folders with mode 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    partial.replace(path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def usable(cert_path: Path, issuer: x509.Certificate | None = None) -> bool:
    """The certificate exists, is not within RENEW_BEFORE of its end and, given an issuer, was signed by it."""
    if not cert_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    if issuer is not None:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):  # signed by an earlier CA of this folder: make a new one
            return False
    return True


def ensure_ca(cert_path: Path, key_path: Path, name: str) -> Authority:
    """The CA at cert_path/key_path, created when missing or near its end: a P-256 key and a self-signed certificate."""
    if usable(cert_path) and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return Authority(x509.load_pem_x509_certificate(cert_path.read_bytes()), key)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write_file(key_path, key_pem(key), private=True)
    write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return Authority(cert, key)


def _subject_alternative_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def ensure_certificate(ca: Authority, cert_path: Path, key_path: Path, common_name: str, hosts: Iterable[str]) -> bool:
    """A certificate of `ca` for `hosts` (server and client use) at cert_path/key_path; True when it was made now."""
    if usable(cert_path, ca.cert) and key_path.exists():
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + CERTIFICATE_VALIDITY)
            .add_extension(x509.SubjectAlternativeName(_subject_alternative_names(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    write_file(key_path, key_pem(key), private=True)
    write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return True
