"""Fixtures for provider tests: signed releases in storage, a database, an app.

Releases are written in the documented format (docs/architecture.md) with
tenfra.release's canonical JSON and ed25519 signing, exactly as the compiler
publishes them: assets, bundles, manifest, and LATEST last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import attrs
import pytest

from tenfra import release as rel

ADMIN_PASSWORD = "correct horse battery"
SECRET_KEY = "test-secret-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]
DIFF = "--- a/site.conf\n+++ b/site.conf\n-port 80\n+port 8080\n"


@attrs.define
class Published:
    name: str
    release_id: str
    sequence: int
    digests: dict[str, str]
    assets: dict[str, list[str]]


class ReleaseWriter:
    """Publishes signed releases to an fsspec URL (a folder or s3://bucket/...)."""

    def __init__(
        self, url: str, key: Any, storage_options: Optional[dict[str, Any]] = None
    ):
        import fsspec.core

        self.url = url
        self.key = key
        self.fs, self.root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = self.root.rstrip("/")
        self.sequence = 0

    def _put(self, key: str, data: bytes) -> None:
        path = f"{self.root}/{key}"
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        self.fs.pipe_file(path, data)

    def publish(
        self,
        hosts: dict[str, dict[str, bytes]],
        *,
        vars_: Optional[dict[str, Any]] = None,
        latest: bool = True,
        sign: bool = True,
    ) -> Published:
        """One release: ``hosts`` maps each host to its assets ``{name: bytes}``."""
        self.sequence += 1
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        created = rel.format_time(now)
        expires = rel.format_time(now + dt.timedelta(days=30))
        plugins = {"files": "0.1.0"}
        bundles: dict[str, dict[str, Any]] = {}
        every_asset: set[str] = set()
        host_assets: dict[str, list[str]] = {}
        for host, assets in hosts.items():
            digests = {}
            for name, data in assets.items():
                digest = hashlib.sha256(data).hexdigest()
                digests[name] = digest
                self._put(f"assets/{digest}", data)
            every_asset |= set(digests.values())
            host_assets[host] = sorted(digests.values())
            bundles[host] = {
                "format": 1,
                "host": host,
                "release": "",
                "sequence": self.sequence,
                "created": created,
                "expires": expires,
                "recipes": {
                    "web": {
                        "path": "web/main.yaml",
                        "source": "name: web\ntasks: []\n",
                        "assets": digests,
                    }
                },
                "vars": {"release_vars": vars_ or {}, "host": host},
                "groups": [],
                "otherHosts": {},
                "sitePlugins": {},
                "plugins": plugins,
                "assets": sorted(digests.values()),
                "run": {"bootstrap": [], "runtime": ["web"]},
            }
        release_id = rel.compute_release_id(
            {h: rel.content_digest(b) for h, b in bundles.items()}, plugins
        )
        name = rel.release_name(self.sequence, release_id)
        host_digests = {}
        for host, bundle in bundles.items():
            bundle["release"] = release_id
            data = rel.canonical_json(bundle)
            host_digests[host] = rel.digest_of(data)
            self._put(f"releases/{name}/hosts/{host}.json", data)
            if sign:
                self._put(
                    f"releases/{name}/hosts/{host}.json.sig", rel.sign(data, self.key)
                )
        manifest = {
            "format": 1,
            "release": release_id,
            "sequence": self.sequence,
            "created": created,
            "expires": expires,
            "plugins": plugins,
            "hosts": host_digests,
            "assets": sorted(every_asset),
            "keyId": rel.key_id(self.key),
        }
        data = rel.canonical_json(manifest)
        self._put(f"releases/{name}/manifest.json", data)
        if sign:
            self._put(f"releases/{name}/manifest.json.sig", rel.sign(data, self.key))
        if latest:
            self._put("LATEST", f"{name}\n".encode())
        return Published(name, release_id, self.sequence, host_digests, host_assets)


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

    return hash_password(ADMIN_PASSWORD)


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    path = tmp_path / "releases"
    path.mkdir()
    return path


@pytest.fixture
def writer(release_dir: Path, signing_key: Any) -> ReleaseWriter:
    return ReleaseWriter(str(release_dir), signing_key)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.integration, pytest.mark.postgres]),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every API test runs against SQLite and against a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'provider.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def base_config(
    database_url: str, release_url: str, admin_hash: str, public_key: Optional[Path]
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database": {"url": database_url},
        "releases": {"url": release_url, "scanInterval": 1},
        "auth": {
            "secretKey": SECRET_KEY,
            "users": [{"name": "admin", "passwordHash": admin_hash}],
        },
    }
    if public_key is not None:
        config["releases"]["publicKey"] = str(public_key)
    return config


