"""Isolation between hosts: no route shows host B's data to host A; a deleted
host name starts from nothing.

Already proven elsewhere (see docs/security.md): a host gets only its own
bundle and assets and cannot post reports, logs or facts as another host
(tests/provider/test_routes.py); the compiler puts a host's vars only into its
own bundle (tests/core/test_compiler.py::test_canary_reaches_only_its_host).
This module walks *every* GET route with host A's credential against a fleet
where host B has a compiled bundle, assets, vars, reports, logs and facts,
each holding its own canary, and checks that none of B's canaries ever shows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tenfra.compiler import CompileOptions, compile_release

from .conftest import make_report
from .test_auth import admin_login

CANARIES = {
    "vars": "canary-vars-of-web-b-7d1f",
    "asset": "canary-asset-of-web-b-91ce",
    "report": "canary-report-of-web-b-2b60",
    "log": "canary-log-of-web-b-c3a8",
    "fact": "canary-fact-of-web-b-5e02",
}


def compile_fleet(root: Path, out: Path, key: Any) -> str:
    """A real release: web-a and web-b, each with its own recipe, asset and vars."""
    (root / "recipes" / "a" / "assets").mkdir(parents=True)
    (root / "recipes" / "b" / "assets").mkdir(parents=True)
    (root / "recipes" / "a" / "main.yaml").write_text(
        "name: a\ntargets: web-a\ntasks:\n  - copy: {src: a.conf, dest: /tmp/a.conf}\n",
        encoding="utf-8",
    )
    (root / "recipes" / "a" / "assets" / "a.conf").write_text("a\n", encoding="utf-8")
    (root / "recipes" / "b" / "main.yaml").write_text(
        "name: b\ntargets: web-b\ntasks:\n  - copy: {src: b.conf, dest: /tmp/b.conf}\n",
        encoding="utf-8",
    )
    (root / "recipes" / "b" / "assets" / "b.conf").write_text(
        CANARIES["asset"] + "\n", encoding="utf-8"
    )
    (root / "inventory.yaml").write_text(
        "hosts:\n"
        "  web-a: {vars: {token: public-a}}\n"
        f"  web-b: {{vars: {{token: {CANARIES['vars']}}}}}\n",
        encoding="utf-8",
    )
    result = compile_release(
        CompileOptions(
            inventory=root / "inventory.yaml",
            recipes=root / "recipes",
            out=str(out),
            signing_key=key,
        )
    )
    return str(result.name)


def _leaks(body: bytes) -> list[str]:
    return [what for what, canary in CANARIES.items() if canary.encode() in body]


def test_no_route_shows_host_b_data_to_host_a(
    app: Any, release_dir: Path, signing_key: Any, tmp_path: Path
) -> None:
    compile_fleet(tmp_path / "repo", release_dir, signing_key)
    app.scan()
    a = app.enroll("web-a")
    b = app.enroll("web-b")
    asset_b = hashlib.sha256((CANARIES["asset"] + "\n").encode()).hexdigest()

    # Host B's own view holds its canaries (so the checks below can fail).
    assert "vars" in _leaks(app.get("/api/v1/bundle", b).data)
    assert app.get(f"/api/v1/assets/{asset_b}", b).status_code == 200
    report = make_report("web-b", status="failed")
    report["recipes"][0]["tasks"][0]["diff"] = f"+{CANARIES['report']}\n"
    report["error"] = CANARIES["report"]
    stored = app.post(
        "/api/v1/reports", b, json=report, headers={"Idempotency-Key": report["id"]}
    )
    assert stored.status_code == 201
    assert (
        app.post("/api/v1/logs", b, json={"lines": [CANARIES["log"]]}).status_code
        == 201
    )
    assert (
        app.post(
            "/api/v1/facts", b, json={"facts": {"note": CANARIES["fact"]}}
        ).status_code
        == 200
    )

    # Every GET route, pointed at web-b in every way a URL can, with A's key.
    samples = {
        "name": "web-b",
        "digest": asset_b,
        "action": "promote",
        "filename": "style.css",
    }
    visited = 0
    for rule in app.app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        values = {arg: samples[arg] for arg in rule.arguments}
        url: str = rule.build(values, append_unknown=False)[1]
        for suffix in ("", "?host=web-b", f"?run={report['id']}"):
            answer = app.get(url + suffix, a)
            assert answer.status_code != 500, (url, answer.data[:200])
            assert _leaks(answer.data) == [], (url + suffix, answer.status_code)
            visited += 1
        answer = app.client.get(url + "?host=web-b")  # and anonymously
        assert _leaks(answer.data) == [], url
    assert visited >= 3 * 15

    # A's own bundle and every asset it may fetch are free of B's data.
    bundle = app.get("/api/v1/bundle", a)
    assert bundle.status_code == 200 and _leaks(bundle.data) == []
    import json

    for digest in json.loads(bundle.data)["assets"]:
        answer = app.get(f"/api/v1/assets/{digest}", a)
        assert answer.status_code == 200 and _leaks(answer.data) == []
    refused = app.get(f"/api/v1/assets/{asset_b}", a)
    assert refused.status_code == 403


def test_a_deleted_host_name_inherits_nothing(app: Any, writer: Any) -> None:
    from tenfra.provider.models import Host, HostStatus, LogLine, Run

    first = writer.publish({"web-a": {"a.conf": b"a"}})
    writer.publish({"web-a": {"a.conf": b"a2"}})
    app.scan()
    old = app.enroll("web-a")
    assert app.report(old, "web-a").status_code == 201
    app.post("/api/v1/logs", old, json={"lines": ["old machine log"]})
    app.post("/api/v1/facts", old, json={"facts": {"serial": "OLD-SERIAL"}})
    csrf = admin_login(app)
    pinned = app.client.post(
        "/admin/hosts/web-a/pin", data={"csrf": csrf, "release": first.name}
    )
    assert pinned.status_code == 302
    assert app.get("/api/v1/release", old).get_json()["name"] == first.name

    deleted = app.client.post(
        "/admin/hosts/web-a/delete", data={"csrf": csrf}, follow_redirects=True
    )
    assert "starts from nothing" in deleted.get_data(as_text=True)

    new = app.enroll("web-a")
    assert app.get("/api/v1/release", old).status_code == 401
    with app.app.app_context():
        host = Host.get(Host.name == "web-a")
        assert (host.pin, host.facts, host.facts_at) == (None, None, None)
        assert HostStatus.get_or_none(HostStatus.host == "web-a") is None
        assert Run.select().where(Run.host == "web-a").count() == 0
        assert LogLine.select().where(LogLine.host == "web-a").count() == 0
    # The new machine follows the rollout (the newest release), not the old pin.
    current = app.get("/api/v1/release", new).get_json()
    assert current["name"] != first.name
    page = app.client.get("/admin/hosts/web-a").get_data(as_text=True)
    assert "OLD-SERIAL" not in page and "old machine log" not in page
