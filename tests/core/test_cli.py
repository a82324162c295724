"""The CLI group: help, version, exit codes and one-line user errors."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from tenfra import cli as cli_module
from tenfra.errors import (
    EXIT_INTERNAL,
    EXIT_PLUGIN,
    EXIT_USER,
    EXIT_VERIFY,
    InputError,
    Location,
    PluginError,
    VerificationError,
)


def _tenfra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenfra.cli", *args], capture_output=True, text=True
    )


def test_help_lists_every_command_group() -> None:
    done = _tenfra("--help")
    assert done.returncode == 0
    for name in (
        "run",
        "check",
        "test",
        "compile",
        "diff",
        "inventory",
        "schema",
        "provider",
        "agent",
        "plugins",
        "keygen",
    ):
        assert f"\n  {name} " in done.stdout
    assert "Exit codes:" in done.stdout


def test_version_lists_plugins() -> None:
    done = _tenfra("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("tenfra 0.")
    assert "files 0." in done.stdout and "(builtin)" in done.stdout


def test_unknown_command_is_a_usage_error() -> None:
    done = _tenfra("frobnicate")
    assert done.returncode == EXIT_USER
    assert "No such command 'frobnicate'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (
            InputError("unknown key 'sorce'", Location("r.yaml", 3, 5)),
            EXIT_USER,
            "tenfra: error: r.yaml:3:5: unknown key 'sorce'",
        ),
        (
            PluginError("Plugin 'x' failed."),
            EXIT_PLUGIN,
            "tenfra: error: Plugin 'x' failed.",
        ),
        (
            VerificationError("bad signature"),
            EXIT_VERIFY,
            "tenfra: error: bad signature",
        ),
    ],
)
def test_tenfra_errors_print_one_line_and_map_to_exit_codes(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
    line: str,
) -> None:
    @click.command()
    def boom() -> None:
        raise error

    monkeypatch.setitem(cli_module.BUILTIN_COMMANDS, "boom", "tests_boom:boom")
    monkeypatch.setitem(sys.modules, "tests_boom", type(sys)("tests_boom"))
    sys.modules["tests_boom"].boom = boom  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["boom"])
    assert exited.value.code == code
    err = capsys.readouterr().err
    assert err.strip() == line
    assert "Traceback" not in err


def test_bugs_exit_70_with_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @click.command()
    def boom() -> None:
        raise ZeroDivisionError("oops")

    monkeypatch.setitem(cli_module.BUILTIN_COMMANDS, "boom", "tests_boom:boom")
    monkeypatch.setitem(sys.modules, "tests_boom", type(sys)("tests_boom"))
    sys.modules["tests_boom"].boom = boom  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["boom"])
    assert exited.value.code == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err
