"""scripts/demo.sh, the README's demo command, run end to end as a user would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"
HOSTS = ("web-01", "web-02", "db-01")


def demo_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TENFRA_DEMO_SKIP_SETUP="1",
        TENFRA_DEMO_PYTHON=sys.executable,
        PYTHONUNBUFFERED="1",
    )
    env.pop("TENFRA_DEMO_NO_WAIT", None)
    env.pop("FLEET_SANDBOX_DIR", None)
    return env


def summary_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        fields = line.split()
        if fields and fields[0] in HOSTS and len(fields) >= 6:
            rows[fields[0]] = fields
    return rows


def port_is_closed(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def ui_url(output: str) -> str:
    match = re.search(r"Admin UI:\s+(http://127\.0\.0\.1:\d+)/admin/", output)
    assert match, output
    return match.group(1)


@pytest.mark.integration
def test_local_demo_runs_to_completion_in_a_sandbox(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    done = subprocess.run(
        [str(DEMO), "--mode", "local", "--no-wait", "--state", str(state)],
        capture_output=True,
        text=True,
        env=demo_env(),
        timeout=600,
    )
    output = done.stdout + done.stderr

    assert done.returncode == 0, output
    assert "passed" in output and "failed" not in output.split("[2/6]")[0]
    assert "Release 0000000001-" in output
    rows = summary_rows(output)
    assert sorted(rows) == sorted(HOSTS), output
    for host in HOSTS:
        where, status, changed, failed = rows[host][1:5]
        assert (where, status, failed) == ("sandbox", "changed", "0"), rows[host]
        assert int(changed) > 0
    assert re.search(r"Password:\s+\S{12,}", output)
    assert port_is_closed(ui_url(output)), "the provider still listens"

    # Every file the agents wrote is below the sandbox, one folder per host.
    sandbox = state / "sandbox"
    assert sorted(p.name for p in sandbox.iterdir()) == sorted(HOSTS)
    keys = sandbox / "web-01" / "home" / "alice" / ".ssh" / "authorized_keys"
    assert "alice@laptop" in keys.read_text(encoding="utf-8")
    assert (sandbox / "web-02" / "srv" / "www" / "example.com" / "index.html").is_file()
    assert not (sandbox / "db-01" / "srv").exists()  # db-01 is no web server
    assert subprocess.run(["getent", "passwd", "carol"]).returncode != 0


@pytest.mark.integration
def test_the_demo_waits_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    log = tmp_path / "demo.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [str(DEMO), "--mode", "local", "--skip-tests", "--state", str(state)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=demo_env(),
        )
    try:
        deadline = time.monotonic() + 300
        while "Press Ctrl-C" not in log.read_text(encoding="utf-8"):
            assert proc.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.5)
        output = log.read_text(encoding="utf-8")
        url = ui_url(output)
        assert not port_is_closed(url)
        daemons = [
            p
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _is_agent(p, state)
        ]
        assert len(daemons) == len(HOSTS)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(encoding="utf-8")
    assert "Shutting down..." in output and "demo: stopped" in output
    assert port_is_closed(url)
    assert [
        p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_agent(p, state)
    ] == []


def _is_agent(proc_dir: Path, state: Path) -> bool:
    try:
        cmdline = (proc_dir / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"run" in cmdline and any(str(state).encode() in a for a in cmdline)


@pytest.mark.integration
@pytest.mark.podman
def test_podman_demo_runs_the_tests_and_removes_its_containers(
    tmp_path: Path, podman_env: dict[str, str]
) -> None:
    state = tmp_path / "demo"
    env = demo_env()
    env["CONTAINERS_CONF"] = podman_env["CONTAINERS_CONF"]
    done = subprocess.run(
        [str(DEMO), "--mode", "podman", "--no-wait", "--state", str(state)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    output = done.stdout + done.stderr

    assert done.returncode == 0, output
    tested = output.split("[2/6]")[0]
    for suite in ("base >", "users >", "web >", "sandbox >", "greeting >"):
        assert suite in tested, tested
    assert re.search(r"\d+ passed in", tested) and " failed" not in tested
    rows = summary_rows(output)
    assert sorted(rows) == sorted(HOSTS), output
    for host in HOSTS:
        assert rows[host][1:3] == ["container", "changed"]
        assert rows[host][4] == "0"
    assert port_is_closed(ui_url(output))
    left = subprocess.run(
        ["podman", "ps", "-aq", "--filter", "label=tenfra.demo"],
        capture_output=True,
        text=True,
        env=podman_env,
    )
    assert left.stdout.split() == []
