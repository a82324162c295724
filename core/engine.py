"""The engine: runs recipes for one host and builds the run report.

:func:`run_recipes` is the one entry point used by ``tenfra run``, the test
runners and the agent.  For every task the engine evaluates ``if``, renders
the options (except the resource's ``lazy`` ones), structures them into the
resource's ``Options`` with the strict converter, calls ``apply``, then
applies ``failedIf`` / ``changedIf`` / ``out`` / ``outRaw`` / ``notify`` /
``exitIf``.  Handlers run once at the end of a recipe; notifications are
persisted in the local state until their handler ran.  Values of
``sensitive`` tasks and inputs are masked in every message, diff, log line
and report, while the tasks themselves get the real values.

A converged run must stay cheap: options without templates are structured
once at load time, Jinja2 is imported only when a template is rendered, and
the variable scope is built only for tasks that read it.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from tenfra.errors import (
    InputError,
    Location,
    TaskError,
    TemplateError,
    UserError,
    ValidationError,
)
from tenfra.recipe import Recipe, RecipeSet, Task, resolve_inputs
from tenfra.report import RecipeReport, RunReport, Status, TaskReport, combine
from tenfra.resource import Result
from tenfra.variables import (
    EXTRA_VARS,
    INPUTS,
    NESTED,
    REGISTERED,
    TASK_VARS,
    Layer,
    Scope,
    builtin_layer,
    inventory_layers,
    recipe_layers,
)

logger = logging.getLogger(__name__)

MASK = "********"
MIN_SECRET_LENGTH = 3
MAX_RECIPE_DEPTH = 32
SENSITIVE_DIFF = "(diff hidden: the task is sensitive)"

AssetResolver = Callable[[Recipe, str], Path]
TaskCallback = Callable[[TaskReport, int], None]


def now_iso() -> str:
    return (
        datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


# -- masking -------------------------------------------------------------------------


class Masker:
    """Replaces every known secret in text with ``********``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: Optional[re.Pattern[str]] = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def add(self, value: Any) -> None:
        """Remember every string (or number) inside ``value`` as a secret."""
        found: list[str] = []
        _collect_strings(value, found)
        new = {s for s in found if len(s) >= MIN_SECRET_LENGTH} - self._secrets
        if new:
            with self._lock:
                self._secrets |= new
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def mask(self, text: Optional[str]) -> Optional[str]:
        if text is None or self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def mask_value(self, value: Any) -> Any:
        """A copy of ``value`` with secrets masked inside every string."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self.mask_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.mask_value(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = str(value)
            return MASK if self.mask(text) != text else value
        return value


def _collect_strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (int, float)):
        out.append(str(value))
    elif isinstance(value, dict):
        for item in value.values():
            _collect_strings(item, out)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            _collect_strings(item, out)


class _MaskingAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter that masks secrets and adds host and recipe."""

    def __init__(self, logger_: logging.Logger, masker: Masker, prefix: str) -> None:
        super().__init__(logger_, {})
        self.masker = masker
        self.prefix = prefix

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        kwargs.setdefault("stacklevel", 2)
        self.logger.log(level, "%s%s", self.prefix, self.masker.mask(text), **kwargs)


# -- facts ---------------------------------------------------------------------------


