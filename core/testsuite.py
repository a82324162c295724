"""Test suites (``*.test.yaml``): model, discovery, runner contract and execution.

A suite names one or more runners and a list of tests.  Each test applies a
recipe (or inline tasks) on a machine the runner provides, applies it again to
prove idempotence, optionally alters a managed file to prove the recipe repairs
exactly that drift, and checks assertions.  The work on the machine happens in
one process per test, started with ``python3 -m tenfra.testsuite JOB.json``
(see :func:`machine_main`); it prints one JSON result line that the host reads
back.  Runners are plugins registered through ``tenfra_add_test_runners``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import (
    Any,
    Callable,
    ClassVar,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    Union,
)

import attrs

from tenfra.convert import structure
from tenfra.errors import Location, TenfraError, UserError, ValidationError
from tenfra.yamlio import PathItem, load_yaml_file, locate, to_plain

logger = logging.getLogger(__name__)

SUITE_SUFFIX = ".test.yaml"
DEFAULT_TIMEOUT = 900.0
RESULT_MARKER = "TENFRA-TEST-RESULT "
GENERATED_DIR = "_tenfra_tests"  # inline tasks become recipes under this folder
WORKDIR = "/tenfra-test"  # where container runners put the bundle
LABEL = "tenfra.test"  # every container a runner starts carries this label
RUN_LABEL = "tenfra.run"  # ... and this one with the run id
PYTHON_FIX = (
    "use an image with python3, e.g. localhost/tenfra-test:bookworm, or install "
    "python3 in the Containerfile"
)
_SKIP_DIRS = {".git", ".tox", ".venv", "node_modules", "__pycache__", "build"}


# -- the suite model -------------------------------------------------------------------


def _doc(description: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: the description used by docs and ``tenfra schema``."""
    return {"description": description, **extra}


@attrs.frozen(kw_only=True)
class MockSpec:
    """A fixed result the engine returns instead of applying a resource."""

    type: str = attrs.field(
        metadata=_doc("The resource type to replace, such as ``package``.")
    )
    task: Optional[str] = attrs.field(
        default=None,
        metadata=_doc("Only the task with this name; default: every task of the type."),
    )
    status: str = attrs.field(
        default="ok",
        metadata=_doc("The status to report: ok, changed, skipped or failed."),
    )
    values: dict[str, Any] = attrs.field(
        factory=dict,
        metadata=_doc("Result values later tasks can read through ``out``."),
    )
    message: Optional[str] = attrs.field(
        default=None,
        metadata=_doc("A note for the report (the error text when failed)."),
    )


MOCK_STATUSES = ("ok", "changed", "skipped", "failed")


@attrs.frozen(kw_only=True)
class AssertSpec:
    """One assertion; exactly one of ``that``, ``file``, ``command``, ``task``."""

    that: Optional[str] = attrs.field(
        default=None,
        metadata=_doc(
            "An expression over ``report``, ``second``, ``tasks`` and ``vars``."
        ),
    )
    file: Optional[str] = attrs.field(
        default=None, metadata=_doc("A path on the machine to check.")
    )
    exists: bool = attrs.field(
        default=True, metadata=_doc("With ``file``: whether it must exist.")
    )
    contains: Optional[str] = attrs.field(
        default=None, metadata=_doc("With ``file``: text it must contain.")
    )
    equals: Optional[str] = attrs.field(
        default=None, metadata=_doc("With ``file``: its exact content.")
    )
    mode: Optional[str] = attrs.field(
        default=None,
        metadata=_doc("With ``file``: its octal mode, such as ``'0644'``."),
    )
    command: Optional[str] = attrs.field(
        default=None, metadata=_doc("A shell command to run on the machine.")
    )
    rc: int = attrs.field(
        default=0, metadata=_doc("With ``command``: the expected exit code.")
    )
    stdout_contains: Optional[str] = attrs.field(
        default=None,
        metadata=_doc("With ``command``: text its standard output must contain."),
    )
    task: Optional[str] = attrs.field(
        default=None, metadata=_doc("The name of a task of the first run to check.")
    )
    status: Optional[str] = attrs.field(
        default=None, metadata=_doc("With ``task``: its expected status.")
    )
    message: Optional[str] = attrs.field(
        default=None,
        metadata=_doc("Shown instead of the generated text when the assertion fails."),
    )


ASSERT_KINDS = ("that", "file", "command", "task")


@attrs.frozen(kw_only=True)
class DriftSpec:
    """Alter a managed file after the runs; the next run must repair only that."""

    file: str = attrs.field(metadata=_doc("The managed file to alter on the machine."))
    content: Optional[str] = attrs.field(
        default=None,
        metadata=_doc("Write this content instead (default: append a line)."),
    )
    remove: bool = attrs.field(
        default=False, metadata=_doc("Delete the file instead of changing it.")
    )
    task: Optional[str] = attrs.field(
        default=None, metadata=_doc("The name of the task expected to repair it.")
    )


