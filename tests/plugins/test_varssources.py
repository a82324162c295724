"""Vars sources file, glob, http and env, against real files and a real HTTP server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tenfra.convert import structure
from tenfra.errors import InventoryError, ValidationError
from tenfra.inventory import SourceContext, load_vars
from tenfra.pluginmanager import PluginInfo, PluginManager


def _manager() -> PluginManager:
    """Only the vars sources, so these tests do not depend on other plugins."""
    from tenfra.plugins import varssources

    manager = PluginManager(load_entry_points=False)
    manager.register(
        varssources,
        PluginInfo(
            name="varssources",
            version="test",
            origin="builtin",
            distribution="tenfra",
            entry_point=None,
            module=varssources.__name__,
        ),
    )
    return manager


MANAGER = _manager()


class Server:
    """A real HTTP server on 127.0.0.1: path -> (status, content type, body, delay)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes, float]] = {}
        self.headers: list[dict[str, str]] = []
        routes, seen = self.routes, self.headers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(dict(self.headers))
                status, ctype, body, delay = routes.get(
                    self.path, (404, "text/plain", b"missing", 0.0)
                )
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def add(
        self,
        path: str,
        body: Any,
        *,
        status: int = 200,
        content_type: str = "application/json",
        delay: float = 0.0,
    ) -> str:
        data = (
            body
            if isinstance(body, bytes)
            else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        )
        self.routes[path] = (status, content_type, data, delay)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def _load(name: str, options: Any, tmp_path: Path, **env: str) -> Any:
    cls = MANAGER.vars_sources[name]
    if isinstance(options, str):
        options = {cls.free_form: options}
    parsed = structure(options, cls.Options, source="test")
    ctx = SourceContext(
        base_dir=tmp_path, label=f"test: vars source {name!r}", environ=env
    )
    return cls().load(parsed, ctx)


def test_builtin_vars_sources_are_registered() -> None:
    assert list(MANAGER.vars_sources) == ["env", "file", "glob", "http"]


# -- file ------------------------------------------------------------------------------


def test_file_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("port: 80\nnames: [x, y]\nflag: no\n")
    (tmp_path / "b.json").write_text('{"port": 81, "nested": {"k": null}}')
    assert _load("file", "a.yaml", tmp_path) == {
        "port": 80,
        "names": ["x", "y"],
        "flag": "no",  # YAML 1.2: "no" stays a string
    }
    assert _load("file", "b.json", tmp_path) == {"port": 81, "nested": {"k": None}}


def test_file_empty_document_gives_no_vars(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert _load("file", "empty.yaml", tmp_path) == {}


def test_file_optional(tmp_path: Path) -> None:
    assert _load("file", {"path": "nope.yaml", "optional": True}, tmp_path) == {}
    with pytest.raises(InventoryError, match=r"file nope\.yaml not found"):
        _load("file", "nope.yaml", tmp_path)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("- a\n- b\n", "a.yaml holds a list, but a vars document must be a mapping"),
        ("1: one\n", "a.yaml: var name 1 is not a string; quote it"),
        ("a: 1\na: 2\n", "a.yaml:2:1: duplicate key 'a'"),
        ("a: [1\n", "not valid YAML"),
    ],
)
def test_file_malformed(body: str, expected: str, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(body)
    with pytest.raises(InventoryError) as info:
        _load("file", "a.yaml", tmp_path)
    assert expected in str(info.value)
    assert str(info.value).startswith("test: vars source 'file': ")


# -- glob ------------------------------------------------------------------------------


def test_glob_merges_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / "20-late.yaml").write_text("a: late\nc: 3\n")
    (tmp_path / "vars" / "10-early.yaml").write_text("a: early\nb: 2\n")
    assert _load("glob", "vars/*.yaml", tmp_path) == {"a": "late", "b": 2, "c": 3}


