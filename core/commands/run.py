"""``tenfra run`` (apply recipes on this machine) and ``tenfra check`` (validate)."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any, Optional

import click

from tenfra.errors import EXIT_FAILED, EXIT_USER, TenfraError, UsageError, UserError

logger = logging.getLogger(__name__)

STATUS_COLORS = {
    "ok": "green",
    "changed": "yellow",
    "would-change": "yellow",
    "skipped": "cyan",
    "failed": "red",
    "unknown": "magenta",
}


# -- helpers shared by run and check -------------------------------------------------


def find_recipes_root(path: Path) -> Path:
    """The recipes folder a recipe file belongs to: the nearest ``recipes`` above."""
    for parent in path.resolve().parents:
        if parent.name == "recipes":
            return parent
    return path.resolve().parent


def resolve_recipe(
    recipe: str, recipes_dir: Optional[Path]
) -> tuple[Path, Optional[str], Optional[Path]]:
    """``(recipes root, recipe id, recipe file)`` for an id or a path.

    An argument naming an existing ``.yaml``/``.yml`` file is a path; anything
    else is an id under ``recipes_dir`` (default ``./recipes``).
    """
    from tenfra.recipe import RECIPE_SUFFIXES, recipe_id_for

    candidate = Path(recipe)
    if candidate.suffix in RECIPE_SUFFIXES and candidate.is_file():
        if recipes_dir is not None and _inside(candidate, recipes_dir):
            root = recipes_dir.resolve()
        else:
            root = find_recipes_root(candidate)
        relative = candidate.resolve().relative_to(root)
        return root, recipe_id_for(relative), candidate
    if candidate.suffix in RECIPE_SUFFIXES and ("/" in recipe or candidate.exists()):
        raise UsageError(f"{recipe}: no such recipe file; check the path.")
    root = (recipes_dir or Path("recipes")).resolve()
    return root, recipe, None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def parse_extra_vars(values: tuple[str, ...]) -> dict[str, Any]:
    """``-e key=value`` (a YAML 1.2 value) and ``-e @file.yaml`` (a mapping)."""
    from tenfra.yamlio import load_yaml, load_yaml_file, to_plain

    merged: dict[str, Any] = {}
    for raw in values:
        if raw.startswith("@"):
            data = to_plain(load_yaml_file(raw[1:]))
            if not isinstance(data, dict):
                raise UsageError(
                    f"-e {raw}: the file must hold a mapping of variables."
                )
            merged.update(data)
            continue
        key, sep, text = raw.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"-e {raw!r}: expected key=value (or @file.yaml); for example "
                "-e port=8080."
            )
        if text == "":
            merged[key] = ""
            continue
        try:
            value = to_plain(load_yaml(text, f"-e {key}"))
        except TenfraError:
            value = text
        merged[key] = value if value is not None or text in ("null", "~") else text
    return merged


def load_site_plugins(repo: Path) -> None:
    from tenfra.pluginmanager import get_plugin_manager

    folder = repo / "plugins"
    if folder.is_dir():
        get_plugin_manager().load_site_plugins(folder)


def _status_text(status: str) -> str:
    return click.style(f"{status:<12}", fg=STATUS_COLORS.get(status), bold=True)


def _print_task(report: Any, depth: int, *, show_diff: bool) -> None:
    indent = "  " * (depth + 1)
    status = report.status.value
    click.echo(
        f"{indent}{_status_text(status)} {report.name}  ({report.duration:.3f} s)"
    )
    note = report.error
    if note is None and report.type == "debug" and status != "skipped":
        note = report.message
    if note:
        for line in str(note).splitlines() or [""]:
            click.echo(f"{indent}{' ' * 13}{line}")
    if show_diff and report.diff:
        for line in report.diff.splitlines():
            color = (
                "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else None
            )
            click.echo(f"{indent}{' ' * 13}" + click.style(line, fg=color))
    for child in report.children:
        _print_task(child, depth + 1, show_diff=show_diff)


def _summary(report: Any, elapsed: float) -> str:
    counts = report.counts()
    shown = ["ok", "changed", "failed", "skipped"]
    if report.check:
        shown = ["ok", "would-change", "unknown", "failed", "skipped"]
    parts = " ".join(f"{name}={counts.get(name, 0)}" for name in shown)
    mode = " (check mode)" if report.check else ""
    return f"{report.host}: {parts} in {elapsed:.2f} s{mode}"


# -- tenfra run ----------------------------------------------------------------------


@click.command()
@click.argument("recipes", nargs=-1, required=True, metavar="RECIPE...")
@click.option("--host", help="The host name to run as (default: this machine's).")
@click.option(
    "--inventory",
    "-i",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory file (default: ./inventory.yaml when it exists).",
)
@click.option(
    "--recipes",
    "recipes_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The recipes folder (default: ./recipes).",
)
@click.option(
    "-e",
    "--extra-vars",
    multiple=True,
    metavar="KEY=VALUE",
    help="A variable of the highest precedence (a YAML value); @file.yaml for many.",
)
@click.option("--check", is_flag=True, help="Dry run: report what would change.")
@click.option("--diff", is_flag=True, help="Show the diff of every change.")
@click.option(
    "--tags",
    "-t",
    multiple=True,
    help="Run only tasks with this tag (repeat or separate with commas).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="tenfra's local state folder (default: $TENFRA_STATE_DIR or "
    "~/.local/state/tenfra).",
)
def run(  # noqa: PLR0917  (click passes options as arguments)
    recipes: tuple[str, ...],
    host: Optional[str],
    inventory: Optional[Path],
    recipes_dir: Optional[Path],
    extra_vars: tuple[str, ...],
    check: bool,
    diff: bool,
    tags: tuple[str, ...],
    as_json: bool,
    state_dir: Optional[Path],
) -> None:
    """Run RECIPE (an id under the recipes folder, or a recipe file) here.

    Prints one line per task (status, name, duration), the diff with --diff,
    and a summary.  Exits 1 when a task failed.
    """
    from tenfra.engine import run_recipes
    from tenfra.recipe import RecipeSet
    from tenfra.report import Status, report_to_json

    start = time.perf_counter()
    roots: set[Path] = set()
    ids: list[str] = []
    files: dict[str, Path] = {}
    for argument in recipes:
        root, recipe_id, path = resolve_recipe(argument, recipes_dir)
        roots.add(root)
        if recipe_id is not None:
            ids.append(recipe_id)
        if path is not None and recipe_id is not None:
            files[recipe_id] = path
    if len(roots) > 1:
        raise UsageError(
            "the recipes given belong to different recipes folders; run them "
            "separately."
        )
    root = roots.pop()
    repo = root.parent
    load_site_plugins(repo)
    recipe_set = RecipeSet(root)
    for recipe_id in ids:
        if recipe_id not in recipe_set:
            recipe_set.get(recipe_id)  # raises the "no recipe" error
    recipe_set.closure(ids)

    host_name = host or socket.gethostname()
    layers: list[tuple[str, Any]] = []
    groups: list[str] = []
    inventory_path = inventory
    if inventory_path is None:
        for candidate in (Path("inventory.yaml"), repo / "inventory.yaml"):
            if candidate.is_file():
                inventory_path = candidate
                break
    if inventory_path is not None:
        from tenfra.inventory import load_inventory
        from tenfra.variables import host_groups

        inv = load_inventory(inventory_path)
        if host_name in inv:
            layers = list(inv.var_layers(host_name))
            groups = host_groups(inv, host_name)
        elif host is not None:
            raise UserError(
                f"{inventory_path}: host {host_name!r} is not in the inventory; "
                "pass --host NAME with one of its hosts, or --inventory another "
                "file."
            )
        else:
            logger.warning(
                "this machine (%s) is not in %s; running without inventory vars "
                "(pass --host NAME to run as one of its hosts)",
                host_name,
                inventory_path,
            )

    split_tags = [t.strip() for raw in tags for t in raw.split(",") if t.strip()]

    header: list[str] = []
    if not as_json:
        mode = " (check mode)" if check else ""
        header.append(f"{host_name}: running {', '.join(ids)}{mode}")

    def print_header() -> None:
        # Printed once the inputs are known good: bad input exits 2 without it.
        while header:
            click.echo(header.pop())

    def on_task(report: Any, depth: int) -> None:
        if depth == 0 and not as_json:
            print_header()
            _print_task(report, 0, show_diff=diff)

    report = run_recipes(
        recipe_set,
        ids,
        host=host_name,
        var_layers=layers,
        groups=groups,
        extra_vars=parse_extra_vars(extra_vars),
        check=check,
        diff=diff,
        tags=split_tags,
        state_dir=state_dir,
        on_task=on_task,
        raise_input_errors=True,
    )
    print_header()
    elapsed = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps(report_to_json(report), indent=2, sort_keys=True))
    else:
        click.echo(_summary(report, elapsed))
        for recipe_report in report.recipes:
            if recipe_report.error:
                click.secho(f"tenfra: error: {recipe_report.error}", err=True, fg="red")
    if report.status is Status.FAILED:
        sys.exit(EXIT_FAILED)


# -- tenfra check --------------------------------------------------------------------


@click.command()
@click.argument(
    "paths", nargs=-1, type=click.Path(exists=True, path_type=Path), metavar="PATH..."
)
def check(paths: tuple[Path, ...]) -> None:
    """Validate recipes, test suites and inventories without running anything.

    PATH is a repository (with recipes/, inventory.yaml, *.test.yaml), a
    recipes folder, or single files.  Default: the current folder.
    """
    checker = _Checker()
    for path in paths or (Path("."),):
        checker.path(path)
    for problem in checker.problems:
        click.secho(f"tenfra: error: {problem}", err=True, fg="red")
    summary = (
        f"checked {checker.counts['recipe']} recipes, {checker.counts['suite']} test "
        f"suites, {checker.counts['inventory']} inventories"
    )
    if checker.problems:
        click.echo(f"{summary}: {len(checker.problems)} problems")
        sys.exit(EXIT_USER)
    click.echo(f"{summary}: no problems")


class _Checker:
    """Collects every problem instead of stopping at the first one."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.counts = {"recipe": 0, "suite": 0, "inventory": 0}
        self._plugins_loaded: set[Path] = set()

    def _attempt(self, kind: str, function: Any, *args: Any) -> None:
        try:
            function(*args)
        except (UserError, TenfraError) as exc:
            self.problems.append(str(exc))
        self.counts[kind] += 1

    def _plugins(self, repo: Path) -> None:
        repo = repo.resolve()
        if repo not in self._plugins_loaded:
            self._plugins_loaded.add(repo)
            try:
                load_site_plugins(repo)
            except TenfraError as exc:
                self.problems.append(str(exc))

    def path(self, path: Path) -> None:
        if path.is_dir():
            self.folder(path)
        elif path.name.endswith((".test.yaml", ".test.yml")):
            self._attempt("suite", _check_suite, path)
        elif path.name in ("inventory.yaml", "inventory.yml"):
            self._attempt("inventory", _check_inventory, path)
        else:
            root = find_recipes_root(path)
            self._plugins(root.parent)
            self.recipe_file(root, path)

    def folder(self, folder: Path) -> None:
        recipes = folder / "recipes"
        if recipes.is_dir():
            self._plugins(folder)
            self.recipes(recipes)
        elif folder.resolve().name == "recipes" or not (
            (folder / "inventory.yaml").is_file()
        ):
            self._plugins(folder.parent)
            self.recipes(folder)
        for name in ("inventory.yaml", "inventory.yml"):
            if (folder / name).is_file():
                self._attempt("inventory", _check_inventory, folder / name)
        for suite in _suites(folder):
            self._attempt("suite", _check_suite, suite)

    def recipes(self, root: Path) -> None:
        from tenfra.recipe import RecipeSet

        try:
            recipe_set = RecipeSet(root)
        except TenfraError as exc:
            self.problems.append(str(exc))
            return
        for recipe_id in recipe_set.ids():
            self._attempt("recipe", _check_recipe, recipe_set, recipe_id)

    def recipe_file(self, root: Path, path: Path) -> None:
        from tenfra.recipe import RecipeSet, recipe_id_for

        try:
            recipe_set = RecipeSet(root)
        except TenfraError as exc:
            self.problems.append(str(exc))
            return
        recipe_id = recipe_id_for(path.resolve().relative_to(root))
        self._attempt("recipe", _check_recipe, recipe_set, recipe_id)


def _check_recipe(recipe_set: Any, recipe_id: str) -> None:
    recipe_set.get(recipe_id)
    recipe_set.closure([recipe_id])


def _check_inventory(path: Path) -> None:
    from tenfra.inventory import load_inventory

    load_inventory(path)


def _check_suite(path: Path) -> None:
    try:
        from tenfra.testsuite import load_suite
    except ImportError:  # pragma: no cover - the module ships with tenfra
        return
    load_suite(path)


def _suites(folder: Path) -> list[Path]:
    try:
        from tenfra.testsuite import discover
    except ImportError:  # pragma: no cover
        return []
    return list(discover([folder]))
