"""The engine: statuses, registered results, conditions, check/diff, tags, hooks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tenfra import hookimpl
from tenfra.pluginmanager import PluginInfo
from tenfra.report import Status, report_to_json


def statuses(kit: Any, report: Any) -> list[tuple[str, str]]:
    return [(t.name, t.status.value) for t in kit.flat(report)]


def test_statuses_ok_changed_skipped_failed_and_failure_stops_the_recipe(
    kit: Any, tmp_path: Path
) -> None:
    kit.write(
        "main",
        f"""
        tasks:
          - name: ok
            record: a
          - name: changed
            touch: {{path: {tmp_path}/f, content: x}}
          - name: skipped
            record: b
            if: false
          - name: failed
            record: {{value: c, status: failed}}
          - name: never
            record: d
        """,
    )

    report = kit.run()

    assert statuses(kit, report) == [
        ("ok", "ok"),
        ("changed", "changed"),
        ("skipped", "skipped"),
        ("failed", "failed"),
    ]
    assert kit.calls == ["a", "c"]
    assert report.status is Status.FAILED
    recipe = report.recipes[0]
    assert recipe.error == (
        "recipes/main.yaml:9:5: task 'failed' of recipe 'main' failed: recorded "
        "failure c"
    )


def test_a_converging_recipe_reports_no_change_the_second_time(
    kit: Any, tmp_path: Path
) -> None:
    kit.write(
        "main",
        f"""
        vars:
          files: [a, b, c]
        tasks:
          - loop:
              items: ${{{{ files }}}}
              tasks:
                - touch:
                    path: "{tmp_path}/${{{{ item }}}}"
                    content: "${{{{ index | string }}}}"
          - touch: {{path: {tmp_path}/static, content: fixed}}
        """,
    )

    first = kit.run()
    second = kit.run()

    assert first.counts()["changed"] == 2  # the loop and the static file
    assert sum(t.status is Status.CHANGED for t in kit.flat(first)) == 5
    assert second.counts()["changed"] == 0
    assert all(t.status is Status.OK for t in kit.flat(second))
    assert second.status is Status.OK
    assert (tmp_path / "b").read_text() == "1"


def test_out_registers_values_and_out_raw_the_whole_result(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - record: {value: 7, status: changed}
            out: first
            outRaw: raw
          - record: "${{ first.value + 1 }} ${{ raw.status }} ${{ raw.changed }}"
          - record: {value: 9}
            out: {nine: value}
          - record: ${{ nine * 2 }}
        """,
    )

    report = kit.run()

    assert report.status is Status.CHANGED
    assert kit.calls == [7, "8 changed True", 9, 18]


def test_out_mapping_naming_a_missing_value_fails(kit: Any) -> None:
    kit.write("main", "tasks:\n  - record: x\n    out: {y: nope}\n")

    report = kit.run()

    assert report.status is Status.FAILED
    assert kit.flat(report)[0].error == (
        "recipes/main.yaml:3:10: out: the result has no value 'nope'; its values "
        "are: options, value"
    )


def test_failed_if_changed_if_and_exit_if(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - name: not a failure
            record: {value: 1, status: failed}
            failedIf: false
          - name: now changed
            record: 2
            changedIf: result.value == 2
          - name: never changed
            record: {value: 3, status: changed}
            changedIf: false
          - name: stop here
            record: 4
            exitIf: result.value == 4
          - name: not reached
            record: 5
        """,
    )

    report = kit.run()

    assert statuses(kit, report) == [
        ("not a failure", "ok"),
        ("now changed", "changed"),
        ("never changed", "ok"),
        ("stop here", "ok"),
    ]
    assert kit.calls == [1, 2, 3, 4]
    assert report.status is Status.CHANGED


def test_failed_if_true_fails_a_successful_task(kit: Any) -> None:
    kit.write("main", "tasks:\n  - record: 5\n    failedIf: result.value > 3\n")

    report = kit.run()

    task = kit.flat(report)[0]
    assert task.status is Status.FAILED
    assert task.error == "failedIf is true: result.value > 3"


def test_check_mode_changes_nothing_and_reports_would_change(
    kit: Any, tmp_path: Path
) -> None:
    target = tmp_path / "file"
    kit.write(
        "main",
        f"""
        tasks:
          - touch: {{path: {target}, content: new}}
          - python: helpers.py:main
        """,
    )
    (kit.recipes / "helpers.py").write_text("def main(ctx):\n    return True\n")

    report = kit.run(check=True)

    assert [(t.type, t.status.value) for t in kit.flat(report)] == [
        ("touch", "would-change"),
        ("python", "unknown"),
    ]
    assert not target.exists()
    assert report.check is True
    assert report.status is Status.WOULD_CHANGE


def test_diff_is_reported_only_when_asked(kit: Any, tmp_path: Path) -> None:
    kit.write("main", f"tasks:\n  - touch: {{path: {tmp_path}/f, content: new}}\n")

    without = kit.run(check=True)
    with_diff = kit.run(check=True, diff=True)

    assert kit.flat(without)[0].diff is None
    assert kit.flat(with_diff)[0].diff == "-None\n+new\n"


def test_tags_select_tasks_and_always_runs(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - record: a
            tags: [web]
          - record: b
            tags: db
          - record: c
            tags: [always]
          - record: d
          - loop:
              items: [1, 2]
              tasks:
                - record: ${{ item }}
            tags: [web]
        """,
    )

    report = kit.run(tags=["web"])

    assert kit.calls == ["a", "c", 1, 2]
    assert [t.name for t in report.recipes[0].tasks] == [
        "record value=a",
        "record value=c",
        "loop items=[1, 2]",
    ] or len(report.recipes[0].tasks) == 3