def test_glob_no_match(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no file matches"):
        _load("glob", "vars/*.yaml", tmp_path)
    assert _load("glob", {"pattern": "vars/*.yaml", "allowEmpty": True}, tmp_path) == {}


# -- http ------------------------------------------------------------------------------


def test_http_json_and_yaml(server: Server, tmp_path: Path) -> None:
    url = server.add("/v.json", {"region": "eu", "replicas": 3})
    assert _load("http", url, tmp_path) == {"region": "eu", "replicas": 3}
    url = server.add("/v", "region: us\n", content_type="application/x-yaml")
    assert _load("http", url, tmp_path) == {"region": "us"}


def test_http_headers_and_token(server: Server, tmp_path: Path) -> None:
    url = server.add("/v", {"a": 1})
    options = {"url": url, "tokenEnv": "VAULT", "headers": {"X-Env": "prod"}}
    assert _load("http", options, tmp_path, VAULT="t0k") == {"a": 1}
    assert server.headers[-1]["Authorization"] == "Bearer t0k"
    assert server.headers[-1]["X-Env"] == "prod"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ('["a"]', "application/json", "holds a list, but a vars document must be"),
        ('{"a": ', "application/json", "did not return valid JSON"),
        ("a: b: c\n", "application/yaml", "not valid YAML"),
        ('"text"', "application/json", "holds a string"),
    ],
)
def test_http_malformed(
    body: str, content_type: str, expected: str, server: Server, tmp_path: Path
) -> None:
    url = server.add("/bad", body, content_type=content_type)
    with pytest.raises(InventoryError, match=expected):
        _load("http", url, tmp_path)


def test_http_timeout(server: Server, tmp_path: Path) -> None:
    url = server.add("/slow", {"a": 1}, delay=1.5)
    with pytest.raises(InventoryError, match=r"timed out after 0\.2 s"):
        _load("http", {"url": url, "timeout": 0.2}, tmp_path)


def test_http_status_error(server: Server, tmp_path: Path) -> None:
    url = server.add("/forbidden", "no", status=403, content_type="text/plain")
    with pytest.raises(
        InventoryError, match="HTTP 403 Forbidden; check the credentials"
    ):
        _load("http", url, tmp_path)


# -- env -------------------------------------------------------------------------------


def test_env_prefix(tmp_path: Path) -> None:
    env = {"APP_PORT": "8080", "APP_DB_HOST": "db", "OTHER": "x", "APP_": "bare"}
    assert _load("env", "APP_", tmp_path, **env) == {"port": "8080", "db_host": "db"}
    options = {"prefix": "APP_", "stripPrefix": False, "lowercase": False}
    assert _load("env", options, tmp_path, **env) == {
        "APP_PORT": "8080",
        "APP_DB_HOST": "db",
    }


def test_env_names(tmp_path: Path) -> None:
    env = {"HOME": "/root", "LANG": "C"}
    assert _load("env", {"names": ["HOME", "MISSING"]}, tmp_path, **env) == {
        "home": "/root"
    }
    with pytest.raises(InventoryError, match="'MISSING' is not set"):
        _load("env", {"names": ["MISSING"], "required": True}, tmp_path, **env)


def test_env_needs_prefix_or_names(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="give a prefix"):
        _load("env", {}, tmp_path)


# -- load_vars: the entry point recipes and the load task use --------------------------


def test_load_vars_entry(tmp_path: Path) -> None:
    (tmp_path / "v.yaml").write_text("x: 1\n")
    assert load_vars(
        {"file": "v.yaml"},
        source="recipe.yaml",
        base_dir=tmp_path,
        registry=MANAGER.vars_sources,
    ) == {"x": 1}
    assert load_vars(
        {"env": {"prefix": "T_"}},
        source="recipe.yaml",
        base_dir=tmp_path,
        environ={"T_A": "1"},
        registry=MANAGER.vars_sources,
    ) == {"a": "1"}


def test_load_vars_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown vars source 'vault'"):
        load_vars(
            {"vault": {}},
            source="recipe.yaml",
            base_dir=tmp_path,
            registry=MANAGER.vars_sources,
        )
