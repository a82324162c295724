"""The zipapp agent inside the podman test image, against a real provider."""

from __future__ import annotations

import subprocess
import uuid
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from tenfra.agent.zipapp import build_zipapp

IMAGE = "localhost/tenfra-test:bookworm"
SITE = Path("/srv/tenfra-site")


@pytest.fixture
def repo(tmp_path: Path, support: Any) -> Any:
    """Recipes that write into /srv/tenfra-site (inside the container)."""
    root = tmp_path / "repo"
    root.mkdir()
    return support.Repo(root, SITE)


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zipapp(tmp_path_factory.mktemp("zipapp") / "tenfra.pyz")


def test_zipapp_holds_only_pure_python(pyz: Path) -> None:
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
    assert "__main__.py" in names
    assert any(n.startswith("tenfra/agent/") for n in names)
    assert any(n.startswith("ecdsa/") for n in names)
    assert any(n.endswith("entry_points.txt") and "tenfra-" in n for n in names)
    compiled = [n for n in names if n.endswith((".so", ".pyd", ".pyc"))]
    assert compiled == []
    assert not any(n.startswith(("flask/", "peewee", "cryptography/")) for n in names)


def test_zipapp_runs_isolated_on_the_host_python(pyz: Path) -> None:
    done = subprocess.run(
        ["/usr/bin/python3", "-I", str(pyz), "--version"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "files" in done.stdout and "(builtin)" in done.stdout


class Container:
    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        self.name = name

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
        )


@pytest.fixture
def container(podman_env: dict[str, str], pyz: Path, repo: Any) -> Iterator[Container]:
    name = f"tenfra-agent-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "podman",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "--label",
            "tenfra-test=agent",
            "-v",
            f"{pyz}:/opt/tenfra/tenfra.pyz:ro",
            "-v",
            f"{repo.public_key}:/opt/tenfra/release.pub:ro",
            IMAGE,
            "sleep",
            "infinity",
        ],
        check=True,
        capture_output=True,
        env=podman_env,
    )
    try:
        yield Container(podman_env, name)
    finally:
        subprocess.run(
            ["podman", "rm", "-f", "-t", "0", name], capture_output=True, env=podman_env
        )


@pytest.mark.integration
@pytest.mark.podman
def test_zipapp_converges_a_recipe_in_a_container(
    repo: Any, provider: Any, container: Container
) -> None:
    # The image has no cryptography: signatures go through the bundled ecdsa.
    probe = container.exec("python3", "-c", "import cryptography")
    assert probe.returncode != 0

    name = repo.compile("v1")
    provider.wait_release(name)
    agent = ["python3", "/opt/tenfra/tenfra.pyz", "agent"]
    done = container.exec(
        *agent,
        "enroll",
        "--provider",
        provider.url,
        "--host",
        "web-1",
        "--token",
        provider.token("web-1"),
        "--public-key",
        "/opt/tenfra/release.pub",
    )
    assert done.returncode == 0, done.stdout + done.stderr

    done = container.exec(*agent, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr + provider.log_tail()
    assert f"applied {name}: changed" in done.stdout
    assert "1 report(s) delivered, 0 pending" in done.stdout
    page = container.exec("cat", f"{SITE}/version.txt")
    assert page.stdout == "v1 for web-1 hello"
    assert container.exec("cat", f"{SITE}/index.html").stdout == "<h1>v1</h1>\n"

    # Converged: applying again changes nothing.
    done = container.exec(*agent, "run", "--once", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"applied {name}: ok" in done.stdout

    runs = provider.runs("web-1")
    assert [r["status"] for r in runs] == ["changed", "ok"]
    status = container.exec(*agent, "status")
    assert name in status.stdout and "pending reports    0" in status.stdout


def test_bundle_command_writes_a_runnable_zipapp(tmp_path: Path, support: Any) -> None:
    out = tmp_path / "dist" / "agent.pyz"
    done = subprocess.run(
        [*support.TENFRA, "agent", "bundle", "-o", str(out)],
        capture_output=True,
        text=True,
        env=support.tenfra_env(),
    )
    assert done.returncode == 0, done.stderr
    assert f"Wrote {out}" in done.stdout
    assert out.stat().st_mode & 0o111
    help_text = subprocess.run(
        ["/usr/bin/python3", "-I", str(out), "agent", "--help"],
        capture_output=True,
        text=True,
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "enroll" in help_text.stdout and "bundle" in help_text.stdout


def _python39() -> str:
    import shutil

    pyenv = sorted(Path("/root/.pyenv/versions").glob("3.9*/bin/python3.9"))
    for candidate in (*map(str, pyenv), shutil.which("python3.9")):
        if candidate and "/shims/" not in candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("Python 3.9 (the oldest supported agent Python) is not installed")


@pytest.mark.integration
def test_zipapp_applies_a_release_on_python_3_9(
    tmp_path: Path, pyz: Path, support: Any
) -> None:
    python = _python39()
    target = tmp_path / "machine"
    root = tmp_path / "repo39"
    root.mkdir()
    repo = support.Repo(root, target)
    folder = tmp_path / "provider39"
    folder.mkdir()
    server = support.Provider(folder, repo.url)
    server.start()
    try:
        name = repo.compile("v1")
        server.wait_release(name)
        state = tmp_path / "state39"
        agent = [python, "-I", str(pyz), "agent", "--state-dir", str(state)]
        enroll = subprocess.run(
            [
                *agent,
                "enroll",
                "--provider",
                server.url,
                "--host",
                "web-1",
                "--token",
                server.token("web-1"),
                "--public-key",
                str(repo.public_key),
            ],
            capture_output=True,
            text=True,
        )
        assert enroll.returncode == 0, enroll.stdout + enroll.stderr
        done = subprocess.run(
            [*agent, "run", "--once"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"applied {name}: changed" in done.stdout
        assert (target / "version.txt").read_text() == "v1 for web-1 hello"
        assert [r["status"] for r in server.runs("web-1")] == ["changed"]
    finally:
        server.stop()
