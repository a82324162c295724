"""Fixtures for the security and reliability suite (DESIGN.md section 12).

The suite reuses the helpers of the agent and provider tests (a recipe
repository compiled with the real compiler, a real ``tenfra provider serve``
process, a release publisher) by loading their conftest modules, so both
suites exercise one and the same set-up.  What only this suite needs lives
here: a PostgreSQL cluster of its own that a test may restart, and a tmpfs
small enough to fill.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import pytest

from tenfra import release as rel

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent_support = _load("tenfra_security_agent_support", ROOT / "tests/agent/conftest.py")
provider_support = _load(
    "tenfra_security_provider_support", ROOT / "tests/provider/conftest.py"
)
root_support = _load("tenfra_security_root_support", ROOT / "tests/conftest.py")

TENFRA = agent_support.TENFRA
tenfra_env = agent_support.tenfra_env
run_agent = agent_support.agent
make_report = provider_support.make_report


# -- a recipe repository, a real provider process and an enrolled agent -------------


@pytest.fixture
def repo(tmp_path: Path) -> Any:
    target = tmp_path / "machine"
    target.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    return agent_support.Repo(root, target)


@pytest.fixture
def served(tmp_path: Path, repo: Any) -> Iterator[Any]:
    """A real ``tenfra provider serve`` (SQLite) reading ``repo``'s releases."""
    folder = tmp_path / "provider"
    folder.mkdir()
    server = agent_support.Provider(folder, repo.url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def enroll(state: Path, server: Any, public_key: Path, host: str = "web-1") -> Path:
    run_agent(
        state,
        "enroll",
        "--provider",
        server.url,
        "--host",
        host,
        "--token",
        server.token(host),
        "--public-key",
        str(public_key),
        check=True,
    )
    return state


@pytest.fixture
def enrolled(tmp_path: Path, repo: Any, served: Any) -> Path:
    """The state directory of agent ``web-1``, enrolled with ``served``."""
    return enroll(tmp_path / "agent-state", served, repo.public_key)


# -- the provider's Flask app (for properties of the app logic) ---------------------


@pytest.fixture(scope="session")
def signing_key() -> Any:
    return rel.generate_private_key()


@pytest.fixture(scope="session")
def public_key_file(signing_key: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "release.pub"
    path.write_bytes(rel.public_key_pem(signing_key))
    return path


@pytest.fixture(scope="session")
def admin_hash() -> str:
    from tenfra.provider.auth import hash_password

    return str(hash_password(provider_support.ADMIN_PASSWORD))


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    path = tmp_path / "releases"
    path.mkdir()
    return path


@pytest.fixture
def writer(release_dir: Path, signing_key: Any) -> Any:
    return provider_support.ReleaseWriter(str(release_dir), signing_key)


@pytest.fixture
def make_app(
    tmp_path: Path, release_dir: Path, admin_hash: str, public_key_file: Path
) -> Iterator[Callable[..., Any]]:
    """``make_app(database_url=None, **overrides)``: a migrated provider app."""
    from tenfra.provider.app import create_app
    from tenfra.provider.config import ProviderConfig
    from tenfra.provider.models import connect_database, db, make_database, migrate

    databases: list[Any] = []

    def build(database_url: Optional[str] = None, **overrides: Any) -> Any:
        url = database_url or f"sqlite:///{tmp_path / f'p-{uuid.uuid4().hex}.db'}"
        data = provider_support.base_config(
            url, str(release_dir), admin_hash, public_key_file
        )
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        config = ProviderConfig.from_mapping(data)
        database = make_database(config.database.url)
        databases.append(database)
        connect_database(database)
        migrate()
        app = create_app(config)
        app.testing = True
        return provider_support.Provider(
            app, app.test_client(), config, app.extensions["tenfra"]
        )

    yield build
    for database in databases:
        close_all = getattr(database, "close_all", None)
        if close_all is not None:
            close_all()
        elif not database.is_closed():
            database.close()
    db.initialize(None)


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


# -- PostgreSQL that a test may restart ----------------------------------------------


class RestartablePostgres:
    """A throwaway PostgreSQL cluster owned by one test, with ``restart()``."""

    def __init__(self) -> None:
        self.bindir = root_support._pg_bin()
        self.base = Path(tempfile.mkdtemp(prefix="tenfra-pg-sec-"))
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.data = self.base / "data"
        self.port = root_support.free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._pg(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        self.start()

    def _pg(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_postgres, str(self.bindir / program), *args],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.fail(f"{program} {' '.join(args)}: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c fsync=off"
        )
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.base / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop (closing every connection) and start again."""
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def restartable_postgres() -> Iterator[RestartablePostgres]:
    """A PostgreSQL cluster of this test alone, which the test may restart."""
    cluster = RestartablePostgres()
    try:
        yield cluster
    finally:
        cluster.destroy()


# -- a tiny file system to fill ------------------------------------------------------


@pytest.fixture
def mount_tmpfs() -> Iterator[Callable[[Path], Path]]:
    """``mount_tmpfs(folder)``: a 64 KiB tmpfs over ``folder`` (root only),
    unmounted after the test."""
    mounted: list[Path] = []

    def mount(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs (the suite runs as root): {done.stderr}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
