"""A small real Context over a temporary folder, for resource-type tests."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import jinja2
import pytest

from tenfra.errors import TaskError, TemplateError
from tenfra.pluginmanager import PluginInfo, PluginManager
from tenfra.resource import Result

MODULES = ("files", "commands", "system", "network")


class LocalContext:
    """Implements :class:`tenfra.resource.Context` without the engine.

    Assets live in ``<root>/recipe/assets``, state in ``<root>/state``; Jinja2
    renders with StrictUndefined over ``vars`` and ``facts``.
    """

    def __init__(
        self,
        root: Path,
        *,
        check: bool = False,
        diff: bool = True,
        sensitive: bool = False,
        timeout: Optional[float] = None,
        facts: Optional[Mapping[str, Any]] = None,
        vars: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.host = "test-host"
        self.check = check
        self.diff = diff
        self.sensitive = sensitive
        self.timeout = timeout
        self.recipe_id = "case"
        self.recipe_dir = root / "recipe"
        self.state_dir = root / "state"
        self.recipe_dir.joinpath("assets").mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log = logging.LoggerAdapter(
            logging.getLogger("tenfra.tests"), {"host": self.host}
        )
        self._assets_root = os.path.realpath(self.recipe_dir / "assets")
        self._facts = dict(facts or {})
        self._vars = dict(vars or {})

    @property
    def facts(self) -> Mapping[str, Any]:
        return self._facts

    @property
    def vars(self) -> Mapping[str, Any]:
        return self._vars

    def asset(self, name: str) -> Path:
        root = self._assets_root
        text = os.path.normpath(os.path.join(root, name))
        if text != root and not text.startswith(root + os.sep):
            raise TaskError(f"The asset name {name!r} leaves the assets folder.")
        path = Path(text)
        if not os.path.exists(text):
            raise TaskError(
                f"The asset {name!r} does not exist in {str(root)!r}; add it to "
                "the recipe's assets/ folder."
            )
        return path

    def _scope(self, extra: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        return {"facts": self._facts, **self._vars, **(extra or {})}

    def render_text(self, text: str, extra: Optional[Mapping[str, Any]] = None) -> str:
        env = jinja2.Environment(
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        try:
            return env.from_string(text).render(self._scope(extra))
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"undefined variable: {exc.message}") from None

    def render(self, value: Any, extra: Optional[Mapping[str, Any]] = None) -> Any:
        return value

    def evaluate(
        self, expression: str, extra: Optional[Mapping[str, Any]] = None
    ) -> Any:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        return env.compile_expression(expression)(**self._scope(extra))

    def run_tasks(
        self, tasks: list[Any], extra: Optional[Mapping[str, Any]] = None
    ) -> Result:
        raise NotImplementedError("nested tasks need the engine")

    def run_recipe(self, recipe_id: str, inputs: Mapping[str, Any]) -> Result:
        raise NotImplementedError("recipes need the engine")

    def set_vars(self, values: Mapping[str, Any]) -> None:
        self._vars.update(values)

    def exit_recipe(self, message: Optional[str] = None) -> None:
        raise NotImplementedError("exit needs the engine")


def build_manager() -> PluginManager:
    """A plugin manager with only the built-in resource-type modules of this suite."""
    import importlib

    manager = PluginManager(load_entry_points=False)
    for name in MODULES:
        module = importlib.import_module(f"tenfra.plugins.{name}")
        manager.register(
            module,
            PluginInfo(
                name=name,
                version="test",
                origin="builtin",
                distribution="tenfra",
                entry_point=None,
                module=module.__name__,
            ),
        )
    return manager


@pytest.fixture(scope="session")
def manager() -> PluginManager:
    return build_manager()


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., LocalContext]:
    def make(**kwargs: Any) -> LocalContext:
        return LocalContext(tmp_path / "ctx", **kwargs)

    return make
