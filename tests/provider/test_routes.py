"""Every route needs credentials except an explicit allow-list; hosts stay apart."""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Optional

import pytest

# The routes anyone may call.  Adding an anonymous route means adding it here.
ALLOWED = {
    "health.healthz",
    "health.readyz",
    "metrics.metrics",
    "api.enroll",
    "bootstrap.install_sh",
    "bootstrap.public_key",
    "admin.login",
    "admin.login_post",
    "static",
}

ASSET_A = b"secret of web-a"
ASSET_B = b"secret of web-b"


@pytest.fixture
def fleet(provider: Any, writer: Any, tmp_path: Any) -> dict[str, Any]:
    published = writer.publish(
        {"web-a": {"a.conf": ASSET_A}, "web-b": {"b.conf": ASSET_B}}
    )
    provider.scan()
    return {
        "provider": provider,
        "published": published,
        "a": provider.enroll("web-a"),
        "b": provider.enroll("web-b"),
        "digest_a": hashlib.sha256(ASSET_A).hexdigest(),
        "digest_b": hashlib.sha256(ASSET_B).hexdigest(),
    }


def _url(rule: Any, fleet: dict[str, Any]) -> str:
    """The rule's URL, pointing at web-a's data."""
    samples = {
        "name": "web-a",
        "digest": fleet["digest_a"],
        "action": "promote",
        "filename": "style.css",
    }
    values = {arg: samples[arg] for arg in rule.arguments}
    url: str = rule.build(values, append_unknown=False)[1]
    if url.startswith(("/api/", "/bootstrap/")) and "GET" in rule.methods:
        url += "?host=web-a"
    return url


def _body(endpoint: str, report_body: Callable[..., dict[str, Any]]) -> Any:
    """A body that writes web-a's data."""
    return {
        "api.post_report": report_body("web-a"),
        "api.post_logs": {"host": "web-a", "lines": ["hello"]},
        "api.post_facts": {"host": "web-a", "facts": {"os": "linux"}},
    }.get(endpoint, {})


def _send(
    provider: Any, method: str, url: str, credential: Optional[str], body: Any
) -> Any:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    if method == "GET":
        return provider.client.get(url, headers=headers)
    if url.startswith("/api/"):
        return provider.client.post(url, headers=headers, json=body)
    return provider.client.post(url, headers=headers, data=body)


def test_allow_list_is_explicit(provider: Any) -> None:
    assert provider.app.config["TENFRA_ANONYMOUS"] == frozenset(ALLOWED)


def test_every_route_needs_credentials_and_refuses_other_hosts(
    fleet: dict[str, Any], report_body: Callable[..., dict[str, Any]]
) -> None:
    provider = fleet["provider"]
    checked = []
    for rule in provider.app.url_map.iter_rules():
        if rule.endpoint in ALLOWED:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = _url(rule, fleet)
            body = _body(rule.endpoint, report_body)
            anonymous = _send(provider, method, url, None, body)
            assert anonymous.status_code == 401, (method, url, anonymous.data[:200])
            other = _send(provider, method, url, fleet["b"], body)
            assert other.status_code == 403, (method, url, other.data[:200])
            checked.append(f"{method} {rule.rule}")
            if rule.endpoint.startswith("api."):
                # The owner passes the same request, so 403 above is about
                # the other host, not a blanket refusal.
                own = _send(
                    provider, method, url, fleet["a"], _body(rule.endpoint, report_body)
                )
                assert own.status_code in (200, 201), (method, url, own.data[:200])
    # Sanity: the walk covered the agent API, the admin UI and the bootstrap.
    assert "GET /api/v1/bundle" in checked
    assert "POST /api/v1/reports" in checked
    assert "GET /admin/" in checked
    assert "POST /admin/releases/<string:name>/<string:action>" in checked
    assert "GET /bootstrap/agent.pyz" in checked
    assert len(checked) >= 20


