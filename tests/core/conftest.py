"""Fixtures for engine tests: a recipes folder, a plugin manager, a run helper.

The plugin manager loads the real built-in plugins (entry points) plus two
small resource types defined here: ``touch`` (a converging file writer) and
``record`` (appends to a list so tests can see what ran, and in which order).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Optional

import attrs
import pytest

from tenfra import hookimpl
from tenfra.pluginmanager import PluginInfo, PluginManager
from tenfra.recipe import RecipeSet
from tenfra.report import RunReport, TaskReport
from tenfra.resource import Context, ResourceType, Result, option

CALLS: list[Any] = []


@attrs.frozen(kw_only=True)
class TouchOptions:
    path: str = option("The file.")
    content: str = option("Its content.", default="")


class Touch(ResourceType):
    """Write ``content`` to ``path`` when it differs (test resource)."""

    name = "touch"
    Options = TouchOptions
    free_form = "path"

    def apply(self, options: TouchOptions, ctx: Context) -> Result:
        path = Path(options.path)
        current = path.read_text() if path.exists() else None
        if current == options.content:
            return Result.ok({"path": options.path})
        diff = f"-{current}\n+{options.content}\n" if ctx.diff else None
        if not ctx.check:
            path.write_text(options.content)
        return Result.changed(
            {"path": options.path, "content": options.content},
            diff=diff,
            check=ctx.check,
        )


@attrs.frozen(kw_only=True)
class RecordOptions:
    value: Any = option("What to record.", default=None)
    status: str = option("The status to return.", default="ok")
    count: int = option("An integer option (for shorthand typing).", default=0)
    ratio: float = option("A number option.", default=0.0)
    flag: bool = option("A boolean option.", default=False)
    names: list[str] = option("A list option.", factory=list)
    label: Optional[str] = option("An optional string.", default=None)


class Record(ResourceType):
    """Append the options to ``CALLS`` and return ``status`` (test resource)."""

    name = "record"
    Options = RecordOptions
    free_form = "value"

    def apply(self, options: RecordOptions, ctx: Context) -> Result:
        CALLS.append(options.value)
        values = {"value": options.value, "options": attrs.asdict(options)}
        if options.status == "changed":
            return Result.changed(values, check=ctx.check)
        if options.status == "failed":
            return Result.failed(f"recorded failure {options.value}", values)
        ctx.log.info("recorded %s", options.value)
        return Result.ok(values, message=f"recorded {options.value}")


class _TestPlugin:
    @hookimpl
    def tenfra_add_resource_types(self, registry: Any) -> None:
        registry.add_resource_type(Touch)
        registry.add_resource_type(Record)

    @hookimpl
    def tenfra_add_template_filters(self, registry: Any) -> None:
        registry.add_template_filter("shout", lambda text: str(text).upper() + "!")

    @hookimpl
    def tenfra_add_template_globals(self, registry: Any) -> None:
        registry.add_template_global("answer", 42)


@pytest.fixture
def engine_pm() -> PluginManager:
    """Real built-in plugins plus the test resource types."""
    pm = PluginManager()
    pm.register(
        _TestPlugin(),
        PluginInfo(
            name="engine-tests",
            version="0",
            origin="package",
            distribution=None,
            entry_point=None,
            module=__name__,
        ),
    )
    return pm


class EngineKit:
    """Writes recipes under ``tmp/recipes`` and runs them through the engine."""

    def __init__(self, root: Path, pm: PluginManager) -> None:
        self.root = root
        self.recipes = root / "recipes"
        self.recipes.mkdir(parents=True, exist_ok=True)
        self.state = root / "state"
        self.pm = pm
        self.calls = CALLS
        CALLS.clear()

    def write(self, recipe_id: str, text: str) -> Path:
        path = self.recipes / f"{recipe_id}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def recipe_set(self) -> RecipeSet:
        return RecipeSet(self.recipes, plugin_manager=self.pm)

    def run(self, *recipe_ids: str, **kwargs: Any) -> RunReport:
        from tenfra.engine import run_recipes

        kwargs.setdefault("host", "web-1")
        kwargs.setdefault("state_dir", self.state)
        return run_recipes(self.recipe_set(), list(recipe_ids or ["main"]), **kwargs)


def flat(report: RunReport) -> list[TaskReport]:
    """Every task report of a run, depth first."""
    found: list[TaskReport] = []

    def walk(tasks: list[TaskReport]) -> None:
        for task in tasks:
            found.append(task)
            walk(task.children)

    for recipe in report.recipes:
        walk(recipe.tasks)
    return found


@pytest.fixture
def kit(
    tmp_path: Path, engine_pm: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> EngineKit:
    """Recipes in ``tmp_path/recipes``; the working folder is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return EngineKit(tmp_path, engine_pm)


EngineKit.flat = staticmethod(flat)  # type: ignore[attr-defined]


def _recipes_tasks(report: RunReport) -> list[tuple[str, str]]:
    """(name, status) of the top-level tasks of the first recipe."""
    return [(t.name, t.status.value) for t in report.recipes[0].tasks]


EngineKit.recipes_tasks = staticmethod(_recipes_tasks)  # type: ignore[attr-defined]
