"""docs/tutorial.md, followed literally: its files, commands and outputs.

The tutorial marks what a reader does with HTML comments, invisible on the
rendered page, each placed right before the fenced block it applies to:

``<!-- tutorial: file PATH -->``
    create PATH (relative to the current folder) with the block's text;
``<!-- tutorial: run -->`` (optionally ``exit=N``)
    run the shell block; it must exit with N (default 0);
``<!-- tutorial: background ready=URL -->``
    start the shell block in the background (a second terminal) and wait until
    URL answers;
``<!-- tutorial: output -->``
    lines the previous ``run`` block must print, in order (see `output_matches`);
``<!-- tutorial: skip (why) -->``
    a shell block the test does not run (installing tenfra itself).

Two markers stand alone: ``<!-- tutorial: step NAME -->`` (a check the test
performs itself, such as looking at the web UI) and ``<!-- tutorial: stop -->``
(stop the background process, as Ctrl-C would).

The integration test runs every step in order in a fresh folder, with HOME
there too, and with a private ``/tmp`` (a bind mount in a mount namespace per
command, all sharing one folder), so the tutorial's ``/tmp/tenfra-tutorial``
never touches the machine's own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
PORT = 8087
ADMIN = ("admin", "tutorial-password")

DIRECTIVE = re.compile(r"^<!-- tutorial: (\w+)(?: (.*?))? -->$")
FENCE = re.compile(r"^```(\S*)\s*$")
SHELL_LANGUAGES = {"sh", "bash", "console", "shell"}
BLOCK_KINDS = {"file", "run", "background", "output", "skip"}
ALONE_KINDS = {"step", "stop"}


@attrs.frozen
class Step:
    """One marked step of the tutorial."""

    kind: str
    argument: str
    text: str
    line: int

    def option(self, name: str) -> Optional[str]:
        """The value of ``name=VALUE`` in the marker's argument."""
        for word in self.argument.split():
            key, _, value = word.partition("=")
            if key == name and value:
                return value
        return None


class TutorialError(Exception):
    """The tutorial's markers are malformed."""


def parse(path: Path) -> list[Step]:
    """The steps of the tutorial, in order; unmarked shell blocks are errors."""
    lines = path.read_text(encoding="utf-8").splitlines()
    steps: list[Step] = []
    pending: Optional[tuple[str, str, int]] = None
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        directive = DIRECTIVE.match(line.strip())
        fence = FENCE.match(line)
        if directive:
            kind, argument = directive.group(1), directive.group(2) or ""
            if pending is not None:
                raise TutorialError(
                    f"{path}:{pending[2]}: marker '{pending[0]}' has no code block "
                    "after it"
                )
            if kind in ALONE_KINDS:
                steps.append(Step(kind, argument, "", number))
            elif kind in BLOCK_KINDS:
                pending = (kind, argument, number)
            else:
                raise TutorialError(f"{path}:{number}: unknown marker {kind!r}")
            index += 1
            continue
        if fence:
            language = fence.group(1)
            end = index + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            if end == len(lines):
                raise TutorialError(f"{path}:{number}: code block is not closed")
            text = "\n".join(lines[index + 1 : end]) + "\n"
            if pending is not None:
                kind, argument, marker_line = pending
                steps.append(Step(kind, argument, text, marker_line))
                pending = None
            elif language in SHELL_LANGUAGES:
                raise TutorialError(
                    f"{path}:{number}: a {language} block without a tutorial "
                    "marker; mark it 'run', 'background' or 'skip (why)'"
                )
            index = end + 1
            continue
        if pending is not None and line.strip():
            raise TutorialError(
                f"{path}:{pending[2]}: marker '{pending[0]}' must be followed "
                "directly by its code block"
            )
        index += 1
    if pending is not None:
        raise TutorialError(f"{path}:{pending[2]}: marker has no code block after it")
    return steps


_DECIMAL = re.compile(r"\d+\.\d+")


def _normalise(line: str) -> str:
    return " ".join(_DECIMAL.sub("0.0", line).split())


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in _normalise(expected).split("...")]
    return re.compile("^" + ".*".join(parts) + "$")


