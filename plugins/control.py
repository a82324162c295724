"""Control and data resource types: set, debug, fail, exit, assert, loop, switch, try,
recipe, load, which, facts, python.
"""

# ruff: noqa: RUF009  (option() and _field() are attrs.field with a description)

from __future__ import annotations

import importlib
import importlib.util
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

import attrs

from tenfra import hookimpl
from tenfra.errors import TaskError
from tenfra.report import Status, combine
from tenfra.resource import Context, ResourceType, Result, option

logger = logging.getLogger(__name__)


def _tasks(description: str, **kwargs: Any) -> Any:
    """An option holding nested tasks, run lazily by the resource."""
    return option(description, metadata={"tasks": True}, **kwargs)


# -- set -----------------------------------------------------------------------------


class Set(ResourceType):
    """Set variables for the following tasks.

    Options: any ``name: value`` pairs; each becomes a variable.  Inside a
    ``loop`` or ``try`` they stay in that nested scope unless the task has
    ``global: true``.

    Example::

        - set:
            url: "http://${{ host }}:${{ port }}"
    """

    name = "set"
    Options = dict[str, Any]

    def apply(self, options: dict[str, Any], ctx: Context) -> Result:
        ctx.set_vars(options)
        return Result.ok(dict(options))


# -- debug ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DebugOptions:
    msg: Any = option("What to show (any value).", default=None)
    var: Optional[str] = option("Show this variable instead.", default=None)


class Debug(ResourceType):
    """Show a message or a variable in the output; never changes anything.

    Options:
      ``msg``: the value to show (free form: ``debug: hello ${{ host }}``);
      ``var``: the name of a variable to show.

    Example::

        - debug: msg="port is ${{ port }}"
    """

    name = "debug"
    Options = DebugOptions
    free_form = "msg"

    def apply(self, options: DebugOptions, ctx: Context) -> Result:
        if options.var is not None:
            if options.var not in ctx.vars:
                raise TaskError(
                    f"debug: variable {options.var!r} is not defined; check the name"
                )
            value = ctx.vars[options.var]
            text = f"{options.var} = {_show(value)}"
        else:
            value = options.msg
            text = _show(value)
        ctx.log.info("%s", text)
        return Result.ok({"msg": value}, message=text)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


# -- fail and exit -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MessageOptions:
    msg: str = option("The message.", default="")


class Fail(ResourceType):
    """Fail the task (and so the recipe) with a message.

    Options: ``msg``: why (free form).

    Example::

        - fail: unsupported distribution ${{ facts.os_family }}
          if: facts.os_family not in ['debian', 'alpine']
    """

    name = "fail"
    Options = MessageOptions
    free_form = "msg"

    def apply(self, options: MessageOptions, ctx: Context) -> Result:
        return Result.failed(options.msg or "failed by the recipe (fail task)")


class Exit(ResourceType):
    """Stop the recipe successfully; the remaining tasks do not run, handlers do.

    Options: ``msg``: why (free form).

    Example::

        - exit: nothing to do on containers
          if: facts.virtualization == 'container'
    """

    name = "exit"
    Options = MessageOptions
    free_form = "msg"

    def apply(self, options: MessageOptions, ctx: Context) -> Result:
        ctx.exit_recipe(options.msg or None)
        return Result.ok(message=options.msg or "recipe stopped by exit")


# -- assert --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AssertOptions:
    that: Any = option("A condition or a list of conditions (bare expressions).")
    msg: Optional[str] = option("The message when a condition is false.", default=None)
    quiet: bool = option("Say nothing when every condition holds.", default=False)


class Assert(ResourceType):
    """Fail unless every condition holds.

    Options:
      ``that``: a condition or a list of them (bare expressions, evaluated in
      order; the first false one fails the task);
      ``msg``: the failure message;
      ``quiet``: no message on success (the silent variant).

    Example::

        - assert:
            that:
              - port > 1024
              - "'@' in admin_email"
            msg: check the inputs
    """

    name = "assert"
    Options = AssertOptions
    free_form = "that"
    lazy = frozenset({"that", "msg"})

    def apply(self, options: AssertOptions, ctx: Context) -> Result:
        conditions = options.that if isinstance(options.that, list) else [options.that]
        for condition in conditions:
            if isinstance(condition, bool):
                ok = condition
            elif isinstance(condition, str):
                ok = bool(ctx.evaluate(condition))
            else:
                raise TaskError(
                    f"assert: {condition!r} is not a condition; write an expression "
                    "such as: port > 1024"
                )
            if not ok:
                detail = ctx.render(options.msg) if options.msg else None
                message = f"assertion failed: {condition}"
                if detail:
                    message += f" ({detail})"
                return Result.failed(message, {"passed": False, "failed": condition})
        note = None if options.quiet else f"all {len(conditions)} assertions passed"
        return Result.ok({"passed": True}, message=note)


