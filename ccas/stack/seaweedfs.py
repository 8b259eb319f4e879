"""SeaweedFS `weed mini` (Apache-2.0) as the S3-compatible server: one process, every port pinned to the stack's range."""

from __future__ import annotations

import json
import os

from ccas import settings
from ccas.stack import process, tls, tools
from ccas.stack.service import Service

S3_IDENTITY = "ccas"
PIPELINE_PREFIXES = ("raw/", "transcripts/")  # recordings and transcripts: read back by the scoring stage, tagged
# The Parquet export (pipeline/transforms/analytics.py): written once under a new name per file, never read back nor listed.
ANALYTICS_PREFIX = "analytics/"


def component_actions(bucket: str) -> dict[str, list[str]]:
    """What each component's identity may do (settings.S3_COMPONENTS): no Admin, nothing outside its objects."""
    return {
        "pipeline": [*(f"{action}:{bucket}/{prefix}*" for prefix in PIPELINE_PREFIXES for action in ("Read", "Write", "Tagging")),
                     f"Write:{bucket}/{ANALYTICS_PREFIX}*"],
        # Listens to recordings, reads transcripts (get only); lists and reads the analytics files (`ccas analytics query`).
        "console": [f"Read:{bucket}/*", f"List:{bucket}/{ANALYTICS_PREFIX}*"],
    }


class SeaweedFS(Service):
    name = "s3"

    def ports(self) -> dict[str, int]:
        p = self.ports_all
        # weed mini silently moves to another port when one is taken; every one is pinned and checked before start.
        return {
            "s3": p.s3, "master": p.weed_master, "master-grpc": p.weed_master_grpc, "volume": p.weed_volume,
            "volume-grpc": p.weed_volume_grpc, "filer": p.weed_filer, "filer-grpc": p.weed_filer_grpc,
            "s3-grpc": p.weed_s3_grpc, "webdav": p.weed_webdav, "admin": p.weed_admin, "admin-grpc": p.weed_admin_grpc,
        }

    def prepare(self) -> None:
        self.binary = tools.go_binary("weed")
        secret = settings.load_secrets()
        identities = {"identities": [
            {"name": S3_IDENTITY, "actions": ["Admin", "Read", "Write", "List", "Tagging"],  # bucket set-up, the tests
             "credentials": [{"accessKey": secret["CCAS_S3_ACCESS_KEY"], "secretKey": secret["CCAS_S3_SECRET_KEY"]}]},
            *({"name": f"ccas-{component}", "actions": actions, "credentials": [{
                "accessKey": secret[f"CCAS_S3_ACCESS_KEY_{component.upper()}"],
                "secretKey": secret[f"CCAS_S3_SECRET_KEY_{component.upper()}"]}]}
              for component, actions in component_actions(settings.S3_BUCKET_DEV).items()),
        ]}
        config = self.dir / "s3-identities.json"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(identities, handle)
        (self.dir / "data").mkdir(exist_ok=True)
        self.cert, self.key = tls.server_certificate("s3")

    def start(self) -> None:
        p = self.ports_all
        argv = [
            str(self.binary), "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.config={self.dir / 's3-identities.json'}", "-s3.autoCreateBucket=false", "-s3.iam=false",
            # With a certificate and no separate https port, the S3 port itself speaks TLS only.
            f"-s3.port={p.s3}", f"-s3.cert.file={self.cert}", f"-s3.key.file={self.key}", f"-s3.port.grpc={p.weed_s3_grpc}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-master.port={p.weed_master}", f"-master.port.grpc={p.weed_master_grpc}", "-master.telemetry=false",
            f"-volume.port={p.weed_volume}", f"-volume.port.grpc={p.weed_volume_grpc}",
            f"-filer.port={p.weed_filer}", f"-filer.port.grpc={p.weed_filer_grpc}",
            f"-filer.localSocket={self.dir / 'filer.sock'}", f"-s3.localSocket={self.dir / 's3.sock'}",
            "-webdav=false", f"-webdav.port={p.weed_webdav}",
            "-admin.ui=false", f"-admin.port={p.weed_admin}", f"-admin.port.grpc={p.weed_admin_grpc}", "-admin.port.legacy=0",
        ]
        # Without the KEK passphrase SSE-S3 is disabled and versioned PUTs fail.
        env = {"WEED_S3_SSE_KEK_PASSPHRASE": settings.load_secrets()["CCAS_S3_SSE_KEK_PASSPHRASE"]}
        process.spawn(argv, self.log_file, self.pid_file, env=env, cwd=self.dir)

    def probe(self) -> str:
        from core.s3 import s3_client

        secret = settings.load_secrets()
        client = s3_client(f"https://127.0.0.1:{self.ports_all.s3}", secret["CCAS_S3_ACCESS_KEY"], secret["CCAS_S3_SECRET_KEY"],
                           connect_timeout=2, read_timeout=3, ca_file=str(tls.ca_file()))
        buckets = client.list_buckets()["Buckets"]
        return f"S3 API answers, {len(buckets)} bucket(s)"
