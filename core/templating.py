"""Jinja2 templating for recipes: ``${{ }}`` values, bare conditions, ``.j2`` files.

Rules (see docs/recipes.md):

* inside YAML values the delimiters are ``${{ expr }}`` (and ``${% %}`` for
  statements), so YAML's own braces never clash;
* a value that is exactly one ``${{ expr }}`` keeps the expression's native
  type (an int stays an int, a list stays a list); any other text renders to
  a string;
* conditions (``if``, ``failedIf``, ``assert``...) are bare expressions;
* an undefined variable is an error naming the variable and the YAML
  position, never an empty string;
* untrusted recipes render in ``ImmutableSandboxedEnvironment``;
* filters and globals registered by plugins are available everywhere.

Jinja2 is imported only when a template is actually rendered: a recipe
without ``${{`` never pays for it.  Compiled templates are cached.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from tenfra.errors import Location, TemplateError
from tenfra.yamlio import is_octal_int

if TYPE_CHECKING:
    import jinja2

    from tenfra.pluginmanager import PluginManager

logger = logging.getLogger(__name__)

MARK = "${"
"""Every template in a YAML value contains this; cheap to test for."""

_SINGLE = re.compile(r"\$\{\{(.*)\}\}\Z", re.DOTALL)
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_MAX_SHOWN = 60


def is_template(text: str) -> bool:
    """True when ``text`` contains a ``${{ }}`` or ``${% %}`` template."""
    return MARK in text and ("${{" in text or "${%" in text)


def has_template(value: Any) -> bool:
    """True when ``value`` (a string, or a list/mapping of them) has a template."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_template(item) for item in value)
    return False


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


