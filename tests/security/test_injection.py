"""Injection: vars from host sources and vars sources, and facts, stay data.

A value such as ``${{ ... }}`` or ``${% %}`` (tenfra's template delimiters),
``{{ }}``/``{% %}`` (plain Jinja2, used in ``.j2`` files), ``$(...)`` or
backticks that arrives from outside the repository (a CMDB behind a host
source, a vars file, a fact) must reach the machine as that very text: never
evaluated by the compiler, the agent or a shell.  The vars written in
inventory.yaml and in recipes are the repository's own code and may hold
templates (docs/recipes.md), which the last test checks still works.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_agent

PAYLOADS = {
    "tenfra_expr": "${{ 6 * 7 }}",
    "tenfra_stmt": "${% for x in [1, 2] %}loop${% endfor %}",
    "tenfra_rce": "${{ cycler.__init__.__globals__.os.system('touch {pwn}') }}",
    "jinja_expr": "{{ 7 * 7 }} {% if true %}yes{% endif %}",
    "subshell": "$(touch {pwn})",
    "backticks": "`touch {pwn}`",
    "mixed": "a'b\"c; touch {pwn} #${{ host }}",
}


def _payloads(pwn: Path) -> dict[str, str]:
    return {name: text.replace("{pwn}", str(pwn)) for name, text in PAYLOADS.items()}


def _recipe(target: Path) -> str:
    """Uses every var as a value, in argv, through a quoted shell and a .j2 file."""
    tasks = []
    for name in PAYLOADS:
        tasks.append(
            f"  - write: {{dest: {target}/{name}.txt, format: raw, "
            f'value: "${{{{ {name} }}}}"}}\n'
            "  - exec: {argv: [/bin/sh, -c, "
            f"'printf %s \"$1\" > {target}/{name}.argv',"
            f' sh, "${{{{ {name} }}}}"]}}\n'
            f'  - shell: "printf %s ${{{{ {name} | quote }}}} > {target}/{name}.sh"\n'
        )
    tasks.append(
        f"  - template: {{src: page.j2, dest: {target}/page.txt}}\n"
        f"  - write: {{dest: {target}/facts.txt, format: raw, "
        'value: "${{ facts.hostname }}"}\n'
    )
    return "name: site\ntargets: web-*\ntasks:\n" + "".join(tasks)


def _write_repo(repo: Any, pwn: Path) -> None:
    values = _payloads(pwn)
    site = repo.root / "recipes" / "site"
    (site / "main.yaml").write_text(_recipe(repo.target), encoding="utf-8")
    (site / "assets" / "page.j2").write_text(
        "".join(f"{name}={{{{ {name} }}}}\n" for name in PAYLOADS), encoding="utf-8"
    )
    # Half the payloads come from a host source (a CMDB export), half from
    # a vars source; none is written in inventory.yaml itself.
    names = sorted(values)
    host_vars = {name: values[name] for name in names[::2]}
    group_vars = {name: values[name] for name in names[1::2]}
    (repo.root / "cmdb.json").write_text(
        json.dumps({"web-1": {"vars": host_vars}}), encoding="utf-8"
    )
    (repo.root / "vars.json").write_text(json.dumps(group_vars), encoding="utf-8")
    (repo.root / "inventory.yaml").write_text(
        "hostSources:\n  - file: cmdb.json\nvarsSources:\n  - file: vars.json\n",
        encoding="utf-8",
    )


def _check_machine(target: Path, pwn: Path) -> None:
    expected = _payloads(pwn)
    for name, text in expected.items():
        for suffix in ("txt", "argv", "sh"):
            written = (target / f"{name}.{suffix}").read_text(encoding="utf-8")
            assert written == text, (name, suffix, written)
    page = (target / "page.txt").read_text(encoding="utf-8")
    assert page == "".join(f"{name}={text}\n" for name, text in expected.items())
    assert not pwn.exists(), "an injected command ran"


def test_source_vars_stay_data_through_compiler_and_agent(
    repo: Any, served: Any, enrolled: Path, tmp_path: Path
) -> None:
    pwn = tmp_path / "pwned"
    _write_repo(repo, pwn)
    from tenfra.compiler import CompileOptions, compile_release

    result = compile_release(
        CompileOptions(
            inventory=repo.root / "inventory.yaml",
            recipes=repo.root / "recipes",
            out=repo.url,
            signing_key=repo.key,
        )
    )
    bundle = json.loads(repo.bundle(result.name, "web-1")[0])
    # The compiler kept the text and flagged the template-looking data.
    assert bundle["vars"]["tenfra_expr"] == "${{ 6 * 7 }}"
    assert set(bundle["dataVars"]) == {
        "tenfra_expr",
        "tenfra_stmt",
        "tenfra_rce",
        "mixed",
    }
    served.wait_release(result.name)

    done = run_agent(enrolled, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    _check_machine(repo.target, pwn)
    assert (repo.target / "facts.txt").read_text() == repo_hostname()


def repo_hostname() -> str:
    from tenfra.factsmod import Facts

    return str(Facts()["hostname"])


def test_source_vars_stay_data_in_a_local_run(repo: Any, tmp_path: Path) -> None:
    """``tenfra run`` reads the inventory directly: the same rule holds."""
    import subprocess

    from .conftest import TENFRA, tenfra_env

    pwn = tmp_path / "pwned"
    _write_repo(repo, pwn)
    done = subprocess.run(
        [
            *TENFRA,
            "run",
            "site",
            "--host",
            "web-1",
            "--inventory",
            str(repo.root / "inventory.yaml"),
            "--recipes",
            str(repo.root / "recipes"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        env=tenfra_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    _check_machine(repo.target, pwn)


def test_facts_stay_data(tmp_path: Path) -> None:
    """A fact is read as a value; templates in it are never rendered."""
    from tenfra.engine import run_recipes
    from tenfra.recipe import RecipeSet

    pwn = tmp_path / "pwned"
    target = tmp_path / "out"
    target.mkdir()
    facts = {**_payloads(pwn), "hostname": "h"}
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "f.yaml").write_text(
        "name: f\ntasks:\n"
        + "".join(
            f"  - write: {{dest: {target}/{name}, format: raw, "
            f'value: "${{{{ facts.{name} }}}}"}}\n'
            for name in PAYLOADS
        ),
        encoding="utf-8",
    )
    report = run_recipes(
        RecipeSet(recipes), ["f"], host="h", state_dir=tmp_path / "s", facts=facts
    )
    assert report.status.value == "changed", report
    for name, text in _payloads(pwn).items():
        assert (target / name).read_text() == text
    assert not pwn.exists()


def test_facts_and_vars_are_escaped_in_the_admin_ui(app: Any) -> None:
    from .test_auth import admin_login

    credential = app.enroll("web-1")
    hostile = {
        "note": "<script>alert(1)</script>",
        "expr": "{{ 7 * 7 }}",
        "tenfra": "${{ 6 * 7 }}",
        "stmt": "{% for x in range(3) %}LOOP{% endfor %}",
    }
    answer = app.post("/api/v1/facts", credential, json={"facts": hostile})
    assert answer.status_code == 200
    app.post("/api/v1/logs", credential, json={"lines": [hostile["note"]]})
    admin_login(app)
    page = app.client.get("/admin/hosts/web-1").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert "{{ 7 * 7 }}" in page and "${{ 6 * 7 }}" in page
    assert "LOOPLOOP" not in page


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${{ 6 * 7 }}", 42),
        ("${{ host }}-x", "web-1-x"),
    ],
)
def test_repository_vars_are_still_templates(
    tmp_path: Path, value: str, expected: Any
) -> None:
    """What inventory.yaml itself says is the repository's code: rendered."""
    from tenfra.engine import run_recipes
    from tenfra.inventory import load_inventory
    from tenfra.recipe import RecipeSet

    (tmp_path / "inventory.yaml").write_text(
        f"hosts:\n  web-1: {{vars: {{v: {json.dumps(value)}}}}}\n", encoding="utf-8"
    )
    inventory = load_inventory(tmp_path / "inventory.yaml")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "r.yaml").write_text(
        f"name: r\ntasks:\n  - write: {{dest: {tmp_path}/v.json, format: json, "
        'value: "${{ v }}"}\n',
        encoding="utf-8",
    )
    report = run_recipes(
        RecipeSet(recipes),
        ["r"],
        host="web-1",
        state_dir=tmp_path / "s",
        var_layers=inventory.var_layers("web-1"),
    )
    assert report.status.value == "changed", report
    assert json.loads((tmp_path / "v.json").read_text()) == expected
