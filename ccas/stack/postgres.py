"""PostgreSQL 15 from Debian as this clone's own cluster: own data dir, own port, run as the `postgres` user."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from ccas import settings
from ccas.stack import process, tls
from ccas.stack.process import StackError
from ccas.stack.service import Service

log = logging.getLogger(__name__)

PG_BIN = Path(os.environ.get("CCAS_PG_BIN", "/usr/lib/postgresql/15/bin"))
DB_NAME = "ccas"
DB_USER = "ccas"
# TCP clients must use TLS and a password; the stack's own administration goes through the cluster's Unix socket only.
_PG_HBA = """\
# Written by `ccas stack up` (ccas/stack/postgres.py) at every start.
local     all  all                 trust
hostssl   all  all  127.0.0.1/32   scram-sha-256
hostssl   all  all  ::1/128        scram-sha-256
hostnossl all  all  0.0.0.0/0      reject
hostnossl all  all  ::/0           reject
"""


class Postgres(Service):
    name = "postgres"

    def ports(self) -> dict[str, int]:
        return {"postgres": self.ports_all.postgres}

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def pid(self) -> int | None:
        # postgres writes its own pid file (first line = postmaster pid); its command line names the data dir.
        return process.owned_pid(self.data_dir / "postmaster.pid", str(self.data_dir))

    def _run_as_postgres(self, argv: list[str], check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, check=False,
                                input=stdin)
        if check and result.returncode != 0:
            raise StackError(f"{' '.join(argv[:2])} failed: {result.stdout}{result.stderr}")
        return result

    def _ensure_reachable_by_postgres(self) -> None:
        """The server runs as `postgres`; every folder above its data dir must let that user pass through."""
        postgres_uid = pwd.getpwnam("postgres").pw_uid
        for folder in reversed(self.dir.parents):
            mode = folder.stat().st_mode
            if folder.stat().st_uid != postgres_uid and not mode & 0o001:
                log.warning("granting search permission (o+x) on %s so the postgres user can reach its data dir", folder)
                folder.chmod(mode | 0o001)
        shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)

    def prepare(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise StackError(f"PostgreSQL 15 server binaries not found in {PG_BIN}; run scripts/setup.sh (installs postgresql)")
        try:
            pwd.getpwnam("postgres")
        except KeyError as missing:
            raise StackError("the `postgres` system user does not exist; install Debian's postgresql package") from missing
        self._ensure_reachable_by_postgres()
        if not (self.data_dir / "PG_VERSION").exists():
            password_file = self.dir / "initdb.pw"
            password_file.write_text(settings.load_secrets()["CCAS_DB_PASSWORD"] + "\n")
            shutil.chown(password_file, "postgres", "postgres")
            password_file.chmod(0o600)
            try:
                self._run_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-E", "UTF8",
                                       "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256"])
            finally:
                password_file.unlink(missing_ok=True)
        (self.data_dir / "pg_hba.conf").write_text(_PG_HBA)
        cert, key = tls.server_certificate("postgres")
        for source, target, mode in ((cert, "server.crt", 0o644), (key, "server.key", 0o600)):
            # The server runs as `postgres` and refuses a key that others can read.
            shutil.copyfile(source, self.dir / target)
            shutil.chown(self.dir / target, "postgres", "postgres")
            (self.dir / target).chmod(mode)

    def start(self) -> None:
        options = (f"-p {self.ports_all.postgres} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200 -c shared_buffers=128MB -c fsync=on "
                   f"-c ssl=on -c ssl_cert_file={self.dir / 'server.crt'} -c ssl_key_file={self.dir / 'server.key'} "
                   "-c ssl_min_protocol_version=TLSv1.2")
        log_file = self.log_file
        if not log_file.exists():
            log_file.touch()
        shutil.chown(log_file, "postgres", "postgres")
        self._run_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-o", options, "-l", str(log_file),
                               "-w", "-t", "60", "start"])

    def _psql(self, sql: str, database: str = "postgres") -> str:
        # The statement goes through stdin, never argv: a password in it would be readable by anyone through `ps`.
        result = self._run_as_postgres([str(PG_BIN / "psql"), "-h", str(self.dir), "-p", str(self.ports_all.postgres),
                                        "-d", database, "-v", "ON_ERROR_STOP=1", "-tA", "-f", "-"], stdin=sql)
        return result.stdout.strip()

    def after_start(self) -> None:
        password = settings.load_secrets()["CCAS_DB_PASSWORD"].replace("'", "''")
        if self._psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{DB_USER}'") != "1":
            self._psql(f"CREATE ROLE {DB_USER} LOGIN CREATEDB PASSWORD '{password}'")
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'") != "1":
            self._psql(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
        # The owner administers the components' sessions too: `DROP DATABASE … WITH (FORCE)` and a fencing test end them.
        self._psql(f"GRANT pg_signal_backend TO {DB_USER}")
        # One login role per component; what each may do is granted by every `db migrate` (ccas/db_roles.py).
        secret = settings.load_secrets()
        for component in settings.DATABASE_COMPONENTS:
            role = f"ccas_{component}"
            quoted = secret[settings.database_password_variable(component)].replace("'", "''")
            verb = "ALTER" if self._psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") == "1" else "CREATE"
            self._psql(f"{verb} ROLE {role} LOGIN NOCREATEDB NOCREATEROLE PASSWORD '{quoted}'")

    def probe(self) -> str:
        import psycopg2

        if not process.port_in_use(self.ports_all.postgres):
            raise StackError(f"port {self.ports_all.postgres} is not accepting connections")
        # Through the cluster's own socket as the superuser (trust is local-only); TCP clients use the ccas role's password.
        connection = psycopg2.connect(host=str(self.dir), port=self.ports_all.postgres, user="postgres", dbname="postgres",
                                      connect_timeout=3)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                version = cursor.fetchone()[0]
        finally:
            connection.close()
        return f"PostgreSQL {version}"

    def down(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        self._run_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
                              check=False)
        if process.pid_alive(pid):
            process.terminate(pid)
        return f"stopped (pid {pid})"