@attrs.frozen(kw_only=True)
class TestSpec:
    """One test of a suite."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str = attrs.field(metadata=_doc("The test's name, unique in the suite."))
    recipe: Optional[str] = attrs.field(
        default=None,
        metadata=_doc(
            "The id of the recipe to apply (its path under recipes/, no extension)."
        ),
    )
    tasks: Optional[list[Any]] = attrs.field(
        default=None, metadata=_doc("Inline tasks to apply instead of a recipe.")
    )
    inputs: dict[str, Any] = attrs.field(
        factory=dict, metadata=_doc("Inputs of the recipe.")
    )
    vars: dict[str, Any] = attrs.field(
        factory=dict, metadata=_doc("Vars for this test (highest precedence).")
    )
    mocks: list[MockSpec] = attrs.field(
        factory=list, metadata=_doc("Resources replaced by a fixed result.")
    )
    assert_: list[AssertSpec] = attrs.field(
        factory=list, metadata=_doc("Assertions checked after the runs.", key="assert")
    )
    idempotence: Optional[bool] = attrs.field(
        default=None,
        metadata=_doc(
            "Apply twice; the second run must change nothing (default: the suite's)."
        ),
    )
    drift: Optional[DriftSpec] = attrs.field(
        default=None, metadata=_doc("An optional drift check.")
    )
    skip: Optional[str] = attrs.field(
        default=None, metadata=_doc("Skip this test, giving the reason.")
    )
    timeout: Optional[float] = attrs.field(
        default=None,
        metadata=_doc("Seconds this test may take (default: the suite's)."),
    )


@attrs.frozen(kw_only=True)
class SuiteSpec:
    """The YAML document of a ``*.test.yaml`` file."""

    name: Optional[str] = attrs.field(
        default=None, metadata=_doc("The suite's name (default: the file name).")
    )
    runner: Any = attrs.field(
        default="local",
        metadata=_doc(
            "A runner name, ``{name: ..., options...}``, or a list of those."
        ),
    )
    recipes: Optional[str] = attrs.field(
        default=None,
        metadata=_doc(
            "The recipes folder, relative to this file (default: the nearest "
            "recipes/ folder above it)."
        ),
    )
    clean: bool = attrs.field(
        default=False, metadata=_doc("A fresh machine for every test.")
    )
    idempotence: bool = attrs.field(
        default=True,
        metadata=_doc("Apply every test twice; the second run must change nothing."),
    )
    timeout: float = attrs.field(
        default=DEFAULT_TIMEOUT, metadata=_doc("Seconds each test may take.")
    )
    vars: dict[str, Any] = attrs.field(
        factory=dict, metadata=_doc("Vars for every test.")
    )
    before_all: list[Any] = attrs.field(
        factory=list,
        metadata=_doc("Tasks run on each new machine before its first test."),
    )
    after_all: list[Any] = attrs.field(
        factory=list, metadata=_doc("Tasks run on each machine after its last test.")
    )
    before_each: list[Any] = attrs.field(
        factory=list, metadata=_doc("Tasks run before every test.")
    )
    after_each: list[Any] = attrs.field(
        factory=list, metadata=_doc("Tasks run after every test.")
    )
    tests: list[TestSpec] = attrs.field(metadata=_doc("The tests."))


@attrs.frozen(kw_only=True)
class RunnerChoice:
    """A runner of a suite and its validated options."""

    name: str
    options: Any
    location: Location


@attrs.frozen(kw_only=True)
class Suite:
    """A loaded, validated test suite."""

    path: Path
    name: str
    spec: SuiteSpec
    runners: list[RunnerChoice]
    recipes_dir: Optional[Path]
    root: Any  # the ruamel document, for positions

    @property
    def tests(self) -> list[TestSpec]:
        return self.spec.tests

    def location(self, path: Sequence[PathItem]) -> Location:
        return locate(self.root, path, str(self.path))

    def test_location(self, index: int) -> Location:
        return self.location(("tests", index))


def runner_registry() -> Any:
    """The ``test runner`` registry of the process-wide plugin manager."""
    from tenfra.pluginmanager import get_plugin_manager

    return get_plugin_manager().test_runners


def load_suite(path: Union[str, Path]) -> Suite:
    """Load and validate one suite file; errors name ``file:line:col``."""
    suite_path = Path(path)
    source = str(suite_path)
    root = load_yaml_file(suite_path)
    if not isinstance(root, dict):
        raise ValidationError(
            "a test suite must be a mapping with 'runner' and 'tests'; see "
            "docs/testing.md",
            Location(source, 1, 1),
        )
    spec = structure(root, SuiteSpec, source=source, what="the test suite")
    name = spec.name or suite_path.name.removesuffix(SUITE_SUFFIX).removesuffix(".yaml")
    runners = _load_runners(spec.runner, root, source)
    recipes_dir = _recipes_dir(spec, suite_path, root, source)
    _check_tests(spec, root, source, recipes_dir)
    _check_inline_tasks(spec, root, source)
    return Suite(
        path=suite_path,
        name=name,
        spec=spec,
        runners=runners,
        recipes_dir=recipes_dir,
        root=root,
    )


def _load_runners(value: Any, root: Any, source: str) -> list[RunnerChoice]:
    items = value if isinstance(value, list) else [value]
    base: tuple[PathItem, ...] = ("runner",)
    if not items:
        raise ValidationError(
            "'runner' is an empty list; name at least one runner, e.g. local",
            locate(root, base, source),
        )
    choices = []
    for index, item in enumerate(items):
        path = (*base, index) if isinstance(value, list) else base
        choices.append(parse_runner(item, root, source, path))
    names = [choice.name for choice in choices]
    for name in names:
        if names.count(name) > 1:
            raise ValidationError(
                f"runner {name!r} is listed twice; list each runner once",
                locate(root, base, source),
            )
    return choices


def parse_runner(
    item: Any, root: Any, source: str, path: Sequence[PathItem]
) -> RunnerChoice:
    """Validate one runner entry (a name, or a mapping with ``name`` and options)."""
    location = locate(root, path, source)
    raw: dict[str, Any] = {}
    if isinstance(item, str):
        name = item
    elif isinstance(item, dict):
        given = item.get("name")
        if not isinstance(given, str):
            raise ValidationError(
                "a runner mapping needs 'name' (local, podman, docker...) next to "
                "its options",
                location,
            )
        name = given
        raw = {k: v for k, v in item.items() if k != "name"}
    else:
        raise ValidationError(
            "'runner' must be a runner name or a mapping with 'name' and options",
            location,
        )
    registry = runner_registry()
    cls = registry.get(name)
    if cls is None:
        known = ", ".join(registry) or "none"
        raise ValidationError(
            f"unknown runner {name!r}; known runners: {known}. Install the "
            "plugin that provides it, or check the spelling",
            location,
        )
    options = structure(
        raw,
        cls.Options,
        source=source,
        root=root,
        base_path=path,
        what=f"the options of runner {name!r}",
    )
    return RunnerChoice(name=name, options=options, location=location)


def _recipes_dir(
    spec: SuiteSpec, suite_path: Path, root: Any, source: str
) -> Optional[Path]:
    folder = suite_path.parent.resolve()
    if spec.recipes is not None:
        candidate = (folder / spec.recipes).resolve()
        if not candidate.is_dir():
            raise ValidationError(
                f"the recipes folder {spec.recipes!r} does not exist (looked for "
                f"{candidate}); fix the path, relative to this file",
                locate(root, ("recipes",), source),
            )
        return candidate
    for parent in (folder, *folder.parents):
        if (parent / "recipes").is_dir():
            return parent / "recipes"
        if (parent / ".git").exists():
            break
    return None


def recipe_file(recipes_dir: Path, recipe_id: str) -> Optional[Path]:
    """The file of recipe ``recipe_id`` (``id.yaml`` or ``id/main.yaml``)."""
    for candidate in (
        recipes_dir / f"{recipe_id}.yaml",
        recipes_dir / f"{recipe_id}.yml",
        recipes_dir / recipe_id / "main.yaml",
        recipes_dir / recipe_id / "main.yml",
    ):
        if candidate.is_file():
            return candidate
    return None


def _check_tests(
    spec: SuiteSpec, root: Any, source: str, recipes_dir: Optional[Path]
) -> None:
    if not spec.tests:
        raise ValidationError(
            "'tests' is empty; add at least one test", locate(root, ("tests",), source)
        )
    seen: dict[str, int] = {}
    for index, test in enumerate(spec.tests):
        here: tuple[PathItem, ...] = ("tests", index)
        if test.name in seen:
            raise ValidationError(
                f"two tests are named {test.name!r} (tests {seen[test.name] + 1} "
                f"and {index + 1}); give each test its own name",
                locate(root, (*here, "name"), source),
            )
        seen[test.name] = index
        if (test.recipe is None) == (test.tasks is None):
            raise ValidationError(
                f"test {test.name!r} needs exactly one of 'recipe' (a recipe id) "
                "or 'tasks' (inline tasks)",
                locate(root, here, source),
            )
        if test.recipe is not None:
            if recipes_dir is None:
                raise ValidationError(
                    f"test {test.name!r} names recipe {test.recipe!r} but no "
                    "recipes/ folder was found above this file; set 'recipes:' "
                    "in the suite",
                    locate(root, (*here, "recipe"), source),
                )
            if recipe_file(recipes_dir, test.recipe) is None:
                raise ValidationError(
                    f"recipe {test.recipe!r} not found in {recipes_dir} (looked for "
                    f"{test.recipe}.yaml and {test.recipe}/main.yaml); check the id",
                    locate(root, (*here, "recipe"), source),
                )
        if test.tasks is not None and not test.tasks:
            raise ValidationError(
                f"test {test.name!r} has an empty 'tasks' list; add tasks or use "
                "'recipe'",
                locate(root, (*here, "tasks"), source),
            )
        for number, mock in enumerate(test.mocks):
            if mock.status not in MOCK_STATUSES:
                raise ValidationError(
                    f"mock status {mock.status!r} is not one of "
                    f"{', '.join(MOCK_STATUSES)}",
                    locate(root, (*here, "mocks", number, "status"), source),
                )
        for number, check in enumerate(test.assert_):
            kinds = [k for k in ASSERT_KINDS if getattr(check, k) is not None]
            if kinds == ["task"] and check.status is None:
                raise ValidationError(
                    f"an assertion on task {check.task!r} needs 'status' (ok, "
                    "changed, skipped or failed)",
                    locate(root, (*here, "assert", number), source),
                )
            if len(kinds) != 1:
                got = ", ".join(kinds) if kinds else "none"
                raise ValidationError(
                    "an assertion needs exactly one of 'that', 'file', 'command' "
                    f"or 'task' (got {got}); split it into several assertions",
                    locate(root, (*here, "assert", number), source),
                )
        if test.timeout is not None and test.timeout <= 0:
            raise ValidationError(
                "'timeout' must be a positive number of seconds",
                locate(root, (*here, "timeout"), source),
            )


def _check_inline_tasks(spec: SuiteSpec, root: Any, source: str) -> None:
    """Validate inline task lists like recipe tasks, with positions in the suite."""
    from tenfra import recipe

    loader_class = getattr(recipe, "_Loader", None)
    if loader_class is None:  # the recipe module changed: validated on the machine
        return
    from tenfra.pluginmanager import get_plugin_manager

    loader = loader_class(source, root, get_plugin_manager())
    for key in ("beforeAll", "afterAll", "beforeEach", "afterEach"):
        if root.get(key):
            loader.tasks(root[key], (key,))
    for index, test in enumerate(spec.tests):
        if test.tasks is not None:
            loader.tasks(root["tests"][index]["tasks"], ("tests", index, "tasks"))


def discover(paths: Sequence[Union[str, Path]]) -> list[Path]:
    """Suite files under ``paths`` (files are taken as they are), sorted."""
    found: list[Path] = []
    for raw in paths or ["."]:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(
                    d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")
                )
                found.extend(
                    Path(dirpath) / f
                    for f in sorted(filenames)
                    if f.endswith(SUITE_SUFFIX)
                )
        else:
            raise UserError(
                f"{raw}: no such file or folder; pass test suite files "
                f"(*{SUITE_SUFFIX}) or folders holding them."
            )
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path, None)
    return list(unique)


# -- the runner contract ---------------------------------------------------------------


class Machine:
    """A machine a runner provides: somewhere to put files and run commands.

    ``python`` is the command that starts a Python with tenfra importable once
    :meth:`TestRunner.machine` has put the bundle in place; ``workdir`` is the
    folder the bundle goes to.
    """

    name: str = "machine"
    workdir: str = WORKDIR
    python: tuple[str, ...] = ("python3",)
    env: Mapping[str, str] = {}  # environment for every exec of tenfra

    def put(self, local: Path, remote: str) -> None:
        """Copy the contents of the local folder ``local`` into folder ``remote``."""
        raise NotImplementedError

    def exec(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> tuple[int, str, str]:
        """Run ``argv`` on the machine; return (exit code, stdout, stderr).

        Raises :class:`TimeoutError` when ``timeout`` seconds pass.
        """
        raise NotImplementedError

    def get(self, remote: str, local: Path) -> None:
        """Copy the file ``remote`` from the machine to ``local``."""
        raise NotImplementedError


class TestRunner:
    """Base class of test runners; register subclasses with ``add_test_runner``.

    Class attributes: ``name`` (the ``runner`` value in suites), ``Options``
    (a frozen attrs class of its options), ``needs_payload`` (True when the
    machine does not share this Python: the runner then receives the tenfra
    zipapp in the bundle and runs it with the machine's ``python3``).
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: ClassVar[str] = ""
    Options: ClassVar[type[Any]]
    needs_payload: ClassVar[bool] = True

    def __init__(self, options: Any, *, run_id: str, suite_dir: Path) -> None:
        self.options = options
        self.run_id = run_id
        self.suite_dir = suite_dir

    def prepare(self) -> None:
        """Work done once per ``tenfra test`` run before any machine (build images)."""

    def machine(self, label: str) -> contextlib.AbstractContextManager[Machine]:
        """A context manager that provides a fresh machine and always removes it."""
        raise NotImplementedError

    @classmethod
    def cleanup(cls, run_id: str) -> int:
        """Remove every machine left from run ``run_id``; return how many."""
        return 0


# -- the payload: tenfra for a machine without it --------------------------------------

_payload_lock = threading.Lock()
_payload_cache: dict[str, Path] = {}


def cache_root() -> Path:
    """tenfra's cache folder (``$TENFRA_CACHE_DIR`` or ``~/.cache/tenfra``)."""
    env = os.environ.get("TENFRA_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tenfra"


def _source_digest() -> str:
    """A hash of the running tenfra package's files (the payload's cache key)."""
    import tenfra

    digest = hashlib.sha256(tenfra.__version__.encode())
    folders: list[Path] = [Path(tenfra.__file__).parent]
    for sub in ("plugins", "agent"):
        module = sys.modules.get(f"tenfra.{sub}")
        if module is None:
            with contextlib.suppress(ImportError):
                module = __import__(f"tenfra.{sub}", fromlist=["_"])
        if module is not None and getattr(module, "__file__", None):
            folders.append(Path(str(module.__file__)).parent)
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    with contextlib.suppress(ImportError):
        from tenfra.agent import zipapp

        digest.update(repr(getattr(zipapp, "REQUIREMENTS", ())).encode())
    return digest.hexdigest()[:20]


def _prune_payloads(folder: Path, *, keep: Path, count: int = 4) -> None:
    """Keep the newest payloads only; each source change builds a new one."""
    found = sorted(
        (p for p in folder.glob("tenfra-*.pyz") if p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in found[count:]:
        with contextlib.suppress(OSError):
            old.unlink()


def build_payload(cache_dir: Optional[Path] = None) -> Path:
    """The tenfra zipapp for machines, built once and cached by content hash.

    It is the agent's zipapp (:func:`tenfra.agent.zipapp.build_zipapp`):
    tenfra, its entry points and its pure-Python dependencies.  The test
    runners start it as ``PYTHONPATH=payload.pyz python3 -m tenfra.testsuite``.
    """
    key = _source_digest()
    with _payload_lock:
        cached = _payload_cache.get(key)
        if cached is not None and cached.is_file():
            return cached
        folder = (cache_dir or cache_root()) / "test-payload"
        out = folder / f"tenfra-{key}.pyz"
        if not out.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            from tenfra.agent.zipapp import build_zipapp

            started = time.monotonic()
            partial = folder / f".tenfra-{key}-{uuid.uuid4().hex[:8]}.pyz"
            try:
                build_zipapp(partial)
                os.replace(partial, out)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
            logger.info(
                "built the test payload %s in %.1f s", out, time.monotonic() - started
            )
            _prune_payloads(folder, keep=out)
        _payload_cache[key] = out
        return out


# -- results ---------------------------------------------------------------------------

PASSED = "passed"
FAILED = "failed"
ERROR = "error"  # the machine or the runner broke, not the recipe
SKIPPED = "skipped"


@attrs.define(kw_only=True)
class TestOutcome:
    """What happened to one test under one runner."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    suite: str
    test: str
    runner: str
    status: str
    location: str
    problems: list[str] = attrs.Factory(list)
    second_changes: Optional[int] = None
    duration: float = 0.0
    output: str = ""  # standard error of the machine process, for JUnit
    phases: dict[str, Any] = attrs.Factory(dict)  # phase -> RunReport JSON

    @property
    def title(self) -> str:
        return f"{self.suite} > {self.test}"


@attrs.frozen(kw_only=True)
class Selection:
    """Which tests of which suites to run, and how."""

    suites: list[Suite]
    keyword: Sequence[str] = ()
    runner: Optional[str] = None  # run every suite under this runner only
    jobs: int = 1


def _selected(
    suite: Suite, test: TestSpec, runner: str, keyword: Sequence[str]
) -> bool:
    if not keyword:
        return True
    text = f"{suite.name}::{test.name}::{runner}".lower()
    return any(word.lower() in text for word in keyword)


# -- staging: what goes into a machine -------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _copy_ignore(_folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIP_DIRS}


class _Stage:
    """A local folder with everything a machine needs for some tests of a suite.

    Layout (the same on the machine, under its ``workdir``)::

        tenfra.pyz            the payload (runners that need it)
        repo/recipes/         the suite's recipes, plus generated ones
        repo/plugins/         the repository's site plugins, when present
        jobs/NNNN.json        one job per machine process (paths relative here)
    """

    def __init__(self, suite: Suite, payload: Optional[Path]) -> None:
        self.suite = suite
        self.folder = Path(tempfile.mkdtemp(prefix="tenfra-stage-"))
        self.recipes = self.folder / "repo" / "recipes"
        self.has_plugins = False
        if suite.recipes_dir is not None:
            shutil.copytree(suite.recipes_dir, self.recipes, ignore=_copy_ignore)
            plugins = suite.recipes_dir.parent / "plugins"
            if plugins.is_dir():
                shutil.copytree(
                    plugins, self.folder / "repo" / "plugins", ignore=_copy_ignore
                )
                self.has_plugins = True
        self.recipes.mkdir(parents=True, exist_ok=True)
        (self.folder / "jobs").mkdir()
        if payload is not None:
            shutil.copyfile(payload, self.folder / "tenfra.pyz")
        self.generated: dict[str, str] = {}  # recipe id -> what it stands for
        self._jobs = 0

    def inline(self, name: str, title: str, tasks: list[Any]) -> str:
        """Write inline tasks as a generated recipe; return its id."""
        recipe_id = f"{GENERATED_DIR}/{_slug(name)}"
        folder = self.recipes / GENERATED_DIR / _slug(name)
        if recipe_id in self.generated:
            return recipe_id
        folder.mkdir(parents=True, exist_ok=True)
        from tenfra.yamlio import dump_yaml

        text = dump_yaml({"name": title, "tasks": to_plain(tasks)})
        header = f"# Generated by tenfra test from {self.suite.path} ({title}).\n"
        (folder / "main.yaml").write_text(header + text, encoding="utf-8")
        test_assets = self.suite.path.parent / "test-assets"
        if test_assets.is_dir():
            shutil.copytree(test_assets, folder / "assets", ignore=_copy_ignore)
        self.generated[recipe_id] = title
        return recipe_id

    def job(self, data: dict[str, Any]) -> str:
        """Write a job file; return its path relative to the stage root."""
        self._jobs += 1
        name = f"jobs/{self._jobs:04d}.json"
        data = {
            "recipes": "repo/recipes",
            "plugins": "repo/plugins" if self.has_plugins else None,
            "state": "state",
            "source": str(self.suite.path),
            "generated": dict(self.generated),
            **data,
        }
        (self.folder / name).write_text(json.dumps(data, indent=1), encoding="utf-8")
        return name

    def tasks_job(self, key: str, tasks: list[Any]) -> Optional[str]:
        if not tasks:
            return None
        recipe_id = self.inline(key, f"{self.suite.name} {key}", tasks)
        return self.job({"kind": "tasks", "label": key, "run": [recipe_id]})

    def test_job(self, index: int, test: TestSpec) -> str:
        spec = self.suite.spec
        recipe_id = test.recipe
        if test.tasks is not None:
            recipe_id = self.inline(
                f"test-{index + 1}", f"{self.suite.name} > {test.name}", test.tasks
            )
        before = after = None
        if spec.before_each:
            before = self.inline(
                "before-each", f"{self.suite.name} beforeEach", spec.before_each
            )
        if spec.after_each:
            after = self.inline(
                "after-each", f"{self.suite.name} afterEach", spec.after_each
            )
        return self.job(
            {
                "kind": "test",
                "label": test.name,
                "recipe": recipe_id,
                "inline": test.tasks is not None,
                "before": before,
                "after": after,
                "inputs": to_plain(test.inputs),
                "vars": {**to_plain(spec.vars), **to_plain(test.vars)},
                "mocks": [attrs.asdict(m) for m in test.mocks],
                "idempotence": (
                    spec.idempotence if test.idempotence is None else test.idempotence
                ),
                "drift": attrs.asdict(test.drift) if test.drift is not None else None,
                "assert": [to_plain(attrs.asdict(a)) for a in test.assert_],
            }
        )

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# -- execution on the host -------------------------------------------------------------


class _Progress:
    """Thread-safe progress lines, printed as each test finishes."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total = total
        self.done = 0
        self.echo = echo
        self.lock = threading.Lock()

    def finished(self, outcome: TestOutcome) -> None:
        with self.lock:
            self.done += 1
            width = len(str(self.total))
            self.echo(
                f"[{self.done:>{width}}/{self.total}] {outcome.status.upper():<7} "
                f"{outcome.title} ({outcome.runner}, {outcome.duration:.1f} s)"
            )
            for problem in outcome.problems:
                self.echo(f"    {problem}")


@attrs.define
class _Unit:
    """Tests that share one machine."""

    suite: Suite
    choice: RunnerChoice
    tests: list[tuple[int, TestSpec]]


class _Interrupted(Exception):
    pass


class Session:
    """One ``tenfra test`` run: prepares runners, runs units, collects outcomes."""

    def __init__(
        self,
        selection: Selection,
        *,
        echo: Callable[[str], None] = lambda _line: None,
        cache_dir: Optional[Path] = None,
    ) -> None:
        self.selection = selection
        self.echo = echo
        self.cache_dir = cache_dir
        self.run_id = uuid.uuid4().hex[:12]
        self.outcomes: list[TestOutcome] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._runner_classes: dict[str, type[TestRunner]] = {}
        self._prepared: dict[tuple[str, str], TestRunner] = {}
        self._payload: Optional[Path] = None

    # -- planning ------------------------------------------------------------------

    def units(self) -> list[_Unit]:
        """The machines to start, each with the tests it runs."""
        units: list[_Unit] = []
        registry = runner_registry()
        for suite in self.selection.suites:
            for choice in self._choices(suite, registry):
                self._runner_classes[choice.name] = registry[choice.name]
                tests = [
                    (i, t)
                    for i, t in enumerate(suite.tests)
                    if _selected(suite, t, choice.name, self.selection.keyword)
                ]
                if not tests:
                    continue
                if suite.spec.clean:
                    units.extend(_Unit(suite, choice, [item]) for item in tests)
                else:
                    units.append(_Unit(suite, choice, tests))
        return units

    def _choices(self, suite: Suite, registry: Any) -> list[RunnerChoice]:
        wanted = self.selection.runner
        if wanted is None:
            return suite.runners
        matching = [c for c in suite.runners if c.name == wanted]
        if matching:
            return matching
        if wanted not in registry:
            known = ", ".join(registry) or "none"
            raise UserError(
                f"Unknown runner {wanted!r} given with --runner; known runners: "
                f"{known}."
            )
        options = structure(
            {},
            registry[wanted].Options,
            source="--runner",
            what=f"the options of runner {wanted!r}",
        )
        return [
            RunnerChoice(name=wanted, options=options, location=Location("--runner"))
        ]

    # -- running -------------------------------------------------------------------

    def run(self) -> list[TestOutcome]:
        """Run every selected test; machines are removed even on Ctrl-C."""
        units = self.units()
        total = sum(len(u.tests) for u in units)
        if total == 0:
            words = " ".join(self.selection.keyword)
            raise UserError(
                f"No test matched -k {words!r}; list the tests with "
                "'tenfra test --collect-only'."
                if words
                else "The suites hold no test to run."
            )
        progress = _Progress(total, self.echo)
        try:
            if self.selection.jobs <= 1 or len(units) == 1:
                for unit in units:
                    self._run_unit(unit, progress)
            else:
                self._run_parallel(units, progress)
        except BaseException:
            self._stopping.set()
            self.cleanup()
            raise
        self.cleanup()
        order: dict[tuple[str, str, str], int] = {}
        for unit in units:
            for _, test in unit.tests:
                key = (unit.suite.name, test.name, unit.choice.name)
                order.setdefault(key, len(order))
        self.outcomes.sort(
            key=lambda o: order.get((o.suite, o.test, o.runner), len(order))
        )
        return self.outcomes

    def _run_parallel(self, units: list[_Unit], progress: _Progress) -> None:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        pool = ThreadPoolExecutor(
            max_workers=self.selection.jobs, thread_name_prefix="tenfra-test"
        )
        futures = [pool.submit(self._run_unit, unit, progress) for unit in units]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            self._stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def cleanup(self) -> None:
        """Remove every machine this session started (found by the run's label)."""
        for cls in self._runner_classes.values():
            try:
                removed = cls.cleanup(self.run_id)
            except Exception as exc:  # cleanup must not hide the first error
                logger.warning("cleanup of runner %s failed: %s", cls.name, exc)
                continue
            if removed:
                logger.info("removed %d leftover %s machine(s)", removed, cls.name)

    def _runner(self, unit: _Unit) -> TestRunner:
        key = (str(unit.suite.path), unit.choice.name)
        with self._lock:
            runner = self._prepared.get(key)
            if runner is None:
                cls = self._runner_classes[unit.choice.name]
                runner = cls(
                    unit.choice.options,
                    run_id=self.run_id,
                    suite_dir=unit.suite.path.parent.resolve(),
                )
                runner.prepare()
                self._prepared[key] = runner
            return runner

    def _payload_for(self, runner: TestRunner) -> Optional[Path]:
        if not runner.needs_payload:
            return None
        with self._lock:
            if self._payload is None:
                self._payload = build_payload(self.cache_dir)
            return self._payload

    def _record(self, outcome: TestOutcome, progress: _Progress) -> None:
        with self._lock:
            self.outcomes.append(outcome)
        progress.finished(outcome)

    def _outcome(
        self, unit: _Unit, index: int, test: TestSpec, status: str
    ) -> TestOutcome:
        return TestOutcome(
            suite=unit.suite.name,
            test=test.name,
            runner=unit.choice.name,
            status=status,
            location=str(unit.suite.test_location(index)),
        )

    def _run_unit(self, unit: _Unit, progress: _Progress) -> None:
        suite = unit.suite
        runnable = []
        for index, test in unit.tests:
            if test.skip is None:
                runnable.append((index, test))
                continue
            outcome = self._outcome(unit, index, test, SKIPPED)
            outcome.problems.append(f"skipped: {test.skip}")
            self._record(outcome, progress)
        if not runnable or self._stopping.is_set():
            return
        started = time.monotonic()
        stage: Optional[_Stage] = None
        finished: set[int] = set()
        try:
            runner = self._runner(unit)
            stage = _Stage(suite, self._payload_for(runner))
            before_all = stage.tasks_job("beforeAll", suite.spec.before_all)
            jobs = {index: stage.test_job(index, test) for index, test in runnable}
            after_all = stage.tasks_job("afterAll", suite.spec.after_all)
            label = f"{_slug(suite.name)[:30]}-{len(self.outcomes)}"
            with runner.machine(label) as machine:
                if self._stopping.is_set():
                    raise _Interrupted
                machine.put(stage.folder, machine.workdir)
                setup = self._hook(machine, before_all, "beforeAll", suite)
                for position, (index, test) in enumerate(runnable):
                    if self._stopping.is_set():
                        raise _Interrupted
                    if setup is not None:
                        outcome = self._outcome(unit, index, test, FAILED)
                        outcome.problems.append(setup)
                    else:
                        outcome = self._run_test(unit, machine, index, jobs[index])
                    if position == 0:  # the first test pays for the machine
                        outcome.duration = time.monotonic() - started
                    finished.add(index)
                    self._record(outcome, progress)
                teardown = self._hook(machine, after_all, "afterAll", suite)
                if teardown is not None:
                    self._record(
                        TestOutcome(
                            suite=suite.name,
                            test="afterAll",
                            runner=unit.choice.name,
                            status=FAILED,
                            location=str(suite.location(("afterAll",))),
                            problems=[teardown],
                        ),
                        progress,
                    )
        except _Interrupted:
            return
        except TenfraError as exc:
            for index, test in runnable:
                if index in finished:
                    continue
                outcome = self._outcome(unit, index, test, ERROR)
                outcome.problems.append(str(exc))
                outcome.duration = time.monotonic() - started
                self._record(outcome, progress)
        finally:
            if stage is not None:
                stage.remove()

    def _hook(
        self, machine: Machine, job: Optional[str], key: str, suite: Suite
    ) -> Optional[str]:
        """Run beforeAll/afterAll tasks; return a problem text when they fail."""
        if job is None:
            return None
        result, _, problem = self._exec_job(machine, job, suite.spec.timeout)
        if problem is not None:
            return f"{key} could not run: {problem}"
        problems = list(result.get("problems", []))
        if problems:
            return f"{key} failed: " + "; ".join(problems)
        return None

    def _run_test(
        self, unit: _Unit, machine: Machine, index: int, job: str
    ) -> TestOutcome:
        test = unit.suite.tests[index]
        started = time.monotonic()
        outcome = self._outcome(unit, index, test, PASSED)
        timeout = test.timeout or unit.suite.spec.timeout
        result, output, problem = self._exec_job(machine, job, timeout)
        outcome.duration = time.monotonic() - started
        outcome.output = output
        if problem is not None:
            outcome.status = ERROR
            outcome.problems.append(problem)
            return outcome
        outcome.phases = dict(result.get("phases", {}))
        outcome.second_changes = result.get("secondChanges")
        outcome.problems.extend(result.get("problems", []))
        if outcome.problems:
            outcome.status = FAILED
        return outcome

    def _exec_job(
        self, machine: Machine, job: str, timeout: float
    ) -> tuple[dict[str, Any], str, Optional[str]]:
        """Run one job on the machine: (result, stderr, problem when it broke)."""
        argv = [*machine.python, "-m", "tenfra.testsuite", f"{machine.workdir}/{job}"]
        try:
            code, out, err = machine.exec(argv, env=machine.env, timeout=timeout)
        except TimeoutError:
            return (
                {},
                "",
                f"timed out after {timeout:g} s on {machine.name}; raise 'timeout' "
                "in the suite or the test if the recipe needs longer",
            )
        for line in reversed(out.splitlines()):
            if line.startswith(RESULT_MARKER):
                try:
                    data = json.loads(line[len(RESULT_MARKER) :])
                except ValueError:
                    break
                if isinstance(data, dict):
                    return data, err, None
                break
        tail = " | ".join((err or out).strip().splitlines()[-6:]) or "no output"
        return (
            {},
            err,
            f"tenfra did not return a result on {machine.name} (exit code {code}): "
            f"{tail}",
        )


def run_tests(
    selection: Selection,
    *,
    echo: Callable[[str], None] = lambda _line: None,
    cache_dir: Optional[Path] = None,
) -> list[TestOutcome]:
    """Run the selected tests and return their outcomes (the API of ``tenfra test``)."""
    return Session(selection, echo=echo, cache_dir=cache_dir).run()


# -- on the machine: ``python3 -m tenfra.testsuite JOB.json`` --------------------------


def _walk_tasks(tasks: Sequence[Any]) -> Iterator[Any]:
    for task in tasks:
        yield task
        yield from _walk_tasks(task.children)


class _MachineJob:
    """Runs one job file on the machine and builds the JSON result.

    A job is ``{"kind": "tasks", "run": [recipe ids]}`` (beforeAll/afterAll)
    or ``{"kind": "test", ...}``: beforeEach, the first apply, the second
    apply (idempotence), the drift check, the assertions and afterEach, in
    that order.  The result holds ``problems`` (empty when the test passed),
    ``phases`` (each run's report) and ``secondChanges``.
    """

    def __init__(self, job: dict[str, Any], root: Path) -> None:
        import socket

        from tenfra.pluginmanager import get_plugin_manager
        from tenfra.recipe import RecipeSet

        self.job = job
        self.root = root
        self.host = socket.gethostname()
        self.source = str(job.get("source", "the suite"))
        self.pm = get_plugin_manager()
        if job.get("plugins"):
            self.pm.load_site_plugins(root / job["plugins"])
        self.recipes_dir = root / job["recipes"]
        self.state_dir = root / job["state"]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.recipes = RecipeSet(self.recipes_dir, plugin_manager=self.pm)
        self.problems: list[str] = []
        self.phases: dict[str, Any] = {}

    # -- applying ------------------------------------------------------------------

    def apply(
        self,
        phase: str,
        recipe_id: str,
        *,
        inputs: Optional[Mapping[str, Any]] = None,
        extra_vars: Optional[Mapping[str, Any]] = None,
        mocks: Sequence[Mapping[str, Any]] = (),
    ) -> Optional[Any]:
        """Apply one recipe; record its report; return it, or None when it failed."""
        from tenfra.report import Status, report_to_json

        try:
            report = _engine_run(
                self.recipes,
                recipe_id,
                host=self.host,
                state_dir=self.state_dir,
                inputs=dict(inputs or {}),
                extra_vars=dict(extra_vars or {}),
                mocks=list(mocks),
            )
        except TenfraError as exc:
            self.problems.append(f"{phase}: {self._clean(str(exc))}")
            return None
        self.phases[phase] = report_to_json(report)
        if report.status is Status.FAILED:
            self.problems.append(f"{phase}: {self._failure(report)}")
            return None
        return report

    def _failure(self, report: Any) -> str:
        for recipe in report.recipes:
            for task in _walk_tasks(recipe.tasks):
                if task.status.value == "failed" and not task.children:
                    why = task.error or task.message or "no message"
                    where = f" ({task.location})" if task.location else ""
                    return self._clean(
                        f"task {task.name!r} ({task.type}) failed{where}: {why}"
                    )
            if recipe.error:
                return self._clean(f"recipe {recipe.id!r}: {recipe.error}")
        return self._clean(report.error or "the run failed without a message")

    def _clean(self, text: str) -> str:
        """Name generated recipes after the suite, not the machine's temp path."""
        for recipe_id, title in self.job.get("generated", {}).items():
            path = self.recipes_dir / recipe_id / "main.yaml"
            for form in {str(path), os.path.relpath(path)}:
                text = re.sub(
                    re.escape(form) + r"(:\d+)*", f"{self.source} [{title}]", text
                )
        return text

    # -- jobs ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        if self.job["kind"] == "tasks":
            for recipe_id in self.job["run"]:
                if self.apply(self.job["label"], recipe_id) is None:
                    break
            return self.result(None)
        return self.test()

    def result(self, second_changes: Optional[int]) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "phases": self.phases,
            "secondChanges": second_changes,
        }

    def test(self) -> dict[str, Any]:
        job = self.job
        second_changes: Optional[int] = None
        if job.get("before") and self.apply("beforeEach", job["before"]) is None:
            return self.result(None)
        arguments: dict[str, Any] = {
            "inputs": job.get("inputs") or {},
            "extra_vars": job.get("vars") or {},
            "mocks": job.get("mocks") or [],
        }
        recipe_id = job["recipe"]
        first = self.apply("first run", recipe_id, **arguments)
        if first is not None:
            second = None
            if job.get("idempotence", True):
                second = self.apply("second run", recipe_id, **arguments)
                if second is not None:
                    changed = _changed_tasks(second)
                    second_changes = len(changed)
                    if changed:
                        names = ", ".join(repr(n) for n in changed)
                        self.problems.append(
                            f"not idempotent: the second run changed {len(changed)} "
                            f"task(s): {names}; a converged recipe must report no "
                            "change"
                        )
            if job.get("drift") and not self.problems:
                self.drift(job["drift"], recipe_id, arguments)
            if not any(
                p.startswith(("first run", "second run")) for p in self.problems
            ):
                self.assertions(first, second)
        if job.get("after"):
            self.apply("afterEach", job["after"])
        return self.result(second_changes)

    def drift(
        self, spec: Mapping[str, Any], recipe_id: str, arguments: Mapping[str, Any]
    ) -> None:
        path = Path(spec["file"])
        try:
            before = path.read_bytes()
        except OSError as exc:
            self.problems.append(
                f"drift: cannot read {str(path)!r} after the runs ({exc.strerror}); "
                "name a file the recipe manages"
            )
            return
        if spec.get("remove"):
            path.unlink()
            how = "removed"
        elif spec.get("content") is not None:
            path.write_text(str(spec["content"]), encoding="utf-8")
            how = "overwritten"
        else:
            with path.open("ab") as handle:
                handle.write(b"\n# drift introduced by tenfra test\n")
            how = "appended to"
        if path.exists() and path.read_bytes() == before:
            self.problems.append(
                f"drift: writing to {str(path)!r} did not change it; give 'content' "
                "that differs from what the recipe writes"
            )
            return
        report = self.apply("drift run", recipe_id, **arguments)
        if report is None:
            return
        changed = _changed_tasks(report)
        after = path.read_bytes() if path.exists() else None
        if after != before:
            self.problems.append(
                f"drift: {str(path)!r} was {how} but the next run did not restore "
                f"it (tasks changed: {', '.join(changed) or 'none'})"
            )
        expected = spec.get("task")
        if expected is not None and changed != [expected]:
            self.problems.append(
                f"drift: expected only task {expected!r} to repair {str(path)!r}, "
                f"but the run changed: {', '.join(repr(n) for n in changed) or 'none'}"
            )
        elif len(changed) != 1:
            self.problems.append(
                f"drift: expected exactly one task to repair {str(path)!r}, but the "
                f"run changed {len(changed)}: "
                f"{', '.join(repr(n) for n in changed) or 'none'}"
            )

    # -- assertions ----------------------------------------------------------------

    def assertions(self, first: Any, second: Optional[Any]) -> None:
        for number, spec in enumerate(self.job.get("assert") or [], start=1):
            try:
                failure = self._check(spec, first)
            except TenfraError as exc:
                failure = str(exc)
            if failure is not None:
                text = spec.get("message") or failure
                self.problems.append(f"assertion {number} failed: {text}")

    def _check(self, spec: Mapping[str, Any], first: Any) -> Optional[str]:
        if spec.get("that") is not None:
            return self._check_that(str(spec["that"]))
        if spec.get("file") is not None:
            return _check_file(spec)
        if spec.get("command") is not None:
            return _check_command(spec)
        return self._check_task(spec, first)

    def _check_that(self, expression: str) -> Optional[str]:
        from tenfra.templating import get_templar

        tasks: dict[str, str] = {}
        first = self.phases.get("first run", {})
        for recipe in first.get("recipes", []):
            for task in recipe.get("tasks", []):
                tasks.setdefault(task["name"], task["status"])
        scope = {
            "report": first,
            "second": self.phases.get("second run"),
            "drift": self.phases.get("drift run"),
            "tasks": tasks,
            "vars": self.job.get("vars") or {},
            "host": self.host,
        }
        value = get_templar(plugin_manager=self.pm).evaluate(
            expression, scope, Location(self.source)
        )
        return None if value else f"{expression} is {value!r}"

    def _check_task(self, spec: Mapping[str, Any], first: Any) -> Optional[str]:
        name = spec["task"]
        for recipe in first.recipes:
            for task in _walk_tasks(recipe.tasks):
                if task.name == name:
                    if task.status.value != spec.get("status"):
                        return (
                            f"task {name!r} ended {task.status.value!r}, expected "
                            f"{spec.get('status')!r}"
                        )
                    return None
        return f"no task named {name!r} ran in the first run"


def _changed_tasks(report: Any) -> list[str]:
    return [
        task.name
        for recipe in report.recipes
        for task in recipe.tasks
        if task.status.is_change
    ]


def _check_file(spec: Mapping[str, Any]) -> Optional[str]:
    path = Path(spec["file"])
    exists = path.exists()
    if not spec.get("exists", True):
        return f"{str(path)!r} exists but should not" if exists else None
    if not exists:
        return f"{str(path)!r} does not exist"
    if spec.get("mode") is not None:
        actual = f"{path.stat().st_mode & 0o7777:04o}"
        if actual != str(spec["mode"]).zfill(4):
            return f"{str(path)!r} has mode {actual}, expected {spec['mode']}"
    if spec.get("contains") is None and spec.get("equals") is None:
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    if spec.get("equals") is not None and text != spec["equals"]:
        return (
            f"{str(path)!r} holds {_short(text)!r}, expected {_short(spec['equals'])!r}"
        )
    if spec.get("contains") is not None and spec["contains"] not in text:
        return f"{str(path)!r} does not contain {spec['contains']!r}"
    return None


def _check_command(spec: Mapping[str, Any]) -> Optional[str]:
    import subprocess

    command = str(spec["command"])
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return f"command {command!r} did not finish within 120 s"
    expected = spec.get("rc", 0)
    if done.returncode != expected:
        detail = _short((done.stderr or done.stdout).strip())
        return (
            f"command {command!r} exited with {done.returncode}, expected {expected}"
            + (f" ({detail})" if detail else "")
        )
    wanted = spec.get("stdoutContains")
    if wanted is None:
        wanted = spec.get("stdout_contains")
    if wanted is not None and wanted not in done.stdout:
        return (
            f"the output of {command!r} does not contain {wanted!r} (it printed "
            f"{_short(done.stdout)!r})"
        )
    return None


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mock_for(task: Any, mocks: Sequence[Mapping[str, Any]]) -> Optional[Any]:
    """The mock that applies to ``task`` (the last one that matches), or None."""
    found = None
    for mock in mocks:
        if mock["type"] != task.type:
            continue
        wanted = mock.get("task")
        if wanted is not None and wanted not in (task.name, task.display_name):
            continue
        found = mock
    return found


_mocking_engine: Optional[type[Any]] = None


def _engine_class() -> type[Any]:
    """The engine, extended to return the test's mocks instead of applying."""
    global _mocking_engine
    if _mocking_engine is not None:
        return _mocking_engine
    from tenfra.engine import Engine
    from tenfra.report import Status
    from tenfra.resource import Result

    class MockingEngine(Engine):  # type: ignore[misc]
        mocks: Sequence[Mapping[str, Any]] = ()

        def _apply(self, task: Any, ctx: Any) -> Any:
            mock = _mock_for(task, self.mocks)
            if mock is None:
                return super()._apply(task, ctx)
            status = Status(mock.get("status") or "ok")
            if self.check and status is Status.CHANGED:
                status = Status.WOULD_CHANGE
            return Result(
                status=status,
                values=dict(mock.get("values") or {}),
                message=mock.get("message") or "mocked by the test",
            )

    _mocking_engine = MockingEngine
    return MockingEngine


def _engine_run(
    recipes: Any,
    recipe_id: str,
    *,
    host: str,
    state_dir: Path,
    inputs: dict[str, Any],
    extra_vars: dict[str, Any],
    mocks: list[Mapping[str, Any]],
) -> Any:
    """Apply one recipe through the engine; returns its RunReport."""
    engine = _engine_class()(
        recipes, host=host, extra_vars=extra_vars, state_dir=state_dir
    )
    engine.mocks = mocks
    return engine.run([recipe_id], inputs={recipe_id: inputs} if inputs else None)


def machine_main(argv: Optional[Sequence[str]] = None) -> int:
    """The in-machine entry point: run one job file, print one JSON result line.

    Started by the runners as ``python3 -m tenfra.testsuite JOB.json`` with the
    payload on ``PYTHONPATH``.  Paths in the job are relative to the folder
    above ``jobs/``.  Log records go to standard error; the last line of
    standard output is ``TENFRA-TEST-RESULT {json}``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python3 -m tenfra.testsuite JOB.json\n")
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("tenfra")
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING)
    job_path = Path(args[0]).resolve()
    try:
        job = json.loads(job_path.read_text(encoding="utf-8"))
        result = _MachineJob(job, job_path.parent.parent).run()
    except TenfraError as exc:
        result = {"problems": [str(exc)], "phases": {}, "secondChanges": None}
    except Exception:
        result = {
            "problems": [
                "internal error in tenfra on the machine (a bug; please report it): "
                + traceback.format_exc(limit=8)
            ],
            "phases": {},
            "secondChanges": None,
        }
    sys.stdout.write(RESULT_MARKER + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0


# -- reporting on the host -------------------------------------------------------------


def summary_table(outcomes: Sequence[TestOutcome]) -> str:
    """The summary: test, runner, status, changes on the second run, duration."""
    header = ("TEST", "RUNNER", "STATUS", "2ND RUN CHANGES", "DURATION")
    rows = [
        (
            o.title,
            o.runner,
            o.status,
            "-" if o.second_changes is None else str(o.second_changes),
            f"{o.duration:.1f} s",
        )
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(widths[i]) if i >= 3 else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in _ORDER}
    total = sum(o.duration for o in outcomes)
    tail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines.append(f"{tail} in {total:.1f} s of test time")
    return "\n".join(lines)


_ORDER = (PASSED, FAILED, ERROR, SKIPPED)


def write_junit(outcomes: Sequence[TestOutcome], path: Union[str, Path]) -> None:
    """Write JUnit XML (one ``testsuite`` per suite and runner), atomically."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="tenfra")
    groups: dict[tuple[str, str], list[TestOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.suite, outcome.runner), []).append(outcome)
    for (suite, runner), items in groups.items():
        element = ET.SubElement(
            root,
            "testsuite",
            name=f"{suite} [{runner}]",
            tests=str(len(items)),
            failures=str(sum(o.status == FAILED for o in items)),
            errors=str(sum(o.status == ERROR for o in items)),
            skipped=str(sum(o.status == SKIPPED for o in items)),
            time=f"{sum(o.duration for o in items):.3f}",
        )
        for outcome in items:
            case = ET.SubElement(
                element,
                "testcase",
                classname=f"{suite}.{runner}",
                name=outcome.test,
                file=outcome.location.split(":")[0],
                time=f"{outcome.duration:.3f}",
            )
            text = "\n".join(outcome.problems)
            if outcome.status == FAILED:
                node = ET.SubElement(
                    case, "failure", message=_first(outcome.problems), type="failed"
                )
                node.text = f"{outcome.location}\n{text}"
            elif outcome.status == ERROR:
                node = ET.SubElement(
                    case, "error", message=_first(outcome.problems), type="error"
                )
                node.text = f"{outcome.location}\n{text}"
            elif outcome.status == SKIPPED:
                ET.SubElement(case, "skipped", message=_first(outcome.problems))
            if outcome.second_changes is not None:
                properties = ET.SubElement(case, "properties")
                ET.SubElement(
                    properties,
                    "property",
                    name="second_run_changes",
                    value=str(outcome.second_changes),
                )
            if outcome.output.strip():
                ET.SubElement(case, "system-err").text = outcome.output
    totals = {
        "tests": len(outcomes),
        "failures": sum(o.status == FAILED for o in outcomes),
        "errors": sum(o.status == ERROR for o in outcomes),
        "skipped": sum(o.status == SKIPPED for o in outcomes),
    }
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{sum(o.duration for o in outcomes):.3f}")
    ET.indent(root)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    _atomic_write(Path(path), data)


def _first(problems: Sequence[str]) -> str:
    return problems[0].splitlines()[0] if problems else ""


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


if __name__ == "__main__":
    sys.exit(machine_main())