class _LazyFacts(Mapping[str, Any]):
    """Facts from the fact registry, each gathered on first access."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._values: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name not in self._registry:
            raise KeyError(name)
        value = self._registry[name]()
        self._values[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __iter__(self) -> Any:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)


def _make_facts(plugin_manager: Any) -> Mapping[str, Any]:
    registry = plugin_manager.facts
    try:
        from tenfra.factsmod import Facts
    except ImportError:
        return _LazyFacts(registry)
    return Facts({name: registry[name] for name in registry})


# -- scopes --------------------------------------------------------------------------


class _RecipeRun:
    """State of one run of one recipe (a top-level run or a ``recipe`` call)."""

    def __init__(self, recipe: Recipe, depth: int) -> None:
        self.recipe = recipe
        self.depth = depth
        self.base_layers: list[Layer] = []
        self.registered: dict[str, Any] = {}
        self.notified: list[str] = []
        self.exiting = False
        self.exit_message: Optional[str] = None
        self.changed = False


class _Frame:
    """Where a task runs: its recipe run plus the nested scopes around it."""

    __slots__ = ("deadline", "depth", "local", "nested", "run", "selected")

    def __init__(
        self,
        run: _RecipeRun,
        *,
        nested: Sequence[Layer] = (),
        local: Optional[dict[str, Any]] = None,
        depth: int = 0,
        selected: bool = False,
        deadline: Optional[float] = None,
    ) -> None:
        self.run = run
        self.nested = list(nested)
        self.local = local  # nested registrations (None at the top level)
        self.depth = depth
        self.selected = selected  # a parent matched --tags
        self.deadline = deadline


# -- the context given to resources --------------------------------------------------


class TaskContext:
    """The :class:`tenfra.resource.Context` of one task."""

    def __init__(self, engine: Engine, task: Task, frame: _Frame) -> None:
        self._engine = engine
        self._task = task
        self._frame = frame
        self._scope: Optional[Scope] = None
        self._log: Optional[_MaskingAdapter] = None
        self._result_layer: Optional[Layer] = None
        self.children: list[TaskReport] = []
        self.label: Optional[str] = None  # the task's label with rendered options
        self.host = engine.host
        self.check = engine.check
        self.diff = engine.diff
        self.sensitive = task.sensitive
        self.timeout = task.timeout
        recipe = frame.run.recipe
        self.recipe_id = recipe.id
        self.recipe_dir = recipe.dir
        self.state_dir = engine.state.path
        self.deadline = frame.deadline
        if task.timeout is not None:
            own = time.monotonic() + task.timeout
            self.deadline = own if self.deadline is None else min(own, self.deadline)

    # Context protocol ---------------------------------------------------------------

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        if self._log is None:
            prefix = f"[{self.host}] {self.recipe_id}: "
            self._log = _MaskingAdapter(
                logging.getLogger(f"tenfra.task.{self._task.type}"),
                self._engine.masker,
                prefix,
            )
        return self._log

    @property
    def facts(self) -> Mapping[str, Any]:
        return self._engine.facts

    @property
    def vars(self) -> Mapping[str, Any]:
        return self.scope

    @property
    def scope(self) -> Scope:
        if self._scope is None:
            self._scope = self._engine.scope_for(self._task, self._frame)
        return self._scope

    def with_result(self, raw: Mapping[str, Any]) -> Scope:
        """The scope plus ``result`` (for failedIf, changedIf and exitIf)."""
        layer = Layer("result", {"result": raw})
        scope = self.scope
        return Scope([*scope.layers, layer], render=self._engine.renderer)

    def _extended(self, extra: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
        if not extra:
            return self.scope
        return Scope(
            [*self.scope.layers, Layer("extra", dict(extra))],
            render=self._engine.renderer,
        )

    def asset(self, name: str) -> Path:
        return self._engine.asset(self._frame.run.recipe, name, self._task)

    def render_text(
        self,
        text: str,
        extra: Optional[Mapping[str, Any]] = None,
        source: Optional[str] = None,
    ) -> str:
        name = source or "<template>"
        try:
            return str(
                self._engine.templar.render_text(text, self._extended(extra), name)
            )
        except TemplateError as exc:
            if source is not None:
                raise
            line = exc.location.line if exc.location is not None else None
            where = f"line {line} of the template" if line else "the template"
            raise TemplateError(
                f"{where}: {exc.problem}", self._task.location
            ) from None

    def render(self, value: Any, extra: Optional[Mapping[str, Any]] = None) -> Any:
        return self._engine.templar.render(
            value, self._extended(extra), self._task.location
        )

    def evaluate(
        self, expression: str, extra: Optional[Mapping[str, Any]] = None
    ) -> Any:
        return self._engine.templar.evaluate(
            expression, self._extended(extra), self._task.location
        )

    def run_tasks(
        self, tasks: list[Any], extra: Optional[Mapping[str, Any]] = None
    ) -> Result:
        return self._engine.run_nested(self, tasks, extra)

    def run_recipe(self, recipe_id: str, inputs: Mapping[str, Any]) -> Result:
        return self._engine.call_recipe(self, recipe_id, inputs)

    def set_vars(self, values: Mapping[str, Any]) -> None:
        self._engine.register(self._task, self._frame, dict(values))

    def exit_recipe(self, message: Optional[str] = None) -> None:
        run = self._frame.run
        run.exiting = True
        run.exit_message = message

    # Engine helpers ------------------------------------------------------------------

    @property
    def task(self) -> Task:
        return self._task

    @property
    def frame(self) -> _Frame:
        return self._frame


# -- the engine ----------------------------------------------------------------------


class Engine:
    """Runs recipes of one :class:`RecipeSet` for one host."""

    def __init__(
        self,
        recipe_set: RecipeSet,
        *,
        host: str,
        var_layers: Sequence[tuple[str, Mapping[str, Any]]] = (),
        groups: Sequence[str] = (),
        extra_vars: Optional[Mapping[str, Any]] = None,
        check: bool = False,
        diff: bool = False,
        tags: Sequence[str] = (),
        state_dir: Union[str, Path, None] = None,
        asset_resolver: Optional[AssetResolver] = None,
        trusted: bool = True,
        plugin_manager: Any = None,
        facts: Optional[Mapping[str, Any]] = None,
        on_task: Optional[TaskCallback] = None,
        raise_input_errors: bool = False,
    ) -> None:
        from tenfra.state import State

        if plugin_manager is None:
            plugin_manager = recipe_set.pm
        self.pm = plugin_manager
        self.recipe_set = recipe_set
        self.host = host
        self.inventory_layers = inventory_layers(var_layers)
        self.groups = list(groups)
        self.extra_vars = dict(extra_vars or {})
        self.check = check
        self.diff = diff
        self.tags = frozenset(tags)
        self.state = State(state_dir)
        self.asset_resolver = asset_resolver
        self.trusted = trusted
        self.facts: Mapping[str, Any] = (
            facts if facts is not None else _make_facts(plugin_manager)
        )
        self.on_task = on_task
        self.raise_input_errors = raise_input_errors
        self.masker = Masker()
        self._templar: Any = None
        self._instances: dict[type, Any] = {}
        self._builtin = builtin_layer(host, self.facts)
        self._extra_layer = Layer(EXTRA_VARS, self.extra_vars)
        self._hook = plugin_manager.hook

    # -- templating -------------------------------------------------------------------

    @property
    def templar(self) -> Any:
        if self._templar is None:
            from tenfra.templating import get_templar

            self._templar = get_templar(
                sandboxed=not self.trusted, plugin_manager=self.pm
            )
        return self._templar

    def renderer(
        self, value: Any, scope: Mapping[str, Any], location: Optional[Location]
    ) -> Any:
        return self.templar.render(value, scope, location)

    def scope_for(self, task: Optional[Task], frame: _Frame) -> Scope:
        layers = [
            *frame.run.base_layers,
            Layer(REGISTERED, frame.run.registered),
            *frame.nested,
        ]
        if task is not None and task.vars:
            layers.append(
                Layer(
                    TASK_VARS,
                    task.vars,
                    templated=task.vars_templated,
                    source=task.source,
                    positions=_node(task.doc, (*task.path, "vars")),
                )
            )
        layers.append(self._extra_layer)
        return Scope(layers, render=self.renderer)

    # -- running ----------------------------------------------------------------------

    def run(
        self,
        recipe_ids: Sequence[str],
        *,
        inputs: Optional[Mapping[str, Mapping[str, Any]]] = None,
    ) -> RunReport:
        """Run recipes in order; a failed recipe stops the run."""
        started = now_iso()
        reports: list[RecipeReport] = []
        for recipe_id in recipe_ids:
            recipe = self.recipe_set.get(recipe_id)
            given = (inputs or {}).get(recipe_id)
            report, _ = self.run_recipe(recipe, given, depth=0)
            reports.append(report)
            if report.status is Status.FAILED:
                break
        status = combine([r.status for r in reports])
        error = next((r.error for r in reports if r.error), None)
        return RunReport(
            id=uuid.uuid4().hex,
            host=self.host,
            started=started,
            finished=now_iso(),
            status=status,
            check=self.check,
            recipes=reports,
            error=error,
        )

    def run_recipe(
        self,
        recipe: Recipe,
        given: Optional[Mapping[str, Any]],
        *,
        depth: int,
        location: Optional[Location] = None,
    ) -> tuple[RecipeReport, _RecipeRun]:
        """Run one recipe: its tasks, then its notified handlers."""
        start = time.perf_counter()
        run = _RecipeRun(recipe, depth)
        tasks: list[TaskReport] = []
        error: Optional[str] = None
        self._hook.tenfra_before_recipe(recipe=recipe, host=self.host, check=self.check)
        try:
            self._prepare(run, given, location)
        except (UserError, TaskError) as exc:
            error = self.masker.mask(str(exc))
            if self.raise_input_errors and depth == 0 and isinstance(exc, UserError):
                # Bad inputs of a top recipe are the caller's mistake (exit 2).
                raise UserError(error or str(exc)) from None
        if error is None:
            run.notified = self.state.pending_handlers(self.host, recipe.id)
            top = _Frame(run, depth=depth)
            for task in recipe.tasks:
                task_report = self.run_task(task, top)
                if task_report is None:
                    continue
                tasks.append(task_report)
                if task_report.status is Status.FAILED:
                    error = _task_error(recipe, task_report)
                    break
                if run.exiting:
                    break
            if error is None:
                error = self._run_handlers(run, top, tasks)
        statuses = [t.status for t in tasks]
        status = Status.FAILED if error is not None else combine(statuses)
        report = RecipeReport(
            id=recipe.id,
            name=self.masker.mask(recipe.name) or recipe.id,
            status=status,
            duration=round(time.perf_counter() - start, 6),
            tasks=tasks,
            error=error,
        )
        self._hook.tenfra_after_recipe(recipe=recipe, report=report, host=self.host)
        return report, run

    def _prepare(
        self,
        run: _RecipeRun,
        given: Optional[Mapping[str, Any]],
        location: Optional[Location],
    ) -> None:
        recipe = run.recipe
        sources = self._load_vars_sources(recipe)
        run.base_layers = [
            self._builtin,
            *self.inventory_layers,
            *recipe_layers(recipe, self.host, self.groups, sources),
        ]
        from_scope: Optional[Scope] = None
        if given is None:
            # Run from the command line or the agent: inputs come from the vars.
            from_scope = Scope(
                [*run.base_layers, self._extra_layer],
                render=self.renderer,
            )
        values = resolve_inputs(
            recipe,
            given or {},
            location=location or Location(recipe.source),
            from_scope=from_scope,
        )
        for name, spec in recipe.inputs.items():
            if spec.sensitive and values.get(name) is not None:
                self.masker.add(values[name])
        run.base_layers.append(Layer(INPUTS, values))

    def _load_vars_sources(self, recipe: Recipe) -> Optional[dict[str, Any]]:
        if not recipe.vars_sources:
            return None
        from tenfra.inventory import load_vars

        values: dict[str, Any] = {}
        for index, entry in enumerate(recipe.vars_sources):
            values.update(
                load_vars(
                    entry,
                    source=recipe.source,
                    base_dir=recipe.dir,
                    root=recipe.doc,
                    path=("varsSources", index),
                    registry=self.pm.vars_sources,
                )
            )
        return values

    def _run_handlers(
        self, run: _RecipeRun, top: _Frame, tasks: list[TaskReport]
    ) -> Optional[str]:
        recipe = run.recipe
        for handler in recipe.handlers:
            if handler.name not in run.notified:
                continue
            report = self.run_task(handler, top, handler=True)
            if report is None:
                continue
            tasks.append(report)
            if report.status is Status.FAILED:
                return _task_error(recipe, report, handler=True)
            if not self.check and handler.name is not None:
                self.state.remove_pending_handler(self.host, recipe.id, handler.name)
        known = {handler.name for handler in recipe.handlers}
        for name in run.notified:
            if name not in known and not self.check:
                # Persisted by an older version of the recipe that had this handler.
                logger.warning(
                    "[%s] %s: dropping the pending notification of handler %r, which "
                    "the recipe no longer has",
                    self.host,
                    recipe.id,
                    name,
                )
                self.state.remove_pending_handler(self.host, recipe.id, name)
        return None

    def notify(self, frame: _Frame, names: Sequence[str]) -> None:
        run = frame.run
        new = [name for name in names if name not in run.notified]
        if not new:
            return
        run.notified.extend(new)
        if not self.check:
            self.state.add_pending_handlers(self.host, run.recipe.id, list(new))

    def register(self, task: Task, frame: _Frame, values: dict[str, Any]) -> None:
        """Store registered values in the recipe scope or the nested scope."""
        if task.sensitive:
            self.masker.add(values)
        if frame.local is None or task.global_:
            frame.run.registered.update(values)
        else:
            frame.local.update(values)

    # -- one task ---------------------------------------------------------------------

    def run_task(
        self, task: Task, frame: _Frame, *, handler: bool = False
    ) -> Optional[TaskReport]:
        """Run one task; None when ``--tags`` deselects it."""
        selected = frame.selected or handler
        if self.tags and not selected:
            if not (self.tags.intersection(task.tags) or "always" in task.tags):
                return None
            selected = True
        start = time.perf_counter()
        if selected != frame.selected:
            frame = _copy_frame(frame, selected=selected)
        ctx = TaskContext(self, task, frame)
        name = task.display_name
        result: Optional[Result] = None
        ran = False
        try:
            if task.name is not None and "${" in task.name:
                name = str(self.templar.render(task.name, ctx.scope, task.location))
            if task.when is not None and not self.templar.condition(
                task.when, ctx.scope, task.field_location("if")
            ):
                result = Result(status=Status.SKIPPED, message="condition is false")
            else:
                result = self._apply(task, ctx)
                ran = True
        except TaskError as exc:
            result = Result.failed(exc.message, values=dict(exc.values))
            ran = True
        except (InputError, UserError) as exc:
            result = Result.failed(str(exc))
        except Exception as exc:
            logger.debug("task %s crashed", task.display_name, exc_info=True)
            result = Result.failed(
                f"{task.location}: resource {task.type!r} failed unexpectedly: "
                f"{type(exc).__name__}: {exc}; this is a bug in the resource type"
            )
            ran = True
        if ran:
            try:
                result = self._after(task, ctx, frame, result)
            except (InputError, UserError, TaskError) as exc:
                result = Result.failed(str(exc))
        if ctx.label is not None:
            name = ctx.label
        duration = time.perf_counter() - start
        return self._report(
            task, ctx=ctx, name=name, result=result, duration=duration, handler=handler
        )

    def _apply(self, task: Task, ctx: TaskContext) -> Result:
        resource = task.resource
        if not self.trusted and resource.trusted_only:
            raise TaskError(
                f"{task.location}: {task.type!r} runs only in trusted recipes; "
                "this recipe is untrusted (sandboxed)"
            )
        if task.templated:
            options = self._render_options(task, ctx)
        else:
            options = task.static_options
        if task.sensitive:
            self.masker.add(task.options if not task.templated else options)
            if task.vars:
                self.masker.add({k: ctx.scope[k] for k in task.vars})
        if self.check and not resource.check_mode:
            return Result.unknown(
                f"{task.type} cannot predict its effect, so check mode does not run it"
            )
        instance = self._instances.get(resource)
        if instance is None:
            instance = resource()
            self._instances[resource] = instance
        result = instance.apply(options, ctx)
        if not isinstance(result, Result):
            raise TaskError(
                f"{task.location}: resource {task.type!r} returned "
                f"{type(result).__name__} instead of a Result; this is a bug in "
                "the resource type"
            )
        if self.check and result.status is Status.CHANGED:
            result.status = Status.WOULD_CHANGE
        return result

    def _render_options(self, task: Task, ctx: TaskContext) -> Any:
        from tenfra.convert import structure

        lazy = task.resource.lazy
        rendered: dict[str, Any] = {}
        scope = ctx.scope
        for key, value in task.options.items():
            if key in lazy:
                rendered[key] = value
            else:
                rendered[key] = self.templar.render(
                    value, scope, task.option_location(key)
                )
        if task.sensitive:
            self.masker.add({k: v for k, v in rendered.items() if k not in lazy})
        if task.name is None:
            from tenfra.recipe import task_label

            ctx.label = task_label(task.type, rendered, self.masker.mask)
        try:
            return structure(
                rendered,
                task.resource.Options,
                source=task.source,
                root=task.doc,
                base_path=(*task.path, task.type),
                what=f"the options of {task.type}",
            )
        except ValidationError as exc:
            raise ValidationError(
                f"{exc.problem} (after rendering the templates; a value that is "
                "exactly one ${{ }} keeps the type of its expression, convert it "
                "with | string, | int or | float)",
                exc.location,
            ) from None

    def _after(
        self, task: Task, ctx: TaskContext, frame: _Frame, result: Result
    ) -> Result:
        if task.sensitive:
            self.masker.add(result.values)
        raw: Optional[dict[str, Any]] = None

        def raw_result() -> dict[str, Any]:
            return _raw_result(result)

        if task.failed_if is not None and result.status is not Status.SKIPPED:
            raw = raw_result()
            scope = ctx.with_result(raw)
            if self.templar.condition(
                task.failed_if, scope, task.field_location("failedIf")
            ):
                if result.status is not Status.FAILED:
                    result.message = f"failedIf is true: {task.failed_if}"
                result.status = Status.FAILED
            elif result.status is Status.FAILED:
                result.status = Status.OK
        if task.changed_if is not None and result.status not in (
            Status.FAILED,
            Status.SKIPPED,
        ):
            raw = raw_result()
            changed = self.templar.condition(
                task.changed_if, ctx.with_result(raw), task.field_location("changedIf")
            )
            if changed:
                result.status = Status.WOULD_CHANGE if self.check else Status.CHANGED
            else:
                result.status = Status.OK
        if task.out is not None:
            if isinstance(task.out, str):
                self.register(task, frame, {task.out: dict(result.values)})
            else:
                picked: dict[str, Any] = {}
                for var, key in task.out.items():
                    if key not in result.values and result.status is not Status.SKIPPED:
                        known = ", ".join(sorted(result.values)) or "none"
                        raise TaskError(
                            f"{task.field_location('out')}: out: the result has no "
                            f"value {key!r}; its values are: {known}"
                        )
                    picked[var] = result.values.get(key)
                self.register(task, frame, picked)
        if task.out_raw is not None:
            self.register(task, frame, {task.out_raw: raw or raw_result()})
        if task.notify and result.status.is_change:
            self.notify(frame, task.notify)
        if (
            task.exit_if is not None
            and result.status is not Status.FAILED
            and self.templar.condition(
                task.exit_if,
                ctx.with_result(raw or raw_result()),
                task.field_location("exitIf"),
            )
        ):
            frame.run.exiting = True
            frame.run.exit_message = f"exitIf is true: {task.exit_if}"
        return result

    def _report(
        self,
        task: Task,
        *,
        ctx: TaskContext,
        name: str,
        result: Result,
        duration: float,
        handler: bool,
    ) -> TaskReport:
        mask = self.masker.mask
        failed = result.status is Status.FAILED
        diff = result.diff if self.diff else None
        if diff is not None and task.sensitive:
            diff = SENSITIVE_DIFF
        message = result.message
        if task.sensitive and task.type == "debug" and message is not None:
            message = MASK
        report = TaskReport(
            name=mask(name) or task.type,
            type=task.type,
            status=result.status,
            duration=round(duration, 6),
            diff=mask(diff),
            error=mask(message) if failed else None,
            message=None if failed else mask(message),
            location=str(task.location) if task.location is not None else None,
            children=ctx.children,
        )
        if handler:
            report.message = report.message or "handler"
        run = ctx.frame.run
        if (failed or report.status.is_change) and logger.isEnabledFor(logging.INFO):
            logger.info(
                "[%s] %s: %s %s%s",
                self.host,
                run.recipe.id,
                report.status.value,
                report.name,
                f": {report.error}" if report.error else "",
            )
        self._hook.tenfra_task_result(
            recipe=run.recipe, task=task, result=report, host=self.host
        )
        if self.on_task is not None:
            self.on_task(report, ctx.frame.depth + run.depth)
        return report

    # -- nesting ----------------------------------------------------------------------

    def run_nested(
        self, ctx: TaskContext, tasks: list[Any], extra: Optional[Mapping[str, Any]]
    ) -> Result:
        """Run nested tasks (loop, try, switch) in a new nested scope."""
        parent = ctx.frame
        local: dict[str, Any] = {}
        nested = list(parent.nested)
        label = f"{NESTED} ({ctx.task.type})"
        if extra:
            nested.append(Layer(label, dict(extra)))
        nested.append(Layer(f"{label} registered", local))
        frame = _Frame(
            parent.run,
            nested=nested,
            local=local,
            depth=parent.depth + 1,
            selected=True,
            deadline=ctx.deadline,
        )
        statuses: list[Status] = []
        for item in tasks:
            if parent.run.exiting:
                break
            task = item if isinstance(item, Task) else self._parse_task(ctx, item)
            if frame.deadline is not None and time.monotonic() > frame.deadline:
                return Result.failed(
                    f"{ctx.task.location}: the timeout of {ctx.timeout} s is over "
                    f"before nested task {task.display_name!r} could start",
                    values=dict(local),
                )
            report = self.run_task(task, frame)
            if report is None:
                continue
            ctx.children.append(report)
            statuses.append(report.status)
            if report.status is Status.FAILED:
                return Result.failed(
                    report.error or f"nested task {report.name!r} failed",
                    values=dict(local),
                )
            if parent.run.exiting:
                break
        status = combine(statuses)
        return Result(status=status, values=dict(local))

    def _parse_task(self, ctx: TaskContext, item: Any) -> Task:
        from tenfra.recipe import _Loader

        task = ctx.task
        loader = _Loader(task.source, item, self.pm)
        return loader.task(item, ())

    def call_recipe(
        self, ctx: TaskContext, recipe_id: str, inputs: Mapping[str, Any]
    ) -> Result:
        """Run another recipe (the ``recipe`` resource); its values come back."""
        caller = ctx.frame.run
        task = ctx.task
        if recipe_id not in caller.recipe.dependencies:
            raise TaskError(
                f"{task.option_location('id')}: recipe {caller.recipe.id!r} calls "
                f"{recipe_id!r}, which is not listed in its dependencies; add it"
            )
        depth = caller.depth + 1
        if depth > MAX_RECIPE_DEPTH:
            raise TaskError(
                f"{task.location}: recipes call each other more than "
                f"{MAX_RECIPE_DEPTH} levels deep; check for a loop"
            )
        recipe = self.recipe_set.get(recipe_id)
        report, run = self.run_recipe(
            recipe,
            dict(inputs),
            depth=depth,
            location=task.option_location("inputs") or task.location,
        )
        ctx.children.extend(report.tasks)
        if report.status is Status.FAILED:
            return Result.failed(
                report.error or f"recipe {recipe_id!r} failed",
                values=dict(run.registered),
            )
        status = report.status
        if status is Status.SKIPPED:
            status = Status.OK
        return Result(status=status, values=dict(run.registered))

    # -- assets -----------------------------------------------------------------------

    def asset(self, recipe: Recipe, name: str, task: Task) -> Path:
        """The local path of asset ``name`` of ``recipe``, never outside its folder."""
        if not name or name.startswith("/") or "\\" in name or "\0" in name:
            raise TaskError(
                f"{task.location}: asset name {name!r} must be a relative path "
                "inside the recipe's assets folder"
            )
        parts = Path(name).parts
        if any(part in ("..", "") for part in parts):
            raise TaskError(
                f"{task.location}: asset name {name!r} leaves the assets folder; "
                "use a path inside it"
            )
        if self.asset_resolver is not None:
            return self.asset_resolver(recipe, name)
        base = (recipe.dir / "assets").resolve()
        path = (base / name).resolve()
        if base != path and base not in path.parents:
            raise TaskError(
                f"{task.location}: asset {name!r} resolves outside "
                f"{base} (through a symbolic link); keep assets inside the folder"
            )
        if not path.exists():
            raise TaskError(
                f"{task.location}: asset {name!r} of recipe {recipe.id!r} not found "
                f"in {base}; add the file or fix the name"
            )
        return path


def _copy_frame(frame: _Frame, *, selected: bool) -> _Frame:
    return _Frame(
        frame.run,
        nested=frame.nested,
        local=frame.local,
        depth=frame.depth,
        selected=selected,
        deadline=frame.deadline,
    )


def _node(doc: Any, path: Sequence[Any]) -> Any:
    node = doc
    for item in path:
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _raw_result(result: Result) -> dict[str, Any]:
    """The whole result as templates see it (``outRaw`` and ``result``)."""
    raw: dict[str, Any] = dict(result.values)
    raw.update(
        status=result.status.value,
        changed=result.status.is_change,
        failed=result.status is Status.FAILED,
        skipped=result.status is Status.SKIPPED,
        message=result.message,
        diff=result.diff,
        values=dict(result.values),
    )
    return raw


def _task_error(recipe: Recipe, report: TaskReport, *, handler: bool = False) -> str:
    """The recipe's error: where the failed task is, its name and why."""
    what = "handler" if handler else "task"
    detail = report.error or "failed"
    where = report.location or recipe.source
    if detail.startswith(recipe.source + ":"):
        return f"{detail} ({what} {report.name!r} of recipe {recipe.id!r})"
    return f"{where}: {what} {report.name!r} of recipe {recipe.id!r} failed: {detail}"


