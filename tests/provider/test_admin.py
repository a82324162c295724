"""The admin UI through Flask's test client: login, CSRF, pages and actions."""

from __future__ import annotations

import re
from typing import Any

import pytest

ADMIN_PASSWORD = "correct horse battery"


def _csrf(page: bytes) -> str:
    found = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1).decode()


def login(provider: Any) -> str:
    page = provider.client.get("/admin/login")
    answer = provider.client.post(
        "/admin/login",
        data={
            "csrf": _csrf(page.data),
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "next": "/admin/",
        },
    )
    assert answer.status_code == 302, answer.data[:300]
    return _csrf(provider.client.get("/admin/").data)


@pytest.fixture
def admin(provider: Any, writer: Any) -> Any:
    published = writer.publish({"web-1": {"a": b"1"}, "web-2": {}})
    provider.scan()
    credential = provider.enroll("web-1")
    provider.report(
        credential,
        "web-1",
        status="failed",
        release=published.release_id,
        sequence=published.sequence,
    )
    provider.post("/api/v1/logs", credential, json={"lines": ["apt-get said hello"]})
    provider.post("/api/v1/facts", credential, json={"facts": {"cpus": 2}})
    provider.enroll("web-2")
    provider.csrf = login(provider)
    provider.published = published
    return provider


def test_pages_need_a_login(provider: Any) -> None:
    answer = provider.client.get("/admin/")
    assert answer.status_code == 401
    assert b'name="password"' in answer.data  # the login form, no JavaScript


def test_wrong_password(provider: Any) -> None:
    page = provider.client.get("/admin/login")
    answer = provider.client.post(
        "/admin/login",
        data={"csrf": _csrf(page.data), "username": "admin", "password": "nope"},
    )
    assert answer.status_code == 401
    assert b"Unknown user name or wrong password" in answer.data
    assert provider.client.get("/admin/").status_code == 401


def test_login_needs_the_csrf_token(provider: Any) -> None:
    answer = provider.client.post(
        "/admin/login", data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 400
    assert provider.client.get("/admin/").status_code == 401


def test_fleet_overview(admin: Any) -> None:
    page = admin.client.get("/admin/").get_data(as_text=True)
    assert "web-1" in page and "web-2" in page
    assert "failed <strong>1</strong>" in page
    assert "no report <strong>1</strong>" in page
    filtered = admin.client.get("/admin/?status=failed").get_data(as_text=True)
    assert "web-1" in filtered and "web-2</a>" not in filtered


def test_host_page_shows_runs_diffs_logs_and_facts(admin: Any) -> None:
    page = admin.client.get("/admin/hosts/web-1").get_data(as_text=True)
    assert "site config" in page
    assert "+port 8080" in page
    assert "disk full" in page
    assert "apt-get said hello" in page
    assert "&#34;cpus&#34;: 2" in page  # escaped by Jinja
    assert admin.client.get("/admin/hosts/nobody").status_code == 404


def test_posts_without_the_csrf_token_are_refused(admin: Any) -> None:
    name = admin.published.name
    answer = admin.client.post(f"/admin/releases/{name}/rollback", data={})
    assert answer.status_code == 400
    assert b"security token did not match" in answer.data


def test_release_actions(admin: Any) -> None:
    from tenfra.provider.models import Release

    name = admin.published.name
    page = admin.client.get("/admin/releases").get_data(as_text=True)
    assert name in page and "complete" in page
    answer = admin.client.post(
        f"/admin/releases/{name}/rollback", data={"csrf": admin.csrf}
    )
    assert answer.status_code == 302
    with admin.app.app_context():
        assert Release.get(Release.name == name).state == "rolled-back"
    page = admin.client.get("/admin/releases").get_data(as_text=True)
    assert "Rolled back" in page


def test_token_button(admin: Any) -> None:
    answer = admin.client.post(
        "/admin/tokens", data={"csrf": admin.csrf, "host": "web-9", "ttl": "600"}
    )
    assert answer.status_code == 201
    page = answer.get_data(as_text=True)
    token = re.search(r'id="token">([^<]+)<', page)
    assert token
    assert "/bootstrap/install.sh | sudo sh -s -- --token" in page
    enrolled = admin.client.post(
        "/api/v1/enroll", json={"host": "web-9", "token": token.group(1)}
    )
    assert enrolled.status_code == 200
    bad = admin.client.post(
        "/admin/tokens", data={"csrf": admin.csrf, "host": "../x", "ttl": "600"}
    )
    assert bad.status_code == 302


def test_logout(admin: Any) -> None:
    admin.client.post("/admin/logout", data={"csrf": admin.csrf})
    assert admin.client.get("/admin/").status_code == 401


def test_session_of_a_removed_user_is_refused(admin: Any, make_provider: Any) -> None:
    from tenfra.provider import admin as admin_module

    with admin.app.test_request_context("/admin/"):
        from flask import session

        session["user"] = "ghost"
        assert admin_module.current_user() is None


def test_install_script(admin: Any) -> None:
    script = admin.client.get("/bootstrap/install.sh").get_data(as_text=True)
    assert script.startswith("#!/bin/sh")
    assert "PROVIDER='http://localhost'" in script
    assert "agent enroll --provider" in script
    assert "tenfra-agent.service" in script
    key = admin.client.get("/bootstrap/release.pub")
    assert key.status_code == 200
    assert b"PUBLIC KEY" in key.data
