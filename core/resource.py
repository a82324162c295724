"""The contract between the engine and resource types.

A resource type is a class registered through ``tenfra_add_resource_types``::

    @attrs.frozen(kw_only=True)
    class EchoOptions:
        text: str = attrs.field(metadata={"description": "What to print."})

    class Echo(ResourceType):
        '''Print a line.

        Example::

            - echo: text=hello
        '''

        name = "echo"
        Options = EchoOptions
        free_form = "text"

        def apply(self, options: EchoOptions, ctx: Context) -> Result:
            ctx.log.info("%s", options.text)
            return Result.ok({"text": options.text})

The engine renders the task's templates, structures the options with the
strict converter (so ``apply`` gets typed, validated values), and calls
``apply``.  ``apply`` reads the current state, changes only what differs, and
returns a :class:`Result` saying honestly whether anything changed.  In check
mode (``ctx.check``) it must change nothing and return ``would-change``,
``ok`` or ``unknown``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Protocol

import attrs

from tenfra.report import Status


def option(description: str, **kwargs: Any) -> Any:
    """An attrs field with a description (used by ``tenfra schema`` and the docs)."""
    metadata = dict(kwargs.pop("metadata", {}))
    metadata["description"] = description
    return attrs.field(metadata=metadata, **kwargs)


@attrs.define(kw_only=True)
class Result:
    """What a resource did.

    :ivar status: ``ok`` (nothing to do), ``changed``, ``skipped``, ``failed``,
        or in check mode ``would-change`` / ``unknown``.
    :ivar values: Result values (``stdout``, ``path``, ...) that later tasks
        can use through ``out`` and ``outRaw``.
    :ivar diff: A unified diff of what changed (or would change), if any.
    :ivar message: A short human note for the log (why it changed, or failed).
    """

    status: Status
    values: dict[str, Any] = attrs.Factory(dict)
    diff: Optional[str] = None
    message: Optional[str] = None

    @classmethod
    def ok(
        cls, values: Optional[dict[str, Any]] = None, message: Optional[str] = None
    ) -> Result:
        return cls(status=Status.OK, values=values or {}, message=message)

    @classmethod
    def changed(
        cls,
        values: Optional[dict[str, Any]] = None,
        *,
        diff: Optional[str] = None,
        message: Optional[str] = None,
        check: bool = False,
    ) -> Result:
        """A change; in check mode (``check=True``) a ``would-change``."""
        status = Status.WOULD_CHANGE if check else Status.CHANGED
        return cls(status=status, values=values or {}, diff=diff, message=message)

    @classmethod
    def failed(cls, message: str, values: Optional[dict[str, Any]] = None) -> Result:
        return cls(status=Status.FAILED, values=values or {}, message=message)

    @classmethod
    def unknown(cls, message: str) -> Result:
        """Check mode, when the resource cannot know without applying."""
        return cls(status=Status.UNKNOWN, message=message)


class Context(Protocol):
    """What the engine gives a resource type while it applies one task."""

    host: str
    check: bool  # dry run: change nothing
    diff: bool  # the user asked for diffs
    sensitive: bool  # mask values of this task in logs, diffs and reports
    timeout: Optional[float]  # seconds, from the task's ``timeout``
    deadline: Optional[float]  # time.monotonic() by which the task must end, or None
    log: logging.LoggerAdapter[logging.Logger]
    recipe_id: str
    recipe_dir: Path  # the folder of the recipe file
    state_dir: Path  # tenfra's local state folder on this host

    @property
    def facts(self) -> Mapping[str, Any]:
        """Facts of this host, gathered lazily on first access of each key."""

    @property
    def vars(self) -> Mapping[str, Any]:
        """Every variable in scope for this task (read-only)."""

    def asset(self, name: str) -> Path:
        """The local path of asset ``name`` of this recipe.

        Raises a TaskError when ``name`` escapes the assets folder or is missing.
        """

    def render_text(
        self,
        text: str,
        extra: Optional[Mapping[str, Any]] = None,
        source: Optional[str] = None,
    ) -> str:
        """Render a Jinja2 template text (a ``.j2`` file body) with the scope.

        ``source`` names the template in error messages (``site.conf.j2:3``);
        without it errors point at the task and give the template's line.
        """

    def render(self, value: Any, extra: Optional[Mapping[str, Any]] = None) -> Any:
        """Render ``${{ }}`` templates inside a value (for lazy options)."""

    def evaluate(
        self, expression: str, extra: Optional[Mapping[str, Any]] = None
    ) -> Any:
        """Evaluate a bare expression (a condition) with the scope."""

    def run_tasks(
        self, tasks: list[Any], extra: Optional[Mapping[str, Any]] = None
    ) -> Result:
        """Run nested raw tasks (``loop``, ``try``, ``switch``) with extra vars."""

    def run_recipe(self, recipe_id: str, inputs: Mapping[str, Any]) -> Result:
        """Run another recipe with inputs; its outputs come back in ``values``."""

    def set_vars(self, values: Mapping[str, Any]) -> None:
        """Register variables for the following tasks (``set``, ``load``).

        They go where the task's ``out`` would: the recipe-wide scope, or the
        nested scope of a ``loop``/``try`` unless the task has ``global``.
        """

    def exit_recipe(self, message: Optional[str] = None) -> None:
        """Stop the recipe successfully after this task (``exit``); handlers run."""


class ResourceType:
    """Base class of every resource type; see the module docstring.

    Class attributes:

    ``name``
        The task key, such as ``copy``.
    ``Options``
        A frozen attrs class; every field has a ``description`` in its metadata.
    ``free_form``
        The option that receives a plain string that is not ``key=value``
        shorthand (``shell: echo hi`` sets ``cmd``), or None.
    ``lazy``
        YAML keys of options the engine passes unrendered (nested tasks),
        rendered by the resource when each nested task runs.
    ``check_mode``
        False when the type cannot predict its effect; the engine then reports
        ``unknown`` in check mode without calling ``apply``.
    ``trusted_only``
        True for types refused in sandboxed (untrusted) recipes.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[Any]]
    free_form: ClassVar[Optional[str]] = None
    lazy: ClassVar[frozenset[str]] = frozenset()
    check_mode: ClassVar[bool] = True
    trusted_only: ClassVar[bool] = False

    def apply(self, options: Any, ctx: Context) -> Result:
        """Bring the system to the state ``options`` describe; see the module docs."""
        raise NotImplementedError
