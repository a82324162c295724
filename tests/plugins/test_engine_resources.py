"""The file and command resource types run through the real engine."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tenfra.pluginmanager import PluginManager
from tenfra.report import RunReport, TaskReport


def _run(root: Path, **kwargs: Any) -> RunReport:
    from tenfra.engine import run_recipes
    from tenfra.recipe import RecipeSet

    pm = PluginManager()
    recipes = RecipeSet(root / "recipes", plugin_manager=pm)
    return run_recipes(
        recipes,
        ["web"],
        host="web-1",
        state_dir=root / "state",
        plugin_manager=pm,
        **kwargs,
    )


def _tasks(report: RunReport) -> list[TaskReport]:
    return [task for recipe in report.recipes for task in recipe.tasks]


@pytest.fixture
def recipe_root(tmp_path: Path) -> Path:
    recipe = tmp_path / "recipes" / "web"
    (recipe / "assets" / "conf.d").mkdir(parents=True)
    (recipe / "assets" / "site.conf").write_text("listen 80\n")
    (recipe / "assets" / "app.conf.j2").write_text("name={{ app }} port={{ port }}\n")
    (recipe / "assets" / "conf.d" / "a.conf").write_text("a\n")
    (recipe / "assets" / "conf.d" / "b.conf").write_text("b\n")
    (recipe / "assets" / "secret.txt").write_text("token=canary-7731\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "hosts").write_text("127.0.0.1 localhost\n")
    text = f"""
        name: web
        vars:
          app: shop
          port: 8080
          out: {out}
        tasks:
          - name: shorthand copy with a quoted mode
            copy: src=site.conf dest=${{{{ out }}}}/site.conf mode=0640
          - name: symbolic mode
            file:
              path: ${{{{ out }}}}/site.conf
              mode: "u=rw,g=r,o="
          - name: a folder of files
            copy: {{src: "conf.d/*.conf", dest: "${{{{ out }}}}/conf.d/"}}
          - name: template
            template: {{src: app.conf.j2, dest: "${{{{ out }}}}/app.conf"}}
          - name: json
            write:
              dest: ${{{{ out }}}}/app.json
              value: {{port: "${{{{ port }}}}", name: "${{{{ app }}}}"}}
          - name: hosts line
            line: {{path: "${{{{ out }}}}/hosts", line: "10.0.0.5 db"}}
          - name: a secret
            copy: {{src: secret.txt, dest: "${{{{ out }}}}/secret.txt"}}
            sensitive: true
          - name: guarded command
            exec:
              argv: [touch, "${{{{ out }}}}/stamp"]
              creates: ${{{{ out }}}}/stamp
          - name: query
            shell:
              cmd: cat ${{{{ out }}}}/app.conf
              readOnly: true
            out: conf
          - name: use the query
            write:
              dest: ${{{{ out }}}}/echo.txt
              value: ${{{{ conf.stdout }}}}
    """
    (tmp_path / "recipes" / "web" / "main.yaml").write_text(
        textwrap.dedent(text).lstrip()
    )
    return tmp_path


def test_recipe_converges_then_changes_nothing(recipe_root: Path) -> None:
    out = recipe_root / "out"
    first = _run(recipe_root, diff=True)
    statuses = [t.status.value for t in _tasks(first)]
    assert first.status.value == "changed", [t.error for t in _tasks(first)]
    assert statuses == ["changed", "ok"] + ["changed"] * 6 + ["ok", "changed"]

    assert stat.S_IMODE((out / "site.conf").stat().st_mode) == 0o640
    assert (out / "conf.d" / "b.conf").read_text() == "b\n"
    assert (out / "app.conf").read_text() == "name=shop port=8080\n"
    assert (out / "app.json").read_text() == (
        '{\n  "port": 8080,\n  "name": "shop"\n}\n'
    )
    assert (out / "hosts").read_text() == "127.0.0.1 localhost\n10.0.0.5 db\n"
    assert (out / "echo.txt").read_text() == "name=shop port=8080\n"
    secret_task = _tasks(first)[6]
    assert "canary-7731" not in (secret_task.diff or "")

    second = _run(recipe_root, diff=True)
    assert [t.status.value for t in _tasks(second)] == ["ok"] * 10


def test_check_mode_changes_nothing(recipe_root: Path) -> None:
    report = _run(recipe_root, check=True, diff=True)
    out = recipe_root / "out"
    assert sorted(p.name for p in out.iterdir()) == ["hosts"]
    copy_task = _tasks(report)[0]
    assert copy_task.status.value == "would-change"
    assert "+listen 80" in (copy_task.diff or "")


def test_plain_integer_mode_is_refused_with_its_position(tmp_path: Path) -> None:
    recipe = tmp_path / "recipes" / "web"
    recipe.mkdir(parents=True)
    (recipe / "main.yaml").write_text(
        "name: web\ntasks:\n  - file:\n      path: /tmp/x\n      mode: 0644\n"
    )
    from tenfra.errors import TenfraError

    try:
        report = _run(tmp_path)
    except TenfraError as exc:
        message = str(exc)
    else:
        message = " ".join(str(t.error) for t in _tasks(report))
        message += " ".join(str(r.error) for r in report.recipes)
    assert 'write "0644" or 0o644' in message
    assert "main.yaml:5:" in message


@pytest.mark.parametrize(
    "path", ["/OUT/f", "${{ out }}/f"], ids=["literal", "templated"]
)
def test_explicit_octal_mode_through_the_engine(tmp_path: Path, path: str) -> None:
    recipe = tmp_path / "recipes" / "web"
    recipe.mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    (recipe / "main.yaml").write_text(
        f"name: web\nvars: {{out: {out}}}\ntasks:\n"
        f"  - file:\n      path: {path.replace('/OUT', str(out))}\n"
        "      mode: 0o640\n"
    )
    report = _run(tmp_path)
    assert report.status.value == "changed", [t.error for t in _tasks(report)]
    assert stat.S_IMODE((out / "f").stat().st_mode) == 0o640
