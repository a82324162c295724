"""Bootstrap recipes run on first install only; SIGTERM finishes the current task."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_bootstrap_recipes_run_on_first_install_only(
    repo: Any, provider: Any, enrolled: Path, support: Any
) -> None:
    marker = repo.target / "bootstrapped.txt"
    (repo.root / "recipes" / "boot.yaml").write_text(
        "phase: bootstrap\n"
        "targets: web-*\n"
        "tasks:\n"
        "  - write:\n"
        f"      dest: {marker}\n"
        "      format: raw\n"
        "      value: first install\n",
        encoding="utf-8",
    )
    first = repo.compile_cli("v1")
    provider.wait_release(first)
    done = support.agent(enrolled, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert marker.read_text() == "first install"
    assert (enrolled / "bootstrapped").read_text().strip() == first

    marker.unlink()
    second = repo.compile_cli("v2")
    provider.wait_release(second)
    done = support.agent(enrolled, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo.target / "version.txt").read_text() == "v2 for web-1 hello"
    assert not marker.exists()


def test_sigterm_finishes_the_current_task_and_reports(
    repo: Any, provider: Any, enrolled: Path, support: Any
) -> None:
    started = repo.target / "started.txt"
    after = repo.target / "after.txt"
    (repo.root / "recipes" / "slow.yaml").write_text(
        "targets: web-*\n"
        "tasks:\n"
        "  - name: begin\n"
        "    write:\n"
        f"      dest: {started}\n"
        "      format: raw\n"
        "      value: started\n"
        "  - name: slow\n"
        "    exec:\n"
        "      argv: [sleep, '2']\n"
        "  - name: never\n"
        "    write:\n"
        f"      dest: {after}\n"
        "      format: raw\n"
        "      value: too late\n",
        encoding="utf-8",
    )
    name = repo.compile_cli("v1")
    provider.wait_release(name)
    proc = subprocess.Popen(
        [*support.TENFRA, "agent", "--state-dir", str(enrolled), "run", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=support.tenfra_env(),
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert started.exists(), proc.communicate()
    time.sleep(0.5)  # well inside the two-second 'slow' task
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert time.monotonic() - signalled >= 1.0  # 'slow' was allowed to finish
    assert not after.exists()  # the run stopped after the task that was running

    run = provider.runs("web-1")[-1]
    assert "stopped (SIGTERM)" in run["error"]
    assert "after task 'slow'" in run["error"]
