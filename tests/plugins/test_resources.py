"""Resource-type behaviour that the one-file cases cannot show."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tenfra.convert import structure
from tenfra.pluginmanager import PluginManager, get_plugin_manager
from tenfra.report import Status
from tenfra.resource import Result

BUILTIN = {
    "file",
    "copy",
    "template",
    "write",
    "line",
    "rm",
    "mkdir",
    "stat",
    "temp",
    "temp_dir",
    "exec",
    "shell",
    "package",
    "service",
    "user",
    "group",
    "cron",
    "sysctl",
    "http",
    "download",
    "http_listener",
}


def apply(
    manager: PluginManager, name: str, options: dict[str, Any], ctx: Any
) -> Result:
    cls = manager.resource_types[name]
    typed = structure(options, cls.Options, source="test")
    result: Result = cls().apply(typed, ctx)
    return result


def test_the_installed_plugin_manager_registers_every_type() -> None:
    registry = get_plugin_manager().resource_types
    assert set(registry) >= BUILTIN
    assert registry.owner_of("copy") == "files"
    assert registry.owner_of("exec") == "commands"
    assert registry.owner_of("package") == "system"
    assert registry.owner_of("download") == "network"


def test_every_option_has_a_description_and_every_type_an_example(
    manager: PluginManager,
) -> None:
    import attrs

    for name, cls in manager.resource_types.items():
        assert "Example::" in (cls.__doc__ or ""), name
        for field in attrs.fields(cls.Options):
            assert field.metadata.get("description"), f"{name}.{field.name}"
        assert attrs.has(cls.Options) and cls.Options.__attrs_attrs__ is not None
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            instance = object.__new__(cls.Options)
            setattr(instance, attrs.fields(cls.Options)[0].name, 1)


def test_unchanged_copy_and_template_cost_well_under_a_millisecond(
    manager: PluginManager, make_ctx: Any, tmp_path: Path
) -> None:
    ctx = make_ctx(diff=True, vars={"name": "shop"})
    assets = ctx.recipe_dir / "assets"
    (assets / "site.conf").write_text("listen 80\n" * 50)
    (assets / "app.j2").write_text("name={{ name }}\n")
    copy = {"src": "site.conf", "dest": str(tmp_path / "site.conf"), "mode": "0644"}
    template = {"src": "app.j2", "dest": str(tmp_path / "app.conf")}
    assert apply(manager, "copy", copy, ctx).status is Status.CHANGED
    assert apply(manager, "template", template, ctx).status is Status.CHANGED

    copy_cls = manager.resource_types["copy"]
    typed = structure(copy, copy_cls.Options, source="t")
    resource = copy_cls()
    rounds = 1000
    started = time.perf_counter()
    for _ in range(rounds):
        assert resource.apply(typed, ctx).status is Status.OK
    per_copy = (time.perf_counter() - started) / rounds
    assert per_copy < 0.0005, f"{per_copy * 1e6:.0f} µs per unchanged copy"


def test_temp_creates_private_files_and_folders(
    manager: PluginManager, make_ctx: Any, tmp_path: Path
) -> None:
    ctx = make_ctx()
    made = apply(manager, "temp", {"dir": str(tmp_path), "content": "x"}, ctx)
    path = Path(made.values["path"])
    assert path.read_text() == "x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = apply(manager, "temp", {"dir": str(tmp_path)}, ctx)
    assert other.values["path"] != made.values["path"]
    folder = Path(
        apply(manager, "temp_dir", {"dir": str(tmp_path)}, ctx).values["path"]
    )
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_http_listener_answers_records_and_stops(
    manager: PluginManager, make_ctx: Any, tmp_path: Path
) -> None:
    ctx = make_ctx()
    record = tmp_path / "requests.jsonl"
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "file.txt").write_text("served\n")
    started = apply(
        manager,
        "http_listener",
        {
            "routes": [
                {"path": "/health", "json": {"ok": True}},
                {"path": "/hook", "method": "POST", "status": 201, "body": "made"},
            ],
            "directory": str(tmp_path / "www"),
            "record": str(record),
            "maxRequests": 5,
        },
        ctx,
    )
    url = started.values["url"]
    assert url.startswith("http://127.0.0.1:")

    health = apply(manager, "http", {"url": f"{url}/health"}, ctx)
    assert health.status is Status.OK and health.values["json"] == {"ok": True}
    hook = apply(
        manager,
        "http",
        {"url": f"{url}/hook", "method": "POST", "json": {"a": 1}, "status": [201]},
        ctx,
    )
    assert hook.status is Status.CHANGED and hook.values["content"] == "made"
    served = apply(manager, "http", {"url": f"{url}/file.txt"}, ctx)
    assert served.values["content"] == "served\n"
    escape = apply(
        manager, "http", {"url": f"{url}/../../etc/passwd", "status": [404]}, ctx
    )
    assert escape.status is Status.OK
    missing = apply(manager, "http", {"url": f"{url}/nope"}, ctx)
    assert missing.status is Status.FAILED and "answered 404" in (missing.message or "")

    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert [x["method"] for x in lines] == ["GET", "POST", "GET", "GET", "GET"]
    assert json.loads(lines[1]["body"]) == {"a": 1}

    from tenfra.errors import TaskError

    deadline = time.monotonic() + 5
    while True:  # after maxRequests the server stops listening
        try:
            apply(manager, "http", {"url": f"{url}/health", "timeout": 1}, ctx)
        except TaskError as exc:
            if "could not connect" in str(exc):
                break
            assert "lost the connection" in str(exc)
        assert time.monotonic() < deadline, "the listener did not stop"
        time.sleep(0.05)


def test_http_basic_auth_password_is_not_in_values(
    manager: PluginManager, make_ctx: Any, tmp_path: Path
) -> None:
    ctx = make_ctx()
    record = tmp_path / "r.jsonl"
    url = apply(manager, "http_listener", {"record": str(record)}, ctx).values["url"]
    result = apply(
        manager,
        "http",
        {"url": f"{url}/x", "user": "admin", "password": "canary-pw", "status": [404]},
        ctx,
    )
    assert "canary-pw" not in json.dumps(result.values)
    headers = json.loads(record.read_text())["headers"]
    sent = {k.lower(): v for k, v in headers.items()}["authorization"]
    assert sent.startswith("Basic ")


def test_exec_streams_output_to_the_task_log(
    manager: PluginManager, make_ctx: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    ctx = make_ctx()
    with caplog.at_level(logging.DEBUG, logger="tenfra.tests"):
        apply(manager, "exec", {"argv": ["sh", "-c", "echo visible"]}, ctx)
    assert "stdout: visible" in caplog.text
    caplog.clear()
    secret = make_ctx(sensitive=True)
    with caplog.at_level(logging.DEBUG, logger="tenfra.tests"):
        result = apply(
            manager, "exec", {"argv": ["sh", "-c", "echo canary >&2; exit 1"]}, secret
        )
    assert "canary" not in caplog.text
    assert "canary" not in (result.message or "")


def test_download_does_not_fetch_again(
    manager: PluginManager, make_ctx: Any, tmp_path: Path
) -> None:
    ctx = make_ctx()
    www = tmp_path / "www"
    www.mkdir()
    (www / "a.bin").write_bytes(os.urandom(4096))
    record = tmp_path / "r.jsonl"
    url = apply(
        manager,
        "http_listener",
        {"directory": str(www), "record": str(record)},
        ctx,
    ).values["url"]
    options = {"url": f"{url}/a.bin", "dest": str(tmp_path / "a.bin")}
    assert apply(manager, "download", options, ctx).status is Status.CHANGED
    assert apply(manager, "download", options, ctx).status is Status.OK
    digest = apply(
        manager, "stat", {"path": str(tmp_path / "a.bin"), "checksum": True}, ctx
    )
    with_sum = {**options, "checksum": f"sha256:{digest.values['sha256']}"}
    assert apply(manager, "download", with_sum, ctx).status is Status.OK
    assert len(record.read_text().splitlines()) == 1, "fetched only once"
