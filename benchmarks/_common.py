"""Shared helpers of the benchmark scripts: timing, statistics, processes, peers."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state" / "bench"
RESULTS = STATE / "results"
BIN = Path(sys.executable).parent
TENFRA = str(BIN / "tenfra")

# The peers, pinned: the newest releases on PyPI when the benchmarks were written.
ANSIBLE_CORE = "2.19.14"
PYINFRA = "3.10.0"
PEERS = STATE / "peers"


class BenchError(Exception):
    """A benchmark could not run or a run broke one of its checks."""


# -- processes and timing -------------------------------------------------------------


class Sample:
    """One measured process: wall and CPU seconds, exit code, output, peak RSS."""

    def __init__(
        self,
        *,
        wall: float,
        cpu: float,
        returncode: int,
        stdout: str,
        stderr: str,
        maxrss_kib: int,
    ) -> None:
        self.wall = wall
        self.cpu = cpu
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.maxrss_kib = maxrss_kib


def measure(
    argv: Sequence[str],
    *,
    env: Optional[dict[str, str]] = None,
    cwd: Optional[Path] = None,
    timeout: float = 1800.0,
) -> Sample:
    """Run ``argv`` and measure it alone (``wait4`` gives the child's own rusage).

    CPU time is user + system of the process and every descendant it waited
    for (ansible's forked workers included).  Output goes to temporary files so
    a chatty peer cannot block on a full pipe.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Sample(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            maxrss_kib=usage.ru_maxrss,
        )


def run_checked(
    argv: Sequence[str],
    *,
    env: Optional[dict[str, str]] = None,
    cwd: Optional[Path] = None,
    what: str = "",
    timeout: float = 900.0,
) -> str:
    """Run a preparation step; raise BenchError with its output when it fails."""
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise BenchError(
            f"{what or argv[0]} failed with exit code {done.returncode}:\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


PYCACHE = STATE / "pycache"


def tenfra_env(**extra: str) -> dict[str, str]:
    """The environment of every measured process (tenfra's and the peers').

    Bytecode is cached under .state/bench/pycache for every tool alike, as an
    installed package has its ``.pyc`` files: with PYTHONDONTWRITEBYTECODE set
    (as in some CI and sandbox shells) each start would compile every module
    from source again, which costs tenfra about 0.9 s and the peers more.
    """
    env = dict(os.environ)
    env.pop("TENFRA_STATE_DIR", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- statistics -----------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return float(ordered[index])


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ys over xs."""
    if len(xs) < 2:
        return float("nan"), float(ys[0]) if ys else float("nan")
    slope, intercept = statistics.linear_regression(xs, ys)
    return float(slope), float(intercept)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


# -- the machine ----------------------------------------------------------------------


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def machine() -> dict[str, Any]:
    """CPU, cores, memory, kernel and Python of this machine, and its load now."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    except OSError:
        pass
    distro = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memoryMiB": memory,
        "os": distro,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": loadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memoryMiB']} MiB, "
        f"{info['os']}, kernel {info['kernel']}, Python {info['python']}; "
        f"load average {info['loadavg'][0]} at start"
    )


def save_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` to .state/bench/results/NAME.json (atomically).

    A copy named after the time (NAME-YYYYmmdd-HHMMSS.json) keeps earlier runs.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = RESULTS / f"{name}.json"
    for target in (RESULTS / f"{name}-{stamp}.json", path):
        temp = target.with_suffix(".json.tmp")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)
    return path


# -- the peers ------------------------------------------------------------------------


def peer_bin(name: str) -> Path:
    return PEERS / "bin" / name


def ensure_peers() -> dict[str, str]:
    """The peers' venv with the pinned versions (created on first use); versions."""
    wanted = {"ansible-core": ANSIBLE_CORE, "pyinfra": PYINFRA}
    python = peer_bin("python")
    if python.exists():
        found = _peer_versions(python)
        if found == wanted:
            return found
    print(f"creating the peers' venv in {PEERS} (ansible-core, pyinfra; ~1 min)")
    STATE.mkdir(parents=True, exist_ok=True)
    run_checked(
        ["python3", "-m", "venv", "--clear", str(PEERS)], what="python3 -m venv"
    )
    run_checked(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"ansible-core=={ANSIBLE_CORE}",
            f"pyinfra=={PYINFRA}",
        ],
        what="pip install of the peers",
    )
    found = _peer_versions(python)
    if found != wanted:
        raise BenchError(f"the peers' venv holds {found}, expected {wanted}.")
    return found


def _peer_versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for name in ('ansible-core', 'pyinfra'):\n"
        "    try:\n"
        "        out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {}
    found: dict[str, str] = json.loads(done.stdout)
    return found


# -- file trees: proof that a run changed nothing ------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """``{path: (mode, size, mtime_ns, ctime_ns, inode)}`` of everything under root.

    ctime moves on any write, chmod, chown or rename, so two equal snapshots
    prove that nothing under ``root`` was touched.
    """
    found: dict[str, tuple[int, int, int, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            found[path] = (
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
                st.st_ino,
            )
    st = os.lstat(root)
    found[str(root)] = (
        st.st_mode,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
    )
    return found


def assert_unchanged(
    before: dict[str, tuple[int, int, int, int, int]],
    after: dict[str, tuple[int, int, int, int, int]],
    what: str,
) -> None:
    if before == after:
        return
    changed = sorted(
        p for p in set(before) | set(after) if before.get(p) != after.get(p)
    )
    raise BenchError(
        f"{what}: a converged run touched {len(changed)} path(s), for example "
        f"{changed[:3]}; the benchmark only measures runs that change nothing."
    )


# -- a provider process ---------------------------------------------------------------


class Provider:
    """``tenfra provider serve`` on 127.0.0.1 with SQLite or PostgreSQL."""

    def __init__(
        self,
        folder: Path,
        releases_url: str,
        *,
        database_url: Optional[str] = None,
        workers: int = 1,
        threads: int = 1,
        scan_interval: float = 1.0,
    ) -> None:
        from tenfra.provider.auth import hash_password

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.db_path = folder / "provider.db"
        self.database_url = database_url or f"sqlite:///{self.db_path}"
        self.config = folder / "provider.yaml"
        self.workers = workers
        self.threads = threads
        self.config.write_text(
            json.dumps(
                {
                    "database": {"url": self.database_url},
                    "releases": {"url": releases_url, "scanInterval": scan_interval},
                    "auth": {
                        "secretKey": uuid.uuid4().hex,
                        "users": [
                            {
                                "name": "admin",
                                "passwordHash": hash_password(uuid.uuid4().hex),
                            }
                        ],
                    },
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log = folder / "provider.log"

    def start(self) -> None:
        with open(self.log, "ab") as handle:
            self.proc = subprocess.Popen(
                [
                    TENFRA,
                    "provider",
                    "serve",
                    "--config",
                    str(self.config),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--threads",
                    str(self.threads),
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=tenfra_env(TENFRA_PROVIDER_CACHE=str(self.folder / "cache")),
                cwd=self.folder,
            )
        wait_http(f"{self.url}/healthz", self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cli(self, *args: str) -> str:
        return run_checked(
            [TENFRA, "provider", *args, "--config", str(self.config)],
            env=tenfra_env(),
            cwd=self.folder,
            what=f"tenfra provider {args[0]}",
        )

    def token(self, host: str) -> str:
        return self.cli("token", "--host", host).strip().splitlines()[0]

    def wait_release(self, host: str, credential: str, timeout: float = 60.0) -> str:
        """Wait until ``host`` has a release assigned; returns its ETag digest."""
        import urllib3

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = urllib3.request(
                "GET",
                f"{self.url}/api/v1/release",
                headers={"Authorization": f"Bearer {credential}"},
                timeout=5.0,
                retries=False,
            )
            if answer.status == 200:
                return str(answer.json()["digest"])
            time.sleep(0.2)
        raise BenchError(
            f"the provider assigned no release to {host} within {timeout:.0f} s; "
            f"see {self.log}."
        )


def wait_http(
    url: str,
    proc: Optional[subprocess.Popen[bytes]],
    log: Path,
    timeout: float = 60.0,
) -> None:
    import urllib3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{url}: the server exited:\n{log.read_text()[-3000:]}")
        try:
            answer = urllib3.request("GET", url, timeout=1.0, retries=False)
            if answer.status < 500:
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{url} did not answer within {timeout:.0f} s; see {log}.")


def stop_process(proc: Optional[subprocess.Popen[bytes]]) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- PostgreSQL: a throwaway cluster -------------------------------------------------


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (initdb + pg_ctl as postgres)."""

    def __init__(self) -> None:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not candidates:
            raise BenchError(
                "PostgreSQL server binaries (initdb) are missing; run scripts/setup.sh."
            )
        self.bindir = candidates[-1].parent
        self.base = Path(tempfile.mkdtemp(prefix="tenfra-bench-pg-"))
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.server = f"postgresql://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        data = self.base / "data"
        run_checked(
            [
                *self.as_postgres,
                str(self.bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            what="initdb",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
            "-c max_connections=200"
        )
        run_checked(
            [
                *self.as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.base / "log"),
                "-w",
                "-o",
                options,
                "start",
            ],
            what="pg_ctl start",
        )

    def database(self) -> str:
        import psycopg2

        name = f"bench_{uuid.uuid4().hex[:10]}"
        conn = psycopg2.connect(f"{self.server}/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return f"{self.server}/{name}"

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def fmt_seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def table(rows: list[list[str]]) -> str:
    """A Markdown table (first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append(
            "| "
            + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row))
            + " |"
        )
        if index == 0:
            lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)
