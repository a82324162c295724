"""Report hooks: the webhook plugin against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any, Iterator

import pytest


class Receiver:
    """A real HTTP server that records requests and answers a chosen status."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 204
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _hook(receiver: Receiver, **changes: Any) -> dict[str, Any]:
    hook = {
        "type": "webhook",
        "name": "chat",
        "url": f"{receiver.url}/hook",
        "if": "status == 'failed'",
        "body": '{"text": "${{ host }} failed ${{ failed }} task(s)"}',
        "headers": {"X-Token": "abc"},
    }
    hook.update(changes)
    return hook


def _deliver(provider: Any) -> int:
    from tenfra.provider.hooks import deliver_due

    with provider.app.app_context():
        return deliver_due(provider.state.hooks)


def test_webhook_fires_on_its_condition_with_a_templated_body(
    make_provider: Any, receiver: Receiver
) -> None:
    provider = make_provider(hooks=[_hook(receiver)])
    credential = provider.enroll("web-1")
    assert provider.report(credential, "web-1", status="ok").status_code == 201
    assert _deliver(provider) == 0
    assert provider.report(credential, "web-1", status="failed").status_code == 201
    assert _deliver(provider) == 1
    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    assert sent["path"] == "/hook"
    assert json.loads(sent["body"]) == {"text": "web-1 failed 1 task(s)"}
    assert sent["headers"]["X-Token"] == "abc"
    assert sent["headers"]["Content-Type"] == "application/json"


def test_default_body_is_a_json_summary(make_provider: Any, receiver: Receiver) -> None:
    provider = make_provider(hooks=[_hook(receiver, body=None, **{"if": None})])
    credential = provider.enroll("web-1")
    provider.report(credential, "web-1", id="r-1", status="changed")
    assert _deliver(provider) == 1
    summary = json.loads(receiver.requests[0]["body"])
    assert summary["host"] == "web-1"
    assert summary["report"] == "r-1"
    assert summary["counts"]["changed"] == 1


def test_a_failing_hook_never_blocks_ingestion_and_is_retried(
    make_provider: Any, receiver: Receiver
) -> None:
    from tenfra.provider.models import HookDelivery

    provider = make_provider(hooks=[_hook(receiver)])
    credential = provider.enroll("web-1")
    receiver.status = 500
    assert provider.report(credential, "web-1", status="failed").status_code == 201
    assert _deliver(provider) == 0
    with provider.app.app_context():
        row = HookDelivery.get()
        assert (row.done, row.attempts) == (False, 1)
        assert "answered 500" in row.last_error
        assert row.next_attempt > time.time()
        assert _deliver(provider) == 0  # not due yet
        HookDelivery.update(next_attempt=0).execute()
    receiver.status = 200
    assert _deliver(provider) == 1
    assert len(receiver.requests) == 2
    with provider.app.app_context():
        assert HookDelivery.get().done


def test_an_unreachable_hook_does_not_fail_reports(make_provider: Any) -> None:
    import socket

    from tenfra.provider.models import HookDelivery, Run

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook = {"type": "webhook", "name": "gone", "url": f"http://127.0.0.1:{port}/"}
    provider = make_provider(hooks=[hook])
    credential = provider.enroll("web-1")
    assert provider.report(credential, "web-1").status_code == 201
    assert _deliver(provider) == 0
    with provider.app.app_context():
        assert Run.select().count() == 1
        assert "could not reach" in HookDelivery.get().last_error


def test_the_delivery_worker_thread_sends_promptly(
    make_provider: Any, receiver: Receiver
) -> None:
    provider = make_provider(hooks=[_hook(receiver)])
    provider.state.worker.start()
    try:
        credential = provider.enroll("web-1")
        provider.report(credential, "web-1", status="failed")
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        provider.state.worker.stop()
    assert len(receiver.requests) == 1


def test_bad_hook_configuration_fails_at_start_up(make_provider: Any) -> None:
    from tenfra.errors import ValidationError

    with pytest.raises(ValidationError, match="url 'ftp://x' must start with http"):
        make_provider(hooks=[{"type": "webhook", "url": "ftp://x"}])
    with pytest.raises(ValidationError, match="unknown report hook type 'pager'"):
        make_provider(hooks=[{"type": "pager"}])
    with pytest.raises(ValidationError, match="body template has a syntax error"):
        make_provider(
            hooks=[{"type": "webhook", "url": "http://127.0.0.1:1/", "body": "${{ x"}]
        )
    with pytest.raises(ValidationError, match="condition 'status ==' is not a valid"):
        make_provider(
            hooks=[{"type": "webhook", "url": "http://127.0.0.1:1/", "if": "status =="}]
        )


class _Recorder:
    """A plugin implementing tenfra_report_received (and one that raises)."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple[str, str]] = []
        self.fail = fail

    def tenfra_report_received(self, report: dict[str, Any], host: str) -> None:
        if self.fail:
            raise RuntimeError("plugin bug")
        self.seen.append((host, report["id"]))


def test_report_received_plugin_hook(provider: Any) -> None:
    from tenfra import hookimpl
    from tenfra.pluginmanager import get_plugin_manager

    good, bad = _Recorder(), _Recorder(fail=True)
    for plugin in (good, bad):
        hookimpl(plugin.tenfra_report_received.__func__)  # type: ignore[attr-defined]
    manager = get_plugin_manager().pm
    manager.register(good, name="test-recorder")
    manager.register(bad, name="test-broken")
    try:
        credential = provider.enroll("web-1")
        answer = provider.report(credential, "web-1", id="seen-1")
        assert answer.status_code == 201  # the broken plugin did not block it
    finally:
        manager.unregister(name="test-recorder")
        manager.unregister(name="test-broken")
    assert good.seen == [("web-1", "seen-1")]
