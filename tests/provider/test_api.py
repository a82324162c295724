"""The agent API on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from tenfra import release as rel


def test_enrol_poll_bundle_asset_report(
    provider: Any, writer: Any, public_key_file: Any
) -> None:
    published = writer.publish({"web-1": {"site.conf": b"port 8080\n"}, "web-2": {}})
    assert provider.scan() == [published.name]
    credential = provider.enroll("web-1")
    assert credential.startswith("web-1.")

    answer = provider.get("/api/v1/release", credential)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body == {
        "release": published.release_id,
        "name": published.name,
        "sequence": published.sequence,
        "digest": published.digests["web-1"],
    }
    assert answer.headers["ETag"] == f'"{published.digests["web-1"]}"'

    # The agent's own verification accepts what the provider serves.
    bundle = provider.get("/api/v1/bundle", credential)
    assert bundle.status_code == 200
    signature = bundle.headers["X-Tenfra-Signature"]
    verified = rel.verify_bundle(
        bundle.data,
        signature,
        public_key_file,
        host="web-1",
        min_sequence=0,
        now=None,
    )
    assert verified["release"] == published.release_id

    digest = hashlib.sha256(b"port 8080\n").hexdigest()
    asset = provider.get(f"/api/v1/assets/{digest}", credential)
    assert asset.status_code == 200
    assert asset.data == b"port 8080\n"

    report = provider.report(
        credential, "web-1", release=published.release_id, sequence=published.sequence
    )
    assert report.status_code == 201, report.get_json()


def test_etag_answers_304_until_the_release_changes(provider: Any, writer: Any) -> None:
    first = writer.publish({"web-1": {}})
    provider.scan()
    credential = provider.enroll("web-1")
    etag = provider.get("/api/v1/release", credential).headers["ETag"]

    again = provider.get("/api/v1/release", credential, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    unquoted = provider.get(
        "/api/v1/release", credential, headers={"If-None-Match": first.digests["web-1"]}
    )
    assert unquoted.status_code == 304

    second = writer.publish({"web-1": {"new": b"content"}})
    provider.scan()
    changed = provider.get(
        "/api/v1/release", credential, headers={"If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.get_json()["digest"] == second.digests["web-1"]
    assert changed.headers["ETag"] != etag


def test_poll_without_release_is_a_clear_404(provider: Any) -> None:
    credential = provider.enroll("lonely")
    answer = provider.get("/api/v1/release", credential)
    assert answer.status_code == 404
    assert "No release is assigned to host 'lonely'" in answer.get_json()["error"]


# -- enrolment ------------------------------------------------------------------------


def test_token_is_single_use(provider: Any) -> None:
    token = provider.token("web-1")
    first = provider.post("/api/v1/enroll", json={"host": "web-1", "token": token})
    assert first.status_code == 200
    second = provider.post("/api/v1/enroll", json={"host": "web-1", "token": token})
    assert second.status_code == 401
    assert "already used or expired" in second.get_json()["error"]


def test_token_is_bound_to_its_host(provider: Any) -> None:
    token = provider.token("web-1")
    other = provider.post("/api/v1/enroll", json={"host": "db-1", "token": token})
    assert other.status_code == 403
    assert "issued for host 'web-1'" in other.get_json()["error"]
    # The refused attempt did not spend the token.
    own = provider.post("/api/v1/enroll", json={"host": "web-1", "token": token})
    assert own.status_code == 200


def test_token_expires(provider: Any) -> None:
    from tenfra.provider.models import BootstrapToken

    token = provider.token("web-1", ttl=60)
    with provider.app.app_context():
        BootstrapToken.update(expires=time.time() - 1).execute()
    answer = provider.post("/api/v1/enroll", json={"host": "web-1", "token": token})
    assert answer.status_code == 401
    assert "expired" in answer.get_json()["error"]


def test_unknown_token_and_missing_token(provider: Any) -> None:
    answer = provider.post("/api/v1/enroll", json={"host": "web-1", "token": "x" * 43})
    assert answer.status_code == 401
    no_token = provider.post("/api/v1/enroll", json={"host": "web-1"})
    assert no_token.status_code == 401
    assert "tenfra provider token --host web-1" in no_token.get_json()["error"]


def test_reenrolment_replaces_the_credential(provider: Any) -> None:
    old = provider.enroll("web-1")
    new = provider.enroll("web-1")
    assert provider.get("/api/v1/plugins", old).status_code == 401
    assert provider.get("/api/v1/plugins", new).status_code == 200


def test_credentials_are_stored_hashed(provider: Any) -> None:
    from tenfra.provider.models import Host

    credential = provider.enroll("web-1")
    secret = credential.rpartition(".")[2]
    with provider.app.app_context():
        stored = Host.get(Host.name == "web-1").credential_hash
    assert secret not in stored
    assert stored == hashlib.sha256(secret.encode()).hexdigest()


def test_approval_mode(make_provider: Any, writer: Any) -> None:
    from tenfra.provider.maintenance import approve_host

    provider = make_provider(auth={"approval": True})
    writer.publish({"new-1": {}})
    provider.scan()
    body = {"host": "new-1", "request": "r" * 40}
    pending = provider.post("/api/v1/enroll", json=body)
    assert pending.status_code == 202
    fingerprint = pending.get_json()["fingerprint"]
    assert provider.post("/api/v1/enroll", json=body).status_code == 202

    with provider.app.app_context():
        assert approve_host("new-1", actor="test")
    # Someone else asking for the same name gets nothing.
    thief = provider.post("/api/v1/enroll", json={"host": "new-1", "request": "t" * 40})
    assert thief.status_code == 403
    granted = provider.post("/api/v1/enroll", json=body)
    assert granted.status_code == 200
    credential = granted.get_json()["credential"]
    assert provider.get("/api/v1/release", credential).status_code == 200
    # Only once.
    assert provider.post("/api/v1/enroll", json=body).status_code == 202
    assert len(fingerprint) == 16


# -- strict validation and limits ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{", 400, "not valid JSON"),
        (b'{"host": "a", "host": "b"}', 400, "repeats the key 'host'"),
        (b'{"host": NaN}', 400, "NaN"),
        (b"[1, 2]", 422, "must be a JSON object"),
        (b'{"host": "web-1", "token": 5}', 422, "token: expected a string"),
        (b'{"host": "web-1", "tokn": "x"}', 422, "unknown key 'tokn'"),
        (b'{"host": "../../etc"}', 422, "not a valid host name"),
        (b"\xff\xfe", 400, "not UTF-8"),
    ],
)
def test_enrol_body_is_validated_strictly(
    provider: Any, body: bytes, status: int, message: str
) -> None:
    answer = provider.client.post(
        "/api/v1/enroll", data=body, content_type="application/json"
    )
    assert answer.status_code == status
    assert message in answer.get_json()["error"]


def test_content_type_must_be_json(provider: Any) -> None:
    answer = provider.client.post("/api/v1/enroll", data="host=x")
    assert answer.status_code == 415


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "great"}, "status"),
        ({"recipes": "none"}, "recipes: expected a list"),
        ({"extra": 1}, "unknown key 'extra'"),
        ({"started": "yesterday"}, "not an ISO 8601 time"),
        ({"sequence": "3"}, "sequence"),
    ],
)
def test_reports_are_validated_strictly(
    provider: Any, change: dict[str, Any], message: str
) -> None:
    credential = provider.enroll("web-1")
    answer = provider.report(credential, "web-1", **change)
    assert answer.status_code == 422, answer.get_json()
    assert message in answer.get_json()["error"]


def test_request_size_limit_is_413(make_provider: Any) -> None:
    provider = make_provider(limits={"maxBody": "64KiB"})
    credential = provider.enroll("web-1")
    big = {"facts": {"blob": "x" * 70000}}
    answer = provider.post("/api/v1/facts", credential, json=big)
    assert answer.status_code == 413
    assert "limit" in answer.get_json()["error"]
    small = provider.post("/api/v1/facts", credential, json={"facts": {"a": 1}})
    assert small.status_code == 200


def test_too_many_log_lines_is_413(make_provider: Any) -> None:
    provider = make_provider(limits={"maxLogLines": 10})
    credential = provider.enroll("web-1")
    answer = provider.post("/api/v1/logs", credential, json={"lines": ["x"] * 11})
    assert answer.status_code == 413


# -- reports ---------------------------------------------------------------------------


def test_reports_are_idempotent(provider: Any) -> None:
    from tenfra.provider.models import Run, TaskResult

    credential = provider.enroll("web-1")
    first = provider.report(credential, "web-1", id="run-1")
    assert first.status_code == 201
    again = provider.report(credential, "web-1", id="run-1")
    assert again.status_code == 200
    assert again.get_json()["status"] == "duplicate"
    with provider.app.app_context():
        assert Run.select().where(Run.report_id == "run-1").count() == 1
        assert TaskResult.select().count() == 2


def test_idempotency_key_must_match(provider: Any) -> None:
    credential = provider.enroll("web-1")
    body = {"id": "run-1", "host": "web-1", "started": "2030-01-01T00:00:00Z"}
    body.update(finished="2030-01-01T00:00:01Z", status="ok")
    answer = provider.post(
        "/api/v1/reports", credential, json=body, headers={"Idempotency-Key": "other"}
    )
    assert answer.status_code == 422
    assert "differs from the report id" in answer.get_json()["error"]


def test_report_details_and_latest_status(provider: Any) -> None:
    from tenfra.provider.models import HostStatus, Run, TaskResult

    credential = provider.enroll("web-1")
    provider.report(credential, "web-1", id="old", status="failed")
    provider.report(credential, "web-1", id="new", status="changed")
    with provider.app.app_context():
        status = HostStatus.get(HostStatus.host == "web-1")
        assert (status.report_id, status.status, status.changed, status.failed) == (
            "new",
            "changed",
            1,
            0,
        )
        run = Run.get(Run.report_id == "old")
        assert run.failed == 1
        task = TaskResult.get((TaskResult.run == run.id) & (TaskResult.position == 0))
        assert task.error == "disk full"
        assert "+port 8080" in task.diff


def test_an_older_report_does_not_replace_the_latest_status(provider: Any) -> None:
    from tenfra.provider.models import HostStatus

    credential = provider.enroll("web-1")
    provider.report(credential, "web-1", id="new", status="ok")
    provider.report(
        credential,
        "web-1",
        id="late",
        status="failed",
        started="2020-01-01T00:00:00Z",
        finished="2020-01-01T00:00:05Z",
    )
    with provider.app.app_context():
        assert HostStatus.get(HostStatus.host == "web-1").report_id == "new"


def test_redaction_of_diffs_and_errors(make_provider: Any) -> None:
    from tenfra.provider.models import TaskResult

    provider = make_provider(redact=[r"port \d+"])
    credential = provider.enroll("web-1")
    provider.report(credential, "web-1")
    with provider.app.app_context():
        diffs = [t.diff for t in TaskResult.select() if t.diff]
    assert diffs
    assert all("8080" not in d and "********" in d for d in diffs)


def test_logs_and_facts(provider: Any) -> None:
    from tenfra.provider.models import Host, LogLine

    credential = provider.enroll("web-1")
    lines = {"lines": ["plain", {"message": "structured", "level": "INFO"}]}
    assert provider.post("/api/v1/logs", credential, json=lines).status_code == 201
    bad = provider.post("/api/v1/logs", credential, json={"lines": [{"msg": "x"}]})
    assert bad.status_code == 422
    facts = {"facts": {"os": {"family": "debian"}, "cpus": 2}}
    assert provider.post("/api/v1/facts", credential, json=facts).status_code == 200
    with provider.app.app_context():
        assert [line.message for line in LogLine.select().order_by(LogLine.id)] == [
            "plain",
            "structured",
        ]
        assert json.loads(Host.get(Host.name == "web-1").facts)["cpus"] == 2


def test_plugins_endpoint_lists_the_plugin_set(provider: Any) -> None:
    credential = provider.enroll("web-1")
    answer = provider.get("/api/v1/plugins", credential)
    names = {row["name"] for row in answer.get_json()}
    assert "webhook" in names


def test_health_and_readiness(provider: Any) -> None:
    assert provider.client.get("/healthz").status_code == 200
    ready = provider.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["database"] == "ok"


def test_unsigned_releases_are_refused_when_a_key_is_set(
    provider: Any, writer: Any
) -> None:
    writer.publish({"web-1": {}}, sign=False)
    assert provider.scan() == []
    signed = writer.publish({"web-1": {"a": b"1"}})
    assert provider.scan() == [signed.name]


def test_half_written_releases_wait_for_latest(provider: Any, writer: Any) -> None:
    first = writer.publish({"web-1": {}})
    writer.publish({"web-1": {"a": b"2"}}, latest=False)
    assert provider.scan() == [first.name]


def _metric(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


def test_metrics(provider: Any, writer: Any) -> None:
    writer.publish({"web-1": {}})
    provider.scan()
    credential = provider.enroll("web-1")
    provider.report(credential, "web-1", status="failed")
    answer = provider.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = answer.get_data(as_text=True)
    assert 'tenfra_hosts_by_status{status="failed"} 1' in text
    assert "tenfra_hosts_enrolled 1" in text
    assert _metric(text, "tenfra_release_latest_sequence") == [
        "tenfra_release_latest_sequence 1"
    ]


def test_metrics_token(make_provider: Any) -> None:
    provider = make_provider(metrics={"token": "scrape-me"})
    assert provider.client.get("/metrics").status_code == 401
    assert provider.get("/metrics", "wrong").status_code == 401
    assert provider.get("/metrics", "scrape-me").status_code == 200


def test_storage_outage_keeps_polls_working(
    provider: Any, writer: Any, release_dir: Any
) -> None:
    import shutil

    writer.publish({"web-1": {"a": b"1"}})
    provider.scan()
    credential = provider.enroll("web-1")
    etag = provider.get("/api/v1/release", credential).headers["ETag"]
    shutil.rmtree(release_dir)  # storage gone (or unreachable)
    poll = provider.get("/api/v1/release", credential, headers={"If-None-Match": etag})
    assert poll.status_code == 304
    bundle = provider.get("/api/v1/bundle", credential)
    assert bundle.status_code == 503
    assert "missing from the release storage" in bundle.get_json()["error"]
    assert provider.report(credential, "web-1").status_code == 201
    ready = provider.client.get("/readyz")
    assert ready.status_code == 200
