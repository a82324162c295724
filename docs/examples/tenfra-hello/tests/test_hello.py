"""Tests of the hello resource type, written the way a plugin author would.

``tenfra_repo`` comes from the ``tenfra.testing`` pytest plugin, which pytest
loads by itself once tenfra is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

TENFRA = shutil.which("tenfra") or "tenfra"


def tenfra(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TENFRA, *args], cwd=repo, capture_output=True, text=True, check=False
    )


@pytest.fixture
def greeting_repo(tenfra_repo: Callable[..., Path], tmp_path: Path) -> Path:
    target = tmp_path / "greeting"
    return tenfra_repo(
        {"recipes/greet.yaml": {"tasks": [{"hello": f"path={target} name=tenfra"}]}}
    )


def test_writes_the_greeting_then_changes_nothing(
    greeting_repo: Path, tmp_path: Path
) -> None:
    first = tenfra(greeting_repo, "run", "greet")
    second = tenfra(greeting_repo, "run", "greet")

    assert first.returncode == 0, first.stderr
    assert "changed=1" in first.stdout
    assert (tmp_path / "greeting").read_text() == "Hello, tenfra!\n"
    assert second.returncode == 0, second.stderr
    assert "changed=0" in second.stdout


def test_check_mode_changes_nothing(greeting_repo: Path, tmp_path: Path) -> None:
    done = tenfra(greeting_repo, "run", "greet", "--check")

    assert done.returncode == 0, done.stderr
    assert "would-change=1" in done.stdout
    assert not (tmp_path / "greeting").exists()


def test_a_wrong_option_is_a_located_error(tenfra_repo: Callable[..., Path]) -> None:
    repo = tenfra_repo({"recipes/greet.yaml": {"tasks": [{"hello": "path=/x nam=y"}]}})

    done = tenfra(repo, "check")

    assert done.returncode == 2
    assert "greet.yaml:" in done.stdout + done.stderr
    assert "nam" in done.stdout + done.stderr