# -- loop ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LoopOptions:
    items: Any = option("A list, or a mapping (one iteration per key).")
    tasks: list[Any] = _tasks("The tasks run for each item.")
    as_: str = option("The variable name of the item (default item).", default="item")
    index: str = option("The variable name of the 0-based index.", default="index")


class Loop(ResourceType):
    """Run nested tasks once per item of a list or mapping.

    Options:
      ``items``: a list, or a mapping (then ``key`` holds the key and the item
      is its value);
      ``tasks``: the nested tasks, rendered anew for every item;
      ``as``: the item's variable name (``item``); ``index``: the index's
      variable name (``index``, from 0).

    Result values: ``results``, the values each iteration registered.

    Example::

        - loop:
            items: ${{ users }}
            tasks:
              - debug: "${{ index }}: ${{ item.name }}"
    """

    name = "loop"
    Options = LoopOptions
    lazy = frozenset({"tasks"})

    def apply(self, options: LoopOptions, ctx: Context) -> Result:
        items = options.items
        if isinstance(items, dict):
            pairs: list[tuple[Any, Any]] = list(items.items())
        elif isinstance(items, (list, tuple)):
            pairs = [(None, item) for item in items]
        elif items is None:
            pairs = []
        else:
            raise TaskError(
                f"loop: items must be a list or a mapping, got "
                f"{type(items).__name__} {items!r}"
            )
        statuses: list[Status] = []
        results: list[Any] = []
        for index, (key, item) in enumerate(pairs):
            scope = {options.as_: item, options.index: index}
            if key is not None:
                scope["key"] = key
            result = ctx.run_tasks(options.tasks, scope)
            results.append(result.values)
            if result.status is Status.FAILED:
                return Result.failed(
                    f"loop item {index}: {result.message}", {"results": results}
                )
            statuses.append(result.status)
        status = combine(statuses)
        return Result(status=status, values={"results": results})


# -- switch --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SwitchOptions:
    value: Any = option("The value to compare with each case.")
    cases: dict[Any, Any] = option(
        "A mapping of values to lists of tasks.", metadata={"tasks": "map"}
    )
    default: list[Any] = _tasks("Tasks when no case matches.", factory=list)


class Switch(ResourceType):
    """Run the tasks of the case that matches a value.

    Options:
      ``value``: the value to compare (usually a template);
      ``cases``: a mapping of values to task lists (a case matches when it
      equals the value, or when their text is equal);
      ``default``: tasks when no case matches.

    Example::

        - switch:
            value: ${{ facts.os_family }}
            cases:
              debian:
                - debug: msg=apt
              alpine:
                - debug: msg=apk
            default:
              - fail: unsupported
    """

    name = "switch"
    Options = SwitchOptions
    lazy = frozenset({"cases", "default"})

    def apply(self, options: SwitchOptions, ctx: Context) -> Result:
        chosen: Optional[list[Any]] = None
        matched: Any = None
        for case, tasks in options.cases.items():
            if case == options.value or str(case) == str(options.value):
                chosen, matched = tasks, case
                break
        if chosen is None:
            chosen, matched = options.default, None
        result = ctx.run_tasks(chosen, {"case": matched})
        result.values = {"case": matched, **result.values}
        return result


# -- try -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TryOptions:
    tasks: list[Any] = _tasks("The tasks to try.")
    catch: list[Any] = _tasks("Tasks run when every attempt failed.", factory=list)
    finally_: list[Any] = _tasks("Tasks run at the end in every case.", factory=list)
    retries: int = option("Attempts after the first one.", default=0)
    delay: float = option("Seconds before the first retry.", default=0.0)
    backoff: float = option("Multiply the delay by this after each retry.", default=1.0)
    max_delay: Optional[float] = option("The longest delay, in seconds.", default=None)


