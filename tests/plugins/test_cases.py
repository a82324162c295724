"""Data-driven tests of the built-in resource types: one YAML file per case.

A case file lives in ``cases/<type>/<case>.yaml``::

    doc: what the case shows (free text)
    options: {...}            # the task's options; "$TMP" is the case's folder
    setup:
      files: {rel/path: "content" | {content, mode, link, dir}}
      assets: {name: "content"}
      served: {name: "content"}       # served at "$HTTP/name" on 127.0.0.1
      archives: {name.tar.gz: [{name, content | link | hardlink | dir}]}
    check: false              # run in check mode
    sensitive: false
    facts: {}
    vars: {}
    expect:
      status: ok | changed | would-change | failed | unknown
      error: "substring of the error or failure message"
      message: "substring of the result message"
      values: {key: value}    # a subset of the result values
      files: {rel/path: "content" | {content, contains, mode, link, dir, absent}}
      diff: ["substring", ...]
      notInDiff: ["substring", ...]
    idempotent: true          # default for a successful change: the second
                              # apply must report ok and change no file
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import threading
import time
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from tenfra.convert import structure
from tenfra.errors import TenfraError
from tenfra.pluginmanager import PluginManager
from tenfra.report import Status
from tenfra.resource import Result
from tenfra.yamlio import load_yaml_file, to_plain

CASES = Path(__file__).parent / "cases"
KNOWN_KEYS = {
    "doc",
    "type",
    "options",
    "setup",
    "check",
    "diff",
    "sensitive",
    "facts",
    "vars",
    "expect",
    "idempotent",
}


def _case_params() -> list[Any]:
    return [
        pytest.param(path, id=f"{path.parent.name}/{path.stem}")
        for path in sorted(CASES.glob("*/*.yaml"))
    ]


class _Handler(SimpleHTTPRequestHandler):
    """Files from the served folder, plus /_status/<code>, /_echo and /_slow."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _special(self) -> bool:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/_status/"):
            code = int(self.path.rsplit("/", 1)[1])
            payload = f"status {code}\n".encode()
            ctype = "text/plain"
        elif self.path.startswith("/_echo"):
            payload = json.dumps(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body.decode(),
                }
            ).encode()
            ctype = "application/json"
        elif self.path.startswith("/_slow"):
            time.sleep(2)
            payload, ctype = b"slow\n", "text/plain"
            code = 200
        else:
            return False
        if not self.path.startswith("/_status/"):
            code = 200
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        return True

    def do_GET(self) -> None:
        if not self._special():
            super().do_GET()

    def do_POST(self) -> None:
        if not self._special():
            self.send_error(405)

    do_PUT = do_DELETE = do_POST


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder) of a plain HTTP server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("served")

    def handler(*args: Any) -> _Handler:
        return _Handler(*args, directory=str(root))

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def substitute(node: Any, subs: dict[str, str]) -> Any:
    """Replace ``$TMP``/``$HTTP`` in every string, in place, keeping positions."""
    if isinstance(node, (CommentedMap, dict)):
        for key in list(node):
            node[key] = substitute(node[key], subs)
        return node
    if isinstance(node, (CommentedSeq, list)):
        for index, item in enumerate(node):
            node[index] = substitute(item, subs)
        return node
    if isinstance(node, str):
        for key, value in subs.items():
            node = node.replace(key, value)
        return node
    return node


def build_archive(path: Path, members: list[dict[str, Any]]) -> None:
    """A tar (any suffix but .zip) or zip archive with exactly these members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for member in members:
                info = zipfile.ZipInfo(member["name"])
                if "link" in member:
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    zf.writestr(info, member["link"])
                elif member.get("dir"):
                    info.external_attr = (stat.S_IFDIR | 0o755) << 16
                    zf.writestr(info, "")
                else:
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    zf.writestr(info, member.get("content", ""))
        return
    mode = "w:gz" if path.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tf:
        for member in members:
            info = tarfile.TarInfo(member["name"])
            info.mtime = 0
            data = b""
            if "link" in member:
                info.type = tarfile.SYMTYPE
                info.linkname = member["link"]
            elif "hardlink" in member:
                info.type = tarfile.LNKTYPE
                info.linkname = member["hardlink"]
            elif member.get("dir"):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            else:
                data = member.get("content", "").encode()
                info.size = len(data)
                info.mode = int(member.get("mode", "0644"), 8)
            tf.addfile(info, io.BytesIO(data) if data else None)


def build_setup(
    root: Path, ctx: Any, setup: dict[str, Any], served: Optional[Path] = None
) -> None:
    if setup.get("served") or setup.get("archives"):
        assert served is not None
    for name, spec in (setup.get("served") or {}).items():
        path = served / name  # type: ignore[operator]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec)
    for name, members in (setup.get("archives") or {}).items():
        build_archive(served / name, members)  # type: ignore[operator]
    for name, spec in (setup.get("assets") or {}).items():
        path = ctx.recipe_dir / "assets" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec)
    for name, spec in (setup.get("files") or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, str):
            path.write_text(spec)
            continue
        if spec.get("dir"):
            path.mkdir(exist_ok=True)
        elif "link" in spec:
            os.symlink(spec["link"], path)
        else:
            path.write_text(spec.get("content", ""))
        if "mode" in spec:
            os.chmod(path, int(spec["mode"], 8))


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under root with its kind, mode, and content or link target."""
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                found[rel] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    st.st_uid,
                    st.st_gid,
                    path.read_bytes(),
                )
    return found


