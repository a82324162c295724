"""Authentication: revocation, deletion, and enrolment tokens under concurrency.

Already proven elsewhere (see docs/security.md): every route is enumerated and
refuses anonymous (401) and cross-host (403) requests except an explicit
allow-list (tests/provider/test_routes.py); tokens are single-use, expire and
are bound to their host name (tests/provider/test_api.py).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from .conftest import make_report, provider_support, run_agent

ADMIN_PASSWORD = provider_support.ADMIN_PASSWORD


def admin_login(app: Any) -> str:
    """Log the test client in; returns the CSRF token for later forms."""
    page = app.client.get("/admin/login")
    token = re.search(rb'name="csrf" value="([^"]+)"', page.data)
    assert token, page.data[:300]
    answer = app.client.post(
        "/admin/login",
        data={
            "csrf": token.group(1).decode(),
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "next": "/admin/",
        },
    )
    assert answer.status_code == 302, answer.data[:300]
    found = re.search(rb'name="csrf" value="([^"]+)"', app.client.get("/admin/").data)
    assert found
    return found.group(1).decode()


AGENT_CALLS = [
    ("GET", "/api/v1/release"),
    ("GET", "/api/v1/bundle"),
    ("GET", "/api/v1/plugins"),
    ("POST", "/api/v1/reports"),
    ("POST", "/api/v1/logs"),
    ("POST", "/api/v1/facts"),
]


def _call(app: Any, method: str, path: str, credential: str) -> Any:
    if method == "GET":
        return app.get(path, credential)
    body: dict[str, Any] = {
        "/api/v1/reports": make_report("web-a"),
        "/api/v1/logs": {"lines": ["hello"]},
        "/api/v1/facts": {"facts": {"os": "linux"}},
    }[path]
    headers = {"Idempotency-Key": body["id"]} if "id" in body else {}
    return app.post(path, credential, json=body, headers=headers)


@pytest.mark.parametrize("how", ["revoke", "delete"])
def test_a_revoked_or_deleted_host_is_refused_on_its_next_request(
    app: Any, writer: Any, how: str
) -> None:
    writer.publish({"web-a": {"a.conf": b"a"}})
    app.scan()
    credential = app.enroll("web-a")
    for method, path in AGENT_CALLS:
        assert _call(app, method, path, credential).status_code in (200, 201), path

    csrf = admin_login(app)
    answer = app.client.post(f"/admin/hosts/web-a/{how}", data={"csrf": csrf})
    assert answer.status_code == 302

    for method, path in AGENT_CALLS:
        refused = _call(app, method, path, credential)
        assert refused.status_code == 401, (method, path, refused.data[:200])
        message = refused.get_json()["error"]
        assert "enrol the host again" in message, message
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    # The asset of its old bundle is refused too.
    digest = writer.publish({"web-a": {"b.conf": b"b"}}).assets["web-a"][0]
    app.scan()
    assert app.get(f"/api/v1/assets/{digest}", credential).status_code == 401

    # A new token gives a new credential; the old one stays dead.
    fresh = app.enroll("web-a")
    assert fresh != credential
    assert app.get("/api/v1/release", fresh).status_code == 200
    assert app.get("/api/v1/release", credential).status_code == 401


def test_deleting_a_host_voids_its_unused_tokens(app: Any) -> None:
    app.enroll("web-a")
    spare = app.token("web-a")
    csrf = admin_login(app)
    app.client.post("/admin/hosts/web-a/delete", data={"csrf": csrf})
    answer = app.client.post("/api/v1/enroll", json={"host": "web-a", "token": spare})
    assert answer.status_code == 401
    assert "unknown, already used or expired" in answer.get_json()["error"]


def test_one_token_enrols_once_under_concurrency(
    tmp_path: Path, writer: Any, admin_hash: str, public_key_file: Path
) -> None:
    """Eight simultaneous enrolments with one token, on two worker processes:
    exactly one credential is issued."""
    import urllib3

    config = provider_support.base_config(
        f"sqlite:///{tmp_path / 'p.db'}",
        str(writer.url),
        admin_hash,
        public_key_file,
    )
    config["server"] = {"threads": 4}
    path = tmp_path / "provider.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    server = provider_support.start_server(path, tmp_path / "provider.log")
    try:
        token = provider_support.tenfra_cli(
            "provider", "token", "--host", "web-a", "--config", str(path)
        ).split()[0]
        http = urllib3.PoolManager(maxsize=8)
        start = threading.Barrier(8)
        answers: list[int] = []

        def enrol() -> None:
            start.wait()
            answer = http.request(
                "POST",
                f"{server.url}/api/v1/enroll",
                body=json.dumps({"host": "web-a", "token": token}),
                headers={"Content-Type": "application/json"},
                retries=False,
                timeout=30,
            )
            answers.append(answer.status)

        threads = [threading.Thread(target=enrol) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    assert sorted(answers) == [200] + [401] * 7, answers


def test_a_revoked_agent_keeps_enforcing_and_says_what_to_do(
    repo: Any, served: Any, enrolled: Path
) -> None:
    """End to end: after revocation the real agent keeps its last good release
    and prints one clear line, no traceback."""
    served.wait_release(repo.compile("v1"))
    assert run_agent(enrolled, "run", "--once").returncode == 0
    served.cli("forget", "web-1")

    (repo.target / "version.txt").write_text("drift", encoding="utf-8")
    done = run_agent(enrolled, "run", "--once", "--force")
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert "credential is not valid" in output, output
    assert "enrol the host again" in output
    assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"
    # Its report waits in the spool; nothing was stored for the deleted host.
    assert list((enrolled / "spool").glob("*.json"))
    assert served.runs("web-1") == []
