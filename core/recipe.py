"""Recipes and tasks: the model, loading from a recipes folder, dependencies.

A recipe is a YAML file; its id is its path under the recipes folder without
the extension, and ``NAME/main.yaml`` is recipe ``NAME``.  Loading checks
everything that can be checked without running: unknown keys, types, exactly
one resource type key per task, the ``key=value`` shorthand, template syntax,
handler names, input specifications, dependencies and cycles.  Every error
says ``file:line:col`` (the ruamel nodes are kept for that).
"""

# ruff: noqa: RUF009  (option() and _field() are attrs.field with a description)

from __future__ import annotations

import difflib
import fnmatch
import logging
import os
import re
import shlex
import typing
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import attrs

from tenfra.convert import structure, yaml_key
from tenfra.errors import Location, TemplateError, UserError, ValidationError
from tenfra.yamlio import PathItem, load_yaml, locate, locate_key, to_plain

logger = logging.getLogger(__name__)

RECIPE_SUFFIXES = (".yaml", ".yml")
SKIPPED_DIRS = frozenset({"assets", "test-assets", "tests"})
PHASES = ("runtime", "bootstrap")
INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "mapping": (dict,),
    "any": (object,),
}
INPUT_TYPE_ALIASES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "map": "mapping",
    "dict": "mapping",
}


class _Missing:
    """The default of an input without a default."""

    _instance: Optional[_Missing] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


# -- YAML structures -----------------------------------------------------------------


def _field(description: str, **kwargs: Any) -> Any:
    metadata = dict(kwargs.pop("metadata", {}))
    metadata["description"] = description
    return attrs.field(metadata=metadata, **kwargs)


@attrs.frozen(kw_only=True)
class InputSpec:
    """One entry of a recipe's ``inputs``."""

    type: str = _field(
        "string, integer, number, boolean, list, mapping or any.", default="any"
    )
    required: bool = _field("The caller must give a value.", default=False)
    default: Any = _field("The value when the caller gives none.", default=MISSING)
    choices: Optional[list[Any]] = _field("The allowed values.", default=None)
    min: Optional[float] = _field(
        "Minimum (numbers: the value; strings and lists: the length).", default=None
    )
    max: Optional[float] = _field(
        "Maximum (numbers: the value; strings and lists: the length).", default=None
    )
    regex: Optional[str] = _field("A string must match it entirely.", default=None)
    description: str = _field("What the input is for.", default="")
    sensitive: bool = _field("Mask the value in output and reports.", default=False)

    @property
    def kind(self) -> str:
        return INPUT_TYPE_ALIASES.get(self.type, self.type)

    def problem(self, value: Any) -> Optional[str]:
        """Why ``value`` is not acceptable, or None when it is."""
        from tenfra.convert import type_name_of

        kind = self.kind
        allowed = INPUT_TYPES.get(kind, (object,))
        if kind != "any" and (
            not isinstance(value, allowed)
            or (isinstance(value, bool) and bool not in allowed)
        ):
            return f"expected {_KIND_NAMES[kind]}, got {type_name_of(value)} {value!r}"
        if self.choices is not None and value not in self.choices:
            shown = ", ".join(repr(c) for c in self.choices)
            return f"{value!r} is not one of the choices: {shown}"
        size: Optional[float] = None
        what = "value"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            size = value
        elif isinstance(value, (str, list, dict)):
            size, what = len(value), "length"
        if size is not None and self.min is not None and size < self.min:
            return f"{what} {size!r} is below the minimum {_num(self.min)}"
        if size is not None and self.max is not None and size > self.max:
            return f"{what} {size!r} is above the maximum {_num(self.max)}"
        if (
            self.regex is not None
            and isinstance(value, str)
            and re.fullmatch(self.regex, value) is None
        ):
            return f"{value!r} does not match the pattern {self.regex!r}"
        return None


_KIND_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "list": "a list",
    "mapping": "a mapping",
    "any": "any value",
}


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@attrs.frozen(kw_only=True)
class RecipeFields:
    """The keys of a recipe file (strictly structured)."""

    name: Optional[str] = _field("A human name.", default=None)
    targets: Any = _field("Host patterns this recipe applies to.", default=None)
    phase: str = _field("runtime (default) or bootstrap.", default="runtime")
    inputs: dict[str, InputSpec] = _field("Typed inputs.", factory=dict)
    dependencies: list[str] = _field("Recipes this one calls.", factory=list)
    vars: dict[str, Any] = _field("Recipe variables.", factory=dict)
    vars_sources: list[Any] = _field(
        "Vars sources loaded for this recipe.", factory=list
    )
    host_vars: dict[str, dict[str, Any]] = _field("Vars per host.", factory=dict)
    group_vars: dict[str, dict[str, Any]] = _field("Vars per group.", factory=dict)
    other_hosts: list[str] = _field(
        "Patterns of hosts whose vars are needed.", factory=list
    )
    tasks: list[Any] = _field("The tasks, in order.", factory=list)
    handlers: list[Any] = _field(
        "Tasks run once at the end when notified.", factory=list
    )