class Try(ResourceType):
    """Run tasks, retry them, catch their failure, and always run ``finally``.

    Options:
      ``tasks``: the tasks to try;
      ``retries`` / ``delay`` / ``backoff`` / ``maxDelay``: run the tasks again
      up to ``retries`` times, waiting ``delay`` seconds, multiplied by
      ``backoff`` after each retry (at most ``maxDelay``);
      ``catch``: tasks run when every attempt failed (the failure is then
      handled);
      ``finally``: tasks run at the end whatever happened.

    In the nested tasks ``retry`` is the attempt number (0 first) and
    ``error`` the last failure message (None before any).

    Example::

        - try:
            retries: 3
            delay: 1
            backoff: 2
            tasks:
              - shell: curl -fsS http://127.0.0.1:8080/health
            catch:
              - debug: "gave up: ${{ error }}"
    """

    name = "try"
    Options = TryOptions
    lazy = frozenset({"tasks", "catch", "finally"})

    def apply(self, options: TryOptions, ctx: Context) -> Result:
        if options.retries < 0 or options.delay < 0 or options.backoff < 1:
            raise TaskError(
                "try: retries and delay must not be negative and backoff must be "
                "at least 1"
            )
        error: Optional[str] = None
        delay = options.delay
        statuses: list[Status] = []
        values: dict[str, Any] = {}
        result: Optional[Result] = None
        attempts = 0
        deadline = ctx.deadline
        for attempt in range(options.retries + 1):
            if attempt and deadline is not None and time.monotonic() + delay > deadline:
                error = (
                    f"the timeout of {ctx.timeout} s is over after {attempt} "
                    f"attempts; last error: {error}"
                )
                break
            if attempt and delay > 0:
                time.sleep(delay)
                delay *= options.backoff
                if options.max_delay is not None:
                    delay = min(delay, options.max_delay)
            attempts = attempt + 1
            result = ctx.run_tasks(options.tasks, {"retry": attempt, "error": error})
            if result.status is not Status.FAILED:
                break
            error = result.message
        assert result is not None
        values["attempts"] = attempts
        values["error"] = error if result.status is Status.FAILED else None
        outcome: Result
        if result.status is Status.FAILED:
            if options.catch:
                caught = ctx.run_tasks(
                    options.catch, {"retry": attempts - 1, "error": error}
                )
                statuses.append(caught.status)
                values["caught"] = True
                outcome = (
                    Result.failed(
                        f"catch failed: {caught.message} (after: {error})", values
                    )
                    if caught.status is Status.FAILED
                    else Result(
                        status=combine([s for s in statuses if s]),
                        values=values,
                        message=f"caught: {error}",
                    )
                )
            else:
                outcome = Result.failed(error or "the tasks failed", values)
        else:
            statuses.append(result.status)
            values.update(result.values)
            outcome = Result(status=combine(statuses), values=values)
        if options.finally_:
            final = ctx.run_tasks(
                options.finally_, {"retry": attempts - 1, "error": error}
            )
            if final.status is Status.FAILED:
                return Result.failed(f"finally failed: {final.message}", values)
            if outcome.status is not Status.FAILED:
                outcome.status = combine([outcome.status, final.status])
        return outcome


# -- recipe --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RecipeOptions:
    id: str = option("The recipe to run (listed in dependencies).")
    inputs: dict[str, Any] = option("Its inputs.", factory=dict)


class CallRecipe(ResourceType):
    """Run another recipe with inputs; its registered values come back.

    Options: ``id`` (free form): the recipe id, which must be listed in
    ``dependencies``; ``inputs``: its input values.

    Result values: every variable the called recipe registered.

    Example::

        - recipe:
            id: nginx/site
            inputs: {domain: example.org}
          out: site
    """

    name = "recipe"
    Options = RecipeOptions
    free_form = "id"

    def apply(self, options: RecipeOptions, ctx: Context) -> Result:
        return ctx.run_recipe(options.id, options.inputs)


# -- load ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LoadOptions:
    source: str = option("The vars source type (file, glob, http, env...).")
    options: Any = option(
        "The options of the vars source (a mapping, or its free-form text).",
        default=None,
    )
    into: Optional[str] = option(
        "Register the loaded mapping under this name instead of merging it.",
        default=None,
    )


class Load(ResourceType):
    """Load variables at run time through a vars source plugin.

    Options: ``source``: the vars source type; ``options``: its options
    (the same as in ``varsSources``); ``into``: a variable name for the whole
    mapping (default: each loaded key becomes a variable).  Relative paths
    are relative to the recipe's folder.

    Example::

        - load:
            source: file
            options: /etc/myapp/vars.yaml
            into: app
    """

    name = "load"
    Options = LoadOptions

    def apply(self, options: LoadOptions, ctx: Context) -> Result:
        from tenfra.inventory import load_vars
        from tenfra.pluginmanager import get_plugin_manager

        registry = get_plugin_manager().vars_sources
        if options.source not in registry:
            known = ", ".join(registry) or "none"
            raise TaskError(
                f"load: no vars source {options.source!r}; installed vars sources: "
                f"{known}"
            )
        values = load_vars(
            {options.source: options.options},
            source=f"load task of recipe {ctx.recipe_id!r}",
            base_dir=ctx.recipe_dir,
            registry=registry,
        )
        if options.into:
            ctx.set_vars({options.into: values})
        else:
            ctx.set_vars(values)
        return Result.ok(dict(values))


# -- which ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class WhichOptions:
    name: str = option("The program to look for on PATH.")
    required: bool = option("Fail when it is missing.", default=False)


