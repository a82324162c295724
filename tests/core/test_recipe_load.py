"""Loading recipes: ids from paths, discovery, the shorthand, the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tenfra.errors import UserError, ValidationError
from tenfra.recipe import (
    RecipeSet,
    discover,
    load_recipe_text,
    load_recipes,
    parse_shorthand,
    recipe_id_for,
)


@pytest.mark.parametrize(
    ("path", "recipe_id"),
    [
        ("apk.yaml", "apk"),
        ("web/main.yaml", "web"),
        ("web/tls.yaml", "web/tls"),
        ("a/b/main.yml", "a/b"),
        ("main.yaml", "main"),
    ],
)
def test_ids_come_from_paths(path: str, recipe_id: str) -> None:
    assert recipe_id_for(path) == recipe_id


def test_discover_skips_assets_tests_hidden_and_suites(tmp_path: Path) -> None:
    for name in (
        "apk.yaml",
        "web/main.yaml",
        "web/tls.yml",
        "web/assets/not-a-recipe.yaml",
        "web/test-assets/x.yaml",
        "tests/suite.yaml",
        ".hidden/x.yaml",
        "web/web.test.yaml",
        "notes.txt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("tasks: []\n")

    found = discover(tmp_path)

    assert sorted(found) == ["apk", "web", "web/tls"]
    assert found["web"] == tmp_path / "web" / "main.yaml"


def test_two_files_with_one_id_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes" / "web").mkdir(parents=True)
    (tmp_path / "recipes" / "web.yaml").write_text("tasks: []\n")
    (tmp_path / "recipes" / "web" / "main.yaml").write_text("tasks: []\n")

    with pytest.raises(UserError) as info:
        discover(tmp_path / "recipes")

    assert str(info.value) == (
        "recipes/web/main.yaml: recipe id 'web' is also used by recipes/web.yaml; "
        "rename one of the files."
    )


def test_a_missing_recipes_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(UserError) as info:
        load_recipes(tmp_path / "recipes")

    assert str(info.value) == (
        "recipes: the recipes folder does not exist; create it or pass --recipes DIR."
    )


def test_the_model(engine_pm: Any, tmp_path: Path) -> None:
    recipe = load_recipe_text(
        """\
name: Web
targets: web-*
phase: bootstrap
inputs:
  port: {type: int, default: 80, min: 1, max: 65535}
dependencies: [base]
vars: {a: 1}
hostVars:
  web-1: {b: 2}
  "web-*": {b: 3}
groupVars:
  web: {c: 4}
otherHosts: [db-*]
tasks:
  - name: first
    record: x
    out: r
    tags: t
    notify: h
    timeout: 5
handlers:
  - name: h
    record: y
""",
        "web",
        source="recipes/web.yaml",
        path=tmp_path / "recipes" / "web.yaml",
        plugin_manager=engine_pm,
    )

    assert recipe.name == "Web"
    assert recipe.targets == ["web-*"]
    assert recipe.phase == "bootstrap"
    assert recipe.inputs["port"].kind == "integer"
    assert recipe.dependencies == ["base"]
    assert recipe.host_vars_for("web-1") == ("web-1", {"b": 2})
    assert recipe.host_vars_for("web-9") == ("web-*", {"b": 3})
    assert recipe.host_vars_for("db-1") is None
    assert recipe.other_hosts == ["db-*"]
    assert recipe.dir == tmp_path / "recipes"
    task = recipe.tasks[0]
    assert (task.name, task.type, task.out, task.tags, task.notify, task.timeout) == (
        "first",
        "record",
        "r",
        ["t"],
        ["h"],
        5.0,
    )
    assert str(task.location) == "recipes/web.yaml:15:5"
    assert recipe.handler("h") is recipe.handlers[0]


def test_yaml_1_2_keeps_yes_a_string(engine_pm: Any) -> None:
    recipe = load_recipe_text(
        "vars: {a: yes, b: on, c: 0644, d: 0o644, e: 1.10}\ntasks: []\n",
        "x",
        source="x.yaml",
        plugin_manager=engine_pm,
    )

    assert recipe.vars == {"a": "yes", "b": "on", "c": 644, "d": 420, "e": 1.1}


@pytest.fixture
def record(engine_pm: Any) -> Any:
    return engine_pm.resource_types["record"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("value=x", {"value": "x"}),
        ("count=3 ratio=2 flag=false", {"count": 3, "ratio": 2.0, "flag": False}),
        ("names=a,b,c", {"names": ["a", "b", "c"]}),
        ("label=\"two words\" value='x y'", {"label": "two words", "value": "x y"}),
        ("label=null", {"label": None}),
        (
            "value=${{ a + b }} count=${{ n }}",
            {"value": "${{ a + b }}", "count": "${{ n }}"},
        ),
        ("hello world", {"value": "hello world"}),
        ("FOO=1 echo", {"value": "FOO=1 echo"}),
        ("unknown=1", {"value": "unknown=1"}),
        ("a 'b", {"value": "a 'b"}),
    ],
)
def test_shorthand(record: Any, text: str, expected: dict[str, Any]) -> None:
    assert parse_shorthand(text, record, location=None, type_key="record") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("count=three", "option 'count' of record: 'three' is not an integer"),
        ("ratio=x", "option 'ratio' of record: 'x' is not a number"),
        (
            "flag=yes",
            "option 'flag' of record: 'yes' is not true or false; write true or false",
        ),
        (
            "count=1 count=2",
            "option 'count' is given twice in the record shorthand; keep one of them",
        ),
    ],
)
def test_bad_shorthand(record: Any, text: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_shorthand(text, record, location=None, type_key="record")

    assert str(info.value) == message


def test_shorthand_without_free_form(engine_pm: Any) -> None:
    load = engine_pm.resource_types["load"]

    assert parse_shorthand(
        "source=file into=x", load, location=None, type_key="load"
    ) == {"source": "file", "into": "x"}
    with pytest.raises(ValidationError) as info:
        parse_shorthand("source=file bogus=1", load, location=None, type_key="load")
    assert str(info.value) == (
        "unknown option 'bogus' for load; known options are: into, options, source"
    )
    with pytest.raises(ValidationError) as unclosed:
        parse_shorthand("source='file", load, location=None, type_key="load")
    assert str(unclosed.value) == (
        'cannot read the load shorthand "source=\'file": No closing quotation; '
        "close the quote or use the mapping form"
    )


def test_recipe_sets_from_texts_load_lazily(engine_pm: Any, tmp_path: Path) -> None:
    recipe_set = RecipeSet(
        tmp_path,
        plugin_manager=engine_pm,
        texts={
            "web": ("web/main.yaml", "dependencies: [base]\ntasks: []\n"),
            "base": ("base.yaml", "tasks: [{record: x}]\n"),
            "broken": ("broken.yaml", "tasks: [{nope: x}]\n"),
        },
    )

    assert recipe_set.ids() == ["base", "broken", "web"]
    assert recipe_set.closure(["web"]) == ["base", "web"]
    assert recipe_set.get("web").dir == tmp_path / "web"
    with pytest.raises(ValidationError, match=r"^broken.yaml:1:10: unknown key 'nope'"):
        recipe_set.get("broken")
