"""``tenfra test`` end to end with the ``local`` runner (real engine, real files)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import pytest

from tenfra.errors import EXIT_FAILED, EXIT_USER

SITE = """\
name: site
inputs:
  root: {type: string}
  who: {type: string, default: world}
tasks:
  - name: site folder
    mkdir: ${{ root }}
  - name: greeting
    template:
      src: greeting.j2
      dest: ${{ root }}/greeting.txt
      mode: "0644"
"""


def tenfra(
    *args: str, cwd: Path, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenfra.cli", "test", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a site recipe; suites go in tests/."""
    root = tmp_path / "repo"
    (root / "recipes" / "site" / "assets").mkdir(parents=True)
    (root / "recipes" / "site" / "main.yaml").write_text(SITE)
    (root / "recipes" / "site" / "assets" / "greeting.j2").write_text(
        "Hello, {{ who }}!\n"
    )
    (root / "tests").mkdir()
    return root


def suite(repo: Path, text: str, name: str = "site.test.yaml") -> Path:
    path = repo / "tests" / name
    out = repo.parent / "out"
    path.write_text(textwrap.dedent(text).replace("OUT", str(out)))
    return path


def test_a_passing_suite_exits_zero_with_progress_summary_and_junit(
    repo: Path,
) -> None:
    suite(
        repo,
        """\
        tests:
          - name: greets the world
            recipe: site
            inputs: {root: OUT/a}
            assert:
              - file: OUT/a/greeting.txt
                equals: "Hello, world!\\n"
                mode: "0644"
              - task: greeting
                status: changed
              - that: report.status == 'changed' and second.status == 'ok'
            drift:
              file: OUT/a/greeting.txt
              task: greeting
          - name: greets someone else
            recipe: site
            inputs: {root: OUT/b, who: tenfra}
            assert:
              - command: grep -q tenfra OUT/b/greeting.txt
        """,
    )
    junit = repo / "junit.xml"

    done = tenfra("--junit-xml", str(junit), cwd=repo)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/2] PASSED  site > greets the world (local," in done.stdout
    assert "[2/2] PASSED  site > greets someone else (local," in done.stdout
    rows = [line.split() for line in done.stdout.splitlines()]
    assert ["TEST", "RUNNER", "STATUS", "2ND", "RUN", "CHANGES", "DURATION"] in rows
    assert "2 passed in" in done.stdout
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (
        "2",
        "0",
        "0",
    )
    assert (repo.parent / "out" / "b" / "greeting.txt").read_text() == (
        "Hello, tenfra!\n"
    )


def test_a_failing_assertion_exits_non_zero_naming_the_test_and_assertion(
    repo: Path,
) -> None:
    suite(
        repo,
        """\
        tests:
          - name: passes
            recipe: site
            inputs: {root: OUT/a}
          - name: expects the wrong greeting
            recipe: site
            inputs: {root: OUT/b}
            assert:
              - file: OUT/b/greeting.txt
                contains: Hello, world
              - file: OUT/b/greeting.txt
                contains: Goodbye
        """,
    )
    junit = repo / "junit.xml"

    done = tenfra("--junit-xml", str(junit), cwd=repo)

    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert "FAILED  site > expects the wrong greeting (local" in done.stdout
    problem = (
        f"assertion 2 failed: '{repo.parent}/out/b/greeting.txt' does not contain "
        "'Goodbye'"
    )
    assert problem in done.stdout
    assert "assertion 1 failed" not in done.stdout
    assert "tests/site.test.yaml:5:5: site > expects the wrong greeting [local]" in (
        done.stdout
    )
    assert "Traceback" not in done.stdout + done.stderr
    failure = (
        ET.parse(junit)
        .getroot()
        .find(".//testcase[@name='expects the wrong greeting']/failure")
    )
    assert failure is not None and failure.get("message") == problem


def test_a_non_idempotent_recipe_is_caught_and_can_be_allowed(repo: Path) -> None:
    suite(
        repo,
        """\
        tests:
          - name: appends forever
            tasks:
              - name: append a line
                shell: echo again >> OUT/log.txt
              - name: folder
                mkdir: OUT
        """,
    )
    (repo.parent / "out").mkdir()

    done = tenfra(cwd=repo)

    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert (
        "not idempotent: the second run changed 1 task(s): 'append a line'"
        in done.stdout
    )
    row = next(line for line in done.stdout.splitlines() if line.startswith("site >"))
    assert row.split()[-4:] == ["failed", "1", row.split()[-2], "s"]
    assert (repo.parent / "out" / "log.txt").read_text() == "again\nagain\n"

    suite(
        repo,
        """\
        idempotence: false
        tests:
          - name: appends forever
            tasks:
              - shell: echo again >> OUT/log.txt
        """,
    )
    assert tenfra(cwd=repo).returncode == 0


def test_drift_that_is_not_repaired_fails_the_test(repo: Path) -> None:
    suite(
        repo,
        """\
        tests:
          - name: only creates
            tasks:
              - name: create once
                shell:
                  cmd: echo original > OUT/file.txt
                  creates: OUT/file.txt
            drift:
              file: OUT/file.txt
              content: tampered
        """,
    )
    (repo.parent / "out").mkdir()

    done = tenfra(cwd=repo)

    assert done.returncode == EXIT_FAILED
    assert (
        f"drift: '{repo.parent}/out/file.txt' was overwritten but the next run did "
        "not restore it (tasks changed: none)"
    ) in done.stdout


def test_failures_in_the_first_run_name_the_task(repo: Path) -> None:
    suite(
        repo,
        """\
        tests:
          - name: breaks
            tasks:
              - name: fine
                debug: msg=hi
              - name: boom
                fail: msg=this recipe is broken
        """,
    )

    done = tenfra(cwd=repo)

    assert done.returncode == EXIT_FAILED
    assert "first run: task 'boom' (fail) failed" in done.stdout
    assert "this recipe is broken" in done.stdout
    # Inline tasks are named after the suite, not a generated file.
    assert "site.test.yaml [site > breaks]" in done.stdout
    assert "second run" not in done.stdout


def test_mocks_replace_a_resource_result(repo: Path) -> None:
    suite(
        repo,
        """\
        tests:
          - name: mocked ok
            tasks:
              - name: call the outside world
                shell: exit 3
                out: answer
              - name: keep the answer
                write:
                  dest: OUT/answer.txt
                  value: ${{ answer.stdout }}
                  format: raw
            mocks:
              - type: shell
                task: call the outside world
                values: {stdout: "42"}
            assert:
              - file: OUT/answer.txt
                equals: "42"
              - task: call the outside world
                status: ok
          - name: mocked failure
            tasks:
              - name: harmless
                debug: msg=hi
            mocks:
              - type: debug
                status: failed
                message: the mock says no
        """,
    )
    (repo.parent / "out").mkdir()

    done = tenfra(cwd=repo)

    assert "PASSED  site > mocked ok" in done.stdout, done.stdout
    assert "FAILED  site > mocked failure" in done.stdout
    assert "task 'harmless' (debug) failed" in done.stdout
    assert "the mock says no" in done.stdout
    assert done.returncode == EXIT_FAILED


def test_hooks_run_around_tests_and_before_all_failure_fails_every_test(
    repo: Path,
) -> None:
    suite(
        repo,
        """\
        vars: {out: OUT}
        beforeAll:
          - shell: mkdir -p OUT && echo beforeAll >> OUT/log
        beforeEach:
          - shell: echo beforeEach >> OUT/log
        afterEach:
          - shell: echo afterEach >> OUT/log
        afterAll:
          - shell: echo afterAll >> OUT/log
        tests:
          - name: one
            tasks:
              - shell: echo test-one >> ${{ out }}/log
            idempotence: false
          - name: two
            tasks:
              - debug: msg=two
        """,
    )

    done = tenfra(cwd=repo)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo.parent / "out" / "log").read_text().split() == [
        "beforeAll",
        "beforeEach",
        "test-one",
        "afterEach",
        "beforeEach",
        "afterEach",
        "afterAll",
    ]

    suite(
        repo,
        """\
        beforeAll:
          - fail: msg=no machine for you
        tests:
          - {name: one, tasks: [{debug: msg=1}]}
          - {name: two, tasks: [{debug: msg=2}]}
        """,
    )
    done = tenfra(cwd=repo)
    assert done.returncode == EXIT_FAILED
    assert (
        done.stdout.count("beforeAll failed: beforeAll: task") == 4
    )  # 2 x progress + 2 x recap
    assert "no machine for you" in done.stdout