def output_matches(expected: str, actual: str) -> Optional[str]:
    """None when ``actual`` shows the expected lines in order, else why not.

    Lines are compared with runs of white space collapsed and every decimal
    number (durations) made equal; ``...`` inside a line matches any text,
    and a line of ``...`` alone is only a hint to the reader that lines are
    left out (other lines of ``actual`` may always come in between).
    """
    wanted = [line for line in expected.splitlines() if line.strip() not in ("", "...")]
    have = [_normalise(line) for line in actual.splitlines()]
    position = 0
    for line in wanted:
        pattern = _line_pattern(line)
        while position < len(have) and not pattern.match(have[position]):
            position += 1
        if position == len(have):
            return f"expected line not found (in order): {line.strip()!r}"
        position += 1
    return None


# -- unit tests of the reader and of the tutorial's markers ---------------------------


def test_the_tutorial_is_marked_up_completely() -> None:
    steps = parse(TUTORIAL)
    kinds = [step.kind for step in steps]

    assert kinds.count("background") == 1
    assert kinds.index("background") < kinds.index("stop")
    assert "step" in kinds
    for before, step in zip(steps, steps[1:]):
        if step.kind == "output":
            assert before.kind == "run", f"line {step.line}: output follows a run"
    files = [step.argument for step in steps if step.kind == "file"]
    assert "recipes/hello/main.yaml" in files
    assert "inventory.yaml" in files


def test_an_unmarked_shell_block_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```sh\nrm -rf /\n```\n", encoding="utf-8")

    with pytest.raises(TutorialError, match=r"page.md:3: a sh block without"):
        parse(page)


def test_a_marker_must_touch_its_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- tutorial: run -->\nText.\n```sh\nls\n```\n", "utf-8")

    with pytest.raises(TutorialError, match="followed directly"):
        parse(page)


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ("a  (0.008 s)\nb", "a (1.250 s)\nzzz\nb\n", True),
        ("b\na", "a\nb\n", False),
        ("Release 0001-... written ...", "Release 0001-abc written to x", True),
        ("Release ... written", "Release 0001 written to x", False),
        ("changed=3", "changed=2", False),
        ("x\n...\ny", "x\ny", True),
    ],
)
def test_output_matching(expected: str, actual: str, ok: bool) -> None:
    assert (output_matches(expected, actual) is None) is ok


# -- following the tutorial -----------------------------------------------------------


