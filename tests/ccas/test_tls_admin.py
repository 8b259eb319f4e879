"""`ccas tls init`: the deployment's layout (CA apart from its key, one folder per service), keys 0600, idempotent, owners."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ccas import cli, tls_admin


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_init_lays_out_the_ca_apart_from_its_key_and_a_folder_per_service(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tls", "init", f"--dir={tmp_path}", "--keystore=kafka", "kafka", "postgres"]) == 0
    assert set(_files(tmp_path)) == {"ca/ca.crt", "ca-key/ca.key", "kafka/tls.crt", "kafka/tls.key", "kafka/keystore.pem",
                                     "postgres/tls.crt", "postgres/tls.key"}
    ca = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    for name in ("kafka", "postgres"):
        cert = x509.load_pem_x509_certificate((tmp_path / name / "tls.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == f"CN=ccas-{name}"
        dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert dns == [name, "localhost"]
        assert _mode(tmp_path / name / "tls.key") == 0o600 and _mode(tmp_path / name) == 0o700
    assert _mode(tmp_path / "ca-key" / "ca.key") == 0o600 and _mode(tmp_path / "ca-key") == 0o700
    assert _mode(tmp_path / "ca") == 0o755 and _mode(tmp_path / "ca" / "ca.crt") == 0o644
    # Kafka's PEM keystore: the private key, then the certificate, in one 0600 file.
    bundle = (tmp_path / "kafka" / "keystore.pem").read_bytes()
    assert bundle == (tmp_path / "kafka" / "tls.key").read_bytes() + (tmp_path / "kafka" / "tls.crt").read_bytes()
    serialization.load_pem_private_key(bundle, password=None)
    assert _mode(tmp_path / "kafka" / "keystore.pem") == 0o600
    out = capsys.readouterr().out
    assert "tls init: CA" in out and "created" in out
    assert "tls init: kafka: created (kafka, localhost, 127.0.0.1, ::1), keystore.pem" in out


def test_a_second_run_keeps_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tls", "init", f"--dir={tmp_path}", "--keystore=kafka", "kafka", "s3"]
    assert cli.main(argv) == 0
    first = _files(tmp_path)
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert _files(tmp_path) == first
    out = capsys.readouterr().out
    assert "created" not in out and out.count("kept") == 3


def test_a_new_ca_remakes_every_certificate(tmp_path: Path) -> None:
    assert tls_admin.main(["init", f"--dir={tmp_path}", "s3"]) == 0
    before = (tmp_path / "s3" / "tls.crt").read_bytes()
    (tmp_path / "ca-key" / "ca.key").unlink()
    assert tls_admin.main(["init", f"--dir={tmp_path}", "s3"]) == 0
    after = x509.load_pem_x509_certificate((tmp_path / "s3" / "tls.crt").read_bytes())
    assert (tmp_path / "s3" / "tls.crt").read_bytes() != before
    after.verify_directly_issued_by(x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes()))


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another user needs root")
def test_owner_hands_the_folder_and_its_files_to_the_servers_user(tmp_path: Path) -> None:
    argv = ["init", f"--dir={tmp_path}", "--keystore=kafka", "--owner=postgres=999", "--owner=kafka=1000:1001",
            "postgres", "kafka", "scoring-service"]
    assert tls_admin.main(argv) == 0
    for path in (tmp_path / "postgres", tmp_path / "postgres" / "tls.key", tmp_path / "postgres" / "tls.crt"):
        assert (path.stat().st_uid, path.stat().st_gid) == (999, 999), path
    for name in ("tls.key", "tls.crt", "keystore.pem"):
        assert ((tmp_path / "kafka" / name).stat().st_uid, (tmp_path / "kafka" / name).stat().st_gid) == (1000, 1001)
    assert (tmp_path / "scoring-service" / "tls.key").stat().st_uid == os.geteuid()
    assert (tmp_path / "ca-key" / "ca.key").stat().st_uid == os.geteuid()
    assert tls_admin.main(argv) == 0  # again, over folders that are no longer the runner's


@pytest.mark.parametrize(("argv", "message"), [
    (["ca"], "names must be distinct host names"),
    (["Kafka"], "names must be distinct host names"),
    (["s3", "s3"], "names must be distinct host names"),
    (["--keystore=kafka", "s3"], "--keystore kafka: not among the certificates to make"),
    (["--owner=s3=x", "s3"], "write UID or UID:GID"),
    (["--owner=kafka=1000", "s3"], "--owner kafka: not among the certificates to make"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        tls_admin.main(["init", f"--dir={tmp_path / 'pki'}", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "pki").exists()
