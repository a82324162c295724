"""Control resource types: set, debug, fail, exit, assert, loop, switch, try, recipe,
load, which, facts, python."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

from tenfra.report import Status


def names_and_statuses(kit: Any, report: Any) -> list[tuple[str, str]]:
    return [(t.name, t.status.value) for t in kit.flat(report)]


def test_set_and_debug(kit: Any) -> None:
    kit.write(
        "main",
        """
        vars: {port: 80}
        tasks:
          - set: {url: "http://${{ host }}:${{ port }}", n: "${{ port * 2 }}"}
          - debug: msg="${{ url }} ${{ n }}"
          - debug: {var: n}
          - debug: {msg: {a: [1, 2]}}
          - set: count=3 flag=true name=x
          - record: ${{ [count, flag, name] }}
        """,
    )

    report = kit.run()

    messages = [t.message for t in report.recipes[0].tasks]
    assert messages[1:4] == ["http://web-1:80 160", "n = 160", '{"a": [1, 2]}']
    assert kit.calls == [[3, True, "x"]]
    assert report.status is Status.OK


def test_debug_of_an_undefined_var_fails(kit: Any) -> None:
    kit.write("main", "tasks:\n  - debug: {var: nope}\n")

    report = kit.run()

    assert kit.flat(report)[0].error == (
        "debug: variable 'nope' is not defined; check the name"
    )


def test_fail_and_exit(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - record: {value: a, status: changed}
            notify: h
          - exit: done early
            if: stop
          - fail: should not run when stopping
          - record: b
        handlers:
          - name: h
            record: handler
        """,
    )

    stopped = kit.run(extra_vars={"stop": True})
    kit.calls.clear()
    failed = kit.run(extra_vars={"stop": False})

    assert stopped.status is Status.CHANGED
    assert [t.name for t in stopped.recipes[0].tasks][-1] == "h"
    assert failed.status is Status.FAILED
    assert kit.calls == ["a"]
    assert kit.flat(failed)[2].error == "should not run when stopping"


def test_assert_passes_fails_and_can_be_quiet(kit: Any) -> None:
    kit.write(
        "main",
        """
        vars: {port: 8080, email: ops@example.org}
        tasks:
          - assert:
              that: [port > 1024, "'@' in email"]
          - assert: {that: port == 8080, quiet: true}
          - assert: port < 100
        """,
    )
    kit.write(
        "msg",
        """
        vars: {port: 8080}
        tasks:
          - assert: {that: [port < 100], msg: "port ${{ port }} is too high"}
        """,
    )

    report = kit.run()
    with_msg = kit.run("msg")

    tasks = kit.flat(report)
    assert tasks[0].message == "all 2 assertions passed"
    assert tasks[1].message is None
    assert tasks[2].error == "assertion failed: port < 100"
    assert kit.flat(with_msg)[0].error == (
        "assertion failed: port < 100 (port 8080 is too high)"
    )


def test_loop_over_a_list_with_index_renders_each_nested_task_anew(kit: Any) -> None:
    kit.write(
        "main",
        """
        vars:
          users: [{name: ann}, {name: bob}]
        tasks:
          - loop:
              items: ${{ users }}
              tasks:
                - record: "${{ index }}:${{ item.name }}"
                  out: r
            out: looped
          - record: >-
              ${{ looped.results | map(attribute='r')
                  | map(attribute='value') | list }}
        """,
    )

    report = kit.run()

    assert report.status is Status.OK, report.recipes[0].error
    assert kit.calls == ["0:ann", "1:bob", ["0:ann", "1:bob"]]


def test_loop_over_a_mapping_gives_key_and_item(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - loop:
              items: {a: 1, b: 2}
              as: value
              index: i
              tasks:
                - record: "${{ i }} ${{ key }}=${{ value }}"
        """,
    )

    kit.run()

    assert kit.calls == ["0 a=1", "1 b=2"]


def test_nested_registrations_stay_local_unless_global(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - loop:
              items: [1, 2]
              tasks:
                - set: {local_value: "${{ item }}"}
                - set: {shared: "${{ item }}"}
                  global: true
                - record: ${{ local_value }}
          - record: ${{ shared }}
          - record: ${{ local_value | default('gone') }}
        """,
    )

    kit.run()

    assert kit.calls == [1, 2, 2, "gone"]


