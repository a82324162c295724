"""Malformed recipes: the exact one-line message, with file:line:col, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenfra.cli import main

TASK_FIELDS = (
    "changedIf, exitIf, failedIf, global, if, name, notify, out, outRaw, "
    "sensitive, tags, timeout, vars"
)

# (case, {recipe id: YAML}, the expected message after "tenfra: error: ")
CASES = [
    (
        "unknown recipe key",
        {"main": "nmae: web\ntasks: []\n"},
        "recipes/main.yaml:1:1: unknown key 'nmae' in the recipe (did you mean "
        "'name'?); known keys are: dependencies, groupVars, handlers, hostVars, "
        "inputs, name, otherHosts, phase, targets, tasks, vars, varsSources",
    ),
    (
        "unknown task key",
        {"main": "tasks:\n  - debug: msg=hi\n    iff: x\n"},
        "recipes/main.yaml:3:5: unknown key 'iff' in the task (did you mean 'if'?); "
        f"it is neither a task field ({TASK_FIELDS}) nor a known resource type; "
        "check the spelling, or install the plugin that provides it",
    ),
    (
        "wrong type",
        {"main": "name: 3\ntasks: []\n"},
        "recipes/main.yaml:1:7: name: expected a string, got an integer; quote it "
        "if you mean the text: '3'",
    ),
    (
        "two resource keys in one task",
        {"main": "tasks:\n  - debug: msg=a\n    fail: b\n"},
        "recipes/main.yaml:3:5: the task has two resource type keys, 'debug' and "
        "'fail'; a task runs exactly one resource, so split it into two tasks",
    ),
    (
        "no resource key",
        {"main": "tasks:\n  - name: nothing here\n"},
        "recipes/main.yaml:2:5: the task has no resource type key; add exactly one, "
        "such as 'debug: msg=hello' or 'shell: echo hello'",
    ),
    (
        "bad template syntax",
        {"main": 'tasks:\n  - debug: msg="${{ x + }}"\n'},
        "recipes/main.yaml:2:12: bad template syntax in 'x +': unexpected 'end of "
        "template'; check the braces and quotes of the expression",
    ),
    (
        "bad condition syntax",
        {"main": 'tasks:\n  - debug: msg=hi\n    if: "x =="\n'},
        "recipes/main.yaml:3:9: bad template syntax in 'x ==': unexpected 'end of "
        "template'; check the braces and quotes of the expression",
    ),
    (
        "bad shorthand",
        {"main": "tasks:\n  - load: source=file into\n"},
        "recipes/main.yaml:2:11: 'into' in the load shorthand is not key=value; "
        "write key=value pairs separated by spaces (quote values with spaces), or "
        "use the mapping form",
    ),
    (
        "shorthand value of the wrong type",
        {"main": "tasks:\n  - which: name=ls required=yes\n"},
        "recipes/main.yaml:2:12: option 'required' of which: 'yes' is not true or "
        "false; write true or false",
    ),
    (
        "tabs",
        {"main": "tasks:\n\t- debug: hi\n"},
        "recipes/main.yaml:2:1: a tab character is used for indentation; YAML "
        "allows only spaces",
    ),
    (
        "duplicate keys",
        {"main": "name: a\nname: b\ntasks: []\n"},
        "recipes/main.yaml:2:1: duplicate key 'name' in the same mapping; keep one "
        "of them",
    ),
    (
        "bad input default",
        {"main": "inputs:\n  port:\n    type: integer\n    default: eighty\n"},
        "recipes/main.yaml:4:14: inputs.port.default: expected an integer, got a "
        "string 'eighty'; fix the default or the input's rules",
    ),
    (
        "input default out of range",
        {
            "main": "inputs:\n  port:\n    type: integer\n    max: 100\n"
            "    default: 8080\n"
        },
        "recipes/main.yaml:5:14: inputs.port.default: value 8080 is above the "
        "maximum 100; fix the default or the input's rules",
    ),
    (
        "bad input value in a recipe call",
        {
            "main": "dependencies: [web]\ntasks:\n  - recipe:\n      id: web\n"
            "      inputs: {port: 70000}\n",
            "web": "inputs:\n  port: {type: integer, max: 65535}\ntasks: []\n",
        },
        "recipes/main.yaml:5:22: input 'port' of recipe 'web': value 70000 is "
        "above the maximum 65535",
    ),
    (
        "unknown option",
        {"main": "tasks:\n  - debug:\n      mesage: hi\n"},
        "recipes/main.yaml:3:7: unknown option 'mesage' for debug (did you mean "
        "'msg'?); known options are: msg, var",
    ),
    (
        "option of the wrong type",
        {"main": 'tasks:\n  - try:\n      retries: "3"\n      tasks: []\n'},
        "recipes/main.yaml:3:16: retries: expected an integer, got a string",
    ),
    (
        "yes is a string in YAML 1.2",
        {"main": "tasks:\n  - which:\n      name: ls\n      required: yes\n"},
        "recipes/main.yaml:4:17: required: expected true or false, got a string; "
        "write true or false",
    ),
    (
        "notify names no handler",
        {
            "main": "tasks:\n  - debug: msg=hi\n    notify: restart\nhandlers:\n"
            "  - name: reload\n    debug: msg=reload\n"
        },
        "recipes/main.yaml:3:13: notify: no handler is named 'restart'; handlers of "
        "this recipe: reload",
    ),
    (
        "handler without a name",
        {"main": "tasks: []\nhandlers:\n  - debug: msg=x\n"},
        "recipes/main.yaml:3:5: a handler needs a 'name'; tasks notify handlers by "
        "name",
    ),
    (
        "bad phase",
        {"main": "phase: later\ntasks: []\n"},
        "recipes/main.yaml:1:8: phase: 'later' is not a phase; use runtime or "
        "bootstrap",
    ),
    (
        "task is not a mapping",
        {"main": "tasks:\n  - just a string\n"},
        "recipes/main.yaml:2:5: a task must be a mapping with one resource type "
        "key, got a string; write it as '- debug: msg=hello'",
    ),
    (
        "unknown resource type in a nested task",
        {
            "main": "tasks:\n  - loop:\n      items: [1]\n      tasks:\n"
            "        - debgu: x\n"
        },
        "recipes/main.yaml:5:11: unknown key 'debgu' in the task (did you mean "
        f"'debug'?); it is neither a task field ({TASK_FIELDS}) nor a known "
        "resource type; check the spelling, or install the plugin that provides it",
    ),
    (
        "recipe call without dependency",
        {"main": "tasks:\n  - recipe: other\n", "other": "tasks: []\n"},
        "recipes/main.yaml:2:13: the recipe task calls 'other', which is not listed "
        "in dependencies; add 'other' to dependencies",
    ),
    (
        "unknown dependency",
        {"main": "dependencies: [missing]\ntasks: []\n"},
        "recipes/main.yaml:1:16: dependency 'missing' is not a recipe; known "
        "recipes: main",
    ),
    (
        "circular dependency",
        {
            "main": "dependencies: [a]\ntasks: []\n",
            "a": "dependencies: [b]\ntasks: []\n",
            "b": "dependencies: [a]\ntasks: []\n",
        },
        "recipes/b.yaml:1:16: circular dependency: a -> b -> a; a recipe cannot "
        "depend on itself, directly or through others",
    ),
]


def write_recipes(root: Path, recipes: dict[str, str]) -> None:
    folder = root / "recipes"
    folder.mkdir(parents=True, exist_ok=True)
    for recipe_id, text in recipes.items():
        (folder / f"{recipe_id}.yaml").write_text(text, encoding="utf-8")


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return int(exit_info.value.code or 0), captured.err


@pytest.mark.parametrize(
    ("recipes", "message"),
    [pytest.param(recipes, message, id=case) for case, recipes, message in CASES],
)
def test_check_reports_the_exact_located_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    recipes: dict[str, str],
    message: str,
) -> None:
    write_recipes(tmp_path, recipes)
    monkeypatch.chdir(tmp_path)

    code, err = run_cli(["check", "recipes/main.yaml"], capsys)

    assert code == 2
    assert err.strip().splitlines() == [f"tenfra: error: {message}"]


@pytest.mark.parametrize(
    ("recipes", "message"),
    [pytest.param(recipes, message, id=case) for case, recipes, message in CASES],
)
def test_run_refuses_the_same_recipes_before_running(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    recipes: dict[str, str],
    message: str,
) -> None:
    write_recipes(tmp_path, recipes)
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"

    code, err = run_cli(
        ["run", "main", "--host", "h1", "--state-dir", str(state)], capsys
    )

    assert code == 2
    assert err.strip().splitlines() == [f"tenfra: error: {message}"]
    assert not state.exists()


def test_undefined_variable_fails_the_task_naming_variable_and_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_recipes(
        tmp_path,
        {"main": 'tasks:\n  - debug: msg=ok\n  - debug: msg="port ${{ prot }}"\n'},
    )
    monkeypatch.chdir(tmp_path)

    code, err = run_cli(
        ["run", "main", "--host", "h1", "--state-dir", str(tmp_path / "s")], capsys
    )

    assert code == 1
    assert err.strip().splitlines() == [
        "tenfra: error: recipes/main.yaml:3:12: undefined variable 'prot' in "
        "'port ${{ prot }}'; define it (recipe vars, inputs, inventory or -e) or "
        "give a default: prot | default(...) (task 'debug msg=port ${{ prot }}' of "
        "recipe 'main')"
    ]


def test_undefined_attribute_is_an_error_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_recipes(
        tmp_path,
        {"main": "vars:\n  app: {name: web}\ntasks:\n  - debug: msg=${{app.port}}\n"},
    )
    monkeypatch.chdir(tmp_path)

    code, err = run_cli(
        ["run", "main", "--host", "h1", "--state-dir", str(tmp_path / "s")], capsys
    )

    assert code == 1
    assert err.startswith(
        "tenfra: error: recipes/main.yaml:4:12: undefined attribute 'port' in "
        "'${{app.port}}'"
    )


def test_check_collects_problems_of_every_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_recipes(
        tmp_path,
        {
            "good": "tasks:\n  - debug: msg=hi\n",
            "bad1": "tasks:\n  - debgu: msg=hi\n",
            "bad2": "name: [1]\n",
        },
    )
    monkeypatch.chdir(tmp_path)

    code, err = run_cli(["check", "recipes"], capsys)

    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("tenfra: error: recipes/bad1.yaml:2:5: unknown key")
    assert lines[1] == (
        "tenfra: error: recipes/bad2.yaml:1:7: name: expected a string, got a list"
    )
