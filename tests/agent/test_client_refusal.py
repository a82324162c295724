"""A provider refusing a mismatching bundle (409) is a rejection, not an outage."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Iterator

import pytest

from tenfra.agent.client import ProviderClient
from tenfra.errors import TransportError, VerificationError


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 409

    def do_GET(self) -> None:
        body = json.dumps({"error": "The bundle does not match"}).encode()
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Any]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_409_on_bundle_is_a_verification_error(server: Any) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = ProviderClient(url, credential="web-1.secret", retries=0)
    server.status = 409
    with pytest.raises(VerificationError, match=r"does not match.*rejected"):
        client.bundle()
    server.status = 500
    with pytest.raises(TransportError) as caught:
        client.bundle()
    assert not isinstance(caught.value, VerificationError)