def test_loop_failure_stops_the_loop_and_names_the_item(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - loop:
              items: [a, b, c]
              tasks:
                - record:
                    value: "${{ item }}"
                    status: "${{ 'failed' if item == 'b' else 'ok' }}"
        """,
    )

    report = kit.run()

    assert kit.calls == ["a", "b"]
    assert kit.flat(report)[0].error == "loop item 1: recorded failure b"


def test_loop_items_must_be_a_list_or_mapping(kit: Any) -> None:
    kit.write("main", "tasks:\n  - loop: {items: 3, tasks: [{record: x}]}\n")

    report = kit.run()

    assert (
        kit.flat(report)[0].error
        == "loop: items must be a list or a mapping, got int 3"
    )


def test_switch_runs_the_matching_case_or_the_default(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - switch:
              value: ${{ family }}
              cases:
                debian:
                  - record: apt ${{ case }}
                alpine:
                  - record: apk
                7:
                  - record: seven
              default:
                - record: other
        """,
    )

    for family in ("debian", "alpine", "7", "redhat"):
        kit.run(extra_vars={"family": family})

    assert kit.calls == ["apt debian", "apk", "seven", "other"]


def test_try_retries_with_the_retry_count_and_last_error_in_scope(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - try:
              retries: 3
              delay: 0.05
              backoff: 2
              tasks:
                - record: "attempt ${{ retry }} after ${{ error }}"
                - fail: "failure ${{ retry }}"
                  if: retry < 2
            out: t
          - record: ${{ t.attempts }}
        """,
    )
    start = time.monotonic()

    report = kit.run()

    elapsed = time.monotonic() - start
    assert report.status is Status.OK, report.recipes[0].error
    assert kit.calls == [
        "attempt 0 after None",
        "attempt 1 after failure 0",
        "attempt 2 after failure 1",
        3,
    ]
    assert elapsed >= 0.05 + 0.1  # the delay doubled after the first retry


def test_try_catch_and_finally(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - try:
              retries: 1
              tasks:
                - fail: "broken ${{ retry }}"
              catch:
                - record: "caught ${{ error }} after retry ${{ retry }}"
              finally:
                - record: finally ${{ error }}
          - record: after
        """,
    )

    report = kit.run()

    assert report.status is Status.OK, report.recipes[0].error
    assert kit.calls == ["caught broken 1 after retry 1", "finally broken 1", "after"]
    assert report.recipes[0].tasks[0].message == "caught: broken 1"


def test_try_without_catch_fails_after_finally(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - try:
              tasks:
                - fail: broken
              finally:
                - record: cleanup
        """,
    )

    report = kit.run()

    assert report.status is Status.FAILED
    assert kit.calls == ["cleanup"]
    assert kit.flat(report)[0].error == "broken"


def test_a_failing_catch_fails_the_task(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - try:
              tasks: [{fail: one}]
              catch: [{fail: two}]
        """,
    )

    report = kit.run()

    assert kit.flat(report)[0].error == "catch failed: two (after: one)"


