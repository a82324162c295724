"""The one-command demo: test, compile, serve and apply examples/ on this machine.

Run through ``scripts/demo.sh`` (which runs ``scripts/setup.sh`` first):

1. ``tenfra test`` runs the examples' recipe test suites;
2. ``tenfra keygen`` and ``tenfra compile`` write a signed release;
3. ``tenfra provider serve`` serves it on 127.0.0.1 (SQLite, a local folder);
4. agents enrol with one-time tokens and apply their bundles: the agent zipapp
   in podman containers when podman and the test image are available,
   otherwise agents on this machine whose recipes write only below
   ``.state/demo/sandbox/<host>/``;
5. a summary table and the admin UI's address and login are printed, then the
   demo waits until Ctrl-C and shuts everything down.

Everything lives under ``.state/demo/`` and is recreated on every run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
IMAGE = "localhost/tenfra-test:bookworm"
LABEL = "tenfra.demo"
HOSTS = ("web-01", "web-02", "db-01")
TENFRA = (sys.executable, "-m", "tenfra.cli")
# Containers reach the provider on the machine's 127.0.0.1 through slirp4netns:
# inside each container 10.0.2.2 is the host's loopback, and every container
# keeps a network namespace of its own (two nginx can both listen on port 80).
CONTAINER_NETWORK = "slirp4netns:allow_host_loopback=true"
HOST_LOOPBACK_FROM_CONTAINER = "10.0.2.2"
SUITES_PODMAN = ("base", "users", "web", "sandbox", "greeting")
SUITES_LOCAL = ("sandbox", "greeting")


class DemoError(Exception):
    """A step failed; the message says which and what to try."""


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, total: int, text: str) -> None:
    say(f"\n[{number}/{total}] {text}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(ROOT / ".state" / "containers.conf"))
    return env


def podman_problem() -> Optional[str]:
    """Why the podman mode cannot run here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed"
    conf = podman_env()["CONTAINERS_CONF"]
    if not Path(conf).is_file():
        return f"the podman configuration {conf} is missing (scripts/setup.sh)"
    if shutil.which("slirp4netns") is None:
        return "slirp4netns is not installed (apt-get install slirp4netns)"
    exists = subprocess.run(
        ["podman", "image", "exists", IMAGE],
        env=podman_env(),
        capture_output=True,
        check=False,
    )
    if exists.returncode != 0:
        return f"the image {IMAGE} is missing (scripts/setup.sh builds it)"
    return None


class Agent:
    """One managed host: a podman container, or a state folder on this machine."""

    def __init__(self, demo: Demo, host: str) -> None:
        self.demo = demo
        self.host = host
        self.container = f"{demo.prefix}{host}"
        self.state_dir = demo.state / "agents" / host
        self.log = demo.state / "logs" / f"agent-{host}.log"
        self.daemon: Optional[subprocess.Popen[bytes]] = None

    def command(self, *args: str) -> list[str]:
        demo = self.demo
        if demo.mode == "podman":
            return [
                "podman",
                "exec",
                self.container,
                "python3",
                "/opt/tenfra/tenfra.pyz",
                "agent",
                *args,
            ]
        return [
            demo.python,
            "-I",
            str(demo.pyz),
            "agent",
            "--state-dir",
            str(self.state_dir),
            *args,
        ]

    def start(self) -> None:
        demo = self.demo
        if demo.mode == "podman":
            demo.run(
                [
                    "podman",
                    "run",
                    "-d",
                    "--name",
                    self.container,
                    "--hostname",
                    self.host,
                    "--label",
                    f"{demo.label}={demo.run_id}",
                    "--network",
                    CONTAINER_NETWORK,
                    "-v",
                    f"{demo.pyz}:/opt/tenfra/tenfra.pyz:ro",
                    "-v",
                    f"{demo.public_key}:/opt/tenfra/release.pub:ro",
                    IMAGE,
                    "sleep",
                    "infinity",
                ],
                what=f"starting the container of {self.host}",
            )
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            (demo.state / "sandbox" / self.host).mkdir(parents=True, exist_ok=True)

    def enroll(self, token: str) -> None:
        demo = self.demo
        key = (
            "/opt/tenfra/release.pub" if demo.mode == "podman" else str(demo.public_key)
        )
        done = demo.run(
            self.command(
                "enroll",
                "--provider",
                demo.agent_url,
                "--host",
                self.host,
                "--token",
                token,
                "--public-key",
                key,
                "--interval",
                "20",
                "--splay",
                "5",
                "--repair-interval",
                "600",
            ),
            what=f"enrolling {self.host}",
        )
        self._append_log(done.stdout + done.stderr)

    def apply_once(self) -> int:
        done = subprocess.run(
            self.command("run", "--once"),
            capture_output=True,
            text=True,
            env=self.demo.env(),
            check=False,
            timeout=900,
        )
        self._append_log(done.stdout + done.stderr)
        return done.returncode

    def start_daemon(self) -> None:
        """Keep the agent polling (every 20 s) until the demo ends."""
        if self.demo.mode == "podman":
            self.demo.run(
                ["podman", "exec", "-d", self.container, *self.command("run")[3:]],
                what=f"starting the agent daemon of {self.host}",
            )
            return
        handle = open(self.log, "ab")  # noqa: SIM115 (the child owns it)
        self.daemon = subprocess.Popen(
            self.command("run"),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=self.demo.env(),
            start_new_session=True,
        )
        handle.close()

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None

    def _append_log(self, text: str) -> None:
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(text)