def run_recipes(
    recipe_set: RecipeSet,
    recipe_ids: Sequence[str],
    *,
    host: str,
    var_layers: Sequence[tuple[str, Mapping[str, Any]]] = (),
    groups: Sequence[str] = (),
    extra_vars: Optional[Mapping[str, Any]] = None,
    inputs: Optional[Mapping[str, Mapping[str, Any]]] = None,
    check: bool = False,
    diff: bool = False,
    tags: Sequence[str] = (),
    state_dir: Union[str, Path, None] = None,
    asset_resolver: Optional[AssetResolver] = None,
    trusted: bool = True,
    plugin_manager: Any = None,
    facts: Optional[Mapping[str, Any]] = None,
    on_task: Optional[TaskCallback] = None,
    raise_input_errors: bool = False,
) -> RunReport:
    """Run recipes for one host and return the run report.

    :param recipe_set: Where the recipes (and their dependencies) come from.
    :param recipe_ids: The recipes to run, in order; a failure stops the run.
    :param host: The host name (``host`` and ``hostname`` in templates).
    :param var_layers: The inventory's layers for this host, lowest first
        (``Inventory.var_layers(host)``).
    :param groups: The host's groups in the inventory's order (recipe
        ``groupVars``).
    :param extra_vars: Command-line vars, the highest layer.
    :param inputs: ``{recipe id: inputs}``; recipes without an entry take
        their inputs from the vars in scope.
    :param check: Dry run: change nothing.
    :param diff: Put diffs into the report.
    :param tags: Run only tasks with one of these tags (and ``always``).
    :param state_dir: The local state folder (default: ``default_state_dir()``).
    :param asset_resolver: ``(recipe, name) -> Path``; default: the recipe's
        ``assets/`` folder.
    :param trusted: False renders templates in a sandbox and refuses
        ``trusted_only`` resource types.
    :param on_task: Called with every task report as it finishes and its
        nesting depth (for progress output).
    :param raise_input_errors: Raise a :class:`UserError` when the inputs or
        vars sources of a recipe given in ``recipe_ids`` are wrong, instead of
        reporting a failed recipe (the command line exits 2).
    """
    engine = Engine(
        recipe_set,
        host=host,
        var_layers=var_layers,
        groups=groups,
        extra_vars=extra_vars,
        check=check,
        diff=diff,
        tags=tags,
        state_dir=state_dir,
        asset_resolver=asset_resolver,
        trusted=trusted,
        plugin_manager=plugin_manager,
        facts=facts,
        on_task=on_task,
        raise_input_errors=raise_input_errors,
    )
    return engine.run(recipe_ids, inputs=inputs)
