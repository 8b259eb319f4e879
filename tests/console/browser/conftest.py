"""The console on the real local stack, seeded, and a headless Chromium to drive it.

`console_site` seeds a scratch database (migrated, with the component roles' grants) and the stack's bucket with calls made
by callgen and scored by the real scorer, then runs `ccas console` as deployed: HTTPS with a certificate of the stack's CA,
the console's own database role and S3 identity, the `ops` Kafka principal (its ACLs are what requeue needs). Chromium
trusts exactly that certificate (its SPKI hash), nothing else. Screenshots go to .artefacts/console/<test name>.png.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ccas import console_seed, settings
from ccas.apps import App, ccas_command, free_port, wait_http
from ccas.stack import tls
from core.s3 import s3_client
from tests.pipeline import e2e

ARTEFACTS = settings.REPO_ROOT / ".artefacts" / "console"
ZONE = "Asia/Ho_Chi_Minh"
PASSWORDS = {"admin": "admin-password-for-tests", "qa_lead": "qa-lead-password-for-tests", "viewer": "viewer-password-for-tests"}
# Days before today (in the console's zone) of the main agent's recorded calls: the daily trend has one point per day.
AGENT_DAYS = (0, 1, 3, 6)


@dataclass
class Site:
    url: str
    database_url: str  # the schema owner's, for the tests' own checks
    tag: str
    users: dict[str, str]  # role -> name
    agent: str
    other_agent: str
    calls: list[console_seed.SeededCall]
    latest_scores: dict[str, float]  # call_id -> the score the console shows (newest version)
    rescored: str  # call_id with two model versions
    extra: dict[str, Any] = field(default_factory=dict)


def _ask(url: str, sql: str, params: Any = None) -> list[tuple]:
    return e2e.query(url, sql, params)


def _seed(stack_env: dict[str, str], url: str, tag: str) -> tuple[list[console_seed.SeededCall], dict[str, float], str]:
    zone = ZoneInfo(ZONE)
    now = datetime.now(zone)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Halfway between midnight and now (at most noon): each seeded day keeps its date in the console's zone, never future.
    base = midnight + min(now - midnight, timedelta(hours=12)) / 2
    agent, other = f"A{tag}", f"B{tag}"
    s3 = s3_client(stack_env["CCAS_S3_ENDPOINT"], stack_env["CCAS_S3_ACCESS_KEY"], stack_env["CCAS_S3_SECRET_KEY"],
                   ca_file=stack_env["CCAS_S3_CA_FILE"])
    connection = psycopg2.connect(url)
    calls = []
    try:
        for index, days_ago in enumerate(AGENT_DAYS):
            started = (base - timedelta(days=days_ago) + timedelta(seconds=index)).astimezone(UTC)
            call = console_seed.scored_call(11 + index, f"c{tag}{index}", agent, started, duration_s=40.0 + 10 * index)
            console_seed.store(s3, stack_env["CCAS_S3_BUCKET"], connection, call, agent_name="Lan Nguyen")
            calls.append(call)
        template = calls[0].details
        console_seed.bulk_calls(connection, template, 12, [other], datetime.now(UTC), 20, prefix=f"b{tag}")
        # A re-score of the first call by a newer model: the console shows it beside the first version.
        rescored = calls[0].call_id
        with connection.cursor() as cursor:
            newer = console_seed.varied_details(template, __import__("random").Random(5))
            console_seed.add_result(cursor, rescored, newer["score"], "sc9.9.9-test", newer,
                                    datetime.now(UTC) + timedelta(seconds=1))
        connection.commit()
    finally:
        connection.close()
    latest = {call_id: float(score) for call_id, score in _ask(url, """
        SELECT DISTINCT ON (call_id) call_id, score FROM scoring_result ORDER BY call_id, created_at DESC""")}
    return calls, latest, rescored


def add_users(database_url: str, tag: str) -> dict[str, str]:
    """One user per role, through `ccas console user add` (the password on stdin); returns role -> name."""
    users = {role: f"{role}-{tag}" for role in PASSWORDS}
    for role, name in users.items():
        subprocess.run(ccas_command("console", "user", "add", name, "--role", role, "--password-stdin"),
                       input=PASSWORDS[role] + "\n", text=True, check=True, timeout=60,
                       env={**os.environ, "CCAS_DATABASE_URL": database_url})
    return users


@contextmanager
def running_console(stack_env: dict[str, str], database_url: str, log_name: str = "console") -> Iterator[str]:
    """`ccas console` as deployed on `database_url`'s database: HTTPS, its own role and S3 identity, the ops principal."""
    port = free_port()
    env = {**stack_env, **settings.kafka_principal_env("ops"), **settings.s3_identity_env("console"), **tls.console_env(),
           "CCAS_DATABASE_URL": settings.database_role_url(database_url, "console"), "CCAS_CONSOLE_PORT": str(port),
           "CCAS_CONSOLE_TIME_ZONE": ZONE, "CCAS_CONSOLE_MIN_AGENT_CALLS": "5"}
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    app = App("console", ccas_command("console"), ARTEFACTS / f"{log_name}.log", env).start()
    try:
        wait_http(f"https://127.0.0.1:{port}/healthz", 60, app, ca_file=str(tls.ca_file()))
        yield f"https://127.0.0.1:{port}"
    finally:
        app.stop(timeout_s=15)


@pytest.fixture(scope="session")
def console_site(stack_env: dict[str, str]) -> Iterator[Site]:
    tag = uuid.uuid4().hex[:6]
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        calls, latest, rescored = _seed(stack_env, url, tag)
        users = add_users(url, tag)
        with running_console(stack_env, url) as site_url:
            yield Site(site_url, url, tag, users, f"A{tag}", f"B{tag}", calls, latest, rescored)


def _spki_hash(certificate: Path) -> str:
    """What --ignore-certificate-errors-spki-list wants: base64 SHA-256 of the certificate's public key info."""
    public = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def browser(stack_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromium-driver are not installed: run scripts/setup.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    cert, _ = tls.server_certificate("console")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,1000",
                     "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}",
                     f"--ignore-certificate-errors-spki-list={_spki_hash(cert)}", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTEFACTS / f"{request.node.name}.png"))
        driver.quit()