class Demo:
    """The pipeline's state: folders, the provider process, the agents."""

    def __init__(
        self,
        state: Path,
        *,
        mode: str,
        hosts: Sequence[str],
        run_tests: bool,
        port: Optional[int] = None,
        examples: Path = EXAMPLES,
        prefix: str = "tenfra-demo-",
        label: str = LABEL,
    ) -> None:
        self.state = state
        self.examples = examples
        self.prefix = prefix
        self.label = label
        self.mode = mode
        self.run_tests = run_tests
        self.run_id = secrets.token_hex(4)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        loopback = HOST_LOOPBACK_FROM_CONTAINER if mode == "podman" else "127.0.0.1"
        self.agent_url = f"http://{loopback}:{self.port}"
        self.keys = state / "keys"
        self.private_key = self.keys / "release.key"
        self.public_key = self.keys / "release.pub"
        self.releases = state / "releases"
        self.pyz = state / "tenfra.pyz"
        self.config = state / "provider.yaml"
        self.database = state / "provider.db"
        self.password = secrets.token_urlsafe(12)
        self.python = _agent_python()
        self.provider: Optional[subprocess.Popen[bytes]] = None
        self.agents = [Agent(self, host) for host in hosts]
        self.release_name = ""

    # -- helpers ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = podman_env()
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("TENFRA_STATE_DIR", None)
        if self.mode == "local":
            env["FLEET_SANDBOX_DIR"] = str(self.state / "sandbox")
        else:
            env.pop("FLEET_SANDBOX_DIR", None)
        return env

    def run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        cwd: Optional[Path] = None,
        stream: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command; a failure raises DemoError with its output."""
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=self.env(),
            text=True,
            capture_output=not stream,
            check=False,
        )
        if done.returncode != 0:
            output = "" if stream else (done.stdout + done.stderr).strip()
            raise DemoError(
                f"{what} failed (exit code {done.returncode}): {' '.join(argv)}"
                + (f"\n{output}" if output else "")
            )
        return done

    # -- the steps -------------------------------------------------------------------

    def prepare(self) -> None:
        if self.state.exists():
            shutil.rmtree(self.state)
        for folder in (self.state, self.state / "logs", self.keys):
            folder.mkdir(parents=True, exist_ok=True)

    def test(self) -> None:
        suites = SUITES_PODMAN if self.mode == "podman" else SUITES_LOCAL
        argv = [*TENFRA, "test", *(f"tests/{name}.test.yaml" for name in suites)]
        if self.mode == "podman":
            argv += ["-k", "::podman", "-k", "::local", "--jobs", "2"]
        else:
            argv += ["--runner", "local"]
        argv += ["--junit-xml", str(self.state / "logs" / "junit.xml")]
        say("  $ " + " ".join(["tenfra", *argv[3:]]))
        self.run(argv, what="the recipe tests", cwd=self.examples, stream=True)

    def compile(self) -> str:
        """Compile the examples into the next release; the first call makes the key."""
        if not self.private_key.exists():
            self.run(
                [*TENFRA, "keygen", "-o", str(self.private_key)],
                what="creating the signing key",
            )
        argv = [
            *TENFRA,
            "compile",
            "--inventory",
            str(self.examples / "inventory.yaml"),
            "--recipes",
            str(self.examples / "recipes"),
            "--out",
            str(self.releases),
            "--signing-key",
            str(self.private_key),
        ]
        if self.mode == "local":
            say(f"  FLEET_SANDBOX_DIR={self.state / 'sandbox'}")
        done = self.run(argv, what="compiling the release")
        for line in done.stdout.strip().splitlines():
            say(f"  {line}")
        latest = (self.releases / "LATEST").read_text(encoding="utf-8").strip()
        self.release_name = latest
        return latest

    def serve(self) -> None:
        from tenfra.provider.auth import hash_password

        config = {
            "database": {"url": f"sqlite:///{self.database}"},
            "releases": {
                "url": str(self.releases),
                "publicKey": str(self.public_key),
                "scanInterval": 2,
            },
            "auth": {
                "secretKey": secrets.token_hex(32),
                "users": [
                    {"name": "admin", "passwordHash": hash_password(self.password)}
                ],
            },
            "agent": {"pyz": str(self.pyz)},
            "publicUrl": self.url,
        }
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.config)

        log = open(self.state / "logs" / "provider.log", "ab")  # noqa: SIM115
        env = self.env()
        env["TENFRA_PROVIDER_CACHE"] = str(self.state / "provider-cache")
        self.provider = subprocess.Popen(
            [
                *TENFRA,
                "provider",
                "serve",
                "--config",
                str(self.config),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.state,
            start_new_session=True,
        )
        log.close()
        (self.state / "provider.pid").write_text(f"{self.provider.pid}\n")
        self._wait_ready()
        self.wait_release(self.release_name)
        say(f"  serving {self.url} (log: {self._short(self.state / 'logs')})")

    def _wait_ready(self, timeout: float = 60.0) -> None:
        import urllib3

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.provider is not None and self.provider.poll() is not None:
                raise DemoError(
                    "the provider exited while starting; its log says:\n"
                    + self.provider_log_tail()
                )
            try:
                answer = urllib3.request(
                    "GET", f"{self.url}/healthz", timeout=2.0, retries=False
                )
                if answer.status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.2)
        raise DemoError(
            f"the provider did not answer on {self.url}/healthz within {timeout:.0f} "
            "s; its log says:\n" + self.provider_log_tail()
        )

    def wait_release(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self.releases_known():
                return
            time.sleep(0.3)
        raise DemoError(
            f"the provider did not pick up release {name} within {timeout:.0f} s; "
            "its log says:\n" + self.provider_log_tail()
        )

    def releases_known(self) -> list[str]:
        try:
            with sqlite3.connect(self.database, timeout=5) as conn:
                rows = conn.execute("SELECT name FROM release").fetchall()
        except sqlite3.Error:
            return []
        return [str(row[0]) for row in rows]

    def provider_log_tail(self, size: int = 3000) -> str:
        path = self.state / "logs" / "provider.log"
        if not path.exists():
            return "(no log)"
        return path.read_text(encoding="utf-8", errors="replace")[-size:]

    def build_agent(self) -> None:
        from tenfra.agent.zipapp import build_zipapp

        build_zipapp(self.pyz)
        size = self.pyz.stat().st_size // 1024
        say(f"  agent zipapp {self._short(self.pyz)} ({size} KiB)")

    def enroll_all(self) -> None:
        for agent in self.agents:
            agent.start()
            token = self.run(
                [
                    *TENFRA,
                    "provider",
                    "token",
                    "--config",
                    str(self.config),
                    "--host",
                    agent.host,
                    "--ttl",
                    "10m",
                ],
                what=f"creating the bootstrap token of {agent.host}",
                cwd=self.state,
            ).stdout.split()[0]
            agent.enroll(token)
            where = (
                f"container {agent.container}"
                if self.mode == "podman"
                else f"sandbox {self._short(self.state / 'sandbox' / agent.host)}"
            )
            say(f"  {agent.host}: enrolled ({where})")

    def apply_all(self) -> dict[str, int]:
        with concurrent.futures.ThreadPoolExecutor(len(self.agents) or 1) as pool:
            futures = {pool.submit(a.apply_once): a for a in self.agents}
            codes: dict[str, int] = {}
            for future in concurrent.futures.as_completed(futures):
                agent = futures[future]
                codes[agent.host] = future.result()
                say(f"  {agent.host}: agent exit code {codes[agent.host]}")
        return codes

    def statuses(self) -> dict[str, dict[str, Any]]:
        with sqlite3.connect(self.database, timeout=5) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT host, status, changed, failed, release, sequence, error "
                "FROM host_status ORDER BY host"
            ).fetchall()
        return {str(row["host"]): dict(row) for row in rows}

    def summary(self, codes: dict[str, int]) -> bool:
        statuses = self.statuses()
        header = ("HOST", "WHERE", "STATUS", "CHANGED", "FAILED", "RELEASE")
        table: list[tuple[str, ...]] = [header]
        ok = True
        for agent in self.agents:
            status = statuses.get(agent.host)
            where = "container" if self.mode == "podman" else "sandbox"
            if status is None:
                ok = False
                table.append((agent.host, where, "no report", "-", "-", "-"))
                continue
            if status["status"] == "failed" or codes.get(agent.host, 0) != 0:
                ok = False
            table.append(
                (
                    agent.host,
                    where,
                    str(status["status"]),
                    str(status["changed"]),
                    str(status["failed"]),
                    f"{status['release']} #{status['sequence']}",
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        say()
        for line in table:
            say("  " + "  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
        if not ok:
            say(
                "\n  Some hosts did not converge; their agent output is in "
                f"{self._short(self.state / 'logs')}/agent-HOST.log, and the host "
                "pages of the admin UI show the failed tasks."
            )
        return ok

    def shutdown(self) -> None:
        for agent in self.agents:
            agent.stop()
        if self.mode == "podman":
            names = [a.container for a in self.agents]
            subprocess.run(
                ["podman", "rm", "-f", "-t", "0", *names],
                env=podman_env(),
                capture_output=True,
                check=False,
            )
        if self.provider is not None and self.provider.poll() is None:
            self.provider.terminate()
            try:
                self.provider.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.provider.kill()
                self.provider.wait()
        self.provider = None
        pid_file = self.state / "provider.pid"
        if pid_file.exists():
            pid_file.unlink()

    def _short(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)


def _agent_python() -> str:
    """The interpreter that runs the agent zipapp on this machine."""
    system = shutil.which("python3", path="/usr/bin:/bin")
    if system:
        version = subprocess.run(
            [system, "-c", "import sys; print(sys.version_info >= (3, 9))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if version.stdout.strip() == "True":
            return system
    return sys.executable


def remove_leftovers(state: Path) -> None:
    """Stop what a killed earlier demo left: its provider and its containers."""
    pid_file = state / "provider.pid"
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            cmdline = b""
        if str(state / "provider.yaml").encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
    if shutil.which("podman") is not None:
        found = subprocess.run(
            ["podman", "ps", "-aq", "--filter", f"label={LABEL}"],
            env=podman_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        ids = found.stdout.split()
        if ids:
            subprocess.run(
                ["podman", "rm", "-f", "-t", "0", *ids],
                env=podman_env(),
                capture_output=True,
                check=False,
            )


def wait_for_interrupt() -> None:
    """Block until Ctrl-C (SIGINT) or SIGTERM."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description=(
            "Run the whole tenfra pipeline on examples/: test, compile, serve, "
            "enrol agents, apply, then wait for Ctrl-C."
        ),
    )
    parser.add_argument(
        "--mode",
        choices=("auto", "podman", "local"),
        default=os.environ.get("TENFRA_DEMO_MODE", "auto"),
        help="podman: agents in containers; local: agents on this machine writing "
        "only below .state/demo/sandbox; auto (default): podman when available",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        default=os.environ.get("TENFRA_DEMO_NO_WAIT", "") not in ("", "0"),
        help="stop after the summary instead of waiting for Ctrl-C "
        "(also TENFRA_DEMO_NO_WAIT=1)",
    )
    parser.add_argument(
        "--skip-tests", action="store_true", help="do not run the recipe tests"
    )
    parser.add_argument(
        "--hosts",
        default=",".join(HOSTS),
        help=f"the inventory hosts to run agents for (default {','.join(HOSTS)})",
    )
    parser.add_argument("--port", type=int, help="the provider's port (default: free)")
    parser.add_argument(
        "--state",
        type=Path,
        default=ROOT / ".state" / "demo",
        help="the demo's folder, recreated on every run (default .state/demo)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    # Ctrl-C works even when a non-interactive shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    mode = args.mode
    problem = podman_problem() if mode in ("auto", "podman") else None
    if mode == "podman" and problem:
        say(
            f"demo: cannot use podman: {problem}; run scripts/setup.sh or --mode local."
        )
        return 2
    if mode == "auto":
        mode = "local" if problem else "podman"
        if problem:
            say(f"demo: {problem}; agents run on this machine in a sandbox instead.")
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    demo = Demo(
        args.state.resolve(), mode=mode, hosts=hosts, run_tests=not args.skip_tests
    )
    total = 6
    started = time.monotonic()
    try:
        remove_leftovers(demo.state)
        demo.prepare()
        say(
            f"tenfra demo: {len(hosts)} hosts ({', '.join(hosts)}), agents in "
            + ("podman containers" if mode == "podman" else "a sandbox on this machine")
            + f"; state in {demo._short(demo.state)}"
        )
        if demo.run_tests:
            step(1, total, "Testing the recipes")
            demo.test()
        else:
            step(1, total, "Testing the recipes: skipped (--skip-tests)")
        step(2, total, "Compiling a signed release of examples/")
        demo.compile()
        step(3, total, "Starting the provider")
        demo.build_agent()
        demo.serve()
        step(4, total, "Enrolling the agents")
        demo.enroll_all()
        step(5, total, "Applying the release")
        codes = demo.apply_all()
        step(6, total, f"Summary ({time.monotonic() - started:.0f} s)")
        ok = demo.summary(codes)
        _print_access(demo)
        if args.no_wait:
            return 0 if ok else 1
        for agent in demo.agents:
            agent.start_daemon()
        _print_next_steps(demo)
        wait_for_interrupt()
        say("\nShutting down...")
        return 0 if ok else 1
    except DemoError as exc:
        say(f"\ndemo: {exc}")
        return 1
    except KeyboardInterrupt:
        say("\nInterrupted; shutting down...")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.shutdown()
        say("demo: stopped (state kept in " + demo._short(demo.state) + ")")


def _print_access(demo: Demo) -> None:
    say(f"\n  Admin UI:  {demo.url}/admin/")
    say("  User:      admin")
    say(f"  Password:  {demo.password}   (shown once; only its hash is stored)")


def _print_next_steps(demo: Demo) -> None:
    sandbox = (
        f"FLEET_SANDBOX_DIR={demo.state / 'sandbox'} " if demo.mode == "local" else ""
    )
    say(
        "\n  The agents poll every 20 s. To roll out a change, edit a file under "
        "examples/ and compile again:\n"
        f"    {sandbox}.venv/bin/tenfra compile -i examples/inventory.yaml "
        f"--recipes examples/recipes --out {demo._short(demo.releases)} "
        f"--signing-key {demo._short(demo.private_key)}\n"
        "\n  Press Ctrl-C to stop the provider and the agents."
    )


if __name__ == "__main__":
    sys.exit(main())
