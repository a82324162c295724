"""The yardstick of the provider benchmark: a bare Flask route answering 304."""

from __future__ import annotations

from flask import Flask, Response, request

app = Flask(__name__)
ETAG = "sha256:0000000000000000000000000000000000000000000000000000000000000000"


@app.get("/api/v1/release")
def release() -> Response:
    """304 when If-None-Match names the ETag, as a provider poll would answer."""
    if request.headers.get("If-None-Match", "").strip('"') == ETAG:
        response = Response(status=304)
    else:
        response = Response(f'{{"digest": "{ETAG}"}}', mimetype="application/json")
    response.headers["ETag"] = f'"{ETAG}"'
    return response
