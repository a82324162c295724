"""End to end: podman containers run the agent zipapp against a real provider.

Three containers (web-01, web-02, db-01) enrol with one-time tokens and apply
the examples' release; a browser logs into the admin UI and sees every host
with its report; a second release changes one template of the ``web``
recipe, and only the web servers report a change.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("web-01", "web-02", "db-01")
WEB_HOSTS = ("web-01", "web-02")

pytestmark = [pytest.mark.integration, pytest.mark.podman, pytest.mark.browser]


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    podman_env: dict[str, str],
    demo_module: ModuleType,
) -> Iterator[Any]:
    """The examples' first release applied by three containers."""
    problem = demo_module.podman_problem()
    if problem:
        pytest.fail(f"the end-to-end test needs podman: {problem}")
    base = tmp_path_factory.mktemp("fleet")
    examples = base / "examples"
    import shutil

    shutil.copytree(ROOT / "examples", examples)
    run = uuid.uuid4().hex[:6]
    demo = demo_module.Demo(
        base / "state",
        mode="podman",
        hosts=HOSTS,
        run_tests=False,
        examples=examples,
        prefix=f"tenfra-e2e-{run}-",
        label="tenfra.e2e",
    )
    try:
        demo.prepare()
        demo.compile()
        demo.build_agent()
        demo.serve()
        demo.enroll_all()
        demo.first_codes = demo.apply_all()
        yield demo
    finally:
        demo.shutdown()
        leftovers = subprocess.run(
            ["podman", "ps", "-aq", "--filter", f"label=tenfra.e2e={demo.run_id}"],
            env=podman_env,
            capture_output=True,
            text=True,
        )
        assert leftovers.stdout.split() == [], "containers were left behind"


def latest_runs(demo: Any) -> dict[str, dict[str, Any]]:
    """Per host: its newest run and the names of its changed top-level tasks."""
    found: dict[str, dict[str, Any]] = {}
    with sqlite3.connect(demo.database) as conn:
        conn.row_factory = sqlite3.Row
        for host in HOSTS:
            run = conn.execute(
                "SELECT * FROM run WHERE host = ? ORDER BY id DESC LIMIT 1", (host,)
            ).fetchone()
            if run is None:
                continue
            tasks = conn.execute(
                "SELECT name, status FROM task_result WHERE run_id = ? AND depth = 0 "
                "ORDER BY recipe_position, position",
                (run["id"],),
            ).fetchall()
            found[host] = {
                **dict(run),
                "changed_tasks": [t["name"] for t in tasks if t["status"] == "changed"],
                "failed_tasks": [t["name"] for t in tasks if t["status"] == "failed"],
            }
    return found


def agent_log(demo: Any, host: str) -> str:
    path: Path = demo.state / "logs" / f"agent-{host}.log"
    return path.read_text(encoding="utf-8", errors="replace")[-4000:]


def test_every_host_converges(fleet: Any) -> None:
    for host in HOSTS:
        assert fleet.first_codes[host] == 0, agent_log(fleet, host)
    statuses = fleet.statuses()
    assert sorted(statuses) == sorted(HOSTS)
    for host in HOSTS:
        assert statuses[host]["status"] == "changed", statuses[host]
        assert statuses[host]["failed"] == 0
        assert statuses[host]["sequence"] == 1
    runs = latest_runs(fleet)
    for host in WEB_HOSTS:
        assert {"install nginx", "home page", "running"} <= set(
            runs[host]["changed_tasks"]
        ), runs[host]
    assert "install nginx" not in runs["db-01"]["changed_tasks"]

    # The web servers really serve the page, inside their own containers.
    page = subprocess.run(
        [
            "podman",
            "exec",
            f"{fleet.prefix}web-01",
            "python3",
            "-c",
            "import urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1/', timeout=10).read().decode())",
        ],
        capture_output=True,
        text=True,
        env=fleet.env(),
    )
    assert page.returncode == 0, page.stderr
    assert "Served by web-01.example.com (production)" in page.stdout


def test_the_admin_ui_shows_every_host_and_its_report(
    fleet: Any, browser: Any, artifacts_dir: Path
) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{fleet.url}/admin/")
        assert page.locator("input[name=password]").count() == 1, "no login form"
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", fleet.password)
        page.click("button[type=submit]")
        page.wait_for_selector("table.hosts")
        rows = page.locator("table.hosts tbody tr")
        seen = {}
        for index in range(rows.count()):
            cells = rows.nth(index).locator("td").all_inner_texts()
            seen[cells[0].strip()] = cells
        assert sorted(seen) == sorted(HOSTS), seen
        for host in HOSTS:
            assert seen[host][2].strip() == "changed", seen[host]
            assert fleet.release_name.split("-", 1)[1] in seen[host][3]
            assert seen[host][5].strip() == "0"
        page.screenshot(path=str(artifacts_dir / "e2e-fleet.png"), full_page=True)

        page.click("text=web-01")
        page.wait_for_selector("table.runs")
        text = page.inner_text("body")
        assert "Web server (web)" in text
        assert "Users and SSH keys (users)" in text
        assert "home page" in text and "install nginx" in text
        page.screenshot(path=str(artifacts_dir / "e2e-host-web-01.png"), full_page=True)
    finally:
        page.close()


def test_a_template_change_reaches_only_the_hosts_that_use_it(fleet: Any) -> None:
    first = fleet.release_name
    template = fleet.examples / "recipes" / "web" / "assets" / "index.html.j2"
    text = template.read_text(encoding="utf-8")
    template.write_text(
        text.replace("</body>", "  <p>Now with a footer.</p>\n  </body>"),
        encoding="utf-8",
    )

    second = fleet.compile()
    assert second != first and second.startswith("0000000002-")
    diff = subprocess.run(
        [
            sys.executable,
            "-m",
            "tenfra.cli",
            "diff",
            str(fleet.releases / "releases" / first),
            str(fleet.releases),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=fleet.env(),
    )
    assert diff.returncode == 0, diff.stderr
    changes = {d["host"]: d for d in json.loads(diff.stdout)["hosts"]}
    assert sorted(changes) == ["staging-web-01", "web-01", "web-02", "web-03"]
    for host in changes:
        assert changes[host]["recipes"] == {"web": ["asset index.html.j2 changed"]}

    fleet.wait_release(second)
    codes = fleet.apply_all()
    assert codes == dict.fromkeys(HOSTS, 0), {h: agent_log(fleet, h) for h in HOSTS}

    runs = latest_runs(fleet)
    for host in HOSTS:
        assert runs[host]["sequence"] == 2, runs[host]
        assert runs[host]["failed_tasks"] == []
    for host in WEB_HOSTS:
        assert runs[host]["status"] == "changed"
        assert runs[host]["changed_tasks"] == ["home page"], runs[host]
    assert runs["db-01"]["status"] == "ok"
    assert runs["db-01"]["changed"] == 0
    assert runs["db-01"]["changed_tasks"] == []