class Templar:
    """Renders templates with one Jinja2 environment (normal or sandboxed).

    Obtain one with :func:`get_templar`; it is cheap to keep and thread-safe
    for rendering.
    """

    def __init__(
        self,
        *,
        sandboxed: bool = False,
        filters: Optional[Mapping[str, Callable[..., Any]]] = None,
        globals_: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.sandboxed = sandboxed
        self._filters = dict(filters or {})
        self._globals = dict(globals_ or {})
        self._env: Optional[jinja2.Environment] = None
        self._file_env: Optional[jinja2.Environment] = None
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- environments -----------------------------------------------------------------

    def _make_env(self, *, yaml_values: bool) -> jinja2.Environment:
        import jinja2
        import jinja2.sandbox

        cls: type[jinja2.Environment] = (
            jinja2.sandbox.ImmutableSandboxedEnvironment
            if self.sandboxed
            else jinja2.Environment
        )
        options: dict[str, Any] = {
            "undefined": jinja2.StrictUndefined,
            "autoescape": False,
            "keep_trailing_newline": True,
            "trim_blocks": True,  # a line holding only a block tag leaves no line
            "lstrip_blocks": True,
        }
        if yaml_values:
            options.update(
                variable_start_string="${{",
                variable_end_string="}}",
                block_start_string="${%",
                block_end_string="%}",
                comment_start_string="${#",
                comment_end_string="#}",
            )
        env = cls(**options)
        env.filters.update(self._filters)
        env.globals.update(self._globals)
        return env

    @property
    def env(self) -> jinja2.Environment:
        """The environment for ``${{ }}`` values in YAML."""
        if self._env is None:
            with self._lock:
                if self._env is None:
                    self._env = self._make_env(yaml_values=True)
        return self._env

    @property
    def file_env(self) -> jinja2.Environment:
        """The environment for ``.j2`` files (standard ``{{ }}`` delimiters)."""
        if self._file_env is None:
            with self._lock:
                if self._file_env is None:
                    self._file_env = self._make_env(yaml_values=False)
        return self._file_env

    def globals_mapping(self) -> Mapping[str, Any]:
        """Jinja's own globals plus the plugin globals (the lowest scope layer)."""
        return self.env.globals

    # -- compiling --------------------------------------------------------------------

    def _compile(self, kind: str, text: str, location: Optional[Location]) -> Any:
        key = kind + "\0" + text
        compiled = self._cache.get(key)
        if compiled is not None:
            return compiled
        import jinja2

        try:
            if kind == "expr":
                compiled = self._compile_expression(text)
            elif kind == "file":
                compiled = self.file_env.from_string(text)
            else:
                compiled = self.env.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"bad template syntax in {_shown(text)!r}: {exc.message}; "
                "check the braces and quotes of the expression",
                location,
            ) from None
        self._cache[key] = compiled
        return compiled

    def _compile_expression(self, text: str) -> Any:
        from jinja2 import nodes
        from jinja2.parser import Parser

        env = self.env
        parser = Parser(env, text, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            from jinja2 import TemplateSyntaxError

            raise TemplateSyntaxError(
                f"unexpected {token.value!r} after the expression",
                token.lineno,
                None,
                None,
            )
        expr.set_environment(env)
        body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
        return env.from_string(nodes.Template(body, lineno=1))  # type: ignore[arg-type]

    def check_syntax(self, value: Any, location: Optional[Location] = None) -> None:
        """Compile every template inside ``value``; raise TemplateError if bad."""
        if isinstance(value, str):
            if is_template(value) and not _is_simple(value):
                single = _SINGLE.match(value)
                if single and value.count("${{") == 1 and "${%" not in value:
                    self._compile("expr", single.group(1), location)
                else:
                    self._compile("value", value, location)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.check_syntax(key, location)
                self.check_syntax(item, location)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.check_syntax(item, location)

    def check_expression(self, text: str, location: Optional[Location]) -> None:
        """Compile a bare expression (a condition); raise TemplateError if bad."""
        self._compile("expr", _strip_marks(text), location)

    # -- running ----------------------------------------------------------------------

    def _run_expression(
        self,
        compiled: Any,
        scope: Mapping[str, Any],
        text: str,
        location: Optional[Location],
    ) -> Any:
        context = compiled.new_context(vars=_with_globals(scope, compiled), shared=True)
        try:
            for _ in compiled.root_render_func(context):
                pass
        except Exception as exc:
            raise self._runtime_error(exc, text, location) from None
        result = context.vars["result"]
        import jinja2

        if isinstance(result, jinja2.Undefined):
            try:
                result._fail_with_undefined_error()
            except Exception as exc:
                raise self._runtime_error(exc, text, location) from None
        return result

    def _run_template(
        self,
        compiled: Any,
        scope: Mapping[str, Any],
        text: str,
        location: Optional[Location],
    ) -> str:
        context = compiled.new_context(vars=_with_globals(scope, compiled), shared=True)
        try:
            return str(compiled.environment.concat(compiled.root_render_func(context)))
        except Exception as exc:
            raise self._runtime_error(exc, text, location) from None

    def _runtime_error(
        self, exc: BaseException, text: str, location: Optional[Location]
    ) -> TemplateError:
        import jinja2
        import jinja2.exceptions

        if isinstance(exc, TemplateError):
            return exc
        shown = _shown(text)
        if isinstance(exc, jinja2.UndefinedError):
            message = str(exc.message or exc)
            match = _UNDEFINED_NAME.match(message)
            if match:
                name = match.group(1)
                return TemplateError(
                    f"undefined variable {name!r} in {shown!r}; define it (recipe "
                    "vars, inputs, inventory or -e) or give a default: "
                    f"{name} | default(...)",
                    location,
                )
            attr = _NO_ATTRIBUTE.search(message)
            if attr:
                return TemplateError(
                    f"undefined attribute {attr.group(1)!r} in {shown!r} "
                    f"({message}); check the name, or give a default with "
                    "| default(...)",
                    location,
                )
            return TemplateError(
                f"undefined value in {shown!r}: {message}; check the names used",
                location,
            )
        if isinstance(exc, jinja2.exceptions.SecurityError):
            return TemplateError(
                f"{shown!r} is not allowed in an untrusted recipe: {exc}; "
                "untrusted recipes render in a sandbox",
                location,
            )
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return TemplateError(
                f"bad template syntax in {shown!r}: {exc.message}; check the braces "
                "and quotes of the expression",
                location,
            )
        if isinstance(exc, RecursionError):
            return TemplateError(
                f"{shown!r} refers to itself through its variables; break the loop",
                location,
            )
        return TemplateError(
            f"cannot render {shown!r}: {type(exc).__name__}: {exc}; check the "
            "values and filters used",
            location,
        )

    def render(
        self,
        value: Any,
        scope: Mapping[str, Any],
        location: Optional[Location] = None,
    ) -> Any:
        """Render every ``${{ }}`` inside ``value`` (strings, lists, mappings).

        The result is plain Python data.  A string that is exactly one
        expression keeps the expression's native type.
        """
        if isinstance(value, str):
            if MARK not in value or not is_template(value):
                return str(value)
            return self.render_string(value, scope, location)
        if isinstance(value, dict):
            return {
                self.render(k, scope, location): self.render(v, scope, location)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.render(item, scope, location) for item in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            # An explicit YAML octal (0o644) keeps its type: file modes accept it.
            return value if is_octal_int(value) else int(value)
        if isinstance(value, float):
            return float(value)
        return value

    def render_string(
        self, text: str, scope: Mapping[str, Any], location: Optional[Location] = None
    ) -> Any:
        """Render one string; native type when it is exactly one expression."""
        fast = _fast_render(text, scope)
        if fast is not _SLOW:
            return fast
        single = _SINGLE.match(text)
        if single and text.count("${{") == 1 and "${%" not in text:
            inner = single.group(1)
            compiled = self._compile("expr", inner, location)
            return _plain(self._run_expression(compiled, scope, text, location))
        compiled = self._compile("value", text, location)
        return self._run_template(compiled, scope, text, location)

    def evaluate(
        self,
        expression: str,
        scope: Mapping[str, Any],
        location: Optional[Location] = None,
    ) -> Any:
        """Evaluate a bare expression; ``${{ x }}`` is accepted as ``x`` too."""
        text = _strip_marks(expression)
        simple = _SIMPLE.match(text)
        if simple is not None:
            value = _lookup(simple.group(1), scope)
            if value is not _SLOW:
                return _plain(value)
        compiled = self._compile("expr", text, location)
        return _plain(self._run_expression(compiled, scope, expression, location))

    def condition(
        self,
        expression: Any,
        scope: Mapping[str, Any],
        location: Optional[Location] = None,
    ) -> bool:
        """Evaluate a condition; YAML booleans are accepted as they are."""
        if isinstance(expression, bool):
            return expression
        if not isinstance(expression, str):
            raise TemplateError(
                f"a condition must be an expression or true/false, got "
                f"{expression!r}; write it as text such as: x == 1",
                location,
            )
        return bool(self.evaluate(expression, scope, location))

    def render_text(
        self, text: str, scope: Mapping[str, Any], source: str = "template"
    ) -> str:
        """Render a ``.j2`` file body (``{{ }}`` / ``{% %}`` delimiters)."""
        import jinja2

        key = "file\0" + text
        compiled = self._cache.get(key)
        if compiled is None:
            try:
                compiled = self.file_env.from_string(text)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(
                    f"bad template syntax: {exc.message}; fix the template",
                    Location(source, exc.lineno),
                ) from None
            self._cache[key] = compiled
        context = compiled.new_context(vars=_with_globals(scope, compiled), shared=True)
        try:
            return str(compiled.environment.concat(compiled.root_render_func(context)))
        except Exception as exc:
            line = _template_line(compiled, exc)
            error = self._runtime_error(exc, text, Location(source, line))
            # For files the whole text is not worth quoting: say the file and line.
            message = error.problem.replace(repr(_shown(text)), "the template")
            raise TemplateError(message, Location(source, line)) from None


def _template_line(compiled: Any, exc: BaseException) -> Optional[int]:
    """The template line an exception was raised at (from Jinja's debug info)."""
    tb = exc.__traceback__
    line: Optional[int] = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = compiled.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _with_globals(scope: Mapping[str, Any], compiled: Any) -> Any:
    """The scope with the environment's globals (range, plugin globals) below it."""
    return collections.ChainMap(scope, compiled.globals)  # type: ignore[arg-type]


# -- the fast path: plain variable references need no Jinja at all ------------------

_SLOW: Any = object()
_SIMPLE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\s*\Z")
_SPAN = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def _is_simple(text: str) -> bool:
    """True when every template in ``text`` is a plain (dotted) variable name."""
    if "${%" in text or "${#" in text:
        return False
    parts = _SPAN.split(text)
    return all(_SIMPLE.match(expr) for expr in parts[1::2]) and not any(
        "${" in literal for literal in parts[0::2]
    )


def _lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """``a.b.c`` read from mappings as Jinja would, or _SLOW when unsure.

    Anything unusual (a missing name, an attribute of a non-mapping, a key
    shadowed by a method) goes to Jinja, which also writes the error.
    """
    names = path.split(".")
    if names[0] not in scope:
        return _SLOW
    value = scope[names[0]]
    for name in names[1:]:
        if (
            isinstance(value, Mapping)
            and not hasattr(type(value), name)
            and name in value
        ):
            value = value[name]
        else:
            return _SLOW
    return value


def _fast_render(text: str, scope: Mapping[str, Any]) -> Any:
    """Render ``text`` without Jinja when it only references variables."""
    if not _is_simple(text):
        return _SLOW
    parts = _SPAN.split(text)
    if len(parts) == 3 and not parts[0] and not parts[2]:
        return _lookup(parts[1].strip(), scope)
    out: list[str] = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            out.append(part)
            continue
        value = _lookup(part.strip(), scope)
        if value is _SLOW:
            return _SLOW
        out.append(str(value))
    return "".join(out)


def _strip_marks(text: str) -> str:
    single = _SINGLE.match(text)
    if single and text.count("${{") == 1:
        return single.group(1)
    return text


def _plain(value: Any) -> Any:
    """Jinja's Markup and similar str subclasses become plain strings."""
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    return value


_templars: weakref.WeakKeyDictionary[PluginManager, dict[tuple[bool, int], Templar]] = (
    weakref.WeakKeyDictionary()
)
_templars_lock = threading.Lock()


def get_templar(
    *, sandboxed: bool = False, plugin_manager: Optional[PluginManager] = None
) -> Templar:
    """The cached :class:`Templar` for a plugin manager (default: the process one)."""
    if plugin_manager is None:
        from tenfra.pluginmanager import get_plugin_manager

        plugin_manager = get_plugin_manager()
    # Plugins registered later (site plugins of a repository or a release) may
    # add filters and globals: a new plugin count gets a new Templar.
    key = (sandboxed, len(plugin_manager.infos))
    with _templars_lock:
        per_manager = _templars.setdefault(plugin_manager, {})
        templar = per_manager.get(key)
        if templar is None:
            templar = Templar(
                sandboxed=sandboxed,
                filters=dict(plugin_manager.template_filters.items()),
                globals_=dict(plugin_manager.template_globals.items()),
            )
            per_manager[key] = templar
    return templar
