"""System resource types applied for real inside a podman container.

tenfra is pip-installed into a folder, copied into a container of the Debian
test image and run there with PYTHONPATH; ``helpers/apply_steps.py`` applies
a list of steps and prints the results as JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.podman]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/tenfra-test:bookworm"
HELPER = Path(__file__).parent / "helpers" / "apply_steps.py"


class Container:
    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.env = env

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", self.name, "sh", "-c", script],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=600,
        )

    def apply(self, *steps: dict[str, Any]) -> list[dict[str, Any]]:
        done = subprocess.run(
            [
                "podman",
                "exec",
                "-e",
                "PYTHONPATH=/opt/tenfra",
                self.name,
                "python3",
                "/opt/apply_steps.py",
                json.dumps(list(steps)),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr
        results: list[dict[str, Any]] = json.loads(done.stdout)
        return results


def _install_target(target: Path) -> None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if Path(uv).exists():
        argv = [uv, "pip", "install", "-q", "--python", sys.executable]
    else:
        argv = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*argv, "--target", str(target), str(ROOT)], check=True, timeout=600)


@pytest.fixture(scope="module")
def container(
    podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    target = tmp_path_factory.mktemp("tenfra-target")
    _install_target(target)
    name = f"tenfra-system-{uuid.uuid4().hex[:8]}"
    run_argv = ["podman", "run", "-d", "--name", name, "--label", "tenfra-test=1"]
    subprocess.run(
        [*run_argv, IMAGE, "sleep", "infinity"],
        env=podman_env,
        check=True,
        capture_output=True,
    )
    try:
        for source, dest in ((f"{target}/.", "/opt/tenfra"), (str(HELPER), "/opt/")):
            subprocess.run(
                ["podman", "cp", source, f"{name}:{dest}"],
                env=podman_env,
                check=True,
                capture_output=True,
            )
        yield Container(name, podman_env)
    finally:
        subprocess.run(
            ["podman", "rm", "-f", "-t", "0", name],
            env=podman_env,
            capture_output=True,
        )


def test_package_apt_installs_once_then_converges(container: Container) -> None:
    assert container.sh("command -v hello", check=False).returncode != 0
    check, first, second = container.apply(
        {"type": "package", "options": {"name": "hello"}, "check": True},
        {"type": "package", "options": {"name": "hello"}},
        {"type": "package", "options": {"name": "hello"}},
    )
    assert check["status"] == "would-change", check
    assert first["status"] == "changed", first
    assert first["values"]["backend"] == "apt"
    assert first["values"]["installed"] == ["hello"]
    assert second["status"] == "ok", second
    assert container.sh("hello").stdout.strip() == "Hello, world!"


def test_package_list_latest_and_absent(container: Container) -> None:
    listed, latest, removed, again = container.apply(
        {"type": "package", "options": {"name": ["hello", "tree"]}},
        {"type": "package", "options": {"name": ["hello", "tree"], "state": "latest"}},
        {"type": "package", "options": {"name": "tree", "state": "absent"}},
        {"type": "package", "options": {"name": "tree", "state": "absent"}},
    )
    assert listed["status"] == "changed", listed
    assert listed["values"]["installed"] == ["tree"]
    assert latest["status"] == "ok", latest
    assert removed["status"] == "changed" and removed["values"]["removed"] == ["tree"]
    assert again["status"] == "ok", again
    assert container.sh("command -v tree", check=False).returncode != 0


def test_package_unknown_name_fails_clearly(container: Container) -> None:
    (result,) = container.apply(
        {"type": "package", "options": {"name": "tenfra-no-such-package"}}
    )
    assert result["status"] == "error"
    assert "Installing tenfra-no-such-package with apt failed" in result["error"]
    assert "Unable to locate package" in result["error"]


def test_group_and_user_for_real(container: Container) -> None:
    steps = [
        {"type": "group", "options": {"name": "deploy", "gid": 2345}},
        {"type": "group", "options": {"name": "deploy", "gid": 2345}},
        {
            "type": "user",
            "options": {
                "name": "app",
                "uid": 2001,
                "groups": ["deploy"],
                "shell": "/bin/sh",
                "home": "/srv/app",
            },
        },
        {
            "type": "user",
            "options": {
                "name": "app",
                "uid": 2001,
                "groups": ["deploy"],
                "shell": "/bin/sh",
                "home": "/srv/app",
            },
        },
        {"type": "user", "options": {"name": "app", "shell": "/bin/bash"}},
        {"type": "user", "options": {"name": "app", "groups": []}},
    ]
    results = container.apply(*steps)
    assert [r["status"] for r in results] == [
        "changed",
        "ok",
        "changed",
        "ok",
        "changed",
        "changed",
    ], results
    entry = container.sh("getent passwd app").stdout.strip().split(":")
    assert entry[2] == "2001" and entry[5] == "/srv/app" and entry[6] == "/bin/bash"
    assert container.sh("id -nG app").stdout.split() == ["app"]
    assert container.sh("test -d /srv/app", check=False).returncode == 0

    removed, again, group_gone = container.apply(
        {"type": "user", "options": {"name": "app", "state": "absent"}},
        {"type": "user", "options": {"name": "app", "state": "absent"}},
        {"type": "group", "options": {"name": "deploy", "state": "absent"}},
    )
    assert (removed["status"], again["status"]) == ("changed", "ok")
    assert group_gone["status"] == "changed"
    assert container.sh("getent passwd app", check=False).returncode != 0


def test_user_password_hash_is_set_and_compared(container: Container) -> None:
    hashed = "$6$salt$" + "x" * 86
    results = container.apply(
        {"type": "user", "options": {"name": "pw", "password": hashed}},
        {"type": "user", "options": {"name": "pw", "password": hashed}},
    )
    assert [r["status"] for r in results] == ["changed", "ok"], results
    assert hashed not in json.dumps(results)
    shadow = container.sh("getent shadow pw").stdout.split(":")
    assert shadow[1] == hashed


def test_service_without_systemd(container: Container) -> None:
    (missing,) = container.apply(
        {"type": "service", "options": {"name": "nginx", "state": "started"}}
    )
    assert missing["status"] == "error"
    assert "this host does not run systemd" in missing["error"]
    assert "/etc/init.d/nginx" in missing["error"]

    container.sh(
        "cat > /etc/init.d/tenfra-demo <<'EOF'\n"
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  start) sleep 300 & echo $! > /run/tenfra-demo.pid ;;\n"
        '  stop) kill "$(cat /run/tenfra-demo.pid)"; rm -f /run/tenfra-demo.pid ;;\n'
        "  status) test -f /run/tenfra-demo.pid &&\n"
        '    kill -0 "$(cat /run/tenfra-demo.pid)" ;;\n'
        "  *) exit 3 ;;\n"
        "esac\n"
        "EOF\n"
        "chmod 755 /etc/init.d/tenfra-demo"
    )
    results = container.apply(
        {"type": "service", "options": {"name": "tenfra-demo", "state": "started"}},
        {"type": "service", "options": {"name": "tenfra-demo", "state": "started"}},
        {"type": "service", "options": {"name": "tenfra-demo", "state": "stopped"}},
        {"type": "service", "options": {"name": "tenfra-demo", "state": "stopped"}},
    )
    assert [r["status"] for r in results] == ["changed", "ok", "changed", "ok"], results


def test_cron_file_in_etc_cron_d(container: Container) -> None:
    options = {
        "name": "backup",
        "job": "/usr/local/bin/backup",
        "schedule": "5 4 * * *",
    }
    first, second = container.apply(
        {"type": "cron", "options": options}, {"type": "cron", "options": options}
    )
    assert (first["status"], second["status"]) == ("changed", "ok")
    text = container.sh("cat /etc/cron.d/backup; stat -c %a /etc/cron.d/backup").stdout
    assert "5 4 * * * root /usr/local/bin/backup\n" in text
    assert text.endswith("644\n")


def test_sysctl_in_a_container_reports_read_only(container: Container) -> None:
    current = container.sh("cat /proc/sys/vm/swappiness").stdout.strip()
    other = "11" if current != "11" else "12"
    same, different = container.apply(
        {"type": "sysctl", "options": {"name": "vm.swappiness", "value": int(current)}},
        {"type": "sysctl", "options": {"name": "vm.swappiness", "value": other}},
    )
    assert same["status"] == "changed", same  # the file is new; the value matched
    assert same["values"]["previous"] == current
    assert different["status"] == "error"
    assert "set 'apply: false'" in different["error"]
    conf = container.sh("cat /etc/sysctl.d/99-tenfra.conf").stdout
    assert conf == f"vm.swappiness = {other}\n"
