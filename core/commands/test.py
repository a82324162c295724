"""The ``tenfra test`` command: run test suites, report, set the exit code."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import click

from tenfra.errors import EXIT_FAILED, UsageError

logger = logging.getLogger(__name__)


def _terminate(_signum: int, _frame: Optional[FrameType]) -> None:
    # SIGTERM (CI cancelling a job) takes the same path as Ctrl-C: the session
    # removes its machines before the process ends.
    raise KeyboardInterrupt


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-k",
    "keyword",
    multiple=True,
    metavar="NAME",
    help="Run only tests whose 'suite::test::runner' contains NAME (repeatable).",
)
@click.option(
    "--junit-xml",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JUnit XML report to this file.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Machines to run at the same time.",
)
@click.option(
    "--runner",
    metavar="NAME",
    help="Run every suite with this runner only (its options from the suite, "
    "or the runner's defaults).",
)
@click.option(
    "--collect-only", is_flag=True, help="List the selected tests without running."
)
def test(  # noqa: PLR0917  (click passes options as arguments)
    paths: tuple[Path, ...],
    keyword: tuple[str, ...],
    junit_xml: Optional[Path],
    jobs: int,
    runner: Optional[str],
    collect_only: bool,
) -> None:
    """Run test suites (*.test.yaml) found in PATHS (default: the current folder).

    Each test applies its recipe on a machine of the suite's runner, applies it
    again to check that nothing changes, checks the drift repair and the
    assertions.  Exits with 1 when any test fails.
    """
    from tenfra.testsuite import (
        ERROR,
        FAILED,
        Selection,
        Session,
        discover,
        load_suite,
        summary_table,
        write_junit,
    )

    files = discover(list(paths))
    if not files:
        where = ", ".join(str(p) for p in paths) or "the current folder"
        raise UsageError(
            f"No test suites (*.test.yaml) found in {where}; pass a suite file or "
            "a folder that holds some."
        )
    suites = [load_suite(path) for path in files]
    selection = Selection(suites=suites, keyword=keyword, runner=runner, jobs=jobs)
    session = Session(selection, echo=click.echo)
    if collect_only:
        for unit in session.units():
            for _, spec in unit.tests:
                click.echo(f"{unit.suite.name}::{spec.name}::{unit.choice.name}")
        return
    previous: Any = None
    if sys.platform != "win32":
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        outcomes = session.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    click.echo("")
    click.echo(summary_table(outcomes))
    if junit_xml is not None:
        write_junit(outcomes, junit_xml)
        click.echo(f"JUnit XML written to {junit_xml}")
    bad = [o for o in outcomes if o.status in (FAILED, ERROR)]
    if bad:
        click.echo("")
        click.secho(f"{len(bad)} test(s) did not pass:", fg="red")
        for outcome in bad:
            click.echo(f"  {outcome.location}: {outcome.title} [{outcome.runner}]")
            for problem in outcome.problems:
                click.echo(f"    {problem}")
        sys.exit(EXIT_FAILED)
