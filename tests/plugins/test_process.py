"""tenfra.process: real commands, captured and streamed output, env, timeouts."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from tenfra.errors import TaskError
from tenfra.process import merged_env, run


def test_argv_captures_stdout_and_stderr_apart() -> None:
    done = run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert done.rc == 3
    assert done.stdout == "out\n"
    assert done.stderr == "err\n"
    assert done.values()["stderrLines"] == ["err"]


def test_shell_runs_pipes() -> None:
    done = run("printf 'a\\nb\\n' | wc -l", shell=True)
    assert done.stdout.strip() == "2"


def test_env_is_merged_and_path_survives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENFRA_OUTER", "outer")
    done = run(
        ["sh", "-c", 'echo "$TENFRA_OUTER $TENFRA_INNER"'], env={"TENFRA_INNER": "in"}
    )
    assert done.stdout == "outer in\n"
    assert merged_env({"A": "1"})["PATH"] == os.environ["PATH"]


def test_env_path_is_used_to_find_the_program(tmp_path: Path) -> None:
    tool = tmp_path / "tenfra-tool"
    tool.write_text("#!/bin/sh\necho found\n")
    tool.chmod(0o755)
    done = run(["tenfra-tool"], env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.stdout == "found\n"


def test_missing_binary_is_a_clear_failure() -> None:
    with pytest.raises(TaskError, match="'tenfra-nope' was not found on PATH"):
        run(["tenfra-nope"])
    with pytest.raises(TaskError, match="does not exist; check the path"):
        run(["/nonexistent/tenfra-nope"])


def test_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("echo hi\n")
    with pytest.raises(TaskError, match="is not executable"):
        run([str(script)])


def test_timeout_kills_the_whole_group() -> None:
    started = time.monotonic()
    with pytest.raises(TaskError, match=r"did not finish within 0\.5 s") as info:
        run(["sh", "-c", "echo before; sleep 30 & sleep 30"], timeout=0.5)
    assert time.monotonic() - started < 5
    assert info.value.values["stdout"] == "before\n"


def test_stdin_and_cwd(tmp_path: Path) -> None:
    done = run(["sh", "-c", "cat; pwd"], stdin="fed\n", cwd=tmp_path)
    assert done.stdout == f"fed\n{tmp_path}\n"


def test_output_is_streamed_line_by_line(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tenfra.tests.stream")
    with caplog.at_level(logging.DEBUG, logger="tenfra.tests.stream"):
        run(["sh", "-c", "echo one; echo two >&2"], log=log)
    messages = [r.getMessage() for r in caplog.records]
    assert "stdout: one" in messages
    assert "stderr: two" in messages


def test_quiet_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tenfra.tests.quiet")
    with caplog.at_level(logging.DEBUG, logger="tenfra.tests.quiet"):
        done = run(["echo", "canary-secret"], log=log, quiet=True)
    assert done.stdout == "canary-secret\n"
    assert "canary-secret" not in caplog.text


def test_missing_cwd() -> None:
    with pytest.raises(TaskError, match="working directory '/nonexistent-dir'"):
        run(["true"], cwd="/nonexistent-dir")


def test_large_output_does_not_deadlock() -> None:
    done = run(
        ["sh", "-c", "head -c 2000000 /dev/zero | tr '\\0' x; echo; seq 1 50000 >&2"]
    )
    assert len(done.stdout) == 2000001
    assert done.stderr.splitlines()[-1] == "50000"


def test_background_child_holding_the_pipe_does_not_block() -> None:
    started = time.monotonic()
    done = run(["sh", "-c", "sleep 30 & echo started"])
    assert done.stdout == "started\n"
    assert time.monotonic() - started < 5
