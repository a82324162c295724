"""Host sources raw, file, glob and http, against real files and a real HTTP server."""

from __future__ import annotations

import base64
import json
import socket
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Optional

import attrs
import pytest

from tenfra.errors import InventoryError, ValidationError
from tenfra.inventory import HostRecord, SourceContext, load_inventory
from tenfra.pluginmanager import PluginInfo, PluginManager


def source_manager() -> PluginManager:
    """Only the source plugins, so these tests do not depend on other plugins."""
    import importlib

    manager = PluginManager(load_entry_points=False)
    for name in ("hostsources", "varssources"):
        module = importlib.import_module(f"tenfra.plugins.{name}")
        manager.register(
            module,
            PluginInfo(
                name=name,
                version="test",
                origin="builtin",
                distribution="tenfra",
                entry_point=None,
                module=module.__name__,
            ),
        )
    return manager


MANAGER = source_manager()


@attrs.define
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0
    auth: Optional[str] = None  # the exact Authorization header required


class Server:
    """A real HTTP server on 127.0.0.1 serving fixed routes, recording requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers)}
                )
                route = server.routes.get(self.path)
                if route is None:
                    self._send(404, "text/plain", b"not found")
                    return
                if route.auth is not None and self.headers.get("Authorization") != (
                    route.auth
                ):
                    self._send(401, "text/plain", b"who are you")
                    return
                if route.delay:
                    time.sleep(route.delay)
                self._send(route.status, route.content_type, route.body)

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: Any, **kwargs: Any) -> str:
        if not isinstance(body, bytes):
            body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.routes[path] = Route(body=body, **kwargs)
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load(name: str, options: dict[str, Any], tmp_path: Path, **env: str) -> Any:
    cls = MANAGER.host_sources[name]
    from tenfra.convert import structure

    parsed = structure(options, cls.Options, source="test")
    ctx = SourceContext(
        base_dir=tmp_path, label=f"test: host source {name!r}", environ=env
    )
    return cls().load(parsed, ctx)


def _names(records: list[HostRecord]) -> list[str]:
    return [r.name for r in records]


def test_builtin_host_sources_are_registered() -> None:
    assert list(MANAGER.host_sources) == ["file", "glob", "http", "raw"]


# -- raw -------------------------------------------------------------------------------


def test_raw_expands_ranges(tmp_path: Path) -> None:
    records = _load("raw", {"hosts": ["web-[01:03]", "db"]}, tmp_path)
    assert _names(records) == ["web-01", "web-02", "web-03", "db"]


def test_raw_map_with_vars(tmp_path: Path) -> None:
    records = _load(
        "raw", {"hosts": {"a": {"vars": {"x": 1}, "groups": ["g"]}}}, tmp_path
    )
    assert records == [
        HostRecord(name="a", vars={"x": 1}, groups=("g",), origin="<a>")
    ] or (records[0].vars == {"x": 1} and records[0].groups == ("g",))


def test_raw_bad_payload(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="expected a list of host names"):
        _load("raw", {"hosts": 3}, tmp_path)


# -- file ------------------------------------------------------------------------------


def test_file_yaml_list_and_json_map(tmp_path: Path) -> None:
    (tmp_path / "hosts.yaml").write_text("- a\n- name: b\n  vars: {port: 22}\n")
    (tmp_path / "hosts.json").write_text('{"c": {"vars": {"x": true}}, "d": null}')
    assert _names(_load("file", {"path": "hosts.yaml"}, tmp_path)) == ["a", "b"]
    records = _load("file", {"path": "hosts.json"}, tmp_path)
    assert _names(records) == ["c", "d"]
    assert records[0].vars == {"x": True}


def test_file_missing(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"file nope.yaml not found .*relative to"):
        _load("file", {"path": "nope.yaml"}, tmp_path)


def test_file_malformed_yaml_is_located(tmp_path: Path) -> None:
    (tmp_path / "hosts.yaml").write_text("- a\n- [b\n")
    with pytest.raises(InventoryError) as info:
        _load("file", {"path": "hosts.yaml"}, tmp_path)
    assert "test: host source 'file': hosts.yaml:" in str(info.value)
    assert "not valid YAML" in str(info.value)


def test_file_wrong_shape_is_located(tmp_path: Path) -> None:
    (tmp_path / "hosts.yaml").write_text("a:\n  vars: {x: 1}\nb:\n  vars: 3\n")
    with pytest.raises(InventoryError) as info:
        _load("file", {"path": "hosts.yaml"}, tmp_path)
    assert "hosts.yaml:4:9: host 'b': vars: expected a mapping, got an integer" in str(
        info.value
    )


# -- glob ------------------------------------------------------------------------------


def test_glob_reads_files_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "b.yaml").write_text("[b1, b2]\n")
    (tmp_path / "hosts" / "a.yaml").write_text("[a1]\n")
    (tmp_path / "hosts" / "c.txt").write_text("[ignored]\n")
    records = _load("glob", {"pattern": "hosts/*.yaml"}, tmp_path)
    assert _names(records) == ["a1", "b1", "b2"]


def test_glob_no_match(tmp_path: Path) -> None:
    with pytest.raises(
        InventoryError, match=r"no file matches 'x/\*.yaml'.*allowEmpty"
    ):
        _load("glob", {"pattern": "x/*.yaml"}, tmp_path)
    assert _load("glob", {"pattern": "x/*.yaml", "allowEmpty": True}, tmp_path) == []


def test_glob_duplicate_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("[h]\n")
    (tmp_path / "b.yaml").write_text("[h]\n")
    with pytest.raises(InventoryError, match="'h' is defined in more than one file"):
        _load("glob", {"pattern": "*.yaml"}, tmp_path)


# -- http ------------------------------------------------------------------------------


def test_http_json_list(server: Server, tmp_path: Path) -> None:
    url = server.add("/hosts", ["a", {"name": "b", "vars": {"x": 1}}])
    records = _load("http", {"url": url}, tmp_path)
    assert _names(records) == ["a", "b"]
    assert records[1].vars == {"x": 1}


def test_http_yaml_map(server: Server, tmp_path: Path) -> None:
    url = server.add(
        "/hosts.yaml",
        "web-01:\n  groups: [web]\ndb-01:\n",
        content_type="application/yaml",
    )
    records = _load("http", {"url": url}, tmp_path)
    assert _names(records) == ["web-01", "db-01"]
    assert records[0].groups == ("web",)


def test_http_auto_format_from_body(server: Server, tmp_path: Path) -> None:
    url = server.add("/plain", "- a\n- b\n", content_type="text/plain")
    assert _names(_load("http", {"url": url}, tmp_path)) == ["a", "b"]
    url = server.add("/plainjson", '["c"]', content_type="text/plain")
    assert _names(_load("http", {"url": url}, tmp_path)) == ["c"]


def test_http_sends_headers_and_bearer_token(server: Server, tmp_path: Path) -> None:
    url = server.add("/secure", ["a"], auth="Bearer s3cret")
    options = {"url": url, "token": "s3cret", "headers": {"X-Team": "ops"}}
    assert _names(_load("http", options, tmp_path)) == ["a"]
    assert server.requests[-1]["headers"]["X-Team"] == "ops"


def test_http_token_from_environment(server: Server, tmp_path: Path) -> None:
    url = server.add("/secure", ["a"], auth="Bearer from-env")
    options = {"url": url, "tokenEnv": "CMDB_TOKEN"}
    assert _names(_load("http", options, tmp_path, CMDB_TOKEN="from-env")) == ["a"]
    with pytest.raises(InventoryError, match=r"'CMDB_TOKEN'.*is not set"):
        _load("http", options, tmp_path)


def test_http_basic_auth(server: Server, tmp_path: Path) -> None:
    expected = "Basic " + base64.b64encode(b"ops:pa55").decode()
    url = server.add("/basic", ["a"], auth=expected)
    options = {"url": url, "username": "ops", "passwordEnv": "PW"}
    assert _names(_load("http", options, tmp_path, PW="pa55")) == ["a"]


def test_http_wrong_credentials(server: Server, tmp_path: Path) -> None:
    url = server.add("/secure", ["a"], auth="Bearer right")
    with pytest.raises(InventoryError) as info:
        _load("http", {"url": url, "token": "wrong-token"}, tmp_path)
    message = str(info.value)
    assert f"GET {url} answered HTTP 401" in message
    assert "check the credentials" in message
    assert "wrong-token" not in message


def test_http_not_found_and_server_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(
        InventoryError, match="answered HTTP 404 Not Found; check the URL"
    ):
        _load("http", {"url": server.url("/nope")}, tmp_path)
    url = server.add("/boom", "oops", status=500, content_type="text/plain")
    with pytest.raises(InventoryError, match=r"HTTP 500.*the server failed"):
        _load("http", {"url": url, "retries": 0}, tmp_path)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            '["a", ',
            "application/json",
            "did not return valid JSON: Expecting value at line 1",
        ),
        ("{]", "application/json", "did not return valid JSON"),
        ("a: [b\n", "application/yaml", "not valid YAML"),
        ("42", "application/json", "expected a list of host names or a mapping"),
        ('[{"name": 1}]', "application/json", "name: expected a string"),
        (
            '{"a": {"vars": []}}',
            "application/json",
            "host 'a': vars: expected a mapping",
        ),
        ('["bad name"]', "application/json", "host name 'bad name' contains ' '"),
        (b"\xff\xfe", "application/json", "is not UTF-8 text"),
    ],
)
def test_http_malformed_payloads(
    body: Any, content_type: str, expected: str, server: Server, tmp_path: Path
) -> None:
    url = server.add("/bad", body, content_type=content_type)
    with pytest.raises(InventoryError) as info:
        _load("http", {"url": url}, tmp_path)
    message = str(info.value)
    assert expected in message
    assert message.startswith("test: host source 'http': ")
    assert "Traceback" not in message


def test_http_timeout(server: Server, tmp_path: Path) -> None:
    url = server.add("/slow", ["a"], delay=2.0)
    started = time.monotonic()
    with pytest.raises(InventoryError) as info:
        _load("http", {"url": url, "timeout": 0.3}, tmp_path)
    assert time.monotonic() - started < 1.8
    assert f"GET {url} timed out after 0.3 s" in str(info.value)
    assert "raise 'timeout'" in str(info.value)


def test_http_connection_refused(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hosts"
    with pytest.raises(InventoryError, match=f"GET {url} could not connect"):
        _load("http", {"url": url, "retries": 0}, tmp_path)


def test_http_url_with_credentials_is_not_shown(server: Server, tmp_path: Path) -> None:
    url = server.url("/nope").replace("http://", "http://user:hunter2@") + "?key=k3y"
    with pytest.raises(InventoryError) as info:
        _load("http", {"url": url}, tmp_path)
    assert "hunter2" not in str(info.value)
    assert "k3y" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"url": "ftp://x"}, "url must start with http:// or https://"),
        ({"url": "http://x", "timeout": 0}, "timeout must be a positive number"),
        ({"url": "http://x", "timeout": "5"}, "expected a number"),
        ({"url": "http://x", "token": "t", "username": "u"}, "not both"),
        ({"url": "http://x", "password": "p"}, "a password needs a username"),
        (
            {"url": "http://x", "format": "xml"},
            "format must be 'auto', 'json' or 'yaml'",
        ),
        ({"url": "http://x", "header": {}}, "unknown key 'header'"),
    ],
)
def test_http_option_errors(
    options: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=expected):
        _load("http", options, tmp_path)


# -- through an inventory ---------------------------------------------------------


def test_inventory_with_every_host_source(server: Server, tmp_path: Path) -> None:
    url = server.add("/cmdb", {"api-01": {"vars": {"tier": "api"}, "groups": ["api"]}})
    (tmp_path / "extra.yaml").write_text("[file-01]\n")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "x.json").write_text('["glob-01"]')
    (tmp_path / "inventory.yaml").write_text(
        textwrap.dedent(
            f"""
            hosts: [static-01]
            hostSources:
              - raw: {{hosts: ["raw-[1:2]"]}}
              - file: extra.yaml
              - glob: more/*.json
              - http: {{url: "{url}", timeout: 5}}
            groups:
              dynamic: "!static-01"
            """
        )
    )
    inv = load_inventory(tmp_path / "inventory.yaml", plugin_manager=MANAGER)
    assert inv.hosts == ["static-01", "raw-1", "raw-2", "file-01", "glob-01", "api-01"]
    assert inv.match("api") == ["api-01"]
    assert len(inv.match("dynamic")) == 5
    assert inv.var_layers("api-01") == [
        (f"host vars (hostSources[3] http {url})", {"tier": "api"})
    ]


def test_inventory_host_source_error_names_the_entry(
    server: Server, tmp_path: Path
) -> None:
    url = server.add("/bad", "{", content_type="application/json")
    (tmp_path / "inventory.yaml").write_text(f"hostSources:\n  - http: {url}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(tmp_path / "inventory.yaml", plugin_manager=MANAGER)
    assert str(info.value).startswith(
        f"{tmp_path}/inventory.yaml:2:5: host source 'http': {url} did not return "
        "valid JSON"
    )
