"""A canary marked ``sensitive`` never leaves the task that uses it.

tests/core/test_engine_sensitive.py proves the engine masks sensitive values in
reports, logs and the CLI; tests/core/test_compiler.py proves a host's vars
reach only its own bundle.  This module runs the whole path: a real release
whose host vars hold the canary, a real agent applying it (so the value is
really used), a real provider storing the reports; then every place the
canary could end up is searched: agent output and state, the provider's
database, log, metrics and admin pages, and every other host's bundle.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

from tenfra.compiler import CompileOptions, compile_release

from .conftest import run_agent

CANARY = "CANARY-9f3e-sensitive-41ab"

RECIPE = """\
name: secret user
targets: web-*
tasks:
  - name: load the password
    set: {{pw: "${{{{ db_password }}}}"}}
    sensitive: true
  - name: write the config
    write:
      dest: {target}/app.conf
      format: raw
      value: "password=${{{{ pw }}}}\\n"
    sensitive: true
  - name: show it by mistake
    debug: msg="the password is ${{{{ pw }}}}"
  - name: echo it
    shell: "echo out ${{{{ pw }}}}; echo err ${{{{ pw }}}} >&2"
    sensitive: true
  - name: a missing binary named by it
    try:
      tasks:
        - exec: {{argv: ["/nonexistent/${{{{ pw }}}}"]}}
      catch:
        - debug: msg="caught ${{{{ error }}}}"
  - name: a template error that quotes the value
    try:
      tasks:
        - debug: msg="${{{{ {{}}[pw] }}}}"
      catch:
        - debug: msg="caught ${{{{ error }}}}"
  - name: refuse it
    fail: "login with ${{{{ pw }}}} was refused"
"""


def _write_repo(repo: Any) -> str:
    recipes = repo.root / "recipes"
    (recipes / "secret.yaml").write_text(
        RECIPE.format(target=repo.target), encoding="utf-8"
    )
    (repo.root / "inventory.yaml").write_text(
        "hosts:\n"
        f"  web-1: {{vars: {{db_password: {CANARY}}}}}\n"
        "  web-2: {vars: {db_password: other-password}}\n",
        encoding="utf-8",
    )
    result = compile_release(
        CompileOptions(
            inventory=repo.root / "inventory.yaml",
            recipes=recipes,
            out=repo.url,
            signing_key=repo.key,
        )
    )
    return str(result.name)


def _files_holding(folder: Path, needle: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and needle in p.read_bytes()
    )


def test_the_canary_never_leaves_its_task(
    repo: Any, served: Any, enrolled: Path
) -> None:
    name = _write_repo(repo)
    served.wait_release(name)

    outputs = []
    for args in (("run", "--once"), ("run", "--once", "--force"), ("status",)):
        done = run_agent(enrolled, *args)
        outputs.append(done.stdout + done.stderr)
    # The value itself works: the task wrote it.
    assert (repo.target / "app.conf").read_text() == f"password={CANARY}\n"

    canary = CANARY.encode()
    # Agent: its output, and every state file except the signed release
    # (which must carry the value to use it) and the asset cache.
    assert all(CANARY not in text for text in outputs), outputs
    holders = _files_holding(enrolled, canary)
    assert all(h.startswith("releases/") for h in holders), holders
    assert holders, "the staged bundle should hold the value (sanity)"

    # Release storage: only web-1's own bundle holds it.
    assert _files_holding(repo.out, canary) == [f"releases/{name}/hosts/web-1.json"]

    # Provider: database (every table), its log, metrics, admin pages.
    runs = served.runs("web-1")
    assert len(runs) == 2 and runs[-1]["status"] == "failed"
    with sqlite3.connect(served.db_path) as conn:
        dump = "\n".join(conn.iterdump())
    assert "login with ******** was refused" in dump
    assert "the password is ********" in dump
    # Both caught errors quoted the value and were stored masked.
    with sqlite3.connect(served.db_path) as conn:
        caught = [
            row[0]
            for row in conn.execute(
                "SELECT message FROM task_result WHERE message LIKE 'caught %'"
            )
        ]
    assert len(caught) == 4, caught  # two errors, two runs
    assert all("********" in text for text in caught), caught
    assert CANARY not in dump
    assert CANARY not in served.log.read_text(encoding="utf-8", errors="replace")
    with urllib.request.urlopen(f"{served.url}/metrics", timeout=10) as answer:
        assert CANARY.encode() not in answer.read()
    for page in _admin_pages(served):
        assert CANARY not in page
    # And the masked report still says what happened.
    assert "********" in dump


def _admin_pages(served: Any) -> list[str]:
    """The fleet page and web-1's page for every stored run, as an admin sees them."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = opener.open(f"{served.url}/admin/login", timeout=10).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', login)
    assert csrf
    from urllib.parse import urlencode

    opener.open(
        f"{served.url}/admin/login",
        data=urlencode(
            {
                "csrf": csrf.group(1),
                "username": "admin",
                "password": served.password,
                "next": "/admin/",
            }
        ).encode(),
        timeout=10,
    ).read()
    pages = [opener.open(f"{served.url}/admin/", timeout=10).read().decode()]
    assert "web-1" in pages[0]
    for run in served.runs("web-1"):
        pages.append(
            opener.open(
                f"{served.url}/admin/hosts/web-1?run={run['report_id']}", timeout=10
            )
            .read()
            .decode()
        )
    assert any("was refused" in page for page in pages[1:])
    return pages
