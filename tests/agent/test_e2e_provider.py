"""The agent against a real ``tenfra provider serve`` process on 127.0.0.1."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def machine_files(target: Path) -> dict[str, tuple[bytes, int]]:
    """Content and modification time of every file the recipe manages."""
    return {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(target.iterdir())
    }


def status(support: Any, state: Path) -> dict[str, object]:
    done = support.agent(state, "status", "--json", check=True)
    data: dict[str, object] = json.loads(done.stdout)
    return data


def admin_page(provider: Any, path: str) -> str:
    """Log in to /admin as a browser would (form, CSRF, cookie) and GET ``path``."""
    import urllib3

    pool = urllib3.PoolManager(retries=False)
    login = pool.request("GET", f"{provider.url}/admin/login", redirect=False)
    cookie = login.headers.get("Set-Cookie", "").split(";")[0]
    csrf = re.search(r'name="csrf"[^>]*value="([^"]+)"', login.data.decode())
    fields = {"username": "admin", "password": provider.password}
    if csrf:
        fields["csrf"] = csrf.group(1)
    answer = pool.request_encode_body(
        "POST",
        f"{provider.url}/admin/login",
        fields=fields,
        encode_multipart=False,
        headers={"Cookie": cookie},
        redirect=False,
    )
    assert answer.status in (302, 303), answer.data[:500]
    cookie = answer.headers.get("Set-Cookie", cookie).split(";")[0]
    page = pool.request("GET", f"{provider.url}{path}", headers={"Cookie": cookie})
    assert page.status == 200, page.data[:500]
    return str(page.data.decode("utf-8"))


def test_enrol_pull_apply_report(
    repo: Any, provider: Any, enrolled: Path, support: Any
) -> None:
    state = enrolled
    assert (state / "credential").stat().st_mode & 0o777 == 0o600
    first = repo.compile("v1")
    provider.wait_release(first)

    done = support.agent(state, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"applied {first}: changed" in done.stdout, done.stdout + done.stderr
    assert "1 report(s) delivered, 0 pending" in done.stdout, provider.log_tail()
    assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"
    assert (repo.target / "index.html").read_text() == "<h1>v1</h1>\n"

    runs = provider.runs("web-1")
    assert [(r["status"], r["release"]) for r in runs] == [
        ("changed", first.split("-")[1])
    ]
    report_id = runs[0]["report_id"]
    with sqlite3.connect(provider.db_path) as conn:
        (facts,) = conn.execute(
            "SELECT facts FROM host WHERE name = 'web-1'"
        ).fetchone()
    assert json.loads(facts)["python_version"]
    page = admin_page(provider, "/admin/hosts/web-1")
    assert "changed" in page and first.split("-")[1] in page

    # Nothing new: a 304, nothing applied, nothing reported.
    again = support.agent(state, "run", "--once")
    assert again.returncode == 0 and "nothing to apply" in again.stdout
    assert len(provider.runs("web-1")) == 1

    info = status(support, state)
    assert info["current"] == first and info["lastGood"] == first
    assert info["pendingReports"] == 0
    assert info["lastRun"]["id"] == report_id  # type: ignore[index]

    # A new release is pulled and applied.
    second = repo.compile("v2")
    provider.wait_release(second)
    done = support.agent(state, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo.target / "version.txt").read_text() == "v2 for web-1 hello"
    assert [r["status"] for r in provider.runs("web-1")] == ["changed", "changed"]

    # Drift is repaired on demand (and on the repair schedule).
    (repo.target / "version.txt").write_text("tampered by hand")
    done = support.agent(state, "run", "--once", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo.target / "version.txt").read_text() == "v2 for web-1 hello"


@pytest.mark.parametrize("attack", ["tampered", "older", "other-host"])
def test_rejected_bundles_leave_the_machine_unchanged(
    repo: Any, provider: Any, enrolled: Path, support: Any, attack: str
) -> None:
    state = enrolled
    first = repo.compile("v1")
    provider.wait_release(first)
    second = repo.compile("v2")
    provider.wait_release(second)
    assert support.agent(state, "run", "--once").returncode == 0
    before = machine_files(repo.target)
    releases_before = sorted(p.name for p in (state / "releases").iterdir())

    if attack == "tampered":
        data, signature = repo.bundle(second, "web-1")
        data = data.replace(b"v2 for", b"v6 for")
        expected = "does not match its signature"
    elif attack == "older":
        data, signature = repo.bundle(first, "web-1")  # validly signed, sequence 1
        expected = "older or replayed releases are rejected"
    else:
        data, signature = repo.bundle(second, "web-2")  # validly signed, for web-2
        expected = "compiled for host 'web-2'"
    forged = repo.forge("web-1", data, signature)
    provider.wait_release(forged)

    done = support.agent(state, "run", "--once")
    assert done.returncode == 4, done.stdout + done.stderr
    assert expected in done.stdout

    assert machine_files(repo.target) == before
    assert sorted(p.name for p in (state / "releases").iterdir()) == releases_before
    info = status(support, state)
    assert info["current"] == second and info["lastGood"] == second
    runs = provider.runs("web-1")
    assert runs[-1]["status"] == "rejected"
    assert expected in runs[-1]["error"]

    # The rejection is reported once, not at every poll.
    assert support.agent(state, "run", "--once").returncode == 0
    assert len(provider.runs("web-1")) == len(runs)


def test_outage_reports_arrive_exactly_once(
    repo: Any, provider: Any, enrolled: Path, support: Any
) -> None:
    state = enrolled
    first = repo.compile("v1")
    provider.wait_release(first)
    assert support.agent(state, "run", "--once").returncode == 0

    provider.stop()
    spooled: set[str] = set()
    for _ in range(3):
        (repo.target / "version.txt").write_text("drift")
        done = support.agent(state, "run", "--once", "--force")
        # The provider is down, but the last good release is still enforced.
        assert done.returncode == 0, done.stdout + done.stderr
        assert "provider unreachable" in done.stdout
        assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"
        spooled |= {
            p.name.split("-", 1)[1][:-5] for p in (state / "spool").glob("*.json")
        }
    assert len(spooled) == 3
    assert status(support, state)["pendingReports"] == 3

    provider.start()
    done = support.agent(state, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 report(s) delivered, 0 pending" in done.stdout
    runs = provider.runs("web-1")
    ids = [r["report_id"] for r in runs]
    assert len(ids) == len(set(ids)) == 4
    assert spooled <= set(ids)

    # Sending a delivered report again (a lost answer) stores nothing new.
    from tenfra.agent.client import ProviderClient

    client = ProviderClient(
        provider.url, credential=(state / "credential").read_text().strip()
    )
    report = {**_report_of(state, runs[-1]["report_id"], provider), "id": ids[-1]}
    assert client.post_report(report, ids[-1]) == 200
    assert len(provider.runs("web-1")) == 4


def _report_of(state: Path, report_id: str, provider: Any) -> dict[str, object]:
    """A minimal valid report with the given id (for the duplicate check)."""
    return {
        "id": report_id,
        "host": "web-1",
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:00:01Z",
        "status": "ok",
    }


def test_daemon_survives_an_outage_and_stops_on_sigterm(
    repo: Any, provider: Any, enrolled: Path, support: Any
) -> None:
    state = enrolled
    config = state / "agent.yaml"
    text = config.read_text()
    text = re.sub(r"interval: .*", "interval: 1.0", text)
    text = re.sub(r"splay: .*", "splay: 0.2", text)
    text = re.sub(r"repairInterval: .*", "repairInterval: 0.0", text)
    text = re.sub(r"backoffMax: .*", "backoffMax: 2.0", text)
    config.write_text(text)
    first = repo.compile("v1")
    provider.wait_release(first)

    log = state.parent / "daemon.log"
    with open(log, "wb") as handle:
        daemon = subprocess.Popen(
            [*support.TENFRA, "agent", "--state-dir", str(state), "run"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=support.tenfra_env(),
        )
    try:
        _wait(lambda: len(provider.runs("web-1")) >= 1, log)
        rss = _rss_kib(daemon.pid)
        assert rss < 50 * 1024, f"idle daemon uses {rss} KiB"
        provider.stop()
        _wait(lambda: len(list((state / "spool").glob("*.json"))) >= 2, log)
        spooled = {
            p.name.split("-", 1)[1][:-5] for p in (state / "spool").glob("*.json")
        }
        provider.start()
        _wait(lambda: spooled <= {r["report_id"] for r in provider.runs("web-1")}, log)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    ids = [r["report_id"] for r in provider.runs("web-1")]
    assert len(ids) == len(set(ids))
    assert "agent stopped" in log.read_text()


def _wait(predicate: object, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail(f"timed out; daemon log:\n{log.read_text()[-4000:]}")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_agent_never_imports_flask_or_peewee(
    repo: Any, provider: Any, enrolled: Path, support: Any
) -> None:
    first = repo.compile("v1")
    provider.wait_release(first)
    probe = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: sys.stderr.write('MODULES ' + json.dumps("
        "sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'peewee', 'werkzeug', 'gunicorn'))) + '\\n'))\n"
        "from tenfra.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    done = subprocess.run(
        [
            support.TENFRA[0],
            "-c",
            probe,
            "agent",
            "--state-dir",
            str(enrolled),
            "run",
            "--once",
        ],
        capture_output=True,
        text=True,
        env=support.tenfra_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo.target / "version.txt").exists()
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    assert json.loads(line[len("MODULES ") :]) == []


def test_enrolment_by_approval(tmp_path: Path, repo: Any, support: Any) -> None:
    folder = tmp_path / "approving-provider"
    folder.mkdir()
    server = support.Provider(folder, repo.url, approval=True)
    server.start()
    try:
        state = tmp_path / "agent-state"
        enroll = (
            "enroll",
            "--provider",
            server.url,
            "--host",
            "web-2",
            "--public-key",
            str(repo.public_key),
        )
        done = support.agent(state, *enroll)
        assert done.returncode == 5, done.stdout + done.stderr
        assert "awaits approval" in done.stdout
        assert "fingerprint" in done.stdout
        assert not (state / "credential").exists()

        server.cli("approve", "web-2")
        done = support.agent(state, *enroll)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (state / "credential").read_text().startswith("web-2.")
        assert not (state / "enroll-request").exists()
        status = support.agent(state, "status", "--json", check=True)
        assert json.loads(status.stdout)["host"] == "web-2"
    finally:
        server.stop()
