"""Handlers: run once at the end, in order; notifications survive failures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tenfra.report import Status
from tenfra.state import State, default_state_dir, write_atomic

RECIPE = """
vars:
  broken: false
tasks:
  - name: change
    touch: {path: "${{ target }}", content: "${{ content }}"}
    notify: [restart, reload]
  - name: maybe fail
    record: {value: after, status: "${{ 'failed' if broken else 'ok' }}"}
  - name: change again
    record: {value: again, status: changed}
    notify: restart
handlers:
  - name: reload
    record: reload
  - name: restart
    record: restart
  - name: never notified
    record: never
"""


def run(kit: Any, tmp_path: Path, *, content: str, broken: bool, **kw: Any) -> Any:
    return kit.run(
        extra_vars={
            "target": str(tmp_path / "conf"),
            "content": content,
            "broken": broken,
        },
        **kw,
    )


def test_handlers_run_once_at_the_end_in_definition_order(
    kit: Any, tmp_path: Path
) -> None:
    kit.write("main", RECIPE)

    report = run(kit, tmp_path, content="v1", broken=False)

    assert report.status is Status.CHANGED
    assert kit.calls == ["after", "again", "reload", "restart"]
    names = [t.name for t in report.recipes[0].tasks]
    assert names == ["change", "maybe fail", "change again", "reload", "restart"]
    assert State(kit.state).pending_handlers("web-1", "main") == []


def test_a_notification_survives_a_later_failure_and_runs_exactly_once(
    kit: Any, tmp_path: Path
) -> None:
    kit.write("main", RECIPE)

    failed = run(kit, tmp_path, content="v1", broken=True)

    assert failed.status is Status.FAILED
    assert kit.calls == ["after"]
    assert State(kit.state).pending_handlers("web-1", "main") == ["restart", "reload"]
    stored = json.loads((kit.state / "pending-handlers.json").read_text())
    assert stored == {"web-1": {"main": ["restart", "reload"]}}

    kit.calls.clear()
    fixed = run(kit, tmp_path, content="v1", broken=False)  # the file is unchanged now

    assert fixed.status is Status.CHANGED
    assert kit.recipes_tasks(fixed)[0] == ("change", "ok")
    assert kit.calls == ["after", "again", "reload", "restart"]
    assert State(kit.state).pending_handlers("web-1", "main") == []

    kit.calls.clear()
    run(kit, tmp_path, content="v1", broken=False)

    assert kit.calls == ["after", "again", "restart"]  # only the new notification


def test_a_failed_handler_stays_pending(kit: Any, tmp_path: Path) -> None:
    kit.write(
        "main",
        """
        tasks:
          - record: {value: x, status: changed}
            notify: h
        handlers:
          - name: h
            record: {value: h, status: "${{ handler_status }}"}
        """,
    )

    first = kit.run(extra_vars={"handler_status": "failed"})
    pending = State(kit.state).pending_handlers("web-1", "main")
    second = kit.run(extra_vars={"handler_status": "ok"})

    assert first.status is Status.FAILED
    assert first.recipes[0].error.startswith(  # type: ignore[union-attr]
        "recipes/main.yaml:5:5: handler 'h' of recipe 'main' failed"
    )
    assert pending == ["h"]
    assert second.status is Status.CHANGED
    assert kit.calls == ["x", "h", "x", "h"]
    assert State(kit.state).pending_handlers("web-1", "main") == []


def test_check_mode_runs_handlers_in_check_mode_and_persists_nothing(
    kit: Any, tmp_path: Path
) -> None:
    kit.write("main", RECIPE)

    report = run(kit, tmp_path, content="v1", broken=False, check=True)

    assert [t.status.value for t in report.recipes[0].tasks] == [
        "would-change",
        "ok",
        "would-change",
        "ok",
        "ok",
    ]
    assert not (tmp_path / "conf").exists()
    assert not (kit.state / "pending-handlers.json").exists()


def test_handlers_are_kept_per_host_and_recipe(kit: Any, tmp_path: Path) -> None:
    state = State(tmp_path / "state")

    state.add_pending_handlers("a", "web", ["restart"])
    state.add_pending_handlers("a", "db", ["reload"])
    state.add_pending_handlers("b", "web", ["restart", "restart", "flush"])
    state.remove_pending_handler("a", "web", "restart")

    assert state.pending_handlers("a", "web") == []
    assert state.pending_handlers("a", "db") == ["reload"]
    assert state.pending_handlers("b", "web") == ["restart", "flush"]
    assert sorted(os.listdir(tmp_path / "state")) == ["pending-handlers.json"]


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"

    write_atomic(target, b"one")
    write_atomic(target, b"two")

    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["file.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_a_corrupt_state_file_is_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "pending-handlers.json").write_text("{not json")

    assert State(tmp_path).pending_handlers("h", "r") == []


def test_default_state_dir(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("TENFRA_STATE_DIR", str(tmp_path / "x"))
    assert default_state_dir() == tmp_path / "x"
    monkeypatch.delenv("TENFRA_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "tenfra"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "tenfra"


def test_a_pending_handler_the_recipe_lost_is_dropped(kit: Any) -> None:
    State(kit.state).add_pending_handlers("web-1", "main", ["gone", "h"])
    kit.write("main", "tasks:\n  - record: x\nhandlers:\n  - name: h\n    record: h\n")

    kit.run()

    assert kit.calls == ["x", "h"]
    assert State(kit.state).pending_handlers("web-1", "main") == []
