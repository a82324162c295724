"""Limits of the real provider process: request bodies, slow clients, a herd.

tests/provider/test_api.py already checks the 413 answers of the app for a
declared oversized body and for too many log lines; here the same limits are
checked on the wire (chunked bodies without a length), slow clients are
disconnected after ``server.headerTimeout``, and a herd of 500 agents that
restart together, or come back after a provider outage, is spread by the
agent's splay and jittered back-off so the provider's load stays bounded.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from .conftest import TENFRA, provider_support, root_support, tenfra_env

HEADER_TIMEOUT = 3


class Served:
    """``tenfra provider serve`` on a fixed port that survives restarts."""

    def __init__(self, config_path: Path, folder: Path) -> None:
        self.config_path = config_path
        self.folder = folder
        self.port = root_support.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.folder / f"provider-{self.starts}.log"

    def start(self) -> None:
        import urllib3

        self.starts += 1
        with open(self.log, "wb") as handle:
            self.process = subprocess.Popen(
                [
                    *TENFRA,
                    "provider",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "2",
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=tenfra_env(),
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the provider exited:\n{self.log.read_text()}")
            try:
                if (
                    urllib3.request(
                        "GET", f"{self.url}/readyz", timeout=1, retries=False
                    ).status
                    == 200
                ):
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"the provider did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _serve(
    tmp_path: Path,
    writer: Any,
    admin_hash: str,
    public_key_file: Path,
    **overrides: Any,
) -> Served:
    config = provider_support.base_config(
        f"sqlite:///{tmp_path / 'provider.db'}",
        str(writer.url),
        admin_hash,
        public_key_file,
    )
    config.update(overrides)
    path = tmp_path / "provider.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    server = Served(path, tmp_path)
    server.start()
    return server


def _port(server: Served) -> int:
    return server.port


def _exchange(port: int, data: bytes, *, timeout: float = 20.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before reading everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1]) if response else 0
    return status, response.partition(b"\r\n\r\n")[2]


# -- request bodies --------------------------------------------------------------------


def test_body_limits_hold_on_the_wire(
    tmp_path: Path, writer: Any, admin_hash: str, public_key_file: Path
) -> None:
    server = _serve(
        tmp_path,
        writer,
        admin_hash,
        public_key_file,
        limits={"maxBody": "64KiB"},
    )
    try:
        port = _port(server)
        head = (
            "POST /api/v1/enroll HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n"
        )
        # A declared length over the limit: refused before the body is read.
        started = time.monotonic()
        status, body = _exchange(
            port, (head + "Content-Length: 104857600\r\n\r\n").encode()
        )
        assert status == 413, body
        assert "limits.maxBody" in json.loads(body)["error"]
        assert time.monotonic() - started < 5

        # A chunked body without a length, 1 MiB: never read past the limit
        # (the WSGI server hands such a body over as empty, or it is cut off).
        chunk = b"x" * 8192
        stream = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(128))
        status, body = _exchange(
            port,
            (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
            + stream
            + b"0\r\n\r\n",
        )
        assert status in (400, 411, 413), body[:300]
        assert "error" in json.loads(body)

        # Under the limit the body is read and judged on its content.
        small = json.dumps({"host": "web-a", "token": "x" * 1000}).encode()
        status, body = _exchange(
            port, (head + f"Content-Length: {len(small)}\r\n\r\n").encode() + small
        )
        assert status == 401, body

        import urllib3

        assert urllib3.request("GET", f"{server.url}/healthz").status == 200
    finally:
        server.stop()


# -- slow clients ----------------------------------------------------------------------


def test_slow_clients_are_disconnected_and_others_served(
    tmp_path: Path, writer: Any, admin_hash: str, public_key_file: Path
) -> None:
    """Slow clients ("slowloris") holding every thread are cut off after
    server.headerTimeout; a normal client is then served."""
    import urllib3

    threads = 4
    server = _serve(
        tmp_path,
        writer,
        admin_hash,
        public_key_file,
        server={"threads": threads, "headerTimeout": HEADER_TIMEOUT},
    )
    port = _port(server)
    slow: list[socket.socket] = []
    try:
        # As many slow clients as the two workers have threads, each sending a
        # partial request and then a byte now and then.  However they are
        # spread over the workers, a worker holds at most two rounds of them.
        for _ in range(2 * threads):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        started = time.monotonic()
        stop = threading.Event()

        def trickle() -> None:
            while not stop.is_set():
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"X")
                stop.wait(0.5)

        feeder = threading.Thread(target=trickle, daemon=True)
        feeder.start()
        answer = urllib3.request(
            "GET",
            f"{server.url}/healthz",
            timeout=4 * HEADER_TIMEOUT + 10,
            retries=False,
        )
        waited = time.monotonic() - started
        assert answer.status == 200
        assert waited < 2 * HEADER_TIMEOUT + 5, f"served after {waited:.1f} s"

        # Every slow client was disconnected, none got an answer.
        for sock in slow:
            sock.settimeout(3 * HEADER_TIMEOUT + 5)
            try:
                data = sock.recv(100)
            except ConnectionResetError:
                data = b""
            assert data == b"", data
        closed_after = time.monotonic() - started
        assert closed_after < 3 * HEADER_TIMEOUT + 5, closed_after
        stop.set()
        text = server.log.read_text(encoding="utf-8", errors="replace")
        assert "no complete request within" in text
        assert "Traceback" not in text
    finally:
        for sock in slow:
            sock.close()
        server.stop()


# -- a herd of agents ------------------------------------------------------------------

HERD = 500


def _peak(times: list[float], window: float) -> int:
    """Most events in any ``window`` seconds."""
    times = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _enrol_herd(server: Any, writer: Any) -> dict[str, str]:
    """Tokens written straight into the provider's database, then a real
    enrolment request per host."""
    import urllib3

    from tenfra.provider.maintenance import create_token
    from tenfra.provider.models import connect_database, db, make_database

    hosts = [f"node-{i:03d}" for i in range(HERD)]
    writer.publish({host: {} for host in hosts})
    config = json.loads(server.config_path.read_text())
    database = make_database(config["database"]["url"])
    connect_database(database)
    try:
        with database.atomic():
            tokens = {host: create_token(host, 3600, actor="test")[0] for host in hosts}
    finally:
        database.close()
        db.initialize(None)
    http = urllib3.PoolManager(maxsize=16)
    credentials: dict[str, str] = {}

    def enrol(chunk: list[str]) -> None:
        for host in chunk:
            answer = http.request(
                "POST",
                f"{server.url}/api/v1/enroll",
                json={"host": host, "token": tokens[host]},
            )
            assert answer.status == 200, answer.data
            credentials[host] = json.loads(answer.data)["credential"]

    workers = [threading.Thread(target=enrol, args=(hosts[i::16],)) for i in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return credentials


class SimulatedAgent:
    """The agent's real loop (splay, back-off, stopper) around one poll."""

    def __init__(self, url: str, credential: str, log: list[tuple[float, str]]) -> None:
        from tenfra.agent.client import ProviderClient
        from tenfra.agent.loop import Backoff, Stopper

        self.client = ProviderClient(url, credential=credential, timeout=10, retries=0)
        self.log = log
        self.stopper = Stopper()
        self.backoff = Backoff(1.0, 8.0)
        self.etag: Optional[str] = None
        self.successes = 0
        self.first_success: Optional[float] = None
        self.tries: list[float] = []

    def cycle(self) -> bool:
        from tenfra.errors import TransportError

        self.tries.append(time.monotonic())
        self.log.append((self.tries[-1], "try"))
        try:
            info = self.client.release(etag=self.etag)
        except TransportError as exc:
            self.log.append((time.monotonic(), f"error {exc.status}"))
            return False
        if info is not None:
            self.etag = info.digest
        self.successes += 1
        if self.first_success is None:
            self.first_success = time.monotonic()
        return True

    def run(self, *, interval: float, splay: float, first_splay: bool) -> None:
        from tenfra.agent.loop import run_loop

        run_loop(
            self.cycle,
            interval=interval,
            splay=splay,
            backoff=self.backoff,
            stopper=self.stopper,
            first_splay=first_splay,
        )


