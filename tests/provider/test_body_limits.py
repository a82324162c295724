"""Body limits on the agent API hold for bodies without a length, and deep JSON."""

from __future__ import annotations

import io
import json
from typing import Any


def _chunked(provider: Any, path: str, credential: str, body: bytes) -> Any:
    # No Content-Length, as a chunked request arrives from gunicorn.
    return provider.client.post(
        path,
        headers={
            "Authorization": f"Bearer {credential}",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
        input_stream=io.BytesIO(body),
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_body_over_the_limit_is_413(make_provider: Any) -> None:
    provider = make_provider(limits={"maxBody": "64KiB"})
    credential = provider.enroll("web-1")
    big = json.dumps({"facts": {"blob": "x" * 70000}}).encode()
    for path in ("/api/v1/facts", "/api/v1/logs", "/api/v1/reports"):
        answer = _chunked(provider, path, credential, big)
        assert answer.status_code == 413, (path, answer.get_json())
        assert "limits.maxBody" in answer.get_json()["error"]
    small = json.dumps({"facts": {"a": 1}}).encode()
    exact = small.ljust(64 * 1024)  # exactly the limit: accepted, not truncated
    assert _chunked(provider, "/api/v1/facts", credential, exact).status_code == 200


def test_deeply_nested_json_is_400(provider: Any) -> None:
    credential = provider.enroll("web-1")
    body = b'{"facts": ' + b"[" * 20000 + b"]" * 20000 + b"}"
    answer = provider.post(
        "/api/v1/facts", credential, data=body, content_type="application/json"
    )
    assert answer.status_code == 400, answer.get_json()
    assert "nested too deeply" in answer.get_json()["error"]


def test_a_bundle_not_matching_the_manifest_is_refused_with_409(
    provider: Any, writer: Any, release_dir: Any
) -> None:
    published = writer.publish({"web-1": {"site.conf": b"port 8080\n"}})
    provider.scan()
    credential = provider.enroll("web-1")
    path = release_dir / "releases" / published.name / "hosts" / "web-1.json"
    path.write_bytes(path.read_bytes().replace(b"{", b"{ ", 1))
    for url in ("/api/v1/bundle", "/api/v1/assets/" + "0" * 64):
        answer = provider.get(url, credential)
        assert answer.status_code == 409, answer.get_json()
        assert "does not match the manifest" in answer.get_json()["error"]