@attrs.frozen(kw_only=True)
class TaskFields:
    """The keys every task may have besides its resource type key."""

    name: Optional[str] = _field("A human name.", default=None)
    if_: Any = _field("Run only when this condition is true.", default=None)
    vars: dict[str, Any] = _field("Variables for this task only.", factory=dict)
    out: Any = _field("Register the result values under a name.", default=None)
    out_raw: Optional[str] = _field("Register the whole result.", default=None)
    global_: bool = _field("Register into the recipe-wide scope.", default=False)
    sensitive: bool = _field("Mask this task's values everywhere.", default=False)
    failed_if: Any = _field("Mark failed when true.", default=None)
    changed_if: Any = _field("Mark changed when true (ok when false).", default=None)
    exit_if: Any = _field("Stop the recipe successfully when true.", default=None)
    notify: Any = _field("Handlers to run when the task changed.", default=None)
    tags: Any = _field("Tags selecting this task with --tags.", default=None)
    timeout: Optional[float] = _field("Seconds the task may take.", default=None)


TASK_KEYS = frozenset(yaml_key(f) for f in attrs.fields(TaskFields))
RECIPE_KEYS = frozenset(yaml_key(f) for f in attrs.fields(RecipeFields))


# -- the model -----------------------------------------------------------------------


@attrs.define(kw_only=True, eq=False)
class Task:
    """One task of a recipe (or a nested task of ``loop``, ``try``, ``switch``)."""

    type: str
    resource: Any  # the ResourceType subclass
    options: Any  # plain options; nested task lists hold Task objects
    name: Optional[str] = None
    when: Any = None
    vars: dict[str, Any] = attrs.Factory(dict)
    out: Any = None
    out_raw: Optional[str] = None
    global_: bool = False
    sensitive: bool = False
    failed_if: Any = None
    changed_if: Any = None
    exit_if: Any = None
    notify: list[str] = attrs.Factory(list)
    tags: list[str] = attrs.Factory(list)
    timeout: Optional[float] = None
    # Where the task is: the recipe file, the document and the path inside it.
    source: str = ""
    doc: Any = None
    path: tuple[PathItem, ...] = ()
    location: Optional[Location] = None
    # Precomputed at load time so a converged run does little work.
    templated: bool = False  # some non-lazy option has a template
    vars_templated: bool = False
    static_options: Any = None  # structured options when nothing is templated
    label: str = ""

    @property
    def display_name(self) -> str:
        return self.name if self.name is not None else self.label

    def option_location(self, *path: PathItem) -> Optional[Location]:
        if self.doc is None:
            return self.location
        return locate(self.doc, (*self.path, self.type, *path), self.source)

    def field_location(self, key: str) -> Optional[Location]:
        if self.doc is None:
            return self.location
        return locate(self.doc, (*self.path, key), self.source)


@attrs.define(kw_only=True, eq=False)
class Recipe:
    """A loaded, validated recipe."""

    id: str
    path: Path
    source: str  # the file name used in messages
    doc: Any = attrs.field(repr=False)
    name: str
    targets: list[str]
    phase: str
    inputs: dict[str, InputSpec]
    dependencies: list[str]
    vars: dict[str, Any]
    vars_sources: list[Any]
    host_vars: dict[str, dict[str, Any]]
    group_vars: dict[str, dict[str, Any]]
    other_hosts: list[str]
    tasks: list[Task]
    handlers: list[Task]

    @property
    def dir(self) -> Path:
        """The folder of the recipe file (assets are in its ``assets/``)."""
        return self.path.parent

    def node(self, *path: PathItem) -> Any:
        """The ruamel node at ``path`` in the document, or None."""
        node = self.doc
        for item in path:
            try:
                node = node[item]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def host_vars_for(self, host: str) -> Optional[tuple[str, dict[str, Any]]]:
        """The ``hostVars`` entry for ``host``: its exact name, else a glob."""
        if host in self.host_vars:
            return host, self.host_vars[host]
        for key, values in self.host_vars.items():
            if any(ch in key for ch in "*?[") and fnmatch.fnmatchcase(host, key):
                return key, values
        return None

    def handler(self, name: str) -> Optional[Task]:
        for handler in self.handlers:
            if handler.name == name:
                return handler
        return None

    def location(self, *path: PathItem) -> Location:
        return locate(self.doc, path, self.source)


# -- loading a single recipe ---------------------------------------------------------