@attrs.define
class Session:
    """The reader's shell: a folder, an environment and a background process."""

    work: Path
    private_tmp: Path
    cwd: Path
    env: dict[str, str]
    background: Optional[subprocess.Popen[bytes]] = None
    background_log: Optional[Path] = None
    last_output: str = ""

    def _argv(self, script: str, cwd_file: Path) -> list[str]:
        # The real /tmp stays reachable under the work folder, so the folders
        # this test's own Python and checkout live in (when a CI clone sits
        # under /tmp) are bound back into the private /tmp.
        prologue = (
            'mount --bind /tmp "$TUTORIAL_REAL_TMP" || exit 97\n'
            'mount --bind "$TUTORIAL_PRIVATE_TMP" /tmp || exit 97\n'
            "for top in $TUTORIAL_KEEP; do\n"
            '  mkdir -p "/tmp/$top" && mount --bind "$TUTORIAL_REAL_TMP/$top" '
            '"/tmp/$top" || exit 97\n'
            "done\n"
            f"cd {self.cwd}\n"
            "set -e -o pipefail\n"
        )
        epilogue = f"\npwd > {cwd_file}\n"
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            prologue + script + epilogue,
        ]

    def run(self, step: Step) -> None:
        cwd_file = self.work / "cwd"
        cwd_file.unlink(missing_ok=True)
        expected = int(step.option("exit") or 0)
        try:
            done = subprocess.run(
                self._argv(step.text, cwd_file),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # in the order a terminal shows them
                timeout=600,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"tutorial.md:{step.line}: no end after 600 s:\n{step.text}")
        output = done.stdout.decode(errors="replace")
        self.last_output = output
        if done.returncode == 97:
            pytest.fail("cannot bind-mount a private /tmp (this test needs root)")
        assert done.returncode == expected, (
            f"tutorial.md:{step.line}: exit code {done.returncode}, expected "
            f"{expected}, for:\n{step.text}\n--- output ---\n{output}"
        )
        if cwd_file.exists():
            self.cwd = Path(cwd_file.read_text(encoding="utf-8").strip())

    def write(self, step: Step) -> None:
        target = self.cwd / step.argument
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(step.text, encoding="utf-8")

    def check_output(self, step: Step) -> None:
        problem = output_matches(step.text, self.last_output)
        assert problem is None, (
            f"tutorial.md:{step.line}: {problem}\n--- output ---\n{self.last_output}"
        )

    def start(self, step: Step) -> None:
        ready = step.option("ready")
        assert ready, f"tutorial.md:{step.line}: background needs ready=URL"
        self.background_log = self.work / "background.log"
        with self.background_log.open("wb") as log:
            self.background = subprocess.Popen(
                self._argv(step.text, self.work / "background-cwd"),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.background.poll() is not None:
                pytest.fail(
                    f"tutorial.md:{step.line}: the background command exited with "
                    f"{self.background.returncode}:\n{self.background_text()}"
                )
            try:
                with urllib.request.urlopen(ready, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        pytest.fail(
            f"tutorial.md:{step.line}: {ready} did not answer within 60 s:\n"
            f"{self.background_text()}"
        )

    def background_text(self) -> str:
        if self.background_log is None or not self.background_log.exists():
            return ""
        return self.background_log.read_text(encoding="utf-8", errors="replace")

    def stop(self, *, check: bool) -> None:
        process, self.background = self.background, None
        if process is None or process.poll() is not None:
            if check:
                pytest.fail("the background process was not running at 'stop'")
            return
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal's group
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if check:
                pytest.fail(
                    f"Ctrl-C did not stop the provider:\n{self.background_text()}"
                )
            return
        if check:
            assert code in (0, 130, -signal.SIGINT), (
                f"the provider ended with {code} on Ctrl-C:\n{self.background_text()}"
            )


def _check_ui(session: Session, browser: Any) -> None:
    """Section 10: log in, find web-01 on the fleet page, open its run."""
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{PORT}/admin")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.click("button[type=submit]")
        fleet = page.inner_text("body")
        assert "web-01" in fleet and "changed" in fleet, fleet
        page.click("text=web-01")
        host = page.inner_text("body")
        for text in ("hello", "render the page", "create the site folder", "Facts"):
            assert text in host, f"{text!r} is not on the host page:\n{host}"
    finally:
        page.close()


@pytest.fixture
def session() -> Iterator[Session]:
    # Outside /tmp: each command sees a private /tmp (bind mount), and the
    # work folder must stay visible to it.
    work = Path(tempfile.mkdtemp(prefix="tenfra-tutorial-", dir="/var/tmp"))
    home = work / "home"
    private_tmp = work / "tmp"
    real_tmp = work / "real-tmp"
    for folder in (home, private_tmp, real_tmp):
        folder.mkdir(mode=0o700)
    private_tmp.chmod(0o1777)
    keep = sorted(
        {
            path.relative_to("/tmp").parts[0]
            for path in (Path(sys.prefix), Path(__file__).resolve())
            if path.is_relative_to("/tmp")
        }
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TENFRA_", "XDG_", "VIRTUAL_ENV"))
    }
    env.update(
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TUTORIAL_PRIVATE_TMP=str(private_tmp),
        TUTORIAL_REAL_TMP=str(real_tmp),
        TUTORIAL_KEEP=" ".join(keep),
    )
    session = Session(work=work, private_tmp=private_tmp, cwd=work, env=env)
    try:
        yield session
    finally:
        session.stop(check=False)
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.browser
def test_the_tutorial_works_literally(session: Session, browser: Any) -> None:
    with socket.socket() as probe:
        taken = probe.connect_ex(("127.0.0.1", PORT)) == 0
    assert not taken, f"port {PORT} is in use; the tutorial's provider needs it"
    checks: dict[str, Callable[[], None]] = {"ui": lambda: _check_ui(session, browser)}

    for step in parse(TUTORIAL):
        if step.kind == "file":
            session.write(step)
        elif step.kind == "run":
            session.run(step)
        elif step.kind == "output":
            session.check_output(step)
        elif step.kind == "background":
            session.start(step)
        elif step.kind == "stop":
            session.stop(check=True)
        elif step.kind == "step":
            checks[step.argument]()

    assert session.cwd == session.work, "the tutorial ends where it started"
    assert not (session.work / "hello-tenfra").exists(), "clean-up removed the project"
    assert not (session.private_tmp / "tenfra-tutorial").exists()
