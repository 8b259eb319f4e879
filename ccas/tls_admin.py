"""`ccas tls init`: a deployment's CA and one certificate per service, laid out so each container mounts only its own.

    DIR/ca/ca.crt            the CA certificate every client and server trusts (0644)
    DIR/ca-key/ca.key        the CA's key (0600): only this command reads it
    DIR/NAME/tls.crt         NAME's certificate, CN `ccas-NAME`, valid for NAME (its host name on the deployment's network),
    DIR/NAME/tls.key         localhost, 127.0.0.1 and ::1 (a container's own health check); key 0600, folder 0700
    DIR/NAME/keystore.pem    with --keystore NAME: the key followed by the certificate, the one-file form of Kafka's
                             `ssl.keystore.type=PEM`

docker-compose.flink.yml mounts each of these folders from a volume of its own, so a container holds its own key and the CA
certificate and nothing else. `--owner NAME=UID[:GID]` hands NAME's folder and files to the user its server runs as (the
command then runs as root): a server refuses, or cannot read, a key that is not its user's. Idempotent: a certificate is
kept until 30 days before its end or until the CA changes (ccas/pki.py), ownership and modes are set again on every run.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ccas import pki

DEFAULT_CA_NAME = "CCAS deployment CA"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_FOLDER, CA_KEY_FOLDER = "ca", "ca-key"
# A name is a host name on the deployment's network (a compose service name) and a folder name.
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int

    @classmethod
    def parse(cls, text: str) -> Owner:
        uid, _, gid = text.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ValueError(f"owner {text!r}: write UID or UID:GID (numbers)")
        return cls(int(uid), int(gid or uid))


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / CA_FOLDER / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / CA_KEY_FOLDER / "ca.key"

    def folder(self, name: str) -> Path:
        return self.root / name

    def cert(self, name: str) -> Path:
        return self.folder(name) / "tls.crt"

    def key(self, name: str) -> Path:
        return self.folder(name) / "tls.key"

    def keystore(self, name: str) -> Path:
        return self.folder(name) / "keystore.pem"


def _write_keystore(layout: Layout, name: str) -> None:
    bundle = layout.key(name).read_bytes() + layout.cert(name).read_bytes()
    path = layout.keystore(name)
    if not path.exists() or path.read_bytes() != bundle:
        pki.write_file(path, bundle, private=True)


def _hand_over(layout: Layout, name: str, owner: Owner) -> None:
    for path in (layout.folder(name), *(p for p in layout.folder(name).iterdir() if p.is_file())):
        os.chown(path, owner.uid, owner.gid)


def init(layout: Layout, names: list[str], keystores: set[str], owners: dict[str, Owner], ca_name: str) -> list[str]:
    """Make what is missing or stale; returns one line per CA and certificate saying what happened."""
    ca_made = not (pki.usable(layout.ca_cert) and layout.ca_key.exists())
    ca = pki.ensure_ca(layout.ca_cert, layout.ca_key, ca_name)
    # Every client of every uid reads the CA certificate; nobody but this command reads its key.
    layout.ca_cert.parent.chmod(0o755)
    layout.ca_key.parent.chmod(0o700)
    report = [f"CA {layout.ca_cert}: {'created' if ca_made else 'kept'} (key in {layout.ca_key.parent})"]
    for name in names:
        hosts = (name, *LOCAL_HOSTS)
        made = pki.ensure_certificate(ca, layout.cert(name), layout.key(name), f"ccas-{name}", hosts)
        extras = []
        if name in keystores:
            _write_keystore(layout, name)
            extras.append("keystore.pem")
        layout.folder(name).chmod(0o700)
        if name in owners:
            _hand_over(layout, name, owners[name])
            extras.append(f"owner {owners[name].uid}:{owners[name].gid}")
        report.append(f"{name}: {'created' if made else 'kept'} ({', '.join(hosts)})" + "".join(f", {e}" for e in extras))
    return report


def _named(parser: argparse.ArgumentParser, option: str, values: list[str], names: list[str]) -> None:
    unknown = sorted(set(values) - set(names))
    if unknown:
        parser.error(f"{option} {', '.join(unknown)}: not among the certificates to make ({', '.join(names)})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas tls", description="a deployment's CA and per-service certificates")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("init", help="create the CA and one certificate per NAME under --dir (idempotent)")
    make.add_argument("--dir", required=True, type=Path, help="root of the layout (DIR/ca, DIR/ca-key, DIR/NAME)")
    make.add_argument("--ca-name", default=DEFAULT_CA_NAME, help=f"common name of a new CA (default: {DEFAULT_CA_NAME})")
    make.add_argument("--keystore", action="append", default=[], metavar="NAME",
                      help="also write NAME/keystore.pem: key then certificate in one file (Kafka's PEM keystore)")
    make.add_argument("--owner", action="append", default=[], metavar="NAME=UID[:GID]",
                      help="hand NAME's folder and files to this user (needs root)")
    make.add_argument("names", nargs="+", metavar="NAME", help="a service: its host name and the folder of its certificate")
    args = parser.parse_args(argv)
    bad = [name for name in args.names if not NAME.match(name) or name in (CA_FOLDER, CA_KEY_FOLDER)]
    if bad or len(set(args.names)) != len(args.names):
        parser.error(f"names must be distinct host names (a-z, 0-9, -), not {CA_FOLDER} or {CA_KEY_FOLDER}: {args.names}")
    owners: dict[str, Owner] = {}
    for item in args.owner:
        name, sep, owner = item.partition("=")
        try:
            owners[name] = Owner.parse(owner if sep else "")
        except ValueError as error:
            parser.error(f"--owner {item}: {error}")
    _named(parser, "--keystore", args.keystore, args.names)
    _named(parser, "--owner", list(owners), args.names)
    try:
        report = init(Layout(args.dir), args.names, set(args.keystore), owners, args.ca_name)
    except OSError as error:  # a read-only folder, or --owner without root: one clear line
        print(f"ccas tls init failed: {error}", file=sys.stderr)
        return 1
    for line in report:
        print(f"tls init: {line}")
    return 0