def test_shorthand_is_typed_by_the_option_class(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - record: value=x count=3 ratio=1.5 flag=true names=a,b label="two words"
          - record: just some free form text
          - record: count=${{ 2 + 2 }}
            out: r
          - record: ${{ r.options.count + 1 }}
        """,
    )

    report = kit.run()

    assert report.status is Status.OK
    tasks = kit.flat(report)
    assert kit.calls == ["x", "just some free form text", None, 5]
    recipe = kit.recipe_set().get("main")
    options = recipe.tasks[0].static_options
    assert (options.count, options.ratio, options.flag) == (3, 1.5, True)
    assert options.names == ["a", "b"]
    assert options.label == "two words"
    assert recipe.tasks[2].static_options is None  # templated: structured per run
    assert tasks[0].status is Status.OK


def test_a_single_expression_keeps_its_native_type(kit: Any) -> None:
    kit.write(
        "main",
        """
        vars:
          port: 8080
          hosts: [a, b]
          settings: {debug: true}
        tasks:
          - record: ${{ port }}
          - record: ${{ hosts }}
          - record: ${{ settings }}
          - record: "port ${{ port }}"
          - record: {count: "${{ port }}"}
        """,
    )

    report = kit.run()

    assert report.status is Status.OK, report.recipes[0].error
    assert kit.calls == [8080, ["a", "b"], {"debug": True}, "port 8080", None]


def test_a_rendered_value_of_the_wrong_type_is_refused_with_its_position(
    kit: Any,
) -> None:
    kit.write("main", 'vars:\n  n: many\ntasks:\n  - record: {count: "${{ n }}"}\n')

    report = kit.run()

    assert report.recipes[0].error == (
        "recipes/main.yaml:4:21: count: expected an integer, got a string (after "
        "rendering the templates; a value that is exactly one ${{ }} keeps the "
        "type of its expression, convert it with | string, | int or | float) "
        "(task 'record count=many' of recipe 'main')"
    )


def test_recipe_calls_pass_inputs_and_get_results_back(kit: Any) -> None:
    kit.write(
        "web",
        """
        inputs:
          port: {type: integer, required: true}
          name: {type: string, default: site}
        tasks:
          - record: ${{ name }}:${{ port }}
            out: served
        """,
    )
    kit.write(
        "main",
        """
        dependencies: [web]
        tasks:
          - recipe:
              id: web
              inputs: {port: 81}
            out: site
          - record: ${{ site.served.value }}
        """,
    )

    report = kit.run()

    assert report.status is Status.OK, report.recipes[0].error
    assert kit.calls == ["site:81", "site:81"]
    call = report.recipes[0].tasks[0]
    assert [child.name for child in call.children] == ["record value=site:81"]


def test_recipe_call_with_a_templated_bad_input_fails_the_task(kit: Any) -> None:
    kit.write("web", "inputs:\n  port: {type: integer}\ntasks: []\n")
    kit.write(
        "main",
        """
        dependencies: [web]
        vars: {p: eighty}
        tasks:
          - recipe: {id: web, inputs: {port: "${{ p }}"}}
        """,
    )

    report = kit.run()

    assert report.status is Status.FAILED
    assert "input 'port' of recipe 'web': expected an integer, got a string" in (
        report.recipes[0].error or ""
    )


def test_hooks_see_every_recipe_and_task(kit: Any) -> None:
    seen: list[tuple[str, ...]] = []

    class Spy:
        @hookimpl
        def tenfra_before_recipe(self, recipe: Any, host: str, check: bool) -> None:
            seen.append(("before", recipe.id, host, str(check)))

        @hookimpl
        def tenfra_task_result(
            self, recipe: Any, task: Any, result: Any, host: str
        ) -> None:
            seen.append(("task", recipe.id, result.name, result.status.value))

        @hookimpl
        def tenfra_after_recipe(self, recipe: Any, report: Any, host: str) -> None:
            seen.append(("after", recipe.id, report.status.value))

    kit.pm.register(
        Spy(),
        PluginInfo(
            name="spy",
            version="0",
            origin="package",
            distribution=None,
            entry_point=None,
            module="spy",
        ),
    )
    kit.write("main", "tasks:\n  - name: one\n    record: 1\n")

    kit.run()

    assert seen == [
        ("before", "main", "web-1", "False"),
        ("task", "main", "one", "ok"),
        ("after", "main", "ok"),
    ]


def test_untrusted_recipes_render_in_a_sandbox_and_refuse_python(kit: Any) -> None:
    kit.write("main", "tasks:\n  - record: \"${{ ''.__class__.__mro__ }}\"\n")
    kit.write("py", "tasks:\n  - python: helpers.py:main\n")
    (kit.recipes / "helpers.py").write_text("def main(ctx):\n    return True\n")

    sandboxed = kit.run("main", trusted=False)
    python = kit.run("py", trusted=False)

    error = kit.flat(sandboxed)[0].error or ""
    assert "is not allowed in an untrusted recipe" in error
    assert kit.calls == []
    assert kit.flat(python)[0].error == (
        "recipes/py.yaml:2:5: 'python' runs only in trusted recipes; this recipe "
        "is untrusted (sandboxed)"
    )


def test_report_json_round_trips(kit: Any) -> None:
    from tenfra.report import report_from_json

    kit.write(
        "main", "tasks:\n  - record: 1\n  - loop: {items: [1], tasks: [{record: 2}]}\n"
    )

    report = kit.run()
    data = json.loads(json.dumps(report_to_json(report)))

    again = report_from_json(data)
    assert again.recipes[0].tasks[1].children[0].name == "record value=2"
    assert data["counts"]["ok"] == 2


def test_assets_stay_inside_the_assets_folder(kit: Any, tmp_path: Path) -> None:
    from tenfra.engine import Engine
    from tenfra.errors import TaskError

    kit.write("main", "tasks:\n  - record: 1\n")
    (kit.recipes / "assets").mkdir()
    (kit.recipes / "assets" / "site.conf").write_text("x")
    (kit.recipes / "assets" / "escape").symlink_to(tmp_path)
    recipe_set = kit.recipe_set()
    recipe = recipe_set.get("main")
    engine = Engine(recipe_set, host="h", state_dir=kit.state)
    task = recipe.tasks[0]

    assert (
        engine.asset(recipe, "site.conf", task)
        == (kit.recipes / "assets" / "site.conf").resolve()
    )
    for bad in ("../main.yaml", "/etc/passwd", "escape/state", "missing.conf"):
        with pytest.raises(TaskError):
            engine.asset(recipe, bad, task)


def test_engine_overhead_of_a_converged_run_is_well_under_a_millisecond_per_task(
    kit: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    lines = ["tasks:"]
    for index in range(200):
        (folder / f"f{index}").write_text("same")
        lines.append(f"  - touch: {{path: {folder}/f{index}, content: same}}")
    kit.write("main", "\n".join(lines) + "\n")
    recipe_set = kit.recipe_set()
    recipe_set.get("main")
    from tenfra.engine import run_recipes

    run_recipes(recipe_set, ["main"], host="h", state_dir=kit.state)  # warm up
    start = time.perf_counter()
    report = run_recipes(recipe_set, ["main"], host="h", state_dir=kit.state)
    elapsed = time.perf_counter() - start

    assert report.counts()["ok"] == 200
    applied = sum(t.duration for t in report.recipes[0].tasks)
    overhead_per_task = (elapsed - applied) / 200
    assert overhead_per_task < 0.0005, f"{overhead_per_task * 1e6:.0f} us per task"


def test_a_recipe_without_templates_never_imports_jinja2(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "main.yaml").write_text(
        "vars: {a: 1}\ntasks:\n  - debug: msg=hello\n  - set: {b: 2}\n    if: false\n"
    )
    script = (
        "import sys\n"
        "from tenfra.recipe import RecipeSet\n"
        "from tenfra.engine import run_recipes\n"
        f"r = run_recipes(RecipeSet(__import__('pathlib').Path({str(recipes)!r})), "
        f"['main'], host='h', state_dir={str(tmp_path / 's')!r})\n"
        "assert r.status.value == 'ok', r\n"
        "print('jinja2' in sys.modules)\n"
    )

    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert out.stdout.strip() == "False"


def test_errors_in_a_j2_template_point_at_the_task_and_the_template_line(
    kit: Any, tmp_path: Path
) -> None:
    (kit.recipes / "assets").mkdir()
    (kit.recipes / "assets" / "site.conf.j2").write_text(
        "listen {{ port }};\n{{ nope }}\n"
    )
    kit.write(
        "main",
        f"""
        vars: {{port: 80}}
        tasks:
          - template: {{src: site.conf.j2, dest: {tmp_path}/site.conf}}
        """,
    )

    report = kit.run()

    assert kit.flat(report)[0].error == (
        "recipes/main.yaml:3:5: line 2 of the template: undefined variable 'nope' in "
        "the template; define it (recipe vars, inputs, inventory or -e) or give a "
        "default: nope | default(...)"
    )
    assert not (tmp_path / "site.conf").exists()
