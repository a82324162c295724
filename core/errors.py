"""The one exception tree of tenfra, and the exit codes the CLI maps it to.

::

    TenfraError                      base of everything tenfra raises on purpose
    ├── UserError                    the user can fix it; printed as one line (exit 2)
    │   ├── UsageError               bad command-line usage
    │   ├── InputError               bad input file, with file:line:col when known
    │   │   ├── YamlError            not well-formed YAML, duplicate keys, tabs
    │   │   ├── ValidationError      well-formed but wrong (unknown key, bad type)
    │   │   └── TemplateError        bad template syntax or undefined variable
    │   ├── InventoryError           inventory, host source or vars source problem
    │   ├── CompileError             the compiler cannot build a release
    │   └── ConfigError              a bad provider or agent configuration value
    ├── PluginError                  a plugin failed to load or clashed (exit 3)
    ├── TaskError                    a task failed while running (exit 1)
    ├── VerificationError            a release or bundle was rejected (exit 4)
    ├── StorageError                 a storage URL could not be read or written (exit 5)
    └── TransportError               the provider could not be reached (exit 5)

Every message is a full sentence that says what is wrong, where it came from, and
what to try.  The CLI prints ``UserError`` and ``PluginError`` without a
traceback; anything that is not a ``TenfraError`` is a bug and exits with 70.
"""

from __future__ import annotations

from typing import Optional

# Documented exit codes (see docs/reference/cli.md).
EXIT_OK = 0
EXIT_FAILED = 1  # a run, test or check found failures
EXIT_USER = 2  # the input or the command line is wrong
EXIT_PLUGIN = 3  # a plugin could not be loaded or clashed with another
EXIT_VERIFY = 4  # a release failed verification
EXIT_UNAVAILABLE = 5  # storage or the provider could not be reached
EXIT_INTERNAL = 70  # a bug in tenfra or a plugin


class TenfraError(Exception):
    """Base class of every error tenfra raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(TenfraError):
    """A mistake the user can fix; shown as one line, without a traceback."""

    exit_code = EXIT_USER


class UsageError(UserError):
    """The command line is wrong."""


class Location:
    """A position in a source file: 1-based line and column, as editors show."""

    __slots__ = ("column", "line", "path")

    def __init__(
        self, path: str, line: Optional[int] = None, column: Optional[int] = None
    ):
        self.path = path
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"

    def __repr__(self) -> str:
        return f"Location({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class InputError(UserError):
    """A problem in an input file; the message starts with ``file:line:col:``."""

    def __init__(self, problem: str, location: Optional[Location] = None) -> None:
        self.problem = problem
        self.location = location
        message = f"{location}: {problem}" if location is not None else problem
        super().__init__(message)


class YamlError(InputError):
    """The file is not well-formed YAML (syntax, tabs, duplicate keys)."""


class ValidationError(InputError):
    """The YAML is well-formed but does not match what tenfra expects."""


class TemplateError(InputError):
    """A template has bad syntax, or refers to an undefined variable."""


class InventoryError(UserError):
    """The inventory, a host source or a vars source cannot be used."""


class CompileError(UserError):
    """The compiler cannot build a release from the given inputs."""


class ConfigError(UserError):
    """A provider or agent configuration value is wrong."""


class PluginError(TenfraError):
    """A plugin could not be imported, registered a duplicate name, or is missing."""

    exit_code = EXIT_PLUGIN


class TaskError(TenfraError):
    """A task failed while it ran; carries the recipe and task it came from."""

    exit_code = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        recipe: Optional[str] = None,
        task: Optional[str] = None,
        values: Optional[dict[str, object]] = None,
    ) -> None:
        super().__init__(message)
        self.recipe = recipe
        self.task = task
        self.values = values or {}


class VerificationError(TenfraError):
    """A release, bundle or asset failed verification and was not used."""

    exit_code = EXIT_VERIFY


class StorageError(TenfraError):
    """A storage URL could not be read or written."""

    exit_code = EXIT_UNAVAILABLE


class TransportError(TenfraError):
    """The provider could not be reached or answered with an error."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, *, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
