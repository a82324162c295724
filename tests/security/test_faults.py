"""Faults: S3 down, PostgreSQL restarted during ingestion, agent spool disk full.

The provider-down case is proven end to end elsewhere (see docs/security.md):
tests/agent/test_e2e_provider.py::test_outage_reports_arrive_exactly_once and
::test_daemon_survives_an_outage_and_stops_on_sigterm (reports spooled during
the outage arrive exactly once; the last good release stays enforced).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from .conftest import agent_support, enroll, make_report, root_support, run_agent

# -- S3 down ---------------------------------------------------------------------------


class MotoServer:
    """A moto S3 server of one test, on a fixed port, that can be stopped."""

    def __init__(self) -> None:
        self.port = root_support.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(
            ip_address="127.0.0.1", port=self.port, verbose=False
        )
        self.server.start()
        root_support.wait_for_port(self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tenfra-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "tenfra-test-secret")
    server = MotoServer()
    server.start()
    monkeypatch.setenv("TENFRA_S3_ENDPOINT_URL", server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.integration
def test_s3_down_agents_keep_enforcing_and_reports_arrive_once(
    repo: Any, tmp_path: Path, moto: MotoServer
) -> None:
    import s3fs

    from tenfra.compiler import CompileOptions, compile_release

    bucket = f"tenfra-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=moto.url).mkdir(bucket)
    url = f"s3://{bucket}/releases"
    repo.compile("v1")  # writes the recipe files; the release itself goes to S3
    name = compile_release(
        CompileOptions(
            inventory=repo.root / "inventory.yaml",
            recipes=repo.root / "recipes",
            out=url,
            signing_key=repo.key,
        )
    ).name
    folder = tmp_path / "provider"
    folder.mkdir()
    server = agent_support.Provider(folder, url)
    config = json.loads(server.config.read_text())
    config["releases"]["storageOptions"] = {"endpoint_url": moto.url}
    server.config.write_text(json.dumps(config))
    server.start()
    try:
        server.wait_release(name)
        web1 = enroll(tmp_path / "web-1", server, repo.public_key, "web-1")
        assert run_agent(web1, "run", "--once").returncode == 0
        assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"

        moto.stop()
        started = time.monotonic()
        # The enrolled agent polls (304, no storage needed), repairs drift from
        # its own copy and reports: S3 is not on its path.
        (repo.target / "version.txt").write_text("drift")
        done = run_agent(web1, "run", "--once", "--force")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"
        # A new host needs its bundle from S3: a clear 503, no traceback.
        web2 = enroll(tmp_path / "web-2", server, repo.public_key, "web-2")
        done = run_agent(web2, "run", "--once")
        output = done.stdout + done.stderr
        assert done.returncode != 0
        assert "503" in output and "s3://" in output, output
        assert "Traceback" not in output
        assert time.monotonic() - started < 120
        import urllib3

        ready = urllib3.request("GET", f"{server.url}/readyz", timeout=30)
        assert ready.status == 200  # storage trouble does not take polls down
        assert json.loads(ready.data)["checks"]["storage"] != "ok"

        moto.start()
        done = run_agent(web2, "run", "--once")
        assert done.returncode == 0, done.stdout + done.stderr
        ids = [r["report_id"] for r in server.runs()]
        assert len(ids) == len(set(ids)) == 3  # web-1 twice, web-2 once
        assert {r["host"] for r in server.runs()} == {"web-1", "web-2"}
    finally:
        server.stop()


# -- PostgreSQL restarted while reports stream in ----------------------------------


@pytest.mark.integration
@pytest.mark.postgres
def test_postgres_restart_during_ingestion_loses_and_duplicates_nothing(
    restartable_postgres: Any, tmp_path: Path, repo: Any
) -> None:
    """Twenty agents deliver 300 spooled reports through a real provider while
    PostgreSQL is restarted twice: every report is stored exactly once, and
    every refusal the agents saw was a clear, retryable answer."""
    import psycopg2
    import urllib3

    from tenfra.agent.client import ProviderClient
    from tenfra.agent.spool import Spool
    from tenfra.errors import TransportError

    folder = tmp_path / "provider"
    folder.mkdir()
    server = agent_support.Provider(folder, repo.url)
    config = json.loads(server.config.read_text())
    config["database"] = {"url": restartable_postgres.url}
    server.config.write_text(json.dumps(config))
    server.start()
    hosts = [f"web-{i:02d}" for i in range(20)]
    expected: set[str] = set()
    spools: dict[str, Spool] = {}
    credentials: dict[str, str] = {}
    try:
        http = urllib3.PoolManager()
        for host in hosts:
            answer = http.request(
                "POST",
                f"{server.url}/api/v1/enroll",
                json={"host": host, "token": server.token(host)},
            )
            assert answer.status == 200, answer.data
            credentials[host] = json.loads(answer.data)["credential"]
            spools[host] = Spool(tmp_path / "spools" / host)
            for _ in range(15):
                report = make_report(host)
                spools[host].add(report)
                expected.add(report["id"])

        seen: set[int] = set()
        errors: list[str] = []
        stop = threading.Event()

        def deliver(host: str) -> None:
            client = ProviderClient(
                server.url, credential=credentials[host], timeout=10.0
            )

            def send(report: dict[str, Any], key: str) -> int:
                time.sleep(0.05)  # spread the stream over the restarts
                try:
                    status = client.post_report(report, key)
                except TransportError as exc:
                    seen.add(exc.status or 0)
                    if exc.status not in (None, 503):
                        errors.append(str(exc))
                    raise
                seen.add(status)
                return status

            while len(spools[host]) and not stop.is_set():
                spools[host].deliver(send)
                if len(spools[host]):
                    time.sleep(0.3)

        threads = [threading.Thread(target=deliver, args=(h,)) for h in hosts]
        for thread in threads:
            thread.start()
        # Restart when a third and when two thirds of the reports are stored,
        # so both restarts hit the stream in the middle.
        for mode, mark in (("fast", 100), ("immediate", 200)):
            _wait_for_runs(restartable_postgres.url, mark)
            restartable_postgres.restart(mode)
        deadline = time.monotonic() + 120
        for thread in threads:
            thread.join(timeout=max(deadline - time.monotonic(), 1))
        stop.set()
        assert not any(t.is_alive() for t in threads)
    finally:
        server.stop()

    assert errors == [], errors[:3]
    assert all(len(s) == 0 for s in spools.values())
    assert not any(
        (tmp_path / "spools" / h / "refused").exists()
        and any((tmp_path / "spools" / h / "refused").iterdir())
        for h in hosts
    )
    connection = psycopg2.connect(restartable_postgres.url)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT report_id FROM run")
        stored = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT count(*) FROM task_result")
        tasks = cursor.fetchone()[0]
    connection.close()
    assert len(stored) == len(set(stored)) == 300
    assert set(stored) == expected
    assert tasks == 300 * 2  # no half-stored report
    # The provider noticed both outages and answered them with a retryable 503
    # (which the agents' client retried), never with an internal error.
    log = server.log_tail(1_000_000)
    assert log.count("database unavailable") >= 2, log[-3000:]
    assert "internal error on" not in log
    assert seen <= {200, 201, 503, 0}, seen


def _wait_for_runs(url: str, count: int, timeout: float = 120.0) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = psycopg2.connect(url)
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM run")
                    if cursor.fetchone()[0] >= count:
                        return
            finally:
                connection.close()
        except psycopg2.Error:
            pass
        time.sleep(0.02)
    pytest.fail(f"fewer than {count} reports were stored after {timeout} s")


# -- the agent's spool on a full disk ----------------------------------------------


@pytest.mark.integration
def test_spool_disk_full_keeps_every_report_or_says_so(
    repo: Any, served: Any, enrolled: Path, mount_tmpfs: Any
) -> None:
    served.wait_release(repo.compile("v1"))
    small_tmpfs = mount_tmpfs(enrolled / "spool")

    # Fill the spool's file system.
    filler = small_tmpfs / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"x" * 512)
        except OSError:
            pass

    # Provider up: the report cannot be spooled, so it is sent at once.
    done = run_agent(enrolled, "run", "--once")
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert "No space left" in output or "disk" in output.lower(), output
    assert len(served.runs("web-1")) == 1, output

    # Provider down too: the report cannot be kept; the agent says so clearly
    # and still enforces the release; nothing half-written stays behind.
    served.stop()
    (repo.target / "version.txt").write_text("drift")
    done = run_agent(enrolled, "run", "--once", "--force")
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode != 0
    assert "report" in output and "lost" in output, output
    assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"
    assert [p.name for p in small_tmpfs.iterdir()] == ["filler"]

    # Space again: the next reports are spooled and delivered exactly once.
    filler.unlink()
    (repo.target / "version.txt").write_text("drift")
    done = run_agent(enrolled, "run", "--once", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list(small_tmpfs.glob("*.json"))) == 1
    served.start()
    done = run_agent(enrolled, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [r["report_id"] for r in served.runs("web-1")]
    assert len(ids) == len(set(ids)) == 2
    assert list(small_tmpfs.glob("*.json")) == []
    subprocess.run(["sync"], check=False)
