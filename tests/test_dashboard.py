"""The dashboard in a real headless browser: Debian's chromium, driven by playwright (scripts/bootstrap.sh --test
installs chromium; playwright's own browser download cannot work here). The page loads from the one-time URL
`localdev dashboard` prints, lists a namespace just created, drops it after delete, never shows a credential;
a request without a live session is refused. In team mode the same, on the agent's TLS listener, behind a
token, showing a ci token only its own namespaces."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, start_cluster

CHROMIUM = "/usr/bin/chromium"
REFRESH_WAIT = 15_000  # ms: the page refreshes every 3 s; a busy machine may take a few rounds

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/bootstrap.sh --test installs it (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing: run scripts/bootstrap.sh --test (as root) to install it",
                allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: chromium's sandbox refuses to run as root, as the tests do here
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def status_of(url: str, context: ssl.SSLContext | None = None, method: str = "GET", headers: dict | None = None) -> int:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_local_dashboard_lists_namespaces_as_they_come_and_go(shared_cluster, browser, tmp_path):
    printed = shared_cluster.cli("dashboard", check=True)
    url = printed.stdout.strip()
    match = re.fullmatch(r"(http://127\.0\.0\.1:(\d+))/dashboard\?token=[\w-]{32}", url)
    assert match, url
    base = match.group(1)
    # nothing without a session: neither the page nor its data, nor a made-up token
    assert status_of(f"{base}/dashboard") == 401
    assert status_of(f"{base}/dashboard/data") == 401
    assert status_of(f"{base}/dashboard?token=not-a-ticket") == 403
    # the listener is on loopback only
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{match.group(2)}"], capture_output=True, text=True,
                               check=True).stdout.split()
    assert f"127.0.0.1:{match.group(2)}" in listening and len([w for w in listening if w.endswith(
        f":{match.group(2)}")]) == 1, listening

    page = browser.new_page(viewport={"width": 1200, "height": 720})
    page.goto(url)
    assert page.url == f"{base}/dashboard"  # the token is spent and gone from the address bar
    page.wait_for_selector('tr[data-service="postgres"]')
    assert page.inner_text('tr[data-service="postgres"] td:nth-child(2)') == "healthy"

    shared_cluster.cli("ns", "create", "dash-web", "--no-seed", "--ttl", "2h", "--label", "team=web", check=True)
    secret = shared_cluster.ns_env("dash-web")["PGPASSWORD"]
    row = page.wait_for_selector('tr[data-namespace="dash-web"]', timeout=REFRESH_WAIT)
    cells = [c.inner_text() for c in row.query_selector_all("td")]
    assert cells[0] == "dash-web" and cells[1] == "ready" and cells[3] == "in 2h"
    assert cells[4] == "team=web" and cells[5] == "local"
    assert re.fullmatch(r"postgres \d+\.\d MB", cells[6]), cells[6]
    assert secret not in page.content()
    data = page.evaluate("fetch('/dashboard/data').then(r => r.text())")
    assert secret not in data and "dash-web" in data
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    if os.environ.get("DASHBOARD_SCREENSHOT"):  # how docs/dashboard.png is made
        shutil.copy(tmp_path / "dashboard.png", os.environ["DASHBOARD_SCREENSHOT"])

    shared_cluster.cli("ns", "delete", "dash-web", check=True)
    page.wait_for_selector('tr[data-namespace="dash-web"]', state="detached", timeout=REFRESH_WAIT)

    # the one-time URL opens nothing a second time, in another browser context (no cookie)
    other = browser.new_page()
    response = other.goto(url)
    assert response is not None and response.status == 403
    assert "used already or has expired" in other.inner_text("body")
    other.close()
    page.close()


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    port = free_port()
    handle = start_cluster(tmp_path_factory, ["postgres"],
                           extra=f'[agent]\nlisten = "127.0.0.1:{port}"\nreap_interval = 3600\n')
    listener = json.loads(handle.cli("status", "--json", check=True).stdout)["agent"]["listener"]
    handle.url, handle.ca = listener["url"], listener["ca"]
    yield handle
    handle.close()


def test_team_dashboard_is_behind_a_token_and_shows_what_it_may_see(team, browser):
    token = team.cli("token", "create", "dash-ci", "--role", "ci", check=True).stdout.strip()
    remote = {"LOCALDEV_URL": team.url, "LOCALDEV_TOKEN": token, "LOCALDEV_CA": team.ca,
              "LOCALDEV_HOME": str(team.home.parent / "no-cluster-here")}
    team.cli("ns", "create", "theirs", "--no-seed", check=True)  # the local admin's: not the ci token's to see
    team.cli("ns", "create", "mine", "--no-seed", env=remote, check=True)
    tls = ssl.create_default_context(cafile=team.ca)

    # without a token: no session URL, no page, no data
    assert status_of(f"{team.url}/dashboard/sessions", tls, method="POST") == 401
    assert status_of(f"{team.url}/dashboard/sessions", tls, method="POST",
                     headers={"Authorization": "Bearer ldt_wrong"}) == 401
    assert status_of(f"{team.url}/dashboard", tls) == 401
    assert status_of(f"{team.url}/dashboard/data", tls) == 401
    assert team.cli("dashboard", "--port", "16999", env=remote).returncode == 2

    url = team.cli("dashboard", env=remote, check=True).stdout.strip()
    assert re.fullmatch(rf"{re.escape(team.url)}/dashboard\?token=[\w-]{{32}}", url), url
    # the browser does not know the cluster's CA (the client pins it; urllib above checked it)
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(url)
    row = page.wait_for_selector('tr[data-namespace="mine"]', timeout=REFRESH_WAIT)
    assert [c.inner_text() for c in row.query_selector_all("td")][5] == "dash-ci"
    assert page.query_selector('tr[data-namespace="theirs"]') is None
    assert "dash-ci (ci)" in page.inner_text("body")
    cookie = next(c for c in context.cookies() if c["name"].startswith("localdev_dashboard_"))
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert token not in page.content()

    # the supervisor's events come in as they happen: a killed PostgreSQL, restarted by the agent
    pid = json.loads(team.cli("status", "--json", check=True).stdout)["services"]["postgres"]["pid"]
    os.kill(pid, signal.SIGKILL)
    page.wait_for_selector('#events tr:has-text("restarted")', timeout=60_000)
    assert page.inner_text('#events tbody tr:nth-child(2) td:nth-child(3)') == "died"
    page.wait_for_selector('tr[data-namespace="mine"]', timeout=REFRESH_WAIT)  # and the namespaces are back
    context.close()
