"""The container runners with real podman and the Docker Engine API (podman's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tenfra.errors import EXIT_FAILED
from tenfra.testsuite import LABEL, RUN_LABEL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
IMAGE = "localhost/tenfra-test:bookworm"

RUNNERS = [
    pytest.param("podman", marks=pytest.mark.podman, id="podman"),
    pytest.param("docker", marks=[pytest.mark.podman, pytest.mark.docker], id="docker"),
]


def labelled(env: dict[str, str]) -> list[str]:
    """Every container any tenfra test runner started and did not remove."""
    done = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label={LABEL}=1"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


@pytest.fixture
def runner_env(
    request: pytest.FixtureRequest, podman_env: dict[str, str]
) -> Iterator[dict[str, str]]:
    """The environment for ``tenfra test``; checks no container is left after."""
    env = dict(podman_env)
    if getattr(request, "param", "podman") == "docker":
        env["DOCKER_HOST"] = request.getfixturevalue("docker_host")
    before = labelled(env)
    yield env
    left = [c for c in labelled(env) if c not in before]
    if left:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *left], env=env)
    assert left == [], f"containers left behind: {left}"


def tenfra_test(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenfra.cli", "test", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_repo(
    root: Path, suite: str, recipes: Optional[dict[str, str]] = None
) -> Path:
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    for name, text in (
        recipes or {"hello.yaml": "tasks:\n  - debug: msg=hi\n"}
    ).items():
        target = root / "recipes" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    (root / "tests").mkdir(exist_ok=True)
    path = root / "tests" / "suite.test.yaml"
    path.write_text(textwrap.dedent(suite))
    return path


@pytest.mark.parametrize("runner_env", RUNNERS, indirect=True)
def test_the_example_suite_passes(
    runner_env: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    runner = request.node.callspec.id
    junit = tmp_path / "junit.xml"

    done = tenfra_test(
        "tests/greeting.test.yaml",
        "--runner",
        runner,
        "--junit-xml",
        str(junit),
        env=runner_env,
        cwd=EXAMPLES,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed in" in done.stdout
    assert f"PASSED  greeting > writes the greeting ({runner}," in done.stdout
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (
        "3",
        "0",
        "0",
    )
    assert {c.get("classname") for c in root.iter("testcase")} == {f"greeting.{runner}"}


@pytest.mark.parametrize("runner_env", RUNNERS, indirect=True)
def test_a_failing_test_exits_non_zero_and_leaves_no_container(
    runner_env: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    runner = request.node.callspec.id
    write_repo(
        tmp_path,
        f"""\
        runner: {runner}
        clean: true
        tests:
          - name: writes the motd
            tasks:
              - name: motd
                write: {{dest: /etc/motd, value: "managed by tenfra\\n", format: raw}}
            assert:
              - file: /etc/motd
                equals: "managed by tenfra\\n"
          - name: expects another motd
            tasks:
              - name: motd
                write: {{dest: /etc/motd, value: "managed by tenfra\\n", format: raw}}
            assert:
              - command: grep -q 'hand written' /etc/motd
          - name: appends forever
            tasks:
              - name: append
                shell: echo line >> /root/log
        """,
    )

    done = tenfra_test(env=runner_env, cwd=tmp_path)

    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert f"PASSED  suite > writes the motd ({runner}" in done.stdout
    assert f"FAILED  suite > expects another motd ({runner}" in done.stdout
    assert (
        "assertion 1 failed: command \"grep -q 'hand written' /etc/motd\" exited "
        "with 1, expected 0"
    ) in done.stdout
    assert "not idempotent: the second run changed 1 task(s): 'append'" in done.stdout
    # Three clean machines were started; the fixture checks none is left.


@pytest.mark.parametrize("runner_env", RUNNERS, indirect=True)
def test_an_image_without_python_gets_a_clear_error(
    runner_env: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    runner = request.node.callspec.id
    write_repo(
        tmp_path,
        f"""\
        runner:
          name: {runner}
          containerfile: ../image/Containerfile
        tests:
          - {{name: needs python, recipe: hello}}
        """,
    )
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "Containerfile").write_text(
        f"FROM {IMAGE}\nRUN rm -f /usr/bin/python3 /usr/bin/python3.*\n"
    )

    done = tenfra_test(env=runner_env, cwd=tmp_path)

    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert f"ERROR   suite > needs python ({runner}" in done.stdout
    assert "has no usable python3" in done.stdout
    assert (
        "Fix: use an image with python3, e.g. localhost/tenfra-test:bookworm, or "
        "install python3 in the Containerfile." in done.stdout
    )
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.podman
@pytest.mark.parametrize("runner_env", ["podman"], indirect=True)
def test_nginx_example_serves_its_page_inside_the_container(
    runner_env: dict[str, str],
) -> None:
    done = tenfra_test("tests/nginx.test.yaml", env=runner_env, cwd=EXAMPLES)

    assert done.returncode == 0, done.stdout + done.stderr
    row = next(r for r in done.stdout.splitlines() if r.startswith("nginx > "))
    assert row.split()[-4:-2] == ["passed", "0"]  # nothing changed on the 2nd run


@pytest.mark.podman
@pytest.mark.parametrize("runner_env", ["podman"], indirect=True)
def test_the_nginx_page_check_is_real(
    runner_env: dict[str, str], tmp_path: Path
) -> None:
    """The same HTTP check fails when the page does not hold the text."""
    write_repo(
        tmp_path,
        f"""\
        recipes: {EXAMPLES / "recipes"}
        runner: podman
        tests:
          - name: right heading
            recipe: nginx
            inputs: {{title: Right heading, port: 8081}}
            assert:
              - command: >-
                  python3 -c "import urllib.request; print(urllib.request.urlopen(
                  'http://127.0.0.1:8081/', timeout=10).read().decode())"
                stdoutContains: <h1>Right heading</h1>
          - name: wrong heading
            recipe: nginx
            inputs: {{title: Right heading, port: 8081}}
            assert:
              - command: >-
                  python3 -c "import urllib.request; print(urllib.request.urlopen(
                  'http://127.0.0.1:8081/', timeout=10).read().decode())"
                stdoutContains: <h1>Wrong heading</h1>
        """,
    )

    done = tenfra_test(env=runner_env, cwd=tmp_path)

    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert "PASSED  suite > right heading (podman" in done.stdout
    assert "FAILED  suite > wrong heading (podman" in done.stdout
    assert "does not contain '<h1>Wrong heading</h1>'" in done.stdout


@pytest.mark.parametrize("runner_env", RUNNERS, indirect=True)
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_removes_the_containers(
    runner_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    jobs: str,
) -> None:
    runner = request.node.callspec.params["runner_env"]
    write_repo(
        tmp_path,
        f"""\
        runner: {runner}
        clean: true
        tests:
          - {{name: one, tasks: [{{shell: sleep 300}}]}}
          - {{name: two, tasks: [{{shell: sleep 300}}]}}
        """,
    )
    before = set(labelled(runner_env))
    process = subprocess.Popen(
        [sys.executable, "-m", "tenfra.cli", "test", "--jobs", jobs],
        cwd=tmp_path,
        env=runner_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(set(labelled(runner_env)) - before) < int(jobs):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no container started"
            time.sleep(0.3)
        time.sleep(2)  # let the tests reach their sleep inside the containers
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 130, output
    assert set(labelled(runner_env)) - before == set()


@pytest.mark.podman
@pytest.mark.parametrize("runner_env", ["podman"], indirect=True)
def test_sigterm_removes_the_container(
    runner_env: dict[str, str], tmp_path: Path
) -> None:
    write_repo(
        tmp_path,
        """\
        runner: podman
        tests:
          - {name: one, tasks: [{shell: sleep 300}]}
        """,
    )
    before = set(labelled(runner_env))
    process = subprocess.Popen(
        [sys.executable, "-m", "tenfra.cli", "test"],
        cwd=tmp_path,
        env=runner_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not set(labelled(runner_env)) - before:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.3)
        time.sleep(2)
        process.terminate()
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 130, output
    assert set(labelled(runner_env)) - before == set()


@pytest.mark.podman
@pytest.mark.parametrize("runner_env", ["podman"], indirect=True)
def test_podman_options_env_ready_and_run_args(
    runner_env: dict[str, str], tmp_path: Path
) -> None:
    write_repo(
        tmp_path,
        """\
        runner:
          name: podman
          env: {GREETING: hello}
          passEnv: [TENFRA_PASSED, TENFRA_NOT_SET]
          ready: test -e /tmp/ready || { touch /tmp/ready; exit 1; }
          readyTimeout: 20
          runArgs: [--network=none, --hostname=tenfra-box]
        tests:
          - name: sees its options
            tasks: [{debug: msg=hi}]
            assert:
              - command: test "$GREETING" = hello && test "$TENFRA_PASSED" = yes
              - command: test -z "${TENFRA_NOT_SET+set}"
              - command: test "$(grep -c ':' /proc/net/dev)" = 1
              - that: report.host == 'tenfra-box'
        """,
    )

    done = tenfra_test(env={**runner_env, "TENFRA_PASSED": "yes"}, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.podman
@pytest.mark.docker
@pytest.mark.parametrize("runner_env", ["docker"], indirect=True)
def test_docker_options_env_ready_and_run_options(
    runner_env: dict[str, str], tmp_path: Path
) -> None:
    write_repo(
        tmp_path,
        """\
        runner:
          name: docker
          env: {GREETING: hello}
          passEnv: [TENFRA_PASSED]
          ready: test -e /tmp/ready || { touch /tmp/ready; exit 1; }
          runOptions: {network_mode: none, hostname: tenfra-box}
        tests:
          - name: sees its options
            tasks: [{debug: msg=hi}]
            assert:
              - command: test "$GREETING" = hello && test "$TENFRA_PASSED" = yes
              - command: test "$(grep -c ':' /proc/net/dev)" = 1
              - that: report.host == 'tenfra-box'
        """,
    )

    done = tenfra_test(env={**runner_env, "TENFRA_PASSED": "yes"}, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.podman
@pytest.mark.parametrize("runner_env", ["podman"], indirect=True)
def test_a_failing_readiness_check_is_reported(
    runner_env: dict[str, str], tmp_path: Path
) -> None:
    write_repo(
        tmp_path,
        """\
        runner: {name: podman, ready: "test -e /never", readyTimeout: 1}
        tests:
          - {name: a, recipe: hello}
        """,
    )

    done = tenfra_test(env=runner_env, cwd=tmp_path)

    assert done.returncode == EXIT_FAILED
    assert (
        "The readiness check 'test -e /never' did not succeed within 1 s" in done.stdout
    )


@pytest.mark.parametrize("runner_env", RUNNERS, indirect=True)
def test_cleanup_removes_leftovers_of_a_run(
    runner_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    from tenfra.plugins.runners import DockerRunner, PodmanRunner

    runner = request.node.callspec.id
    run_id = f"leftover{os.getpid()}"
    subprocess.run(
        [
            "podman",
            "run",
            "-d",
            "--label",
            f"{LABEL}=1",
            "--label",
            f"{RUN_LABEL}={run_id}",
            IMAGE,
            "sleep",
            "infinity",
        ],
        env=runner_env,
        check=True,
        capture_output=True,
    )
    cls = PodmanRunner if runner == "podman" else DockerRunner
    previous = os.environ.get("DOCKER_HOST")
    os.environ.update(runner_env)
    try:
        assert cls.cleanup(run_id) == 1
        assert cls.cleanup(run_id) == 0
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