def display_path(path: Path) -> str:
    """How a file is named in messages: relative to the working folder if inside."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def recipe_id_for(relative: Union[str, Path]) -> str:
    """The id of a recipe file from its path under the recipes folder."""
    parts = list(Path(relative).with_suffix("").parts)
    if len(parts) > 1 and parts[-1] == "main":
        parts = parts[:-1]
    return "/".join(parts)


class _Loader:
    """Parses one recipe document into the model."""

    def __init__(self, source: str, doc: Any, plugin_manager: Any) -> None:
        self.source = source
        self.doc = doc
        self.pm = plugin_manager
        self._types: Any = None
        self._templar: Any = None

    @property
    def types(self) -> Any:
        if self._types is None:
            self._types = self.pm.resource_types
        return self._types

    @property
    def templar(self) -> Any:
        if self._templar is None:
            from tenfra.templating import get_templar

            self._templar = get_templar(plugin_manager=self.pm)
        return self._templar

    def at(self, path: Sequence[PathItem]) -> Location:
        return locate(self.doc, path, self.source)

    def key_at(self, path: Sequence[PathItem], key: str) -> Location:
        return locate_key(self.doc, path, key, self.source)

    def error(self, message: str, path: Sequence[PathItem]) -> ValidationError:
        return ValidationError(message, self.at(path))

    def check_template(self, value: Any, path: Sequence[PathItem]) -> None:
        from tenfra.templating import has_template

        if has_template(value):
            self.templar.check_syntax(value, self.at(path))

    def check_condition(self, value: Any, path: Sequence[PathItem]) -> None:
        if value is None or isinstance(value, bool):
            return
        if not isinstance(value, str):
            from tenfra.convert import type_name_of

            raise self.error(
                f"{path[-1]}: expected a condition (an expression such as "
                f"'x == 1', or true/false), got {type_name_of(value)}",
                path,
            )
        self.templar.check_expression(value, self.at(path))

    # -- tasks ------------------------------------------------------------------------

    def tasks(
        self, node: Any, path: tuple[PathItem, ...], *, handlers: bool = False
    ) -> list[Task]:
        if node is None:
            return []
        if not isinstance(node, list):
            from tenfra.convert import type_name_of

            raise self.error(
                f"{_dotted(path)}: expected a list of tasks, got "
                f"{type_name_of(node)}; write each task as a '- ' item",
                path,
            )
        tasks = [self.task(item, (*path, index)) for index, item in enumerate(node)]
        if handlers:
            seen: dict[str, int] = {}
            for index, task in enumerate(tasks):
                if task.name is None:
                    raise self.error(
                        "a handler needs a 'name'; tasks notify handlers by name",
                        (*path, index),
                    )
                if task.name in seen:
                    raise self.error(
                        f"two handlers are named {task.name!r}; give each handler "
                        "its own name",
                        (*path, index, "name"),
                    )
                seen[task.name] = index
        return tasks

    def task(self, node: Any, path: tuple[PathItem, ...]) -> Task:
        from tenfra.convert import type_name_of

        if not isinstance(node, dict):
            raise self.error(
                "a task must be a mapping with one resource type key, got "
                f"{type_name_of(node)}; write it as '- debug: msg=hello'",
                path,
            )
        common: dict[str, Any] = {}
        resource_keys: list[str] = []
        for key in node:
            if not isinstance(key, str):
                raise ValidationError(
                    f"task keys must be text, got {key!r}; check the indentation",
                    self.at(path),
                )
            if key in TASK_KEYS:
                common[key] = node[key]
            elif key in self.types:
                resource_keys.append(key)
            else:
                raise ValidationError(
                    self._unknown_task_key(key), self.key_at(path, key)
                )
        if not resource_keys:
            raise self.error(
                "the task has no resource type key; add exactly one, such as "
                "'debug: msg=hello' or 'shell: echo hello'",
                path,
            )
        if len(resource_keys) > 1:
            first, second = resource_keys[0], resource_keys[1]
            raise ValidationError(
                f"the task has two resource type keys, {first!r} and {second!r}; a "
                "task runs exactly one resource, so split it into two tasks",
                self.key_at(path, second),
            )
        type_key = resource_keys[0]
        resource = self.types[type_key]
        fields = structure(
            common,
            TaskFields,
            source=self.source,
            root=self.doc,
            base_path=path,
            what="the task",
        )
        task = Task(
            type=type_key,
            resource=resource,
            options=None,
            name=fields.name,
            when=fields.if_,
            vars=to_plain(fields.vars),
            out=self._out(fields.out, (*path, "out")),
            out_raw=fields.out_raw,
            global_=fields.global_,
            sensitive=fields.sensitive,
            failed_if=fields.failed_if,
            changed_if=fields.changed_if,
            exit_if=fields.exit_if,
            notify=self._names(fields.notify, (*path, "notify"), "notify"),
            tags=self._names(fields.tags, (*path, "tags"), "tags"),
            timeout=fields.timeout,
            source=self.source,
            doc=self.doc,
            path=path,
            location=self.at(path),
        )
        if task.timeout is not None and task.timeout <= 0:
            raise self.error(
                "timeout: expected a positive number of seconds", (*path, "timeout")
            )
        for key in ("if", "failedIf", "changedIf", "exitIf"):
            if key in common:
                self.check_condition(to_plain(common[key]), (*path, key))
        if task.name is not None:
            self.check_template(task.name, (*path, "name"))
        for key, value in task.vars.items():
            self.check_template(value, (*path, "vars", key))
        from tenfra.templating import has_template

        task.vars_templated = has_template(task.vars)
        task.options = self.options(task, node[type_key], (*path, type_key))
        task.label = task_label(
            type_key, task.options, _mask_all if task.sensitive else None
        )
        return task

    def _unknown_task_key(self, key: str) -> str:
        known = sorted(TASK_KEYS) + sorted(self.types)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"unknown key {key!r} in the task{hint}; it is neither a task field "
            f"({', '.join(sorted(TASK_KEYS))}) nor a known resource type; check "
            "the spelling, or install the plugin that provides it"
        )

    def _out(self, value: Any, path: tuple[PathItem, ...]) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return {str(k): str(v) for k, v in value.items()}
        raise self.error(
            "out: expected a variable name, or a mapping of variable names to "
            "result keys (out: {url: location})",
            path,
        )

    def _names(self, value: Any, path: tuple[PathItem, ...], what: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [str(v) for v in value]
        raise self.error(f"{what}: expected a name or a list of names", path)

    # -- options ----------------------------------------------------------------------

    def options(self, task: Task, value: Any, path: tuple[PathItem, ...]) -> Any:
        resource = task.resource
        options_cls = resource.Options
        is_attrs = attrs.has(options_cls)
        if value is None:
            options: Any = {}
        elif isinstance(value, str):
            options = parse_shorthand(
                value, resource, location=self.at(path), type_key=task.type
            )
        elif isinstance(value, dict):
            options = value
        elif resource.free_form and isinstance(value, (int, float, bool)):
            options = {resource.free_form: value}
        else:
            from tenfra.convert import type_name_of

            raise self.error(
                f"{task.type}: expected a mapping of options or key=value "
                f"shorthand, got {type_name_of(value)}",
                path,
            )
        lazy = frozenset(resource.lazy)
        plain: dict[str, Any] = {}
        fields = _fields_by_key(options_cls) if is_attrs else {}
        for key in options:
            item = options[key]
            field = fields.get(key) if isinstance(key, str) else None
            if is_attrs and field is None:
                known = sorted(fields)
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                location = (
                    self.key_at(path, key) if isinstance(value, dict) else self.at(path)
                )
                raise ValidationError(
                    f"unknown option {key!r} for {task.type}{hint}; known options "
                    f"are: {', '.join(known)}",
                    location,
                )
            kind = field.metadata.get("tasks") if field is not None else None
            if key in lazy and kind:
                plain[key] = self._nested(item, (*path, key), kind)
            else:
                plain[key] = to_plain(item)
        from tenfra.templating import has_template

        templated = any(
            has_template(item) for key, item in plain.items() if key not in lazy
        )
        for key, item in plain.items():
            if key not in lazy:
                self.check_template(item, (*path, key))
        task.templated = templated
        if not templated:
            task.static_options = structure(
                plain,
                options_cls,
                source=self.source,
                root=self.doc,
                base_path=path,
                what=f"the options of {task.type}",
            )
        return plain

    def _nested(self, node: Any, path: tuple[PathItem, ...], kind: Any) -> Any:
        if kind == "map":
            if node is None:
                return {}
            if not isinstance(node, dict):
                from tenfra.convert import type_name_of

                raise self.error(
                    f"{path[-1]}: expected a mapping of lists of tasks, got "
                    f"{type_name_of(node)}",
                    path,
                )
            return {to_plain(key): self.tasks(node[key], (*path, key)) for key in node}
        return self.tasks(node, path)

    # -- the recipe -------------------------------------------------------------------

    def recipe(self, recipe_id: str, path: Path) -> Recipe:
        doc = self.doc
        if doc is None:
            raise ValidationError(
                "the recipe is empty; add at least 'tasks:'", Location(self.source)
            )
        if not isinstance(doc, dict):
            from tenfra.convert import type_name_of

            raise ValidationError(
                f"a recipe must be a mapping (name, tasks, ...), got "
                f"{type_name_of(doc)}",
                self.at(()),
            )
        fields = structure(doc, RecipeFields, source=self.source, what="the recipe")
        if fields.phase not in PHASES:
            raise self.error(
                f"phase: {fields.phase!r} is not a phase; use runtime or bootstrap",
                ("phase",),
            )
        targets = self._names(fields.targets, ("targets",), "targets")
        inputs = {str(k): v for k, v in fields.inputs.items()}
        for name, spec in inputs.items():
            self._check_input_spec(name, spec)
        for name, item in fields.vars.items():
            self.check_template(item, ("vars", name))
        for section in ("hostVars", "groupVars"):
            values = fields.host_vars if section == "hostVars" else fields.group_vars
            for key, mapping in values.items():
                for name, item in mapping.items():
                    self.check_template(item, (section, key, name))
        self._check_vars_sources(fields.vars_sources)
        handlers = self.tasks(fields.handlers, ("handlers",), handlers=True)
        tasks = self.tasks(fields.tasks, ("tasks",))
        names = {handler.name for handler in handlers}
        for task, _ in _walk(tasks + handlers):
            for index, name in enumerate(task.notify):
                if name not in names:
                    known = ", ".join(sorted(str(n) for n in names)) or "none"
                    notify_path: tuple[PathItem, ...] = (*task.path, "notify")
                    if isinstance(self.doc_at(notify_path), list):
                        notify_path = (*notify_path, index)
                    raise self.error(
                        f"notify: no handler is named {name!r}; handlers of this "
                        f"recipe: {known}",
                        notify_path,
                    )
        return Recipe(
            id=recipe_id,
            path=path,
            source=self.source,
            doc=doc,
            name=fields.name or recipe_id,
            targets=targets,
            phase=fields.phase,
            inputs=inputs,
            dependencies=[str(d) for d in fields.dependencies],
            vars=to_plain(fields.vars),
            vars_sources=to_plain(fields.vars_sources),
            host_vars=to_plain(fields.host_vars),
            group_vars=to_plain(fields.group_vars),
            other_hosts=[str(p) for p in fields.other_hosts],
            tasks=tasks,
            handlers=handlers,
        )

    def _check_vars_sources(self, entries: list[Any]) -> None:
        if not entries:
            return
        from tenfra.inventory import parse_source_entry

        for index, entry in enumerate(entries):
            parse_source_entry(
                entry,
                "vars source",
                self.pm.vars_sources,
                source=self.source,
                root=self.doc,
                path=("varsSources", index),
            )

    def doc_at(self, path: Sequence[PathItem]) -> Any:
        node = self.doc
        for item in path:
            try:
                node = node[item]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def _check_input_spec(self, name: str, spec: InputSpec) -> None:
        base: tuple[PathItem, ...] = ("inputs", name)
        if spec.kind not in INPUT_TYPES:
            raise self.error(
                f"inputs.{name}.type: {spec.type!r} is not an input type; use one of "
                f"{', '.join(INPUT_TYPES)}",
                (*base, "type"),
            )
        if spec.regex is not None:
            try:
                re.compile(spec.regex)
            except re.error as exc:
                raise self.error(
                    f"inputs.{name}.regex: not a valid regular expression: {exc}",
                    (*base, "regex"),
                ) from None
        if spec.default is not MISSING:
            default = to_plain(spec.default)
            problem = spec.problem(default)
            if problem is not None:
                raise self.error(
                    f"inputs.{name}.default: {problem}; fix the default or the "
                    "input's rules",
                    (*base, "default"),
                )
        if spec.required and spec.default is not MISSING:
            raise self.error(
                f"inputs.{name}: a required input cannot have a default; remove "
                "one of them",
                (*base, "required"),
            )


def _walk(tasks: Sequence[Task]) -> Iterator[tuple[Task, tuple[PathItem, ...]]]:
    """Every task and nested task, depth first."""
    for task in tasks:
        yield task, task.path
        yield from _walk(nested_tasks(task))


def nested_tasks(task: Task) -> list[Task]:
    """The tasks nested in a task's lazy options (loop, try, switch...)."""
    found: list[Task] = []
    if not isinstance(task.options, dict):
        return found
    for key in task.resource.lazy:
        value = task.options.get(key)
        if isinstance(value, list):
            found.extend(item for item in value if isinstance(item, Task))
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, list):
                    found.extend(sub for sub in item if isinstance(sub, Task))
    return found


