"""Test suite files: loading with located errors, discovery, summary and JUnit XML."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tenfra.errors import UserError, ValidationError
from tenfra.testsuite import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    Selection,
    Session,
    TestOutcome,
    _mock_for,
    discover,
    load_suite,
    summary_table,
    write_junit,
)

RECIPE = """\
name: hello
tasks:
  - name: say hello
    debug: msg=hello
"""


def make_repo(root: Path, suite: str, name: str = "demo.test.yaml") -> Path:
    """A repository with recipes/hello.yaml and tests/<name>; returns the suite."""
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "recipes" / "hello.yaml").write_text(RECIPE, encoding="utf-8")
    (root / "tests").mkdir(exist_ok=True)
    path = root / "tests" / name
    path.write_text(textwrap.dedent(suite), encoding="utf-8")
    return path


def test_a_valid_suite_loads_with_its_runners_and_recipes_folder(
    tmp_path: Path,
) -> None:
    path = make_repo(
        tmp_path,
        """\
        runner:
          - local
          - name: podman
            image: localhost/other:1
            runArgs: [--network=none]
            passEnv: [HOME]
        clean: true
        tests:
          - name: first
            recipe: hello
          - name: second
            tasks:
              - debug: msg=hi
            idempotence: false
        """,
    )
    suite = load_suite(path)

    assert suite.name == "demo"
    assert [r.name for r in suite.runners] == ["local", "podman"]
    podman = suite.runners[1].options
    assert podman.image == "localhost/other:1"
    assert podman.run_args == ["--network=none"]
    assert podman.pass_env == ["HOME"]
    assert suite.recipes_dir == (tmp_path / "recipes").resolve()
    assert suite.spec.clean is True
    assert suite.spec.idempotence is True
    assert [t.name for t in suite.tests] == ["first", "second"]
    assert suite.tests[1].idempotence is False
    assert str(suite.test_location(1)) == f"{path}:11:5"


# Each case: suite text, the expected "line:col: message" fragment.
BAD_SUITES = {
    "unknown top-level key": (
        """\
        runner: local
        clen: true
        tests:
          - {name: a, recipe: hello}
        """,
        "2:1: unknown key 'clen' in the test suite (did you mean 'clean'?)",
    ),
    "tests missing": ("runner: local\n", "1:1: tests is required but missing"),
    "empty tests": ("tests: []\n", "1:8: 'tests' is empty; add at least one test"),
    "test without name": (
        """\
        tests:
          - recipe: hello
        """,
        "2:5: tests[0].name is required but missing",
    ),
    "recipe and tasks": (
        """\
        tests:
          - name: both
            recipe: hello
            tasks: [{debug: msg=x}]
        """,
        "2:5: test 'both' needs exactly one of 'recipe' (a recipe id) or 'tasks'",
    ),
    "neither recipe nor tasks": (
        """\
        tests:
          - name: none
        """,
        "2:5: test 'none' needs exactly one of 'recipe'",
    ),
    "unknown runner": (
        """\
        runner: podmn
        tests:
          - {name: a, recipe: hello}
        """,
        "1:9: unknown runner 'podmn'; known runners: docker, local, podman",
    ),
    "unknown runner option": (
        """\
        runner:
          name: podman
          imag: localhost/x
        tests:
          - {name: a, recipe: hello}
        """,
        "3:3: unknown key 'imag' in the options of runner 'podman' (did you mean "
        "'image'?)",
    ),
    "runner option of the wrong type": (
        """\
        runner:
          name: podman
          runArgs: --network=none
        tests:
          - {name: a, recipe: hello}
        """,
        "3:12: runArgs: expected a list, got a string",
    ),
    "runner listed twice": (
        """\
        runner: [local, local]
        tests:
          - {name: a, recipe: hello}
        """,
        "1:9: runner 'local' is listed twice",
    ),
    "unknown recipe": (
        """\
        tests:
          - name: a
            recipe: helo
        """,
        "3:13: recipe 'helo' not found in",
    ),
    "duplicate test names": (
        """\
        tests:
          - {name: a, recipe: hello}
          - {name: a, recipe: hello}
        """,
        "3:12: two tests are named 'a' (tests 1 and 2)",
    ),
    "assertion with two kinds": (
        """\
        tests:
          - name: a
            recipe: hello
            assert:
              - file: /etc/motd
                command: "true"
        """,
        "5:9: an assertion needs exactly one of 'that', 'file', 'command' or "
        "'task' (got file, command)",
    ),
    "task assertion without status": (
        """\
        tests:
          - name: a
            recipe: hello
            assert:
              - task: say hello
        """,
        "5:9: an assertion on task 'say hello' needs 'status'",
    ),
    "bad mock status": (
        """\
        tests:
          - name: a
            recipe: hello
            mocks:
              - {type: debug, status: broken}
        """,
        "5:31: mock status 'broken' is not one of ok, changed, skipped, failed",
    ),
    "yes is not a boolean": (
        """\
        idempotence: yes
        tests:
          - {name: a, recipe: hello}
        """,
        "1:14: idempotence: expected true or false, got a string",
    ),
    "missing recipes folder": (
        """\
        recipes: ../nowhere
        tests:
          - {name: a, recipe: hello}
        """,
        "1:10: the recipes folder '../nowhere' does not exist",
    ),
    "not a mapping": ("- a\n- b\n", "1:1: a test suite must be a mapping"),
    "unknown resource type in inline tasks": (
        """\
        tests:
          - name: a
            tasks:
              - debug: msg=fine
              - cpy: src=a dest=/b
        """,
        "5:9: unknown key 'cpy' in the task (did you mean 'copy'?)",
    ),
    "bad option in a beforeEach task": (
        """\
        beforeEach:
          - shell: {cmd: "true", creats: /x}
        tests:
          - {name: a, recipe: hello}
        """,
        "2:26: unknown option 'creats' for shell (did you mean 'creates'?)",
    ),
    "negative timeout": (
        """\
        tests:
          - {name: a, recipe: hello, timeout: -1}
        """,
        "2:39: 'timeout' must be a positive number of seconds",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_a_bad_suite_is_refused_with_its_position(tmp_path: Path, case: str) -> None:
    text, expected = BAD_SUITES[case]
    path = make_repo(tmp_path, text)

    with pytest.raises(ValidationError) as caught:
        load_suite(path)

    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    assert expected in message, message


def test_recipes_folder_is_found_above_the_suite_or_set_explicitly(
    tmp_path: Path,
) -> None:
    path = make_repo(tmp_path / "repo", "tests:\n  - {name: a, recipe: hello}\n")
    assert load_suite(path).recipes_dir == (tmp_path / "repo" / "recipes").resolve()

    other = tmp_path / "elsewhere" / "recipes"
    other.mkdir(parents=True)
    (other / "hello.yaml").write_text(RECIPE, encoding="utf-8")
    explicit = path.with_name("explicit.test.yaml")
    explicit.write_text(
        "recipes: ../../elsewhere/recipes\ntests:\n  - {name: a, recipe: hello}\n",
        encoding="utf-8",
    )
    assert load_suite(explicit).recipes_dir == other.resolve()


def test_recipe_ids_follow_the_recipe_layout(tmp_path: Path) -> None:
    path = make_repo(tmp_path, "tests:\n  - {name: a, recipe: web}\n")
    (tmp_path / "recipes" / "web").mkdir()
    (tmp_path / "recipes" / "web" / "main.yaml").write_text(RECIPE, encoding="utf-8")

    suite = load_suite(path)

    assert suite.tests[0].recipe == "web"


def test_discover_finds_suites_and_skips_hidden_and_tool_folders(
    tmp_path: Path,
) -> None:
    for relative in (
        "a.test.yaml",
        "sub/b.test.yaml",
        "sub/not-a-suite.yaml",
        ".hidden/c.test.yaml",
        ".venv/d.test.yaml",
        "node_modules/e.test.yaml",
    ):
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("tests: []\n", encoding="utf-8")

    found = discover([tmp_path])

    assert found == [tmp_path / "a.test.yaml", tmp_path / "sub" / "b.test.yaml"]
    # A file named explicitly is taken as it is, once.
    explicit = tmp_path / "sub" / "not-a-suite.yaml"
    assert discover([explicit, explicit]) == [explicit]


def test_discover_names_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nowhere: no such file or folder"):
        discover([tmp_path / "nowhere"])


def _outcomes() -> list[TestOutcome]:
    return [
        TestOutcome(
            suite="web",
            test="serves",
            runner="podman",
            status=PASSED,
            location="t/web.test.yaml:4:5",
            second_changes=0,
            duration=2.5,
        ),
        TestOutcome(
            suite="web",
            test="idempotent",
            runner="podman",
            status=FAILED,
            location="t/web.test.yaml:9:5",
            problems=["not idempotent: the second run changed 1 task(s): 'x'"],
            second_changes=1,
            duration=1.25,
            output="WARNING something\n",
        ),
        TestOutcome(
            suite="web",
            test="broken image",
            runner="docker",
            status=ERROR,
            location="t/web.test.yaml:12:5",
            problems=["The image has no usable python3"],
            duration=0.5,
        ),
        TestOutcome(
            suite="web",
            test="later",
            runner="docker",
            status=SKIPPED,
            location="t/web.test.yaml:15:5",
            problems=["skipped: not yet"],
        ),
    ]


def test_summary_table_has_one_row_per_test_and_totals() -> None:
    table = summary_table(_outcomes()).splitlines()

    assert table[0].split() == [
        "TEST",
        "RUNNER",
        "STATUS",
        "2ND",
        "RUN",
        "CHANGES",
        "DURATION",
    ]
    assert table[1].split() == [
        "web",
        ">",
        "serves",
        "podman",
        "passed",
        "0",
        "2.5",
        "s",
    ]
    assert table[2].split()[-4:] == ["failed", "1", "1.2", "s"]
    assert table[3].split()[-4:] == ["error", "-", "0.5", "s"]
    assert table[-1] == "1 passed, 1 failed, 1 error, 1 skipped in 4.2 s of test time"


def test_junit_xml_counts_failures_errors_and_skips(tmp_path: Path) -> None:
    target = tmp_path / "out" / "junit.xml"

    write_junit(_outcomes(), target)

    root = ET.parse(target).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("4", "1")
    assert (root.get("errors"), root.get("skipped")) == ("1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["web [podman]", "web [docker]"]
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == [
        "serves",
        "idempotent",
        "broken image",
        "later",
    ]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("not idempotent")
    assert "t/web.test.yaml:9:5" in (failure.text or "")
    assert cases[1].find("system-err") is not None
    prop = cases[1].find("properties/property")
    assert prop is not None and prop.get("value") == "1"
    assert cases[2].find("error") is not None
    assert cases[3].find("skipped") is not None
    assert [p.name for p in target.parent.iterdir()] == ["junit.xml"]


def test_keyword_selection_and_clean_machines_shape_the_units(tmp_path: Path) -> None:
    path = make_repo(
        tmp_path,
        """\
        runner: [local, podman]
        tests:
          - {name: alpha one, recipe: hello}
          - {name: beta, recipe: hello}
          - {name: alpha two, recipe: hello}
        """,
    )
    suite = load_suite(path)

    shared = Session(Selection(suites=[suite], keyword=["ALPHA"])).units()
    assert [(u.choice.name, [t.name for _, t in u.tests]) for u in shared] == [
        ("local", ["alpha one", "alpha two"]),
        ("podman", ["alpha one", "alpha two"]),
    ]
    by_runner = Session(Selection(suites=[suite], keyword=["beta::podman"])).units()
    assert [(u.choice.name, len(u.tests)) for u in by_runner] == [("podman", 1)]

    clean = path.with_name("clean.test.yaml")
    clean.write_text(path.read_text().replace("runner:", "clean: true\nrunner:"))
    units = Session(Selection(suites=[load_suite(clean)], runner="local")).units()
    assert [len(u.tests) for u in units] == [1, 1, 1]


def test_runner_override_unknown_name_is_a_user_error(tmp_path: Path) -> None:
    path = make_repo(tmp_path, "tests:\n  - {name: a, recipe: hello}\n")
    session = Session(Selection(suites=[load_suite(path)], runner="lxc"))

    with pytest.raises(UserError, match="Unknown runner 'lxc' given with --runner"):
        session.units()


class _Task:
    def __init__(self, type_: str, name: str | None, label: str = "") -> None:
        self.type = type_
        self.name = name
        self.display_name = name if name is not None else label


def test_mocks_match_by_type_and_optionally_by_task_name() -> None:
    mocks = [
        {"type": "shell", "task": None, "status": "ok"},
        {"type": "shell", "task": "special", "status": "changed"},
    ]

    assert _mock_for(_Task("shell", "special"), mocks) == mocks[1]
    assert _mock_for(_Task("shell", "other"), mocks) == mocks[0]
    assert _mock_for(_Task("shell", None, "shell: ls"), mocks) == mocks[0]
    assert _mock_for(_Task("copy", "special"), mocks) is None