def test_allowed_routes_answer_without_credentials(fleet: dict[str, Any]) -> None:
    provider = fleet["provider"]
    for path in ("/healthz", "/readyz", "/metrics", "/bootstrap/install.sh"):
        assert provider.client.get(path).status_code == 200, path
    assert provider.client.get("/admin/login").status_code == 200


# -- isolation between hosts ---------------------------------------------------------


def test_a_host_gets_only_its_own_bundle(fleet: dict[str, Any]) -> None:
    provider = fleet["provider"]
    bundle = provider.get("/api/v1/bundle", fleet["b"])
    assert b'"host":"web-b"' in bundle.data
    assert b"web-a" not in bundle.data


def test_a_host_cannot_fetch_another_hosts_asset(fleet: dict[str, Any]) -> None:
    provider = fleet["provider"]
    stolen = provider.get(f"/api/v1/assets/{fleet['digest_a']}", fleet["b"])
    assert stolen.status_code == 403
    assert ASSET_A not in stolen.data
    assert "not referenced by the bundle of host 'web-b'" in stolen.get_json()["error"]
    own = provider.get(f"/api/v1/assets/{fleet['digest_b']}", fleet["b"])
    assert own.data == ASSET_B


@pytest.mark.parametrize(
    "digest", ["..%2F..%2Fmanifest.json", "../LATEST", "A" * 64, "0" * 63]
)
def test_asset_names_cannot_escape(fleet: dict[str, Any], digest: str) -> None:
    answer = fleet["provider"].get(f"/api/v1/assets/{digest}", fleet["a"])
    assert answer.status_code in (403, 404)
    assert b"LATEST" not in answer.data or answer.is_json


def test_a_host_cannot_post_as_another(
    fleet: dict[str, Any], report_body: Callable[..., dict[str, Any]]
) -> None:
    from tenfra.provider.models import Run

    provider = fleet["provider"]
    forged = provider.post("/api/v1/reports", fleet["b"], json=report_body("web-a"))
    assert forged.status_code == 403
    with provider.app.app_context():
        assert Run.select().count() == 0


def test_a_secret_works_only_with_its_own_host_name(fleet: dict[str, Any]) -> None:
    provider = fleet["provider"]
    secret_of_a = fleet["a"].rpartition(".")[2]
    answer = provider.get("/api/v1/release", f"web-b.{secret_of_a}")
    assert answer.status_code == 401


def test_host_credentials_do_not_open_the_admin_ui(fleet: dict[str, Any]) -> None:
    provider = fleet["provider"]
    assert provider.get("/admin/", fleet["a"]).status_code == 403
    assert provider.get("/admin/hosts/web-a", fleet["a"]).status_code == 403


class _BlueprintPlugin:
    """A third-party plugin adding provider pages (one of them public)."""

    def tenfra_add_provider_blueprints(self, registry: Any) -> None:
        from flask import Blueprint

        blueprint = Blueprint("extra", __name__, url_prefix="/extra")
        blueprint.add_url_rule("/report", "report", lambda: "inventory report")
        blueprint.add_url_rule("/badge", "badge", lambda: "badge")
        registry.add_provider_blueprint(blueprint)
        registry.allow_anonymous("extra.badge")


def test_plugin_blueprints_are_behind_the_login(make_provider: Any) -> None:
    from tenfra import hookimpl
    from tenfra.pluginmanager import get_plugin_manager

    plugin = _BlueprintPlugin()
    hookimpl(_BlueprintPlugin.tenfra_add_provider_blueprints)
    manager = get_plugin_manager()
    manager.pm.register(plugin, name="test-blueprints")
    manager._registries.clear()
    try:
        provider = make_provider()
        credential = provider.enroll("web-1")
        assert provider.client.get("/extra/report").status_code == 401
        assert provider.get("/extra/report", credential).status_code == 403
        assert provider.client.get("/extra/badge").status_code == 200
        assert "extra.badge" in provider.app.config["TENFRA_ANONYMOUS"]
    finally:
        manager.pm.unregister(name="test-blueprints")
        manager._registries.clear()