def task_label(
    type_key: str,
    options: Any,
    mask: Optional[Callable[[Optional[str]], Optional[str]]] = None,
) -> str:
    """A name for a task without ``name``: its type and its simple options.

    ``mask`` hides secrets in each value before the label is shortened, so a
    truncated secret can never escape the masking.
    """
    if not isinstance(options, dict) or not options:
        return type_key
    parts = []
    for key, value in options.items():
        if isinstance(value, (str, int, float, bool)) and not isinstance(value, Task):
            text = str(value)
            if mask is not None:
                text = mask(text) or ""
            parts.append(f"{key}={text}")
    label = f"{type_key} " + " ".join(parts) if parts else type_key
    label = " ".join(label.split())
    return label if len(label) <= 60 else label[:57] + "..."


def _mask_all(text: Optional[str]) -> str:
    return "********"


def _dotted(path: Sequence[PathItem]) -> str:
    text = ""
    for item in path:
        text += f"[{item}]" if isinstance(item, int) else ("." if text else "") + item
    return text


_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def _fields_by_key(cls: type) -> dict[str, Any]:
    return {yaml_key(f): f for f in attrs.fields(cls)}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS_CACHE.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS_CACHE[cls] = hints
    return hints


# -- the key=value shorthand ---------------------------------------------------------