def test_skip_keyword_collect_only_and_timeout(repo: Path) -> None:
    suite(
        repo,
        """\
        tests:
          - name: quick
            tasks: [{debug: msg=hi}]
          - name: later
            skip: waiting for the new mirror
            tasks: [{debug: msg=hi}]
          - name: sleepy
            timeout: 1
            tasks:
              - shell: sleep 20
        """,
    )

    listed = tenfra("--collect-only", cwd=repo)
    assert listed.stdout.split() == [
        "site::quick::local",
        "site::later::local",
        "site::sleepy::local",
    ]

    done = tenfra("-k", "quick", "-k", "later", cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 1 skipped" in done.stdout
    assert "skipped: waiting for the new mirror" in done.stdout

    done = tenfra("-k", "sleepy", cwd=repo)
    assert done.returncode == EXIT_FAILED
    assert "ERROR   site > sleepy" in done.stdout
    assert "timed out after 1 s on the local machine" in done.stdout

    none = tenfra("-k", "nothing-like-this", cwd=repo)
    assert none.returncode == EXIT_USER
    assert "No test matched -k 'nothing-like-this'" in none.stderr


def test_suite_errors_are_one_line_with_position(repo: Path) -> None:
    suite(repo, "tests:\n  - name: a\n    recipe: nope\n")

    done = tenfra(cwd=repo)

    assert done.returncode == EXIT_USER
    assert done.stderr.startswith(
        "tenfra: error: tests/site.test.yaml:3:13: recipe 'nope' not found in"
    )
    assert "Traceback" not in done.stderr

    empty = repo / "empty"
    empty.mkdir()
    done = tenfra(str(empty), cwd=repo)
    assert done.returncode == EXIT_USER
    assert "No test suites (*.test.yaml) found in" in done.stderr


def test_parallel_jobs_give_the_same_results(repo: Path) -> None:
    suite(
        repo,
        """\
        clean: true
        tests:
          - {name: a, recipe: site, inputs: {root: OUT/a}}
          - {name: b, recipe: site, inputs: {root: OUT/b}}
          - {name: c, recipe: site, inputs: {root: OUT/c}}
        """,
    )

    done = tenfra("--jobs", "3", cwd=repo)

    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("site > ")]
    assert [row.split()[2] for row in rows] == ["a", "b", "c"]