@attrs.define(slots=False)
class Provider:
    """An application under test with helpers that speak the agent API."""

    app: Any
    client: Any
    config: Any
    state: Any

    def scan(self) -> list[str]:
        from tenfra.provider import releases

        with self.app.app_context():
            added = releases.discover(self.config, self.state.storage, self.state.rings)
            releases.assign(self.state.rings)
        return added

    def token(self, host: str, ttl: float = 3600) -> str:
        from tenfra.provider.maintenance import create_token

        with self.app.app_context():
            token, _ = create_token(host, ttl, actor="test")
        return token

    def enroll(self, host: str) -> str:
        response = self.client.post(
            "/api/v1/enroll", json={"host": host, "token": self.token(host)}
        )
        assert response.status_code == 200, response.get_json()
        credential: str = response.get_json()["credential"]
        return credential

    def get(self, path: str, credential: Optional[str] = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        return self.client.get(path, headers=headers, **kwargs)

    def post(self, path: str, credential: Optional[str] = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        return self.client.post(path, headers=headers, **kwargs)

    def report(self, credential: str, host: str, **changes: Any) -> Any:
        body = make_report(host, **changes)
        return self.post(
            "/api/v1/reports",
            credential,
            json=body,
            headers={"Idempotency-Key": body["id"]},
        )


def make_report(host: str, **changes: Any) -> dict[str, Any]:
    """A run report in the wire format of tenfra.report."""
    status = changes.pop("status", "changed")
    now = dt.datetime.now(dt.timezone.utc)
    report: dict[str, Any] = {
        "id": changes.pop("id", uuid.uuid4().hex),
        "host": host,
        "started": (now - dt.timedelta(seconds=2)).isoformat().replace("+00:00", "Z"),
        "finished": now.isoformat().replace("+00:00", "Z"),
        "status": status,
        "release": changes.pop("release", None),
        "sequence": changes.pop("sequence", None),
        "recipes": [
            {
                "id": "web",
                "name": "web server",
                "status": status,
                "duration": 1.5,
                "tasks": [
                    {
                        "name": "site config",
                        "type": "copy",
                        "status": "changed" if status != "failed" else "failed",
                        "duration": 0.01,
                        "diff": DIFF,
                        "error": "disk full" if status == "failed" else None,
                        "children": [],
                    },
                    {"name": "nginx running", "type": "service", "status": "ok"},
                ],
            }
        ],
    }
    report.update(changes)
    return report


@pytest.fixture
def make_provider(
    database_url: str,
    release_dir: Path,
    admin_hash: str,
    public_key_file: Path,
) -> Iterator[Callable[..., Provider]]:
    """Build a provider app (migrated database) with configuration overrides."""
    from tenfra.provider.app import create_app
    from tenfra.provider.config import ProviderConfig
    from tenfra.provider.models import connect_database, db, make_database, migrate

    databases: list[Any] = []

    def build(**overrides: Any) -> Provider:
        data = base_config(database_url, str(release_dir), admin_hash, public_key_file)
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
        return Provider(app, app.test_client(), config, app.extensions["tenfra"])

    yield build
    for database in databases:
        close_all = getattr(database, "close_all", None)
        if close_all is not None:
            close_all()
        elif not database.is_closed():
            database.close()
    db.initialize(None)


@pytest.fixture
def provider(make_provider: Callable[..., Provider]) -> Provider:
    return make_provider()


# -- real provider processes -------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    config_path: Path, log: Path, env: Optional[dict[str, str]] = None
) -> ServerProcess:
    """``tenfra provider serve`` as a real process on 127.0.0.1; waits for /readyz."""
    import urllib3

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "tenfra.cli",
        "provider",
        "serve",
        "--config",
        str(config_path),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
    ]
    handle = log.open("wb")
    process = subprocess.Popen(
        command,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=str(ROOT),
    )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
    http = urllib3.PoolManager()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the provider exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            answer = http.request(
                "GET", f"{server.url}/readyz", timeout=1.0, retries=False
            )
            if answer.status == 200:
                return server
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    pytest.fail(f"the provider did not become ready:\n{log.read_text()}")


@pytest.fixture
def report_body() -> Callable[..., dict[str, Any]]:
    """``report_body(host, **changes)``: a run report in the wire format."""
    return make_report


@pytest.fixture
def make_writer(signing_key: Any) -> Callable[..., ReleaseWriter]:
    """``make_writer(url, storage_options=None)``: a release publisher for any URL."""

    def build(
        url: str, storage_options: Optional[dict[str, Any]] = None
    ) -> ReleaseWriter:
        return ReleaseWriter(url, signing_key, storage_options)

    return build


@pytest.fixture
def serve_provider(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``serve_provider(config: dict, name)``: a real ``tenfra provider serve``."""
    import json

    started: list[ServerProcess] = []

    def run(config: dict[str, Any], name: str = "provider") -> ServerProcess:
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        server = start_server(path, tmp_path / f"{name}.log")
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


def tenfra_cli(*args: str) -> str:
    """Run the real ``tenfra`` command line; return its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "tenfra.cli", *args],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def cli() -> Callable[..., str]:
    return tenfra_cli