class Which(ResourceType):
    """Find a program on ``PATH``.

    Options: ``name`` (free form); ``required``: fail when it is missing.

    Result values: ``path`` (None when missing) and ``found``.

    Example::

        - which: systemctl
          out: systemctl
    """

    name = "which"
    Options = WhichOptions
    free_form = "name"

    def apply(self, options: WhichOptions, ctx: Context) -> Result:
        path = shutil.which(options.name)
        if path is None and options.required:
            return Result.failed(
                f"{options.name!r} is not on PATH; install it or fix PATH",
                {"path": None, "found": False},
            )
        return Result.ok({"path": path, "found": path is not None})


# -- facts ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FactsOptions:
    names: list[str] = option("The facts to gather (default: all).", factory=list)


class GatherFacts(ResourceType):
    """Gather facts now and return them as values.

    Options: ``names``: the facts to gather (default: every registered fact).

    Example::

        - facts:
            names: [os_family, cpu_count]
          out: f
    """

    name = "facts"
    Options = FactsOptions

    def apply(self, options: FactsOptions, ctx: Context) -> Result:
        facts = ctx.facts
        names = options.names or list(facts)
        values: dict[str, Any] = {}
        for fact in names:
            if fact not in facts:
                known = ", ".join(sorted(facts)) or "none"
                raise TaskError(f"facts: no fact {fact!r}; known facts: {known}")
            values[fact] = facts[fact]
        return Result.ok(values)


# -- python --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PythonOptions:
    function: str = option(
        "module:function (a site plugin or an importable module) or "
        "file.py:function (a file beside the recipe)."
    )
    args: dict[str, Any] = option("Keyword arguments of the function.", factory=dict)


class Python(ResourceType):
    """Call a Python function; trusted recipes only.

    Options:
      ``function``: ``file.py:name`` (a file beside the recipe),
      ``site_plugin:name`` (a module of the repository's ``plugins/``
      folder) or ``package.module:name``;
      ``args``: keyword arguments.

    The function is called as ``function(ctx, **args)`` and returns a
    :class:`~tenfra.resource.Result`, a mapping (values, status ok), True
    (changed) or None (ok).  In check mode the task reports ``unknown``.

    Example::

        - python:
            function: helpers.py:rotate_keys
            args: {keep: 3}
    """

    name = "python"
    Options = PythonOptions
    free_form = "function"
    trusted_only = True
    check_mode = False

    def apply(self, options: PythonOptions, ctx: Context) -> Result:
        function = _find_function(options.function, ctx.recipe_dir)
        returned = function(ctx, **options.args)
        if isinstance(returned, Result):
            return returned
        if returned is None or returned is False:
            return Result.ok()
        if returned is True:
            return Result.changed()
        if isinstance(returned, dict):
            return Result.ok(dict(returned))
        raise TaskError(
            f"python: {options.function} returned {type(returned).__name__}; return "
            "a Result, a mapping, True, False or None"
        )


def _find_function(spec: str, recipe_dir: Path) -> Any:
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise TaskError(
            f"python: {spec!r} is not module:function; write e.g. helpers.py:main"
        )
    if module_name.endswith(".py"):
        path = (recipe_dir / module_name).resolve()
        base = recipe_dir.resolve()
        if base not in path.parents or not path.is_file():
            raise TaskError(
                f"python: {module_name!r} is not a file inside the recipe folder "
                f"{recipe_dir}"
            )
        key = f"tenfra_recipe_{abs(hash(str(path)))}"
        module = sys.modules.get(key)
        if module is None:
            spec_ = importlib.util.spec_from_file_location(key, path)
            if spec_ is None or spec_.loader is None:
                raise TaskError(f"python: cannot import {path}")
            module = importlib.util.module_from_spec(spec_)
            try:
                spec_.loader.exec_module(module)
            except Exception as exc:
                raise TaskError(
                    f"python: importing {path} failed: {type(exc).__name__}: {exc}"
                ) from None
            sys.modules[key] = module
    else:
        module = sys.modules.get(f"tenfra_site_{module_name}")
        if module is None:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise TaskError(
                    f"python: cannot import {module_name!r}: {exc}; put it in the "
                    "repository's plugins/ folder or beside the recipe"
                ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise TaskError(f"python: {module_name} has no function {attribute!r}")
    return function


RESOURCE_TYPES: tuple[type[ResourceType], ...] = (
    Set,
    Debug,
    Fail,
    Exit,
    Assert,
    Loop,
    Switch,
    Try,
    CallRecipe,
    Load,
    Which,
    GatherFacts,
    Python,
)


@hookimpl
def tenfra_add_resource_types(registry: Any) -> None:
    for resource in RESOURCE_TYPES:
        registry.add_resource_type(resource)
