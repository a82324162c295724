"""Sensitive values: masked in every output and report, real for the tasks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tenfra.cli import main
from tenfra.report import Status, report_to_json

CANARY = "CANARY-s3cr3t-7d1f"


def everything(report: Any) -> str:
    return json.dumps(report_to_json(report))


def test_a_sensitive_task_masks_its_values_everywhere_but_gets_them(
    kit: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "secret.conf"
    kit.write(
        "main",
        f"""
        tasks:
          - name: store the password
            set: {{password: "${{{{ raw_password }}}}"}}
            sensitive: true
          - name: write it
            touch: {{path: {target}, content: "pw=${{{{ password }}}}"}}
            sensitive: true
          - debug: msg="the password is ${{{{ password }}}}"
          - name: "use ${{{{ password }}}} in a name"
            record: ok
          - fail: "cannot log in with ${{{{ password }}}}"
        """,
    )
    caplog.set_level(logging.DEBUG, logger="tenfra")

    report = kit.run(diff=True, extra_vars={"raw_password": CANARY})

    assert target.read_text() == f"pw={CANARY}"  # the task got the real value
    tasks = kit.flat(report)
    assert tasks[1].diff == "(diff hidden: the task is sensitive)"
    assert tasks[2].message == "the password is ********"
    assert tasks[3].name == "use ******** in a name"
    assert tasks[4].error == "cannot log in with ********"
    assert CANARY not in everything(report)
    assert CANARY not in caplog.text
    assert "the password is ********" in caplog.text


def test_a_sensitive_input_is_masked_in_errors_of_the_whole_run(kit: Any) -> None:
    kit.write(
        "lib",
        """
        inputs:
          token: {type: string, sensitive: true}
        tasks:
          - record: ${{ token }}
            out: r
          - fail: "token ${{ token }} rejected"
        """,
    )
    kit.write(
        "main",
        """
        dependencies: [lib]
        tasks:
          - recipe: {id: lib, inputs: {token: "${{ t }}"}}
        """,
    )

    report = kit.run(extra_vars={"t": CANARY})

    assert kit.calls == [CANARY]
    assert report.status is Status.FAILED
    assert CANARY not in everything(report)
    assert "token ******** rejected" in (report.recipes[0].error or "")


def test_registered_results_of_sensitive_tasks_are_masked_later(kit: Any) -> None:
    kit.write(
        "main",
        """
        tasks:
          - record: ${{ secret }}
            out: r
            sensitive: true
          - debug: msg="${{ r.value }}"
          - debug: {var: r}
        """,
    )

    report = kit.run(extra_vars={"secret": CANARY})

    assert report.status is Status.OK
    assert CANARY not in everything(report)
    assert kit.flat(report)[1].message == "********"


def test_the_cli_never_prints_the_secret(
    kit: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kit.write(
        "main",
        """
        tasks:
          - set: {pw: "${{ given }}"}
            sensitive: true
          - debug: msg="${{ pw }}"
          - fail: "${{ pw }} is wrong"
        """,
    )
    state = str(kit.state)

    for extra in ([], ["--json"]):
        with pytest.raises(SystemExit) as info:
            main(
                [
                    "-vv",
                    "run",
                    "main",
                    "--host",
                    "h",
                    "--state-dir",
                    state,
                    "-e",
                    f"given={CANARY}",
                    *extra,
                ]
            )
        out = capsys.readouterr()
        assert info.value.code == 1
        assert CANARY not in out.out + out.err
        assert "******** is wrong" in out.out + out.err


def _prefixes(secret: str) -> list[str]:
    return [secret[:n] for n in range(4, len(secret) + 1)]


@pytest.mark.parametrize("templated", [True, False])
def test_a_shortened_automatic_label_never_shows_part_of_a_secret(
    kit: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    templated: bool,
) -> None:
    secret = "CorrectHorseBatteryStaple"
    folder = Path("d" * 20)  # relative to tmp_path, the working folder
    (tmp_path / folder).mkdir()
    if templated:
        task = 'write: {dest: DEST, value: "${{ db_password }}"}'
    else:
        task = f"write: {{dest: DEST, value: {secret}}}\n    sensitive: true"
    kit.write(
        "main",
        f"""
inputs:
  db_password: {{type: string, sensitive: true}}
tasks:
  - {task.replace("DEST", str(folder / "db.txt"))}
""",
    )
    state = str(kit.state)
    for extra in ([], ["--json"]):
        with pytest.raises(SystemExit) as info:
            main(
                [
                    *("run", "main", "--host", "h", "--state-dir", state),
                    *("-e", f"db_password={secret}", *extra),
                ]
            )
        out = capsys.readouterr()
        assert info.value.code == 0, out
        shown = out.out + out.err
        assert "value=********" in shown
        assert not [p for p in _prefixes(secret) if p in shown]
    assert (tmp_path / folder / "db.txt").read_text().strip() == secret
