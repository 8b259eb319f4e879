"""Certificates for tests that serve TLS outside the local stack: the stack's own CA code, in a throwaway folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ccas.stack import tls


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def throwaway_pki(folder: Path, service: str) -> Pki:
    """A CA and a certificate for `service` (127.0.0.1, localhost, ::1) made by ccas/stack/tls.py under `folder`."""
    saved = os.environ.get("CCAS_STACK_DIR")
    os.environ["CCAS_STACK_DIR"] = str(folder)
    try:
        cert, key = tls.server_certificate(service)
        return Pki(tls.ca_file(), cert, key)
    finally:
        if saved is None:
            os.environ.pop("CCAS_STACK_DIR")
        else:
            os.environ["CCAS_STACK_DIR"] = saved
