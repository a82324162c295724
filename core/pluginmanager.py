"""The plugin manager: entry-point discovery, site plugins and name registries.

There is one :class:`PluginManager` per process (:func:`get_plugin_manager`).
It loads every plugin of the ``tenfra`` entry-point group (built-ins and
third-party packages alike), checks that every hook implementation matches a
specification, and builds each registry the first time it is asked for it, so
a command pays only for what it uses.

Environment switches:

``TENFRA_DISABLE_PLUGINS``
    Comma-separated plugin names (entry-point names, or distribution names
    for every plugin of that distribution) that are not loaded.
``TENFRA_TRACE_HOOKS``
    When set to anything but ``0`` or empty, every hook call and its result
    are written to standard error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Iterator, Optional, TypeVar

import attrs
import pluggy

from tenfra import hookspecs
from tenfra.errors import PluginError

logger = logging.getLogger(__name__)

PROJECT = "tenfra"
ENV_DISABLE = "TENFRA_DISABLE_PLUGINS"
ENV_TRACE = "TENFRA_TRACE_HOOKS"
SITE_PREFIX = "site:"

T = TypeVar("T")


@attrs.frozen
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    version: str
    origin: str  # "builtin", "package" or "site"
    distribution: Optional[str]
    entry_point: Optional[str]
    module: str


class Registry(Generic[T]):
    """Named objects of one kind, registered by plugins through a hook.

    Each kind exposes a method named for it (``add_resource_type``,
    ``add_host_source``...), so a plugin reads like the brief describes it.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self.owner = "?"
        self.anonymous_endpoints: set[str] = set()

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``; a name registered twice is an error."""
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"Plugin {self.owner!r} registered a {self.kind} without a name; "
                "give it a non-empty string name."
            )
        if name in self._items:
            raise PluginError(
                f"The {self.kind} {name!r} is registered by both plugin "
                f"{self._owners[name]!r} and plugin {self.owner!r}; disable one of "
                f"them with {ENV_DISABLE}={self.owner} or rename one."
            )
        self._items[name] = obj
        self._owners[name] = self.owner

    # The names plugins call, one per kind of registry.
    def add_resource_type(self, cls: Any) -> None:
        self.add(getattr(cls, "name", ""), cls)

    def add_host_source(self, cls: Any) -> None:
        self.add(getattr(cls, "name", ""), cls)

    def add_vars_source(self, cls: Any) -> None:
        self.add(getattr(cls, "name", ""), cls)

    def add_test_runner(self, cls: Any) -> None:
        self.add(getattr(cls, "name", ""), cls)

    def add_report_hook(self, cls: Any) -> None:
        self.add(getattr(cls, "name", ""), cls)

    def add_template_filter(self, name: str, function: Any) -> None:
        self.add(name, function)

    def add_template_global(self, name: str, value: Any) -> None:
        self.add(name, value)

    def add_fact(self, name: str, function: Any) -> None:
        self.add(name, function)

    def add_cli_command(self, command: Any) -> None:
        self.add(getattr(command, "name", "") or "", command)

    def add_provider_blueprint(self, blueprint: Any) -> None:
        self.add(getattr(blueprint, "name", ""), blueprint)

    def allow_anonymous(self, endpoint: str) -> None:
        """Mark a provider endpoint (``blueprint.view``) as served without login."""
        self.anonymous_endpoints.add(endpoint)

    # Reading.
    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str) -> Optional[T]:
        return self._items.get(name)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def owner_of(self, name: str) -> str:
        return self._owners[name]


# Registration hook per registry kind; the kind is also the registry's name.
REGISTRATION_HOOKS = {
    "resource type": "tenfra_add_resource_types",
    "host source": "tenfra_add_host_sources",
    "vars source": "tenfra_add_vars_sources",
    "test runner": "tenfra_add_test_runners",
    "report hook": "tenfra_add_report_hooks",
    "template filter": "tenfra_add_template_filters",
    "template global": "tenfra_add_template_globals",
    "fact": "tenfra_add_facts",
    "CLI command": "tenfra_add_cli_commands",
    "provider blueprint": "tenfra_add_provider_blueprints",
}


def _disabled_names() -> set[str]:
    raw = os.environ.get(ENV_DISABLE, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _iter_entry_points() -> Iterator[tuple[importlib.metadata.EntryPoint, str, str]]:
    """Yield (entry point, distribution name, version) of the ``tenfra`` group.

    A distribution visible twice on ``sys.path`` is reported once.
    """
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"] or "?"
        key = dist_name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for ep in dist.entry_points:
            if ep.group == PROJECT:
                yield ep, dist_name, dist.version


class PluginManager:
    """tenfra's pluggy manager and the registries built from it."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry[Any]] = {}
        self._lock = threading.RLock()
        if os.environ.get(ENV_TRACE, "") not in ("", "0"):
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()
        if load_entry_points:
            self._load_entry_points()
        self.check_pending()

    @property
    def hook(self) -> Any:
        """The hook relay: ``manager.hook.tenfra_before_recipe(...)``."""
        return self.pm.hook

    # -- loading ------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        disabled = _disabled_names()
        for ep, dist_name, version in _iter_entry_points():
            if ep.name in disabled or dist_name in disabled:
                logger.debug("plugin %s from %s disabled", ep.name, dist_name)
                continue
            try:
                module = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"Plugin {ep.name!r} of {dist_name} {version} (entry point "
                    f"'{ep.name} = {ep.value}') failed to import: "
                    f"{type(exc).__name__}: {exc}. Reinstall or fix that package, "
                    f"or disable it with {ENV_DISABLE}={ep.name}."
                ) from exc
            origin = "builtin" if dist_name.lower() == PROJECT else "package"
            info = PluginInfo(
                name=ep.name,
                version=version,
                origin=origin,
                distribution=dist_name,
                entry_point=f"{ep.name} = {ep.value}",
                module=getattr(module, "__name__", ep.value),
            )
            self.register(module, info)

    def register(self, plugin: Any, info: PluginInfo) -> None:
        """Register one plugin object (usually a module) under ``info.name``."""
        existing = self.infos.get(info.name)
        if existing is not None:
            raise PluginError(
                f"Two plugins are named {info.name!r}: one from "
                f"{existing.distribution or existing.module} and one from "
                f"{info.distribution or info.module}; uninstall or disable one "
                f"with {ENV_DISABLE}."
            )
        try:
            self.pm.register(plugin, name=info.name)
        except ValueError as exc:
            raise PluginError(
                f"Plugin {info.name!r} ({info.module}) could not be registered: {exc}."
            ) from exc
        self.infos[info.name] = info
        self._registries.clear()

    def load_site_plugins(self, folder: Path, *, version: str = "site") -> list[str]:
        """Import every module of an organisation's ``plugins/`` folder.

        Each ``name.py`` file or ``name/__init__.py`` package becomes plugin
        ``site:name``.  Only call this on a folder from the user's own
        repository or from a verified release.
        """
        loaded: list[str] = []
        if not folder.is_dir():
            return loaded
        disabled = _disabled_names()
        for path in sorted(folder.iterdir()):
            if path.name.startswith(("_", ".")):
                continue
            if path.suffix == ".py":
                stem, init = path.stem, path
            elif (path / "__init__.py").is_file():
                stem, init = path.name, path / "__init__.py"
            else:
                continue
            name = SITE_PREFIX + stem
            if name in disabled or stem in disabled or name in self.infos:
                continue
            module = _import_file(f"tenfra_site_{stem}", init, name)
            self.register(
                module,
                PluginInfo(
                    name=name,
                    version=version,
                    origin="site",
                    distribution=None,
                    entry_point=None,
                    module=module.__name__,
                ),
            )
            loaded.append(name)
        self.check_pending()
        return loaded

    def check_pending(self) -> None:
        """Fail when a plugin implements a hook that no specification declares."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            plugin = self.pm.get_name(exc.plugin) if exc.plugin else "?"
            raise PluginError(
                f"Plugin {plugin!r} implements a hook tenfra does not know: {exc}. "
                "Check the hook name against the hooks reference "
                "(docs/plugins/hooks.md)."
            ) from exc

    # -- registries ----------------------------------------------------------------

    def registry(self, kind: str) -> Registry[Any]:
        """Return the registry of ``kind`` (see ``REGISTRATION_HOOKS``)."""
        with self._lock:
            registry = self._registries.get(kind)
            if registry is None:
                registry = self._build(kind)
                self._registries[kind] = registry
            return registry

    def _build(self, kind: str) -> Registry[Any]:
        hookname = REGISTRATION_HOOKS[kind]
        registry: Registry[Any] = Registry(kind)
        caller = getattr(self.pm.hook, hookname)
        # Call each implementation on its own so the registry knows who adds what.
        for impl in reversed(caller.get_hookimpls()):
            registry.owner = impl.plugin_name
            others = [p for p in self.pm.get_plugins() if p is not impl.plugin]
            self.pm.subset_hook_caller(hookname, remove_plugins=others)(
                registry=registry
            )
        registry.owner = "?"
        return registry

    @property
    def resource_types(self) -> Registry[Any]:
        return self.registry("resource type")

    @property
    def host_sources(self) -> Registry[Any]:
        return self.registry("host source")

    @property
    def vars_sources(self) -> Registry[Any]:
        return self.registry("vars source")

    @property
    def test_runners(self) -> Registry[Any]:
        return self.registry("test runner")

    @property
    def report_hooks(self) -> Registry[Any]:
        return self.registry("report hook")

    @property
    def template_filters(self) -> Registry[Any]:
        return self.registry("template filter")

    @property
    def template_globals(self) -> Registry[Any]:
        return self.registry("template global")

    @property
    def facts(self) -> Registry[Any]:
        return self.registry("fact")

    @property
    def cli_commands(self) -> Registry[Any]:
        return self.registry("CLI command")

    @property
    def provider_blueprints(self) -> Registry[Any]:
        return self.registry("provider blueprint")

    # -- describing ----------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Name, version, origin and implemented hooks of every loaded plugin."""
        rows = []
        for name, info in sorted(self.infos.items()):
            plugin = self.pm.get_plugin(name)
            hooks = sorted(
                caller.name
                for caller in (self.pm.get_hookcallers(plugin) or [])
                if caller.name.startswith("tenfra_")
            )
            rows.append(
                {
                    "name": name,
                    "version": info.version,
                    "origin": info.origin,
                    "distribution": info.distribution,
                    "entry_point": info.entry_point,
                    "module": info.module,
                    "hooks": hooks,
                }
            )
        return rows

    def pins(self) -> dict[str, str]:
        """``{plugin name: version}`` for every loaded plugin (release pins)."""
        return {name: info.version for name, info in sorted(self.infos.items())}


def _import_file(module_name: str, path: Path, plugin_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        module_name, path, submodule_search_locations=None
    )
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: site plugin {plugin_name!r} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PluginError(
            f"{path}: site plugin {plugin_name!r} failed to import: "
            f"{type(exc).__name__}: {exc}. Fix the file, or disable it with "
            f"{ENV_DISABLE}={plugin_name}."
        ) from exc
    return module


_manager: Optional[PluginManager] = None
_manager_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = PluginManager()
        return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (tests, or after changing the environment)."""
    global _manager
    with _manager_lock:
        _manager = None
