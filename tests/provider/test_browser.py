"""The admin UI in real headless chromium (Playwright) against a real provider process.

Screenshots of every step are kept in ``test-artifacts/provider/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import urllib3

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PASSWORD = "correct horse battery"


def _api(
    http: urllib3.PoolManager, method: str, url: str, credential: str, body: Any
) -> int:
    import json

    answer = http.request(
        method,
        url,
        body=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {credential}",
            "Content-Type": "application/json",
        },
    )
    return int(answer.status)


def test_login_fleet_host_promote_and_rollback(
    browser: Any,
    artifacts_dir: Path,
    tmp_path: Path,
    make_writer: Any,
    serve_provider: Any,
    admin_hash: str,
    public_key_file: Path,
    report_body: Any,
    cli: Any,
) -> None:
    shots = artifacts_dir / "provider"
    shots.mkdir(parents=True, exist_ok=True)
    releases = tmp_path / "releases"
    writer = make_writer(str(releases))
    hosts = ["web-1", "web-2", "db-1"]
    first = writer.publish({h: {"motd": b"one"} for h in hosts})
    config = {
        "database": {"url": f"sqlite:///{tmp_path / 'provider.db'}"},
        "releases": {
            "url": str(releases),
            "scanInterval": 1,
            "publicKey": str(public_key_file),
        },
        "auth": {
            "secretKey": "browser-test-secret-key-123456",
            "users": [{"name": "admin", "passwordHash": admin_hash}],
        },
        "rollout": {"rings": [{"name": "canary", "hosts": ["web-1"]}]},
    }
    server = serve_provider(config, "browser")
    config_file = tmp_path / "browser.yaml"

    # A small fleet: enrolled agents that reported.
    http = urllib3.PoolManager()
    credentials = {}
    for host in hosts:
        token = cli("provider", "token", "--config", str(config_file), "--host", host)
        answer = http.request(
            "POST",
            f"{server.url}/api/v1/enroll",
            body=f'{{"host": "{host}", "token": "{token.strip()}"}}'.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status == 200, answer.data
        credentials[host] = answer.json()["credential"]
    status = {"web-1": "changed", "web-2": "failed", "db-1": "ok"}
    for host in hosts:
        body = report_body(host, status=status[host], sequence=first.sequence)
        assert (
            _api(http, "POST", f"{server.url}/api/v1/reports", credentials[host], body)
            == 201
        )
    second = writer.publish({h: {"motd": b"two"} for h in hosts})
    cli("provider", "scan", "--config", str(config_file))

    page = browser.new_page()
    try:
        # Not logged in: the login form answers, with no JavaScript needed.
        page.goto(f"{server.url}/admin/")
        assert page.locator("input[name=password]").is_visible()
        page.screenshot(path=str(shots / "01-login.png"), full_page=True)
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        # The fleet: counts by status and one row per host.
        page.wait_for_selector("table.hosts")
        assert page.locator("h1").inner_text() == "Fleet"
        rows = page.locator("table.hosts tbody tr")
        assert rows.count() == 3
        assert "failed 1" in page.locator(".counts").inner_text()
        page.screenshot(path=str(shots / "02-fleet.png"), full_page=True)

        # A host page with its run, task results and diff.
        page.click("text=web-2")
        page.wait_for_selector("h1:has-text('web-2')")
        assert "disk full" in page.content()
        assert "+port 8080" in page.locator("pre.diff").first.inner_text()
        page.screenshot(path=str(shots / "03-host.png"), full_page=True)

        # Releases: the new release is rolling in the canary ring; promote it.
        page.click("nav >> text=Releases")
        row = page.locator(f"#release-{second.sequence}")
        assert "rolling" in row.locator(".state").inner_text()
        page.screenshot(path=str(shots / "04-releases-rolling.png"), full_page=True)
        row.locator("button:has-text('Promote')").click()
        page.wait_for_selector(f"text=Promoted {second.name}")
        row = page.locator(f"#release-{second.sequence}")
        assert row.locator(".state").inner_text() == "complete"
        page.screenshot(path=str(shots / "05-promoted.png"), full_page=True)
        poll = http.request(
            "GET",
            f"{server.url}/api/v1/release",
            headers={"Authorization": f"Bearer {credentials['db-1']}"},
        )
        assert poll.json()["sequence"] == second.sequence

        # Roll it back: every host returns to the first release.
        row.locator("button:has-text('Roll back')").click()
        page.wait_for_selector(f"text=Rolled back {second.name}")
        row = page.locator(f"#release-{second.sequence}")
        assert row.locator(".state").inner_text() == "rolled-back"
        page.screenshot(path=str(shots / "06-rolled-back.png"), full_page=True)
        for host in hosts:
            poll = http.request(
                "GET",
                f"{server.url}/api/v1/release",
                headers={"Authorization": f"Bearer {credentials[host]}"},
            )
            assert poll.json()["sequence"] == first.sequence, host
    finally:
        page.close()
    for name in ("01-login", "02-fleet", "03-host", "05-promoted", "06-rolled-back"):
        assert (shots / f"{name}.png").stat().st_size > 1000
