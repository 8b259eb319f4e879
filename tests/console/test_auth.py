"""Sessions, CSRF and roles of the console, through FastAPI's TestClient with an in-memory user table (no stack needed)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from console.app import create_app
from console.auth import CSRF_COOKIE, SESSION_COOKIE, Signer
from console.settings import ConsoleSettings
from console.users import User, authenticate, check_new_user, hash_password

KEY = "k" * 40


class UsersOnly:
    """A Database stand-in that knows console_user and nothing else (the pages that need more are not called here)."""

    def __init__(self, users: dict[str, tuple[str, str]]) -> None:
        self.users = {name: {"name": name, "password_hash": hash_password(password), "role": role}
                      for name, (password, role) in users.items()}

    def row(self, query: str, params: Any = None) -> dict[str, Any] | None:
        assert "FROM console_user" in query, f"unexpected query in a unit test: {query[:60]}"
        return self.users.get(params[0])

    def rows(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        row = self.row(query, params)
        return [row] if row else []

    @contextmanager
    def connection(self) -> Any:
        raise AssertionError("no connection in a unit test")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    settings = ConsoleSettings(database_url="postgresql://x@127.0.0.1/x", kafka_bootstrap="127.0.0.1:1", s3_bucket="b",
                               console_session_key=KEY)
    app = create_app(settings, database=UsersOnly({"ana": ("ana-password-1", "admin"), "vu": ("vu-password-12", "viewer")}),
                     recordings=object())
    return TestClient(app, base_url="https://testserver")


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _sign_in(client: TestClient, name: str, password: str) -> Any:
    form = client.get("/signin")
    return client.post("/signin", data={"name": name, "password": password, "csrf_token": _token(form.text), "next": "/calls"},
                       follow_redirects=False)


def test_session_cookie_is_httponly_secure_and_samesite(client: TestClient) -> None:
    answer = _sign_in(client, "ana", "ana-password-1")
    assert answer.status_code == 303 and answer.headers["location"] == "/calls"
    cookie = next(value for value in answer.headers.get_list("set-cookie") if value.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie


def test_wrong_password_gives_401_and_no_session(client: TestClient) -> None:
    answer = _sign_in(client, "ana", "not-her-password")
    assert answer.status_code == 401 and SESSION_COOKIE not in answer.cookies
    assert _sign_in(client, "nobody", "whatever-it-is").status_code == 401


def test_post_needs_the_token_of_this_browser(client: TestClient) -> None:
    client.get("/signin")
    assert client.post("/signin", data={"name": "ana", "password": "ana-password-1"}).status_code == 403
    other = Signer(KEY.encode()).csrf_token("another-browser-cookie")
    assert client.post("/signin", data={"name": "ana", "password": "ana-password-1", "csrf_token": other}).status_code == 403


def test_viewer_is_refused_operations_and_signed_out_is_sent_to_sign_in(client: TestClient) -> None:
    page = client.get("/operations", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/signin?next=")
    assert client.get("/calls/abc/audio").status_code == 401
    _sign_in(client, "vu", "vu-password-12")
    assert client.get("/operations").status_code == 403


def test_sign_in_never_redirects_off_site(client: TestClient) -> None:
    form = client.get("/signin")
    answer = client.post("/signin", data={"name": "ana", "password": "ana-password-1", "csrf_token": _token(form.text),
                                          "next": "//evil.example/x"}, follow_redirects=False)
    assert answer.headers["location"] == "/calls"


def test_forged_expired_or_tampered_sessions_are_no_sessions() -> None:
    signer = Signer(KEY.encode())
    cookie = signer.session_cookie("ana", 60, now=1000)
    assert signer.session_name(cookie, now=1030) == "ana"
    assert signer.session_name(cookie, now=1061) is None  # expired
    body, signature = cookie.split(".")
    assert signer.session_name(f"{body}x.{signature}", now=1030) is None
    assert Signer(b"another-key" * 4).session_name(cookie, now=1030) is None


def test_roles_rank_and_new_users_are_checked() -> None:
    assert User("a", "admin").may("qa_lead") and User("q", "qa_lead").may("viewer") and not User("v", "viewer").may("admin")
    with pytest.raises(ValueError, match="role"):
        check_new_user("x", "root", "long-enough-password")
    with pytest.raises(ValueError, match="12"):
        check_new_user("x", "viewer", "short")
    stored = {"name": "x", "password_hash": hash_password("long-enough-password"), "role": "viewer"}
    assert stored["password_hash"].startswith("$argon2id$")
    assert authenticate(stored, "long-enough-password") == User("x", "viewer")
    assert authenticate(stored, "wrong") is None


def test_pages_carry_a_strict_content_security_policy(client: TestClient) -> None:
    answer = client.get("/signin")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert CSRF_COOKIE in answer.cookies
