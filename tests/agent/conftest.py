"""Fixtures for agent tests: a recipe repository, releases, a real provider process."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from tenfra import release as rel

ROOT = Path(__file__).resolve().parents[2]
TENFRA = [sys.executable, "-m", "tenfra.cli"]


def tenfra_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TENFRA_STATE_DIR", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def recipe_text(target: Path, version: str) -> str:
    """A recipe writing two files into ``target`` (a folder the test owns)."""
    return (
        "name: site\n"
        "targets: web-*\n"
        "tasks:\n"
        "  - name: folder\n"
        "    file:\n"
        f"      path: {target}\n"
        "      state: directory\n"
        "  - name: page\n"
        "    copy:\n"
        "      src: index.html\n"
        f"      dest: {target}/index.html\n"
        "  - name: version\n"
        "    write:\n"
        f"      dest: {target}/version.txt\n"
        "      format: raw\n"
        f'      value: "{version} for ${{{{ host }}}} ${{{{ greeting }}}}"\n'
    )


class Repo:
    """A recipe repository, its signing key, and the releases compiled from it."""

    def __init__(self, root: Path, target: Path) -> None:
        self.root = root
        self.target = target
        self.out = root / "releases-out"
        self.url = f"file://{self.out}"
        key = rel.generate_private_key()
        self.key = key
        self.public_key = root / "release.pub"
        (root / "recipes" / "site" / "assets").mkdir(parents=True)
        self.public_key.write_bytes(rel.public_key_pem(key))
        self.private_key = root / "release.key"
        self.private_key.write_bytes(rel.private_key_pem(key))
        (root / "inventory.yaml").write_text(
            "hosts: [web-1, web-2]\nvars:\n  greeting: hello\n", encoding="utf-8"
        )

    def compile(self, version: str) -> str:
        """Write recipes for ``version`` and compile; returns the release name."""
        from tenfra.compiler import CompileOptions, compile_release

        (self.root / "recipes" / "site" / "main.yaml").write_text(
            recipe_text(self.target, version), encoding="utf-8"
        )
        (self.root / "recipes" / "site" / "assets" / "index.html").write_text(
            f"<h1>{version}</h1>\n", encoding="utf-8"
        )
        result = compile_release(
            CompileOptions(
                inventory=self.root / "inventory.yaml",
                recipes=self.root / "recipes",
                out=self.url,
                signing_key=self.key,
            )
        )
        return str(result.name)

    def compile_cli(self, version: str, *, env: Optional[dict[str, str]] = None) -> str:
        """Like :meth:`compile`, through ``tenfra compile`` in a subprocess (so
        plugins it loads stay out of the test process)."""
        recipe = self.root / "recipes" / "site" / "main.yaml"
        recipe.write_text(recipe_text(self.target, version), encoding="utf-8")
        (self.root / "recipes" / "site" / "assets" / "index.html").write_text(
            f"<h1>{version}</h1>\n", encoding="utf-8"
        )
        done = subprocess.run(
            [
                *TENFRA,
                "compile",
                "--inventory",
                str(self.root / "inventory.yaml"),
                "--recipes",
                str(self.root / "recipes"),
                "--out",
                self.url,
                "--signing-key",
                str(self.private_key),
            ],
            capture_output=True,
            text=True,
            env=env or tenfra_env(),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return self.latest()

    def latest(self) -> str:
        return (self.out / "LATEST").read_text(encoding="utf-8").strip()

    def bundle(self, name: str, host: str) -> tuple[bytes, bytes]:
        folder = self.out / "releases" / name / "hosts"
        return (
            (folder / f"{host}.json").read_bytes(),
            (folder / f"{host}.json.sig").read_bytes(),
        )

    def forge(self, host: str, bundle: bytes, signature: bytes) -> str:
        """Publish a release whose bundle for ``host`` is ``bundle``, as a
        compromised storage would: the manifest is rewritten (so its own
        signature no longer matches) and lists the forged bundle's digest.
        """
        latest = self.latest()
        manifest = json.loads(
            (self.out / "releases" / latest / "manifest.json").read_bytes()
        )
        sequence = int(manifest["sequence"]) + 1
        release_id = uuid.uuid4().hex[:20]
        name = rel.release_name(sequence, release_id)
        folder = self.out / "releases" / name
        (folder / "hosts").mkdir(parents=True)
        manifest.update(
            release=release_id,
            sequence=sequence,
            hosts={host: rel.digest_of(bundle)},
        )
        (folder / "hosts" / f"{host}.json").write_bytes(bundle)
        (folder / "hosts" / f"{host}.json.sig").write_bytes(signature)
        (folder / "manifest.json").write_bytes(rel.canonical_json(manifest))
        (self.out / "LATEST").write_text(name + "\n", encoding="utf-8")
        return name


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    target = tmp_path / "machine"
    target.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    return Repo(root, target)


class Provider:
    """A real ``tenfra provider serve`` process on 127.0.0.1."""

    def __init__(
        self, folder: Path, releases_url: str, *, approval: bool = False
    ) -> None:
        from tenfra.provider.auth import hash_password

        self.folder = folder
        self.db_path = folder / "provider.db"
        self.config = folder / "provider.yaml"
        self.password = "admin-" + uuid.uuid4().hex[:8]
        self.config.write_text(
            json.dumps(
                {
                    "database": {"url": f"sqlite:///{self.db_path}"},
                    "releases": {"url": releases_url, "scanInterval": 1},
                    "auth": {
                        "approval": approval,
                        "secretKey": uuid.uuid4().hex,
                        "users": [
                            {
                                "name": "admin",
                                "passwordHash": hash_password(self.password),
                            }
                        ],
                    },
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log = folder / "provider.log"

    def start(self) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 (the process owns it)
        self.proc = subprocess.Popen(
            [
                *TENFRA,
                "provider",
                "serve",
                "--config",
                str(self.config),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=tenfra_env(TENFRA_PROVIDER_CACHE=str(self.folder / "cache")),
            cwd=self.folder,
        )
        handle.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        import urllib3

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"the provider exited:\n{self.log.read_text()[-3000:]}")
            try:
                answer = urllib3.request(
                    "GET", f"{self.url}/healthz", timeout=1.0, retries=False
                )
                if answer.status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the provider did not start:\n{self.log.read_text()[-3000:]}")

    def log_tail(self, size: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-size:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*TENFRA, "provider", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=tenfra_env(),
            cwd=self.folder,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def token(self, host: str) -> str:
        """A bootstrap token for ``host`` from the provider's own CLI."""
        return self.cli("token", "--host", host).strip().splitlines()[0]

    def runs(self, host: Optional[str] = None) -> list[dict[str, Any]]:
        """The rows of the provider's ``run`` table (read with sqlite3)."""
        with sqlite3.connect(self.db_path) as conn:
            conn.row_factory = sqlite3.Row
            query = "SELECT * FROM run"
            rows = conn.execute(
                query + (" WHERE host = ?" if host else "") + " ORDER BY id",
                (host,) if host else (),
            ).fetchall()
        return [dict(row) for row in rows]

    def wait_release(self, name: str, timeout: float = 20.0) -> None:
        """Wait until the provider imported release ``name``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sqlite3.connect(self.db_path) as conn:
                try:
                    row = conn.execute(
                        "SELECT 1 FROM release WHERE name = ?", (name,)
                    ).fetchone()
                except sqlite3.OperationalError:
                    row = None
            if row:
                return
            time.sleep(0.1)
        pytest.fail(f"the provider did not pick up {name}:\n{self.log.read_text()}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def provider(tmp_path: Path, repo: Repo) -> Iterator[Provider]:
    folder = tmp_path / "provider"
    folder.mkdir()
    server = Provider(folder, repo.url)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder / "cache", ignore_errors=True)


def agent(
    state: Path, *args: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``tenfra agent --state-dir STATE ARGS`` in a subprocess."""
    done = subprocess.run(
        [*TENFRA, "agent", "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        env=tenfra_env(),
        timeout=120,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def support() -> Any:
    """Helpers for tests: ``agent(state, *args)``, ``TENFRA``, ``tenfra_env()``."""
    import types

    return types.SimpleNamespace(
        agent=agent,
        TENFRA=TENFRA,
        tenfra_env=tenfra_env,
        Repo=Repo,
        Provider=Provider,
    )


@pytest.fixture
def enrolled(tmp_path: Path, repo: Repo, provider: Provider) -> Path:
    """The state directory of agent ``web-1``, enrolled with the provider."""
    state = tmp_path / "agent-state"
    agent(
        state,
        "enroll",
        "--provider",
        provider.url,
        "--host",
        "web-1",
        "--token",
        provider.token("web-1"),
        "--public-key",
        str(repo.public_key),
        check=True,
    )
    return state