def _run_herd(
    agents: list[SimulatedAgent],
    *,
    interval: float,
    splay: float,
    first_splay: bool = True,
) -> list[threading.Thread]:
    options = {"interval": interval, "splay": splay, "first_splay": first_splay}
    threads = [
        threading.Thread(target=agent.run, kwargs=options, daemon=True)
        for agent in agents
    ]
    for thread in threads:
        thread.start()
    return threads


def _stop_herd(agents: list[SimulatedAgent], threads: list[threading.Thread]) -> None:
    for agent in agents:
        agent.stopper.event.set()
    for thread in threads:
        thread.join(timeout=30)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_a_herd_of_agents_restarting_together_keeps_the_load_bounded(
    tmp_path: Path, writer: Any, admin_hash: str, public_key_file: Path
) -> None:
    server = _serve(
        tmp_path,
        writer,
        admin_hash,
        public_key_file,
        server={"threads": 4},
    )
    try:
        credentials = _enrol_herd(server, writer)

        # 1. Every agent restarts at the same moment (a data-centre reboot).
        splay = 5.0
        log: list[tuple[float, str]] = []
        agents = [SimulatedAgent(server.url, c, log) for c in credentials.values()]
        started = time.monotonic()
        threads = _run_herd(agents, interval=120.0, splay=splay)
        _wait(lambda: all(a.successes >= 1 for a in agents), 60, "the first polls")
        first = [t - started for t, what in log if what == "try"]
        errors = [what for _, what in log if what != "try"]
        assert errors == [], errors[:5]
        assert len(first) == HERD
        # Spread over the splay: the busiest half second holds a small share of
        # the herd (uniform: 50; all at once would be 500).
        peak = _peak(first, 0.5)
        assert peak <= 120, f"{peak} polls within half a second"
        assert max(first) <= splay + 5

        # 2. Worst case: the provider dies while the whole herd polls in step
        # (no splay left to help); each agent fails, backs off with jitter, and
        # the herd comes back spread out when the provider returns.
        _stop_herd(agents, threads)
        server.stop()
        log.clear()
        for agent in agents:
            agent.stopper.event.clear()
            agent.successes = 0
            agent.first_success = None
            agent.tries = []
        down = time.monotonic()
        threads = _run_herd(agents, interval=1.0, splay=0.5, first_splay=False)
        time.sleep(12.0)
        tries = [t - down for t, what in log if what == "try"]
        assert _peak(tries, 1.0) >= HERD * 0.7  # they did start in step
        retries = sorted(tries)[HERD:]  # each agent's first try is among the first
        # Polling every second would make about 12 tries per agent; the
        # jittered back-off (1, 2, 4, 8 s) makes at most 6, spread out.
        assert len(tries) <= HERD * 6, len(tries)
        # In step, all 500 retries would land within milliseconds; with the
        # jitter no tenth of a second holds more than a third of them.
        assert _peak(retries, 0.1) <= HERD * 0.35, _peak(retries, 0.1)
        back = time.monotonic()
        server.start()
        _wait(lambda: all(a.successes >= 1 for a in agents), 60, "every agent back")
        # The requests that reached the provider from its restart until each
        # agent got through: spread by the back-off's jitter, not in step
        # (connections made while gunicorn boots wait in its backlog and are
        # answered together; what counts is when they were sent).
        returns = [a.first_success for a in agents if a.first_success is not None]
        assert len(returns) == HERD
        assert max(returns) - back < 8.0 + 10  # the back-off cap, plus slack
        sent = [
            t for a in agents for t in a.tries if back <= t <= (a.first_success or back)
        ]
        assert _peak(sent, 0.5) <= HERD * 0.35, _peak(sent, 0.5)
        errors = [what for t, what in log if t >= back and what != "try"]
        assert all(e == "error None" for e in errors), errors[:5]  # only refusals
        _stop_herd(agents, threads)
        assert "Traceback" not in server.log.read_text(errors="replace")
    finally:
        server.stop()
