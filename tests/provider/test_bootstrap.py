"""Installing an agent: /bootstrap/install.sh, agent.pyz and the public key."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

IMAGE = "localhost/tenfra-test:bookworm"


@pytest.fixture
def fake_pyz(tmp_path: Path) -> Path:
    path = tmp_path / "agent.pyz"
    path.write_bytes(b"PK\x03\x04 not really a zipapp")
    return path


def test_agent_download_needs_a_token_or_a_credential(
    make_provider: Any, fake_pyz: Path
) -> None:
    from tenfra.provider.models import BootstrapToken

    provider = make_provider(agent={"pyz": str(fake_pyz)})
    assert provider.client.get("/bootstrap/agent.pyz").status_code == 401
    token = provider.token("web-1")
    answer = provider.get("/bootstrap/agent.pyz", token)
    assert answer.status_code == 200
    assert answer.data == fake_pyz.read_bytes()
    assert "tenfra.pyz" in answer.headers["Content-Disposition"]
    # The download did not spend the token.
    enrolled = provider.client.post(
        "/api/v1/enroll", json={"host": "web-1", "token": token}
    )
    assert enrolled.status_code == 200
    credential = enrolled.get_json()["credential"]
    # Spent now: the token no longer downloads; the credential does.
    assert provider.get("/bootstrap/agent.pyz", token).status_code == 401
    assert provider.get("/bootstrap/agent.pyz", credential).status_code == 200
    expired = provider.token("web-2")
    with provider.app.app_context():
        BootstrapToken.update(expires=time.time() - 1).where(
            BootstrapToken.host == "web-2"
        ).execute()
    assert provider.get("/bootstrap/agent.pyz", expired).status_code == 401


def test_missing_pyz_is_a_clear_503(make_provider: Any, tmp_path: Path) -> None:
    provider = make_provider(agent={"pyz": str(tmp_path / "nope.pyz")})
    answer = provider.get("/bootstrap/agent.pyz", provider.token("web-1"))
    assert answer.status_code == 503
    assert "tenfra agent bundle" in answer.get_json()["error"]


def test_install_script_uses_the_public_url(make_provider: Any) -> None:
    provider = make_provider(publicUrl="https://tenfra.example.com")
    script = provider.client.get("/bootstrap/install.sh").get_data(as_text=True)
    assert "PROVIDER='https://tenfra.example.com'" in script
    assert "DIR='/usr/local/lib/tenfra'" in script
    checked = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr


def test_install_script_refuses_an_unsafe_host_header(provider: Any) -> None:
    answer = provider.client.get(
        "/bootstrap/install.sh", headers={"Host": "x';rm -rf /;'"}
    )
    assert answer.status_code == 400
    assert "publicUrl" in answer.get_json()["error"]


def test_install_script_without_a_token_explains(provider: Any, tmp_path: Path) -> None:
    script = provider.client.get("/bootstrap/install.sh").get_data(as_text=True)
    done = subprocess.run(
        ["sh", "-s", "--", "--dir", str(tmp_path)],
        input=script,
        text=True,
        capture_output=True,
    )
    assert done.returncode == 1
    assert "no bootstrap token; pass --token TOKEN" in done.stderr


@pytest.mark.integration
@pytest.mark.podman
def test_one_pipe_installs_and_enrols_an_agent(
    podman_env: dict[str, str],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    make_writer: Any,
    serve_provider: Any,
    admin_hash: str,
    public_key_file: Path,
    cli: Any,
) -> None:
    """A fresh Debian container (python3 only, no curl) becomes an enrolled agent."""
    from tenfra.agent.zipapp import build_zipapp

    pyz = build_zipapp(tmp_path_factory.mktemp("zipapp") / "tenfra.pyz")
    releases = tmp_path / "releases"
    writer = make_writer(str(releases))
    writer.publish({"web-1": {"motd": b"hello"}})
    config = {
        "database": {"url": f"sqlite:///{tmp_path / 'provider.db'}"},
        "releases": {
            "url": str(releases),
            "scanInterval": 1,
            "publicKey": str(public_key_file),
        },
        "auth": {
            "secretKey": "install-test-secret-key-0123456",
            "users": [{"name": "admin", "passwordHash": admin_hash}],
        },
        "agent": {"pyz": str(pyz)},
    }
    server = serve_provider(config, "install")
    token = cli(
        "provider",
        "token",
        "--config",
        str(tmp_path / "install.yaml"),
        "--host",
        "web-1",
    ).strip()
    name = f"tenfra-install-{uuid.uuid4().hex[:8]}"
    fetch = (
        "import sys, urllib.request; "
        "sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())"
    )
    pipe = (
        f"python3 -c '{fetch}' {server.url}/bootstrap/install.sh"
        f" | sh -s -- --token {token} --host web-1"
    )
    try:
        done = subprocess.run(
            [
                "podman",
                "run",
                "--name",
                name,
                "--network",
                "host",
                IMAGE,
                "sh",
                "-c",
                f"{pipe} && python3 /usr/local/lib/tenfra/tenfra.pyz agent status",
            ],
            capture_output=True,
            text=True,
            env=podman_env,
            timeout=300,
        )
    finally:
        subprocess.run(
            ["podman", "rm", "-f", "-t", "0", name], capture_output=True, env=podman_env
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output + server.log.read_text()[-3000:]
    assert "Enrolled 'web-1'" in output
    assert "tenfra: enrolled; start the agent with" in output  # no systemd here
    import sqlite3

    with sqlite3.connect(tmp_path / "provider.db") as conn:
        row = conn.execute(
            "SELECT credential_hash IS NOT NULL FROM host WHERE name = 'web-1'"
        ).fetchone()
        spent = conn.execute("SELECT used IS NOT NULL FROM bootstrap_token").fetchone()
    assert row == (1,)
    assert spent == (1,)