def apply_once(
    manager: PluginManager,
    type_name: str,
    options: Any,
    ctx: Any,
    source: str,
) -> tuple[Optional[Result], Optional[str]]:
    """(result, None) or (None, error text) for one apply."""
    cls = manager.resource_types[type_name]
    try:
        typed = structure(options, cls.Options, source=source, what="the options")
        result = cls().apply(typed, ctx)
    except TenfraError as exc:
        return None, str(exc)
    if result.status is Status.FAILED:
        return result, result.message or ""
    return result, None


def check_files(root: Path, expected: dict[str, Any]) -> None:
    for name, spec in expected.items():
        path = root / name
        if isinstance(spec, str):
            assert path.is_file(), f"{name} is not a file"
            assert path.read_text() == spec, f"content of {name}"
            continue
        if spec.get("absent"):
            assert not os.path.lexists(path), f"{name} should be absent"
            continue
        assert os.path.lexists(path), f"{name} should exist"
        if "link" in spec:
            assert path.is_symlink() and os.readlink(path) == spec["link"]
        if spec.get("dir"):
            assert path.is_dir() and not path.is_symlink(), f"{name} not a dir"
        if "content" in spec:
            assert path.read_text() == spec["content"], f"content of {name}"
        if "contains" in spec:
            assert spec["contains"] in path.read_text(), f"content of {name}"
        if "mode" in spec:
            actual = format(stat.S_IMODE(path.stat().st_mode), "04o")
            assert actual == spec["mode"], f"mode of {name}"


def check_values(values: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, want in expected.items():
        assert key in values, f"value {key!r} missing from {sorted(values)}"
        assert values[key] == want, f"value {key!r}: {values[key]!r} != {want!r}"


@pytest.mark.parametrize("case_path", _case_params())
def test_case(
    case_path: Path,
    manager: PluginManager,
    make_ctx: Any,
    tmp_path: Path,
    http_server: tuple[str, Path],
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    raw = load_yaml_file(case_path)
    unknown = set(raw) - KNOWN_KEYS
    assert not unknown, f"unknown keys in the case file: {unknown}"
    case_id = f"{case_path.parent.name}-{case_path.stem}"
    base_url, served_root = http_server
    subs = {"$TMP": str(root), "$HTTP": f"{base_url}/{case_id}", "$SERVER": base_url}
    substitute(raw, subs)
    type_name = raw.get("type", case_path.parent.name)
    expect = to_plain(raw.get("expect") or {})
    ctx = make_ctx(
        check=bool(raw.get("check", False)),
        diff=bool(raw.get("diff", True)),
        sensitive=bool(raw.get("sensitive", False)),
        facts=to_plain(raw.get("facts") or {}),
        vars=to_plain(raw.get("vars") or {}),
    )
    build_setup(root, ctx, to_plain(raw.get("setup") or {}), served_root / case_id)
    before = snapshot(root)
    options = raw.get("options", {})

    result, error = apply_once(manager, type_name, options, ctx, str(case_path))

    if "error" in expect:
        assert error is not None, f"expected an error, got {result}"
        assert expect["error"] in error, error
        assert "Traceback" not in error
        assert snapshot(root) == before, "a failed apply must not change files"
        return
    assert error is None, error
    assert result is not None
    status = expect.get("status")
    if status is not None:
        assert result.status.value == status, result
    if "message" in expect:
        assert expect["message"] in (result.message or ""), result.message
    check_values(result.values, expect.get("values") or {})
    diff_text = result.diff or ""
    for part in expect.get("diff") or []:
        assert part in diff_text, diff_text
    for part in expect.get("notInDiff") or []:
        assert part not in diff_text, diff_text
    check_files(root, expect.get("files") or {})
    if ctx.check:
        assert snapshot(root) == before, "check mode changed files"

    default_idempotent = result.status is Status.CHANGED
    if raw.get("idempotent", default_idempotent):
        after = snapshot(root)
        again, error = apply_once(manager, type_name, options, ctx, str(case_path))
        assert error is None, error
        assert again is not None
        assert again.status is Status.OK, f"second apply: {again}"
        assert snapshot(root) == after, "the second apply changed files"


def test_every_type_has_success_and_error_cases(manager: PluginManager) -> None:
    for name in manager.resource_types:
        files = sorted((CASES / name).glob("*.yaml"))
        kinds = {
            "error"
            if "error" in (to_plain(load_yaml_file(f)).get("expect") or {})
            else "success"
            for f in files
        }
        assert kinds == {"error", "success"}, f"{name}: cases {kinds or 'none'}"
