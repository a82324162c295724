"""The agent's HTTP client for the provider's ``/api/v1`` (urllib3)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Optional

import attrs

from tenfra import __version__
from tenfra.errors import TransportError, VerificationError

if TYPE_CHECKING:
    import urllib3

logger = logging.getLogger(__name__)

USER_AGENT = f"tenfra-agent/{__version__}"
MAX_BUNDLE = 256 * 1024 * 1024
# The provider refuses to serve a bundle that does not match its manifest.
BUNDLE_REFUSED = 409


@attrs.frozen
class ReleaseInfo:
    """What ``GET /api/v1/release`` says about this host's current bundle."""

    release: str
    sequence: int
    digest: str


class ProviderClient:
    """Talks to one provider; every failure becomes a :class:`TransportError`.

    Idempotent requests are retried by urllib3 on connection errors and 502/
    503/504 with a short back-off; report posts are safe to retry as well
    because they carry an ``Idempotency-Key``.
    """

    def __init__(
        self,
        url: str,
        *,
        credential: Optional[str] = None,
        ca_file: Optional[str] = None,
        timeout: float = 30.0,
        retries: int = 2,
    ) -> None:
        import urllib3

        self.url = url.rstrip("/")
        self.credential = credential
        retry = urllib3.Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.3,
            backoff_jitter=0.3,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        kwargs: dict[str, Any] = {}
        if ca_file:
            kwargs["ca_certs"] = ca_file
        self.pool = urllib3.PoolManager(
            retries=retry,
            timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            headers={"User-Agent": USER_AGENT},
            **kwargs,
        )

    # -- low level ------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Optional[Any] = None,
        headers: Optional[dict[str, str]] = None,
        auth: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; raise TransportError on network errors and 4xx/5xx."""
        import urllib3

        all_headers = dict(headers or {})
        if auth:
            if not self.credential:
                raise TransportError(
                    "The agent has no provider credential; enrol it first with "
                    "'tenfra agent enroll'."
                )
            all_headers["Authorization"] = f"Bearer {self.credential}"
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        target = f"{self.url}{path}"
        try:
            response = self.pool.request(
                method, target, body=data, headers=all_headers, preload_content=True
            )
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise TransportError(
                f"Cannot reach the provider at {self.url} ({method} {path}): "
                f"{reason}. Check the URL in agent.yaml and that the provider runs; "
                "the agent keeps enforcing its last good release meanwhile."
            ) from None
        logger.debug("%s %s -> %s", method, path, response.status)
        if response.status >= 400:
            raise TransportError(
                f"The provider answered {response.status} to {method} {path}: "
                f"{_error_text(response)}",
                status=response.status,
            )
        return response

    # -- API ------------------------------------------------------------------------

    def enroll(
        self, host: str, token: Optional[str], *, request: Optional[str] = None
    ) -> tuple[Optional[str], Optional[str]]:
        """Exchange a bootstrap token, or an approval request, for a credential.

        Returns ``(credential, None)`` once enrolled, or ``(None, fingerprint)``
        while an approval request waits for an administrator; ``request`` is
        the secret that identifies this agent's request (approval mode).
        """
        body: dict[str, Any] = {"host": host}
        if token:
            body["token"] = token
        elif request:
            body["request"] = request
        response = self.request("POST", "/api/v1/enroll", body=body, auth=False)
        data = _json(response, "/api/v1/enroll")
        if response.status == 202:
            shown = data.get("fingerprint") if isinstance(data, dict) else None
            return None, str(shown or "?")
        credential = data.get("credential") if isinstance(data, dict) else None
        if not isinstance(credential, str) or not credential:
            raise TransportError(
                "The provider's enrolment answer has no credential; check that "
                f"{self.url} is a tenfra provider."
            )
        return credential, None

    def release(self, etag: Optional[str] = None) -> Optional[ReleaseInfo]:
        """This host's current release, or None when unchanged since ``etag``."""
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        response = self.request("GET", "/api/v1/release", headers=headers)
        if response.status == 304:
            return None
        data = _json(response, "/api/v1/release")
        try:
            return ReleaseInfo(
                release=str(data["release"]),
                sequence=int(data["sequence"]),
                digest=str(data["digest"]),
            )
        except (KeyError, TypeError, ValueError):
            raise TransportError(
                "The provider's answer to GET /api/v1/release lacks 'release', "
                "'sequence' or 'digest'; check that provider and agent versions "
                "match."
            ) from None

    def bundle(self) -> tuple[bytes, bytes]:
        """This host's bundle bytes and the (base64) signature header."""
        try:
            response = self.request("GET", "/api/v1/bundle")
        except TransportError as exc:
            if exc.status == BUNDLE_REFUSED:
                # The provider's stored bundle does not match its manifest:
                # a rejected release, not an unreachable provider.
                raise VerificationError(f"{exc}; it was rejected.") from None
            raise
        signature = response.headers.get("X-Tenfra-Signature", "")
        data = response.data
        if len(data) > MAX_BUNDLE:
            raise TransportError(
                f"The bundle is {len(data)} bytes, over the agent's limit of "
                f"{MAX_BUNDLE}; check the release."
            )
        return data, signature.encode("ascii", "replace")

    def asset(self, digest: str) -> bytes:
        response = self.request("GET", f"/api/v1/assets/{digest}")
        return bytes(response.data)

    def post_report(self, report: dict[str, Any], key: str) -> int:
        """Post one report; 201 when new, 200 when the provider had it already."""
        response = self.request(
            "POST", "/api/v1/reports", body=report, headers={"Idempotency-Key": key}
        )
        return int(response.status)

    def post_facts(self, facts: dict[str, Any]) -> None:
        self.request("POST", "/api/v1/facts", body={"facts": facts})

    def post_logs(self, lines: list[str]) -> None:
        self.request("POST", "/api/v1/logs", body={"lines": lines})

    def plugins(self) -> Any:
        return _json(self.request("GET", "/api/v1/plugins"), "/api/v1/plugins")


def _json(response: urllib3.BaseHTTPResponse, path: str) -> Any:
    try:
        return json.loads(response.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise TransportError(
            f"The provider's answer to {path} is not JSON; check that the URL "
            "points at a tenfra provider."
        ) from None


def _error_text(response: urllib3.BaseHTTPResponse) -> str:
    try:
        data = json.loads(response.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    text = response.data[:200].decode("utf-8", "replace").strip()
    return text or (response.reason or "no details")
