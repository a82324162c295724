"""Running commands: argv or shell, merged environment, capture, streaming, timeout."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any, Mapping, Optional, Sequence, Union

import attrs

from tenfra.errors import TaskError

logger = logging.getLogger(__name__)

LogLike = Union[logging.Logger, "logging.LoggerAdapter[logging.Logger]"]


@attrs.frozen(kw_only=True)
class Completed:
    """A command that ran to its end (whatever its exit code)."""

    cmd: str  # the command as a person would type it
    rc: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def values(self) -> dict[str, Any]:
        """Result values for a task: rc, stdout, stderr, their lines, duration."""
        return {
            "cmd": self.cmd,
            "rc": self.rc,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdoutLines": self.stdout.splitlines(),
            "stderrLines": self.stderr.splitlines(),
            "duration": round(self.duration, 3),
        }


def merged_env(env: Optional[Mapping[str, str]]) -> dict[str, str]:
    """``os.environ`` updated with ``env``: PATH and the rest survive."""
    full = dict(os.environ)
    if env:
        full.update(env)
    return full


def display(cmd: Union[str, Sequence[str]]) -> str:
    """A command as text, quoted the way a shell would need it."""
    if isinstance(cmd, str):
        return cmd
    import shlex

    return shlex.join(list(cmd))


def find_executable(name: str, env: Mapping[str, str]) -> Optional[str]:
    """The full path of ``name`` on the PATH of ``env``, or None."""
    if "/" in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name, path=env.get("PATH", os.defpath))


def _missing_binary(name: str, env: Mapping[str, str]) -> TaskError:
    if "/" in name:
        problem = (
            "is not executable; check its permissions"
            if os.path.exists(name)
            else "does not exist; check the path"
        )
        return TaskError(f"The command {name!r} {problem}.")
    return TaskError(
        f"The command {name!r} was not found on PATH "
        f"({env.get('PATH', os.defpath)}); install it, or give its full path."
    )


def _reader(
    stream: IO[bytes],
    sink: list[str],
    log: Optional[LogLike],
    label: str,
    level: int,
) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        if log is not None:
            log.log(level, "%s: %s", label, line.rstrip("\n"))
    stream.close()


def run(
    cmd: Union[str, Sequence[str]],
    *,
    shell: bool = False,
    executable: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Union[str, Path]] = None,
    stdin: Optional[str] = None,
    timeout: Optional[float] = None,
    log: Optional[LogLike] = None,
    level: int = logging.DEBUG,
    quiet: bool = False,
) -> Completed:
    """Run ``cmd`` and wait for it; output is captured and streamed to ``log``.

    :param cmd: An argv list (no shell), or with ``shell=True`` a shell text.
    :param executable: The shell for ``shell=True`` (default ``/bin/sh``).
    :param env: Variables merged into (not replacing) the current environment.
    :param stdin: Text written to the command's standard input.
    :param timeout: Seconds; the whole process group is killed when it expires.
    :param log: Where each output line goes, as it arrives, at ``level``.
    :param quiet: Log no output line (a sensitive task).
    :raises TaskError: the binary or working directory is missing, or the
        timeout expired.  A non-zero exit code is *not* an error here.
    """
    full_env = merged_env(env)
    text = display(cmd)
    if shell:
        if not isinstance(cmd, str):
            raise TypeError("shell=True needs the command as one string")
        shell_path = executable or "/bin/sh"
        argv = [shell_path, "-c", cmd]
    else:
        if isinstance(cmd, str):
            raise TypeError("without shell=True, pass the command as an argv list")
        argv = list(cmd)
        if not argv:
            raise TaskError("The command is empty; give at least the program name.")
    found = find_executable(argv[0], full_env)
    if found is None:
        raise _missing_binary(argv[0], full_env)
    if cwd is not None and not os.path.isdir(cwd):
        raise TaskError(
            f"The working directory {str(cwd)!r} of {text!r} does not exist; "
            "create it first or fix 'cwd'."
        )

    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [found, *argv[1:]],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise TaskError(
            f"The command {text!r} could not be started: {exc.strerror or exc}; "
            "check that the program is a valid executable."
        ) from None
    out: list[str] = []
    err: list[str] = []
    sink_log = None if quiet else log
    assert proc.stdout is not None and proc.stderr is not None
    threads = [
        threading.Thread(
            target=_reader,
            args=(proc.stdout, out, sink_log, "stdout", level),
            daemon=True,
        ),
        threading.Thread(
            target=_reader,
            args=(proc.stderr, err, sink_log, "stderr", level),
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    if stdin is not None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin.encode("utf-8"))
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        for thread in threads:
            thread.join(timeout=5)
        partial = Completed(
            cmd=text,
            rc=-1,
            stdout="".join(out),
            stderr="".join(err),
            duration=time.monotonic() - started,
        )
        raise TaskError(
            f"The command {text!r} did not finish within {timeout:g} s and was "
            "killed; raise 'timeout' if it needs longer.",
            values=partial.values(),
        ) from None
    _drain(threads, text, log)
    return Completed(
        cmd=text,
        rc=rc,
        stdout="".join(out),
        stderr="".join(err),
        duration=time.monotonic() - started,
    )


DRAIN_GRACE = 1.0  # seconds to wait for output after the command exited


def _drain(threads: list[threading.Thread], text: str, log: Optional[LogLike]) -> None:
    """Wait for the readers; a background child may keep the pipes open forever."""
    deadline = time.monotonic() + DRAIN_GRACE
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        (log or logger).warning(
            "%r exited but a process it started keeps its output open; output "
            "written after the exit is not captured (redirect the background "
            "process's output to avoid this)",
            text,
        )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