def test_task_timeout_bounds_retries(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - try:
              retries: 50
              delay: 0.02
              tasks: [{fail: again}]
            timeout: 0.1
        """,
    )
    start = time.monotonic()

    report = kit.run()

    assert report.status is Status.FAILED
    assert time.monotonic() - start < 0.9
    assert (kit.flat(report)[0].error or "").startswith(
        "the timeout of 0.1 s is over after "
    )


def test_recipe_call_failure_fails_the_calling_task(kit: Any) -> None:
    kit.write("lib", "tasks:\n  - fail: inner problem\n")
    kit.write("main", "dependencies: [lib]\ntasks:\n  - recipe: lib\n  - record: x\n")

    report = kit.run()

    assert report.status is Status.FAILED
    assert kit.calls == []
    assert report.recipes[0].tasks[0].error == (
        "recipes/lib.yaml:2:5: task 'fail msg=inner problem' of recipe 'lib' failed: "
        "inner problem"
    )


def test_load_reads_vars_at_run_time(kit: Any) -> None:
    (kit.recipes / "data.yaml").write_text("colour: blue\nsize: 3\n")
    kit.write(
        "main",
        """
        tasks:
          - load: {source: file, options: data.yaml}
          - load: {source: file, options: {path: data.yaml}, into: data}
          - record: ${{ colour }}-${{ data.size }}
          - load: {source: nope}
        """,
    )

    report = kit.run()

    assert kit.calls == ["blue-3"]
    assert kit.flat(report)[-1].error.startswith(  # type: ignore[union-attr]
        "load: no vars source 'nope'; installed vars sources: "
    )


def test_which(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - which: sh
            out: sh
          - which: no-such-program-tenfra
            out: missing
          - record: ${{ [sh.found, missing.found, missing.path] }}
          - which: {name: no-such-program-tenfra, required: true}
        """,
    )

    report = kit.run()

    assert kit.calls == [[True, False, None]]
    assert kit.flat(report)[-1].error == (
        "'no-such-program-tenfra' is not on PATH; install it or fix PATH"
    )


def test_facts_resource_and_facts_in_templates(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - facts: {names: [python_version]}
            out: f
          - record: ${{ f.python_version == facts.python_version }}
          - record: ${{ facts.python_version }}
          - facts: {names: [no_such_fact]}
        """,
    )

    report = kit.run()

    assert kit.calls == [True, platform.python_version()]
    assert kit.flat(report)[-1].error.startswith(  # type: ignore[union-attr]
        "facts: no fact 'no_such_fact'; known facts: "
    )


def test_python_calls_a_function_beside_the_recipe(kit: Any, tmp_path: Path) -> None:
    (kit.recipes / "helpers.py").write_text(
        "from tenfra.resource import Result\n"
        "def touch(ctx, path, text):\n"
        "    import pathlib\n"
        "    p = pathlib.Path(path)\n"
        "    if p.exists() and p.read_text() == text:\n"
        "        return Result.ok({'path': path})\n"
        "    p.write_text(text)\n"
        "    return Result.changed({'path': path})\n"
        "def values(ctx):\n"
        "    return {'host': ctx.host}\n"
    )
    kit.write(
        "main",
        f"""
        tasks:
          - python:
              function: helpers.py:touch
              args: {{path: {tmp_path}/out, text: hi}}
          - python: helpers.py:values
            out: v
          - record: ${{{{ v.host }}}}
          - python: helpers.py:nope
          - python: ../escape.py:x
        """,
    )

    first = kit.run()
    second = kit.run()

    assert [t.status.value for t in first.recipes[0].tasks][:3] == [
        "changed",
        "ok",
        "ok",
    ]
    assert second.recipes[0].tasks[0].status is Status.OK
    assert kit.calls == ["web-1", "web-1"]
    assert kit.flat(first)[3].error == "python: helpers.py has no function 'nope'"
    assert (tmp_path / "out").read_text() == "hi"


def test_python_refuses_files_outside_the_recipe_folder(kit: Any) -> None:
    kit.write("main", "tasks:\n  - python: ../escape.py:x\n")

    report = kit.run()

    assert kit.flat(report)[0].error.startswith(  # type: ignore[union-attr]
        "python: '../escape.py' is not a file inside the recipe folder"
    )


def test_exit_inside_a_loop_stops_the_loop_and_the_recipe(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - loop:
              items: [1, 2, 3]
              tasks:
                - record: ${{ item }}
                - exit: enough
                  if: item == 2
                - record: after ${{ item }}
          - record: never
        """,
    )

    report = kit.run()

    assert report.status is Status.OK
    assert kit.calls == [1, "after 1", 2]