_TEMPLATE_SPAN = re.compile(r"\$\{\{.*?\}\}|\$\{%.*?%\}", re.DOTALL)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _ShorthandError(Exception):
    pass


def parse_shorthand(
    text: str, resource: Any, *, location: Optional[Location], type_key: str
) -> dict[str, Any]:
    """Options from ``key=value`` shorthand, typed by the resource's option class.

    A resource with a ``free_form`` option receives the whole text there when
    the text is not shorthand (``shell: echo hi``).
    """
    spans: list[str] = []

    def protect(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    def restore(value: str) -> str:
        return re.sub("\x00([0-9]+)\x00", lambda m: spans[int(m.group(1))], value)

    options_cls = resource.Options
    is_attrs = attrs.has(options_cls)
    fields = _fields_by_key(options_cls) if is_attrs else {}
    free_form = resource.free_form
    try:
        tokens = shlex.split(_TEMPLATE_SPAN.sub(protect, text))
    except ValueError as exc:
        if free_form:
            return {free_form: text}
        raise ValidationError(
            f"cannot read the {type_key} shorthand {text!r}: {exc}; close the "
            "quote or use the mapping form",
            location,
        ) from None
    pairs: list[tuple[str, str]] = []
    for token in tokens:
        key, sep, raw = token.partition("=")
        if not sep or not _KEY.match(key) or (is_attrs and key not in fields):
            pairs = []
            break
        pairs.append((key, restore(raw)))
    if free_form and (not pairs or len(pairs) != len(tokens)):
        return {free_form: text}
    if not pairs or len(pairs) != len(tokens):
        for token in tokens:
            key, sep, _ = token.partition("=")
            if not sep or not _KEY.match(key):
                raise ValidationError(
                    f"{restore(token)!r} in the {type_key} shorthand is not "
                    "key=value; write key=value pairs separated by spaces (quote "
                    "values with spaces), or use the mapping form",
                    location,
                )
            if is_attrs and key not in fields:
                close = difflib.get_close_matches(key, sorted(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValidationError(
                    f"unknown option {key!r} for {type_key}{hint}; known options "
                    f"are: {', '.join(sorted(fields))}",
                    location,
                )
        raise ValidationError(
            f"the {type_key} shorthand is empty; give key=value options", location
        )
    result: dict[str, Any] = {}
    hints = _hints(options_cls) if is_attrs else {}
    for key, raw in pairs:
        if key in result:
            raise ValidationError(
                f"option {key!r} is given twice in the {type_key} shorthand; keep "
                "one of them",
                location,
            )
        if "${" in raw:
            result[key] = raw
            continue
        if not is_attrs:
            result[key] = _yaml_scalar(raw)
            continue
        field = fields[key]
        try:
            result[key] = _convert(raw, hints.get(field.name, Any))
        except _ShorthandError as exc:
            raise ValidationError(
                f"option {key!r} of {type_key}: {exc}", location
            ) from None
    return result


def _convert(raw: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Union or type(tp).__name__ == "UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw in ("null", "~") and len(args) < len(typing.get_args(tp)):
            return None
        problems = []
        for arg in args:
            try:
                return _convert(raw, arg)
            except _ShorthandError as exc:
                problems.append(str(exc))
        raise _ShorthandError("; ".join(problems))
    if tp is str:
        return raw
    if tp is bool:
        if raw in ("true", "false"):
            return raw == "true"
        raise _ShorthandError(f"{raw!r} is not true or false; write true or false")
    if tp is int:
        if re.fullmatch(r"[-+]?[0-9]+", raw):
            return int(raw)
        raise _ShorthandError(f"{raw!r} is not an integer")
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            raise _ShorthandError(f"{raw!r} is not a number") from None
    if origin in (list, tuple, set, frozenset):
        item_args = typing.get_args(tp)
        item_type = item_args[0] if item_args else Any
        return [_convert(part, item_type) for part in raw.split(",") if part != ""]
    if origin is dict or tp is dict:
        raise _ShorthandError(
            "a mapping cannot be given in key=value shorthand; use the mapping form"
        )
    return raw


def _yaml_scalar(raw: str) -> Any:
    """A shorthand value for untyped options, read as a YAML 1.2 scalar."""
    if raw in ("true", "false"):
        return raw == "true"
    if raw in ("null", "~"):
        return None
    if re.fullmatch(r"[-+]?[0-9]+", raw):
        return int(raw)
    if re.fullmatch(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", raw):
        return float(raw)
    return raw


# -- loading -------------------------------------------------------------------------


def load_recipe_text(
    text: str,
    recipe_id: str,
    *,
    source: str,
    path: Optional[Path] = None,
    plugin_manager: Any = None,
) -> Recipe:
    """Parse one recipe from its YAML text; ``source`` names it in messages."""
    if plugin_manager is None:
        from tenfra.pluginmanager import get_plugin_manager

        plugin_manager = get_plugin_manager()
    doc = load_yaml(text, source)
    loader = _Loader(source, doc, plugin_manager)
    return loader.recipe(recipe_id, path if path is not None else Path(source))


def load_recipe_file(
    path: Path, recipe_id: str, *, plugin_manager: Any = None
) -> Recipe:
    """Read and parse one recipe file."""
    source = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(
            "recipe file not found; check the path", Location(source)
        ) from None
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"not UTF-8 text (byte {exc.start}); save the file as UTF-8",
            Location(source),
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"cannot read the recipe: {exc.strerror}", Location(source)
        ) from None
    return load_recipe_text(
        text, recipe_id, source=source, path=path, plugin_manager=plugin_manager
    )


def discover(root: Path) -> dict[str, Path]:
    """``{recipe id: file}`` of every recipe file under ``root``.

    Folders named ``assets``, ``test-assets`` or ``tests``, hidden entries and
    files ending in ``.test.yaml`` are not recipes.
    """
    found: dict[str, Path] = {}
    if not root.is_dir():
        raise UserError(
            f"{display_path(root)}: the recipes folder does not exist; create it "
            "or pass --recipes DIR."
        )
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")
        )
        for name in sorted(files):
            if name.startswith(".") or not name.endswith(RECIPE_SUFFIXES):
                continue
            if name.endswith((".test.yaml", ".test.yml")):
                continue
            path = Path(folder) / name
            recipe_id = recipe_id_for(path.relative_to(root))
            if recipe_id in found:
                raise UserError(
                    f"{display_path(path)}: recipe id {recipe_id!r} is also used by "
                    f"{display_path(found[recipe_id])}; rename one of the files."
                )
            found[recipe_id] = path
    return found


class RecipeSet:
    """The recipes of one recipes folder (or of a release bundle), loaded on demand."""

    def __init__(
        self,
        root: Optional[Path] = None,
        *,
        plugin_manager: Any = None,
        files: Optional[Mapping[str, Path]] = None,
        texts: Optional[Mapping[str, tuple[str, str]]] = None,
    ) -> None:
        """Recipes from ``root`` (discovered), ``files`` ({id: path}) or ``texts``.

        ``texts`` maps an id to ``(relative path, YAML text)`` (an agent's
        bundle); their folder for assets is ``root / relative path``'s parent.
        """
        if plugin_manager is None:
            from tenfra.pluginmanager import get_plugin_manager

            plugin_manager = get_plugin_manager()
        self.pm = plugin_manager
        self.root = root
        self._files: dict[str, Path] = dict(files or {})
        self._texts: dict[str, tuple[str, str]] = dict(texts or {})
        if root is not None and files is None and texts is None:
            self._files = discover(root)
        self._recipes: dict[str, Recipe] = {}

    def ids(self) -> list[str]:
        return sorted(set(self._files) | set(self._texts) | set(self._recipes))

    def __contains__(self, recipe_id: object) -> bool:
        return (
            recipe_id in self._files
            or recipe_id in self._texts
            or (recipe_id in self._recipes)
        )

    def add(self, recipe: Recipe) -> None:
        """Add an already loaded recipe (tests, generated recipes)."""
        self._recipes[recipe.id] = recipe

    def get(self, recipe_id: str) -> Recipe:
        """The recipe ``recipe_id``, loading it on first use."""
        recipe = self._recipes.get(recipe_id)
        if recipe is not None:
            return recipe
        if recipe_id in self._files:
            recipe = load_recipe_file(
                self._files[recipe_id], recipe_id, plugin_manager=self.pm
            )
        elif recipe_id in self._texts:
            relative, text = self._texts[recipe_id]
            base = self.root if self.root is not None else Path(".")
            recipe = load_recipe_text(
                text,
                recipe_id,
                source=relative,
                path=base / relative,
                plugin_manager=self.pm,
            )
        else:
            raise UserError(self._unknown(recipe_id))
        self._recipes[recipe_id] = recipe
        return recipe

    def _unknown(self, recipe_id: str) -> str:
        where = display_path(self.root) if self.root is not None else "this set"
        known = self.ids()
        close = difflib.get_close_matches(recipe_id, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = ", ".join(known) if known else "none"
        return f"no recipe {recipe_id!r} in {where}{hint}; known recipes: {listing}."

    def load_all(self) -> list[Recipe]:
        """Load and validate every recipe (``tenfra check``, the compiler)."""
        recipes = [self.get(recipe_id) for recipe_id in self.ids()]
        for recipe in recipes:
            self.closure([recipe.id])
        return recipes

    def closure(self, recipe_ids: Sequence[str]) -> list[str]:
        """``recipe_ids`` and every recipe they depend on, dependencies first.

        Unknown dependencies, cycles and ``recipe`` calls to recipes missing
        from ``dependencies`` are errors located in the recipe file.
        """
        order: list[str] = []
        done: set[str] = set()

        def visit(recipe_id: str, stack: list[str]) -> None:
            if recipe_id in done:
                return
            recipe = self.get(recipe_id)
            stack = [*stack, recipe_id]
            for index, dep in enumerate(recipe.dependencies):
                where = recipe.location("dependencies", index)
                if dep not in self:
                    known = ", ".join(self.ids()) or "none"
                    raise ValidationError(
                        f"dependency {dep!r} is not a recipe; known recipes: {known}",
                        where,
                    )
                if dep in stack:
                    cycle = " -> ".join([*stack[stack.index(dep) :], dep])
                    raise ValidationError(
                        f"circular dependency: {cycle}; a recipe cannot depend on "
                        "itself, directly or through others",
                        where,
                    )
                visit(dep, stack)
            self._check_calls(recipe)
            done.add(recipe_id)
            order.append(recipe_id)

        for recipe_id in recipe_ids:
            visit(recipe_id, [])
        return order

    def _check_calls(self, recipe: Recipe) -> None:
        """Literal ``recipe`` calls must name a dependency with valid inputs."""
        from tenfra.templating import has_template

        for task, _ in _walk(recipe.tasks + recipe.handlers):
            if task.type != "recipe" or not isinstance(task.options, dict):
                continue
            callee = task.options.get("id")
            if not isinstance(callee, str) or has_template(callee):
                continue
            if callee not in recipe.dependencies:
                raise ValidationError(
                    f"the recipe task calls {callee!r}, which is not listed in "
                    f"dependencies; add '{callee}' to dependencies",
                    task.option_location("id"),
                )
            inputs = task.options.get("inputs") or {}
            if not isinstance(inputs, dict) or has_template(inputs):
                continue
            problem = input_problems(self.get(callee), inputs)
            if problem is not None:
                key, message = problem
                where = (
                    task.option_location("inputs", key)
                    if key
                    else task.option_location("inputs")
                )
                raise ValidationError(message, where)


def input_problems(
    recipe: Recipe, values: Mapping[str, Any]
) -> Optional[tuple[Optional[str], str]]:
    """The first problem of ``values`` as inputs of ``recipe``: (key, message)."""
    for key in values:
        if key not in recipe.inputs:
            known = ", ".join(sorted(recipe.inputs)) or "none"
            return key, (
                f"recipe {recipe.id!r} has no input {key!r}; its inputs are: {known}"
            )
    for name, spec in recipe.inputs.items():
        if name in values:
            problem = spec.problem(values[name])
            if problem is not None:
                return name, (f"input {name!r} of recipe {recipe.id!r}: {problem}")
        elif spec.required:
            return None, (
                f"recipe {recipe.id!r} needs the input {name!r}; give it in inputs"
            )
    return None


def resolve_inputs(
    recipe: Recipe,
    given: Mapping[str, Any],
    *,
    location: Optional[Location],
    from_scope: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """The validated input values of a run of ``recipe``.

    ``given`` are the caller's values; for a recipe run from the command line
    ``from_scope`` (the vars in scope) fills inputs by name.  Defaults fill
    the rest.  Raises a TemplateError-free ValidationError at ``location``.
    """
    values: dict[str, Any] = {}
    for key in given:
        if key not in recipe.inputs:
            known = ", ".join(sorted(recipe.inputs)) or "none"
            raise ValidationError(
                f"recipe {recipe.id!r} has no input {key!r}; its inputs are: {known}",
                location,
            )
    for name, spec in recipe.inputs.items():
        if name in given:
            value = given[name]
        elif from_scope is not None and name in from_scope:
            try:
                value = from_scope[name]
            except TemplateError:
                raise
        elif spec.default is not MISSING:
            value = to_plain(spec.default)
        elif spec.required:
            hint = (
                f"pass -e {name}=VALUE"
                if from_scope is not None
                else "give it in the recipe task's inputs"
            )
            raise ValidationError(
                f"recipe {recipe.id!r} needs the input {name!r}; {hint}", location
            )
        else:
            continue  # optional, no default: undefined unless a lower layer has it
        problem = spec.problem(value)
        if problem is not None:
            if name not in given and from_scope is not None:
                raise ValidationError(
                    f"input {name!r} of recipe {recipe.id!r}: {problem}; the value "
                    "comes from the vars (inventory or -e), fix it there",
                    recipe.location("inputs", name),
                )
            raise ValidationError(
                f"input {name!r} of recipe {recipe.id!r}: {problem}", location
            )
        values[name] = value
    return values


def load_recipes(
    recipes_dir: Union[str, Path], *, plugin_manager: Any = None
) -> RecipeSet:
    """Load and validate every recipe of a folder (ids from paths)."""
    recipe_set = RecipeSet(Path(recipes_dir), plugin_manager=plugin_manager)
    recipe_set.load_all()
    return recipe_set


__all__ = [
    "MISSING",
    "InputSpec",
    "Recipe",
    "RecipeSet",
    "Task",
    "discover",
    "input_problems",
    "load_recipe_file",
    "load_recipe_text",
    "load_recipes",
    "parse_shorthand",
    "recipe_id_for",
    "resolve_inputs",
]
