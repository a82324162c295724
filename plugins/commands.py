"""Command resource types: exec (an argv, no shell) and shell."""

from __future__ import annotations

import glob
import logging
import shlex
from typing import Any, Optional, Union

import attrs

from tenfra import hookimpl
from tenfra.pluginmanager import Registry
from tenfra.process import Completed, display, run
from tenfra.resource import Context, ResourceType, Result, option

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class CommonOptions:
    """Options shared by ``exec`` and ``shell``."""

    env: dict[str, str] = option(
        "Variables merged into the environment (PATH and the rest survive).",
        factory=dict,
    )
    cwd: Optional[str] = option("Working directory.", default=None)
    stdin: Optional[str] = option("Text sent to standard input.", default=None)
    creates: Optional[str] = option(
        "A path (or glob); when it exists the command is not run (``ok``).",
        default=None,
    )
    removes: Optional[str] = option(
        "A path (or glob); when it does not exist the command is not run (``ok``).",
        default=None,
    )
    timeout: Optional[float] = option(
        "Seconds before the command is killed (default: the task's ``timeout``).",
        default=None,
    )
    ok_codes: list[int] = option(
        "Exit codes that count as success.", factory=lambda: [0]
    )
    read_only: bool = option(
        "The command only reads (a query): its result is ``ok``, never "
        "``changed``, and it also runs in check mode.",
        default=False,
    )


@attrs.frozen(kw_only=True)
class ExecOptions(CommonOptions):
    argv: Optional[list[str]] = option(
        "The program and its arguments, as a list; no shell is involved.",
        default=None,
    )
    cmd: Optional[str] = option(
        "The command as one line, split like a shell would (quotes respected) "
        "but run without a shell: no pipes, globs or variables.",
        default=None,
    )

    def __attrs_post_init__(self) -> None:
        if (self.argv is None) == (self.cmd is None):
            raise ValueError("give exactly one of 'argv' (a list) or 'cmd' (a line)")
        if self.argv is not None and not self.argv:
            raise ValueError("'argv' is empty; give at least the program name")
        if self.cmd is not None:
            try:
                words = shlex.split(self.cmd)
            except ValueError as exc:
                raise ValueError(f"'cmd' cannot be split into words: {exc}") from None
            if not words:
                raise ValueError("'cmd' is empty; give at least the program name")


@attrs.frozen(kw_only=True)
class ShellOptions(CommonOptions):
    cmd: str = option("The shell script to run (``sh -c``).")
    executable: str = option("The shell.", default="/bin/sh")


def _exists(pattern: str) -> bool:
    return bool(glob.glob(pattern))


def _guard(options: CommonOptions) -> Optional[str]:
    """Why the command is skipped (``creates``/``removes``), or None."""
    if options.creates is not None and _exists(options.creates):
        return f"{options.creates} exists"
    if options.removes is not None and not _exists(options.removes):
        return f"{options.removes} does not exist"
    return None


def _execute(
    command: Union[str, list[str]],
    options: CommonOptions,
    ctx: Context,
    *,
    shell: bool,
    executable: Optional[str] = None,
) -> Result:
    text = display(command)
    skipped = _guard(options)
    if skipped is not None:
        return Result.ok({"cmd": text, "rc": None}, message=f"not run: {skipped}")
    if ctx.check and not options.read_only:
        return Result.changed({"cmd": text}, message=f"would run {text}", check=True)
    timeout = options.timeout if options.timeout is not None else ctx.timeout
    done: Completed = run(
        command,
        shell=shell,
        executable=executable,
        env=options.env,
        cwd=options.cwd,
        stdin=options.stdin,
        timeout=timeout,
        log=ctx.log,
        quiet=ctx.sensitive,
    )
    values = done.values()
    if done.rc not in options.ok_codes:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
        if ctx.sensitive:
            return Result.failed(f"the command exited with code {done.rc}", values)
        detail = f": {last[0]}" if last else ""
        return Result.failed(f"{text!r} exited with code {done.rc}{detail}", values)
    if options.read_only:
        return Result.ok(values)
    return Result.changed(values, message=f"ran {text}")


class Exec(ResourceType):
    """Run a program directly, without a shell.

    The result is ``changed`` when the program ran (use ``creates``,
    ``removes``, ``readOnly`` or the task's ``changedIf`` to say more), and
    ``failed`` for an exit code not in ``okCodes``; a missing program is a
    failure. Values: ``rc``, ``stdout``, ``stderr``, ``stdoutLines``,
    ``stderrLines``, ``duration``. In check mode the program is not run unless
    ``readOnly`` is set.

    Example::

        - exec: systemd-tmpfiles --create
        - exec:
            cmd: tar -xzf /srv/app.tgz -C /srv/app
            creates: /srv/app/bin
    """

    name = "exec"
    Options = ExecOptions
    free_form = "cmd"

    def apply(self, options: ExecOptions, ctx: Context) -> Result:
        argv = (
            options.argv if options.argv is not None else shlex.split(options.cmd or "")
        )
        return _execute(argv, options, ctx, shell=False)


class Shell(ResourceType):
    """Run a shell script with ``/bin/sh -c`` (pipes, redirections, variables).

    Same results and guards as ``exec``; prefer ``exec`` when no shell feature
    is needed.

    Example::

        - shell:
            cmd: journalctl -u app --since today | grep -c ERROR
            readOnly: true
          out: errors
    """

    name = "shell"
    Options = ShellOptions
    free_form = "cmd"

    def apply(self, options: ShellOptions, ctx: Context) -> Result:
        return _execute(  # noqa: S604 (a shell is what this resource is for)
            options.cmd, options, ctx, shell=True, executable=options.executable
        )


@hookimpl
def tenfra_add_resource_types(registry: Registry[Any]) -> None:
    registry.add_resource_type(Exec)
    registry.add_resource_type(Shell)
