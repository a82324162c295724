"""Network resource types: http, download, http_listener."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

import attrs

from tenfra import hookimpl
from tenfra.errors import TaskError
from tenfra.fileops import Metadata, Mode, set_metadata
from tenfra.pluginmanager import Registry
from tenfra.resource import Context, ResourceType, Result, option

logger = logging.getLogger(__name__)

_in = attrs.validators.in_
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _pool(*, verify: bool, ca_cert: Optional[str], retries: int, follow: bool) -> Any:
    import urllib3

    kwargs: dict[str, Any] = {
        "cert_reqs": "CERT_REQUIRED" if verify else "CERT_NONE",
        "retries": urllib3.Retry(
            total=retries,
            redirect=10 if follow else False,
            raise_on_redirect=False,
            backoff_factor=0.2,
        ),
    }
    if ca_cert is not None:
        kwargs["ca_certs"] = ca_cert
    return urllib3.PoolManager(**kwargs)


def _transport_error(
    method: str, url: str, exc: Exception, timeout: float
) -> TaskError:
    import urllib3

    reason: Any = getattr(exc, "reason", None) or exc
    # NewConnectionError is a subclass of ConnectTimeoutError in urllib3 2.x.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = "could not connect; check the address and that the server is up"
    elif isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)):
        text = f"timed out after {timeout:g} s; check the server or raise 'timeout'"
    elif isinstance(reason, urllib3.exceptions.SSLError):
        text = (
            f"failed the TLS check ({reason}); give 'caCert' or, for a test "
            "server only, 'verify: false'"
        )
    elif isinstance(reason, urllib3.exceptions.ProtocolError):
        text = (
            "lost the connection (the server closed or reset it); check the "
            "server and try again"
        )
    elif isinstance(reason, urllib3.exceptions.LocationParseError):
        text = "has an invalid URL; check it"
    else:
        text = f"failed: {reason}"
    return TaskError(f"{method} {url} {text}.")


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url {url!r} must start with http:// or https://")


# -- http -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class HttpOptions:
    url: str = option("The URL (http:// or https://).")
    method: str = option("The HTTP method.", default="GET")
    headers: dict[str, str] = option("Request headers.", factory=dict)
    body: Optional[str] = option("The request body, as text.", default=None)
    json_body: Any = option(
        "A value sent as a JSON body (sets Content-Type: application/json).",
        default=None,
        metadata={"key": "json"},
    )
    user: Optional[str] = option("User name for HTTP basic auth.", default=None)
    password: Optional[str] = option(
        "Password for HTTP basic auth; never logged.", default=None
    )
    status: Optional[list[int]] = option(
        "Status codes that count as success; unset: any 2xx.", default=None
    )
    timeout: float = option(
        "Seconds to wait for connect and for each read.", default=30.0
    )
    retries: int = option("Retries on connection errors.", default=0)
    follow_redirects: bool = option("Follow redirects.", default=True)
    verify: bool = option("Check the server's TLS certificate.", default=True)
    ca_cert: Optional[str] = option(
        "A CA bundle file to check the certificate against.", default=None
    )
    changes: Optional[bool] = option(
        "Whether the request changes something on the server; unset: false for "
        "GET, HEAD and OPTIONS, true otherwise. Decides ``changed`` and whether "
        "the request is sent in check mode.",
        default=None,
    )

    def __attrs_post_init__(self) -> None:
        _check_url(self.url)
        if self.body is not None and self.json_body is not None:
            raise ValueError("give either 'body' or 'json', not both")
        if (self.user is None) != (self.password is None):
            raise ValueError("basic auth needs both 'user' and 'password'")


class Http(ResourceType):
    """Send an HTTP request with urllib3 and check the answer.

    Safe methods (GET, HEAD, OPTIONS) are ``ok`` and also run in check mode;
    other methods are ``changed`` (say ``changes: false`` for a POST that only
    reads). Values: ``status``, ``headers``, ``content``, ``json`` (when the
    answer is JSON), ``url``.

    Example::

        - http:
            url: http://127.0.0.1:8080/healthz
            status: [200]
          out: health
        - http:
            url: https://hooks.example.org/deploy
            method: POST
            json: {host: "${{ host }}"}
    """

    name = "http"
    Options = HttpOptions
    free_form = "url"

    def apply(self, options: HttpOptions, ctx: Context) -> Result:
        method = options.method.upper()
        changes = (
            options.changes
            if options.changes is not None
            else method not in SAFE_METHODS
        )
        if ctx.check and changes:
            return Result.changed(
                {"url": options.url},
                message=f"would send {method} {options.url}",
                check=True,
            )
        import urllib3

        headers = dict(options.headers)
        body: Optional[bytes] = None
        if options.json_body is not None:
            from tenfra.yamlio import to_plain

            body = json.dumps(to_plain(options.json_body)).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        elif options.body is not None:
            body = options.body.encode("utf-8")
        if options.user is not None and options.password is not None:
            headers.update(
                urllib3.make_headers(basic_auth=f"{options.user}:{options.password}")
            )
        pool = _pool(
            verify=options.verify,
            ca_cert=options.ca_cert,
            retries=options.retries,
            follow=options.follow_redirects,
        )
        started = time.monotonic()
        try:
            response = pool.request(
                method,
                options.url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=options.timeout, read=options.timeout),
                redirect=options.follow_redirects,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise _transport_error(method, options.url, exc, options.timeout) from None
        finally:
            pool.clear()
        elapsed = time.monotonic() - started
        ctx.log.debug(
            "%s %s -> %s in %.3f s", method, options.url, response.status, elapsed
        )
        content = response.data.decode("utf-8", errors="replace")
        values: dict[str, Any] = {
            "url": response.geturl() or options.url,
            "status": response.status,
            "headers": dict(response.headers),
            "content": content,
            "elapsed": round(elapsed, 3),
        }
        if "json" in response.headers.get("Content-Type", ""):
            try:
                values["json"] = json.loads(content)
            except ValueError:
                values["json"] = None
        wanted = options.status
        good = response.status in wanted if wanted else 200 <= response.status < 300
        if not good:
            expected = ", ".join(map(str, wanted)) if wanted else "2xx"
            snippet = "" if ctx.sensitive else f": {content.strip()[:200]}"
            return Result.failed(
                f"{method} {options.url} answered {response.status}, expected "
                f"{expected}{snippet}",
                values,
            )
        if changes:
            return Result.changed(values, message=f"{method} {options.url}")
        return Result.ok(values)


# -- download -------------------------------------------------------------------------


def parse_checksum(text: str) -> tuple[str, str]:
    """(algorithm, lower-case hex) from ``sha256:<hex>`` or a bare sha256 hex."""
    algo, sep, digest = text.partition(":")
    if not sep:
        algo, digest = "sha256", text
    algo = algo.lower()
    if algo not in hashlib.algorithms_guaranteed:
        raise ValueError(
            f"checksum algorithm {algo!r} is unknown; use sha256:<hex> (or sha512, "
            "sha1, md5)"
        )
    digest = digest.strip().lower()
    size = hashlib.new(algo).digest_size * 2
    if len(digest) != size or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"checksum {text!r} is not {size} hex digits of {algo}")
    return algo, digest


def file_digest(path: str, algo: str) -> str:
    digest = hashlib.new(algo)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@attrs.frozen(kw_only=True)
class DownloadOptions:
    url: str = option("The URL (http:// or https://).")
    dest: str = option(
        "The file to write; a folder when it ends with ``/`` (the file name is "
        "taken from the URL)."
    )
    checksum: Optional[str] = option(
        "Expected digest, ``sha256:<hex>`` (or sha512/sha1/md5). With it a "
        "present file is verified and kept; a mismatch after download fails.",
        default=None,
    )
    force: bool = option(
        "Without ``checksum``: download again and replace the file if the "
        "content differs (otherwise a present file is kept).",
        default=False,
    )
    headers: dict[str, str] = option("Request headers.", factory=dict)
    timeout: float = option(
        "Seconds to wait for connect and for each read.", default=60.0
    )
    retries: int = option("Retries on connection errors.", default=2)
    verify: bool = option("Check the server's TLS certificate.", default=True)
    ca_cert: Optional[str] = option(
        "A CA bundle file to check the certificate against.", default=None
    )
    extract: Optional[str] = option(
        "Extract the downloaded tar or zip archive into this folder (safely: no "
        "path or link may leave it). Done again only when the archive changes.",
        default=None,
    )
    strip_components: int = option(
        "Leading path components removed from archive members.", default=0
    )
    mode: Optional[Mode] = option(
        "Permissions of the downloaded file ('0644', 0o644, 'u=rw,go=r').",
        default=None,
    )
    owner: Optional[str] = option("Owner of the downloaded file.", default=None)
    group: Optional[str] = option("Group of the downloaded file.", default=None)

    def __attrs_post_init__(self) -> None:
        _check_url(self.url)
        if self.checksum is not None:
            parse_checksum(self.checksum)
        if self.strip_components < 0:
            raise ValueError("'stripComponents' cannot be negative")


def _dest_path(options: DownloadOptions) -> str:
    if not options.dest.endswith("/"):
        return options.dest
    from urllib.parse import unquote, urlsplit

    name = os.path.basename(unquote(urlsplit(options.url).path))
    if not name or name in (".", ".."):
        raise TaskError(
            f"Cannot tell a file name from {options.url!r}; give 'dest' as a full "
            "file path."
        )
    return os.path.join(options.dest, name)


def _fetch(
    options: DownloadOptions, dest: str, ctx: Context, algo: str
) -> tuple[str, str]:
    """Download into a temporary file next to ``dest``; (temp path, hex digest)."""
    import tempfile

    import urllib3

    directory = os.path.dirname(dest) or "."
    if not os.path.isdir(directory):
        raise TaskError(
            f"Cannot download to {dest!r}: the folder {directory!r} does not "
            "exist; create it first (the 'mkdir' resource)."
        )
    pool = _pool(
        verify=options.verify,
        ca_cert=options.ca_cert,
        retries=options.retries,
        follow=True,
    )
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
    digest = hashlib.new(algo)
    try:
        try:
            response = pool.request(
                "GET",
                options.url,
                headers=dict(options.headers),
                preload_content=False,
                timeout=urllib3.Timeout(connect=options.timeout, read=options.timeout),
            )
        except urllib3.exceptions.HTTPError as exc:
            raise _transport_error("GET", options.url, exc, options.timeout) from None
        try:
            if response.status != 200:
                raise TaskError(
                    f"GET {options.url} answered {response.status}, expected 200; "
                    "check the URL."
                )
            with os.fdopen(fd, "wb") as handle:
                fd = -1
                for chunk in response.stream(1 << 16):
                    digest.update(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except urllib3.exceptions.HTTPError as exc:
            raise _transport_error("GET", options.url, exc, options.timeout) from None
        finally:
            response.release_conn()
    except BaseException:
        if fd != -1:
            os.close(fd)
        os.unlink(tmp)
        raise
    finally:
        pool.clear()
    ctx.log.debug("downloaded %s to %s", options.url, dest)
    return tmp, digest.hexdigest()


class Download(ResourceType):
    """Download a file over HTTP(S), verify its checksum, optionally extract it.

    A present file whose checksum matches is not downloaded again; without a
    checksum a present file is kept unless ``force`` is set. Archives (tar
    with any compression, zip) are extracted safely and only again when the
    archive's content changed. Values: ``path``, ``sha256``, ``extracted``.

    Example::

        - download:
            url: https://example.org/tool-1.2.tar.gz
            dest: /opt/tool-1.2.tar.gz
            checksum: ${{ tool_checksum }}  # "sha256:" and 64 hex digits
            extract: /opt/tool
            stripComponents: 1
    """

    name = "download"
    Options = DownloadOptions
    free_form = None

    def apply(self, options: DownloadOptions, ctx: Context) -> Result:
        dest = _dest_path(options)
        algo, expected = (
            parse_checksum(options.checksum) if options.checksum else ("sha256", "")
        )
        meta = Metadata(mode=options.mode, owner=options.owner, group=options.group)
        messages: list[str] = []
        present = os.path.isfile(dest)
        if os.path.isdir(dest):
            raise TaskError(
                f"{dest!r} is a folder; end 'dest' with '/' to download into it."
            )
        fetch = not present or options.force
        if present and expected and file_digest(dest, algo) != expected:
            fetch = True
            messages.append("checksum of the present file differs")
        values: dict[str, Any] = {"path": dest, "url": options.url}
        if fetch and ctx.check:
            return Result.changed(
                values, message=f"would download {options.url}", check=True
            )
        if fetch:
            tmp, digest = _fetch(options, dest, ctx, algo)
            if expected and digest != expected:
                os.unlink(tmp)
                raise TaskError(
                    f"The checksum of {options.url} is {algo}:{digest}, expected "
                    f"{algo}:{expected}; the file on the server changed or the "
                    "checksum is wrong. Nothing was written."
                )
            if options.extract is not None:
                from tenfra.fileops import check_archive

                try:
                    check_archive(tmp, options.extract, strip=options.strip_components)
                except TaskError as exc:
                    os.unlink(tmp)
                    raise TaskError(f"{exc} Nothing was written.") from None
            if present and file_digest(dest, algo) == digest:
                os.unlink(tmp)
            else:
                uid, gid = meta.resolve()
                current = os.stat(dest) if present else None
                mode = meta.target_mode(current.st_mode if current else None)
                if uid != -1 or gid != -1:
                    os.chown(tmp, uid, gid)
                os.chmod(tmp, mode)
                os.replace(tmp, dest)
                messages.append(f"downloaded {options.url}")
        if os.path.exists(dest):
            messages.extend(set_metadata(dest, meta, check=ctx.check))
        sha256 = file_digest(dest, "sha256") if os.path.exists(dest) else None
        values["sha256"] = sha256
        values["extracted"] = False
        extract = options.extract is not None and sha256 is not None
        if extract and self._extract(options, dest, sha256 or "", ctx):
            values["extracted"] = True
            messages.append(f"extracted into {options.extract}")
        if not messages:
            return Result.ok(values)
        return Result.changed(values, message="; ".join(messages), check=ctx.check)

    def _extract(
        self, options: DownloadOptions, dest: str, sha256: str, ctx: Context
    ) -> bool:
        from tenfra.fileops import atomic_write, safe_extract

        folder = Path(options.extract or "")
        tag = hashlib.sha256(os.path.abspath(dest).encode()).hexdigest()[:12]
        marker = folder / f".tenfra-extracted-{tag}"
        stamp = f"{sha256} strip={options.strip_components}\n"
        try:
            if marker.read_text() == stamp:
                return False
        except (FileNotFoundError, NotADirectoryError):
            pass
        if ctx.check:
            return True
        safe_extract(dest, folder, strip=options.strip_components)
        atomic_write(marker, stamp.encode())
        return True


# -- http_listener --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Route:
    path: str = option("The request path to answer, such as ``/health``.")
    method: Optional[str] = option("Only this method; unset: any.", default=None)
    status: int = option("The status code.", default=200)
    body: str = option("The response body.", default="")
    json_body: Any = option(
        "A value answered as JSON instead of ``body``.",
        default=None,
        metadata={"key": "json"},
    )
    headers: dict[str, str] = option("Response headers.", factory=dict)


@attrs.frozen(kw_only=True)
class HttpListenerOptions:
    host: str = option("Address to bind; loopback by default.", default="127.0.0.1")
    port: int = option("Port to bind; 0 picks a free one.", default=0)
    routes: list[Route] = option(
        "Canned answers by path; other paths get 404.", factory=list
    )
    directory: Optional[str] = option(
        "Serve files from this folder for paths no route answers.", default=None
    )
    duration: float = option(
        "Seconds the server stays up before it stops by itself.", default=60.0
    )
    max_requests: Optional[int] = option(
        "Stop after answering this many requests.", default=None
    )
    record: Optional[str] = option(
        "Append every request (method, path, headers, body) as a JSON line to "
        "this file.",
        default=None,
    )

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not between 0 and 65535")
        if self.duration <= 0:
            raise ValueError("'duration' must be positive")


class _Listener:
    """One running server and its stop timer."""

    def __init__(self, options: HttpListenerOptions) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.options = options
        self.count = 0
        self.lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("http_listener: " + format, *args)

            def _handle(self) -> None:
                listener.answer(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        try:
            self.server = ThreadingHTTPServer((options.host, options.port), Handler)
        except OSError as exc:
            raise TaskError(
                f"Cannot listen on {options.host}:{options.port}: {exc.strerror}; "
                "choose another port (0 picks a free one)."
            ) from None
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.timer = threading.Timer(options.duration, self.stop)
        self.timer.daemon = True

    def start(self) -> None:
        self.thread.start()
        self.timer.start()

    def stop(self) -> None:
        self.timer.cancel()
        threading.Thread(target=self._close, daemon=True).start()

    def _close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, request: Any) -> None:
        from urllib.parse import urlsplit

        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        if self.options.record is not None:
            line = json.dumps(
                {
                    "method": request.command,
                    "path": request.path,
                    "headers": dict(request.headers),
                    "body": body.decode("utf-8", errors="replace"),
                }
            )
            with self.lock, open(self.options.record, "a", encoding="utf-8") as out:
                out.write(line + "\n")
        route = next(
            (
                r
                for r in self.options.routes
                if r.path == path
                and (r.method is None or r.method.upper() == request.command)
            ),
            None,
        )
        if route is not None:
            if route.json_body is not None:
                from tenfra.yamlio import to_plain

                payload = json.dumps(to_plain(route.json_body)).encode()
                headers = {"Content-Type": "application/json", **route.headers}
            else:
                payload = route.body.encode()
                headers = {"Content-Type": "text/plain; charset=utf-8", **route.headers}
            self._send(request, route.status, payload, headers)
        else:
            self._serve_file(request, path)
        with self.lock:
            self.count += 1
            done = (
                self.options.max_requests is not None
                and self.count >= self.options.max_requests
            )
        if done:
            self.stop()

    def _serve_file(self, request: Any, path: str) -> None:
        root = self.options.directory
        if root is not None:
            base = os.path.realpath(root)
            full = os.path.realpath(os.path.join(base, path.lstrip("/")))
            if full.startswith(base + os.sep) and os.path.isfile(full):
                with open(full, "rb") as handle:
                    data = handle.read()
                self._send(
                    request, 200, data, {"Content-Type": "application/octet-stream"}
                )
                return
        self._send(request, 404, b"not found\n", {"Content-Type": "text/plain"})

    def _send(
        self, request: Any, status: int, payload: bytes, headers: dict[str, str]
    ) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)


class HttpListener(ResourceType):
    """Start a short-lived HTTP server in the background, for tests.

    It binds 127.0.0.1 by default, answers canned ``routes`` or files from
    ``directory``, can ``record`` what it receives, and stops by itself after
    ``duration`` seconds or ``maxRequests`` requests. Starting it changes
    nothing on the host, so the result is ``ok``. Values: ``url``, ``port``.

    Example::

        - http_listener:
            routes:
              - {path: /health, json: {ok: true}}
            record: /tmp/requests.jsonl
            duration: 30
          out: server
        - http: url=${{ server.url }}/health
    """

    name = "http_listener"
    Options = HttpListenerOptions

    def apply(self, options: HttpListenerOptions, ctx: Context) -> Result:
        if options.record is not None and not os.path.isdir(
            os.path.dirname(os.path.abspath(options.record))
        ):
            raise TaskError(
                f"The folder of 'record' ({options.record!r}) does not exist; "
                "create it first."
            )
        server = _Listener(options)
        server.start()
        host = options.host if ":" not in options.host else f"[{options.host}]"
        url = f"http://{host}:{server.port}"
        ctx.log.debug("http_listener on %s for %s s", url, options.duration)
        return Result.ok(
            {"url": url, "port": server.port, "host": options.host},
            message=f"listening on {url} for {options.duration:g} s",
        )


RESOURCE_TYPES: list[type[ResourceType]] = [Http, Download, HttpListener]


@hookimpl
def tenfra_add_resource_types(registry: Registry[Any]) -> None:
    for cls in RESOURCE_TYPES:
        registry.add_resource_type(cls)