def test_inline_tasks_use_test_assets_and_that_assertions_report_values(
    repo: Path,
) -> None:
    (repo / "tests" / "test-assets").mkdir()
    (repo / "tests" / "test-assets" / "fixture.txt").write_text("fixture data\n")
    suite(
        repo,
        """\
        tests:
          - name: copies a test asset
            tasks:
              - name: put the fixture
                copy: src=fixture.txt dest=OUT/fixture.txt
            assert:
              - file: OUT/fixture.txt
                equals: "fixture data\\n"
              - that: tasks['put the fixture'] == 'changed'
              - that: second.status == 'changed'
              - that: "report.status == 'ok'"
                message: the first run should have changed nothing
        """,
    )
    (repo.parent / "out").mkdir()

    done = tenfra(cwd=repo)

    assert done.returncode == EXIT_FAILED
    assert "assertion 1 failed" not in done.stdout
    assert "assertion 2 failed" not in done.stdout
    assert "assertion 3 failed: second.status == 'changed' is False" in done.stdout
    assert (
        "assertion 4 failed: the first run should have changed nothing" in done.stdout
    )
    assert (repo.parent / "out" / "fixture.txt").read_text() == "fixture data\n"


def test_an_undefined_name_in_an_assertion_is_reported_not_crashed(
    repo: Path,
) -> None:
    suite(
        repo,
        """\
        tests:
          - name: typo
            tasks: [{debug: msg=hi}]
            assert:
              - that: reprot.status == 'ok'
        """,
    )

    done = tenfra(cwd=repo)

    assert done.returncode == EXIT_FAILED
    assert "assertion 1 failed:" in done.stdout
    assert "reprot" in done.stdout
    assert "internal error" not in done.stdout
