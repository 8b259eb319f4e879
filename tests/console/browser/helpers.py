"""Steps the browser tests share: signing in (in Chromium or with requests), waiting, screenshots, axe-core."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import requests
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ccas import settings
from ccas.stack import tls
from tests.console.browser.conftest import ARTEFACTS, PASSWORDS, Site

AXE_VERSION = "4.14.1"  # scripts/setup.sh installs it with npm


def sign_in(driver: Any, site: Site, role: str, target: str = "/calls") -> None:
    driver.get(f"{site.url}{target}")
    WebDriverWait(driver, 15).until(lambda d: "/signin" in d.current_url)
    driver.find_element(By.ID, "name").send_keys(site.users[role])
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[role])
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 15).until(lambda d: "/signin" not in d.current_url)


def wait_for(driver: Any, condition: Any, timeout: float = 15) -> Any:
    # A condition read while the page navigates can find an element of the old page and read it from the new one
    # (stale), or look before the new page has it; both mean "not yet", not failure.
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(condition)


def screenshot(driver: Any, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def http_session(site: Site, role: str | None) -> requests.Session:
    """A requests session that trusts the stack's CA, signed in as `role` (None: signed out, with a CSRF cookie only)."""
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment would override `verify`
    session.verify = str(tls.ca_file())
    form = session.get(f"{site.url}/signin", timeout=10)
    if role is not None:
        answer = session.post(f"{site.url}/signin", data={"name": site.users[role], "password": PASSWORDS[role],
                                                          "next": "/calls", "csrf_token": csrf_token(form.text)},
                              timeout=20, allow_redirects=False)
        assert answer.status_code == 303, answer.text[:300]
    return session


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page now shown (every rule axe runs by default)."""
    source = settings.cache_dir() / "npm" / f"axe-core-{AXE_VERSION}" / "node_modules" / "axe-core" / "axe.min.js"
    assert source.is_file(), f"{source} missing: run scripts/setup.sh"
    driver.execute_script(source.read_text())
    driver.set_script_timeout(60)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(JSON.stringify(r.violations))).catch(e => done(JSON.stringify([{id: 'axe-error',"
        " impact: 'critical', description: String(e)}])));")
    return json.loads(result)
