"""Session fixtures that start the real components tests need.

Each fixture starts its component once per test session and stops it at the
end.  A component that cannot start is a test failure (``pytest.fail``), never
a skip: in CI a missing component must turn the run red.  ``scripts/setup.sh``
installs everything these fixtures use.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".state"
TEST_IMAGE = "localhost/tenfra-test:bookworm"
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """A folder kept after the run for screenshots and logs (test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# -- S3 (moto's server) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a real S3 protocol server (moto) on 127.0.0.1; credentials are set."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "tenfra-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "tenfra-test-secret")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket name on the moto server."""
    import s3fs

    name = f"tenfra-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(
        endpoint_url=s3_endpoint, key="tenfra-test", secret="tenfra-test-secret"
    )
    fs.mkdir(name)
    return name


# -- PostgreSQL (a throwaway cluster) -------------------------------------------------


def _pg_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates:
        pytest.fail(
            "PostgreSQL server binaries (initdb) are missing; run scripts/setup.sh"
        )
    return candidates[-1].parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """DSN prefix ``postgresql://postgres@127.0.0.1:PORT`` of a throwaway cluster."""
    bindir = _pg_bin()
    # initdb refuses root: the cluster belongs to the postgres user, in a folder
    # it can reach (pytest's own temporary folders are private to root).
    base = Path(tempfile.mkdtemp(prefix="tenfra-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    port = free_port()
    _run_pg(
        [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
    _run_pg(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            options,
            "start",
        ]
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [
                *as_postgres,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def _run_pg(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{Path(argv[-1]).name}: {done.stdout}{done.stderr}")


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """URL of a fresh, empty database on the session's PostgreSQL cluster."""
    import psycopg2

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(f"{postgres_server}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"{postgres_server}/{name}"


# -- podman and the Docker API ------------------------------------------------------


@pytest.fixture(scope="session")
def podman_env() -> dict[str, str]:
    """Environment for the podman CLI (CONTAINERS_CONF); the test image must exist."""
    conf = os.environ.get("CONTAINERS_CONF") or str(STATE / "containers.conf")
    if shutil.which("podman") is None or not Path(conf).is_file():
        pytest.fail("podman or its configuration is missing; run scripts/setup.sh")
    os.environ["CONTAINERS_CONF"] = conf
    env = dict(os.environ, CONTAINERS_CONF=conf)
    exists = subprocess.run(
        ["podman", "image", "exists", TEST_IMAGE], env=env, capture_output=True
    )
    if exists.returncode != 0:
        pytest.fail(f"the test image {TEST_IMAGE} is missing; run scripts/setup.sh")
    return env


@pytest.fixture(scope="session")
def docker_host(
    podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``unix://`` URL of podman's Docker-compatible API, exported as DOCKER_HOST."""
    sock = tmp_path_factory.mktemp("podman-api") / "podman.sock"
    url = f"unix://{sock}"
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", url],
        env=podman_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("podman system service did not start the Docker API socket")
        time.sleep(0.05)
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = url
    try:
        yield url
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- browser ---------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Debian's chromium (Playwright drives it; no browser download)."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("chromium is missing; run scripts/setup.sh")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    """A Playwright chromium browser (headless, Debian's binary)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()
