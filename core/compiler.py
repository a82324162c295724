"""The compiler: recipes, inventory and site plugins in, a signed release out.

:func:`compile_release` follows these steps (docs/releases.md describes the
result):

1. load the site plugins of the repository's ``plugins/`` folder, so their
   vars sources and resource types are known, and pin every plugin version;
2. load the inventory and every compile-time vars source, once;
3. load the recipes, check their dependencies (unknown ids, cycles) and match
   each recipe's ``targets`` and ``otherHosts`` against the host list once;
4. hash every asset and site plugin file once, and serialise every recipe
   (source text and asset digests) once as a canonical JSON fragment;
5. group the hosts by the set of recipes they receive; per group the recipe
   part of the bundle is assembled once, per host only its own vars, groups
   and name are added;
6. first pass: the content digest of every bundle gives the release id (the
   same inputs give the same id, so an unchanged release is not written
   again); second pass: write each bundle and its signature, with bounded
   memory; then the manifest; ``LATEST`` last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import attrs

from tenfra import release as rel
from tenfra import storage
from tenfra.errors import CompileError, InventoryError, Location, TenfraError
from tenfra.pluginmanager import SITE_PREFIX

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tenfra.inventory import Inventory

logger = logging.getLogger(__name__)

DEFAULT_VALID_FOR = dt.timedelta(days=30)
PHASES = ("runtime", "bootstrap")
# Files of a site plugins or assets folder that never go into a release.
IGNORED_NAMES = frozenset({"__pycache__", ".git", ".DS_Store"})
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")

Progress = Callable[[str, int, int], None]


@attrs.frozen(kw_only=True)
class CompileOptions:
    """What :func:`compile_release` needs; the CLI builds it from its flags."""

    inventory: Path = attrs.field(metadata={"description": "The inventory file."})
    recipes: Path = attrs.field(metadata={"description": "The recipes folder."})
    out: str = attrs.field(metadata={"description": "The storage URL to write to."})
    plugins_dir: Optional[Path] = attrs.field(
        default=None,
        metadata={"description": "Site plugins folder (default: beside recipes/)."},
    )
    signing_key: Optional[Ed25519PrivateKey] = attrs.field(
        default=None, metadata={"description": "The ed25519 key that signs."}
    )
    unsigned: bool = attrs.field(
        default=False, metadata={"description": "Write an unsigned release."}
    )
    sequence: Optional[int] = attrs.field(
        default=None,
        metadata={"description": "Release sequence (default: latest at out + 1)."},
    )
    created: Optional[dt.datetime] = attrs.field(
        default=None, metadata={"description": "Creation time (default: now)."}
    )
    valid_for: dt.timedelta = attrs.field(
        default=DEFAULT_VALID_FOR,
        metadata={"description": "How long agents accept the release."},
    )
    progress_every: int = attrs.field(
        default=1000, metadata={"description": "Report progress every N hosts."}
    )


@attrs.frozen(kw_only=True)
class CompileResult:
    """What a compile did."""

    release: str
    sequence: int
    name: str
    url: str
    hosts: int
    recipes: int
    assets: int
    assets_written: int
    bytes_written: int
    unchanged: bool
    signed: bool
    key_id: Optional[str]
    warnings: tuple[str, ...]
    seconds: float
    manifest: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class RecipeInfo:
    """What the compiler needs to know about one recipe."""

    id: str
    path: str  # relative to the recipes folder, with "/"
    display: str  # the file as shown in messages
    text: str  # the exact source text
    targets: Any  # a pattern, a list of patterns, or None (no host)
    phase: str
    dependencies: tuple[str, ...]
    other_hosts: Any  # a pattern, a list of patterns, or None
    assets_dir: Optional[Path]
    positions: Any = None  # the parsed YAML, for locations
    asset_refs: tuple[tuple[str, Optional[Location]], ...] = ()

    def location(self, *path: Union[str, int]) -> Location:
        """Where ``path`` (keys and indices) is in the recipe file."""
        if self.positions is not None:
            from tenfra.yamlio import locate

            try:
                return locate(self.positions, list(path), self.display)
            except Exception:  # a best-effort position; the file name is enough
                logger.debug("no position for %s in %s", path, self.display)
        return Location(self.display)


# -- small helpers -------------------------------------------------------------


def creation_time(
    explicit: Optional[dt.datetime] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> dt.datetime:
    """The creation time: ``explicit``, else ``SOURCE_DATE_EPOCH``, else now."""
    if explicit is not None:
        moment = explicit
    else:
        epoch = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH")
        if epoch:
            try:
                moment = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
            except (ValueError, OverflowError):
                raise CompileError(
                    f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds since "
                    "1970; set it to an integer such as $(git log -1 --format=%ct)."
                ) from None
        else:
            moment = dt.datetime.now(dt.timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_folder(folder: Path, what: str) -> dict[str, Path]:
    """``{relative name: path}`` of every file under ``folder``, sorted.

    Caches, editor files and ``__pycache__`` are left out.  A symbolic link
    that leads outside ``folder`` is an error: a release holds only what the
    repository holds.
    """
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    root = folder.resolve()
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_NAMES)
        for name in sorted(files):
            if name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES):
                continue
            path = Path(current) / name
            relative = path.relative_to(folder).as_posix()
            real = path.resolve()
            if root not in real.parents:
                raise CompileError(
                    f"{path}: this {what} is a link to {real}, outside {folder}; "
                    "copy the file into the folder instead."
                )
            if not real.is_file():
                continue
            if not storage.is_safe_key(relative):
                raise CompileError(
                    f"{path}: the {what} name {relative!r} cannot be stored in a "
                    "release; rename the file."
                )
            found[relative] = path
    return dict(sorted(found.items()))


def site_plugin_names(folder: Path) -> list[str]:
    """Module names of a site plugins folder, as the plugin manager loads them."""
    if not folder.is_dir():
        return []
    names = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if path.suffix == ".py":
            names.append(path.stem)
        elif (path / "__init__.py").is_file():
            names.append(path.name)
    return names


def _describe_patterns(patterns: Any) -> str:
    if isinstance(patterns, (list, tuple)):
        return ", ".join(str(p) for p in patterns)
    return str(patterns)


def _json(value: Any, what: str) -> bytes:
    try:
        return rel.canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise CompileError(
            f"{what} cannot be written to a release: {exc}. Vars must be plain "
            "data (strings, numbers, true/false, null, lists and mappings)."
        ) from None


_KEY_PREFIX: dict[str, bytes] = {}


def _object(pieces: Iterable[tuple[str, bytes]]) -> bytes:
    """Canonical JSON of an object from pre-encoded values (keys sorted here)."""
    parts = []
    for key, value in sorted(pieces):
        prefix = _KEY_PREFIX.get(key)
        if prefix is None:
            prefix = _KEY_PREFIX[key] = rel.canonical_json(key) + b":"
        parts.append(prefix + value)
    return b"{" + b",".join(parts) + b"}"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def load_inventory_file(path: Path) -> Inventory:
    """:func:`tenfra.inventory.load_inventory`, with a fast path for JSON files.

    JSON is YAML 1.2, so a JSON inventory (a file whose text starts with
    ``{``) means the same when :mod:`json` reads it, many times faster than
    the position-keeping YAML loader; that matters for generated inventories
    of thousands of hosts.  Any problem (a syntax error, a duplicate key, an
    invalid value) is reported by loading the file again the usual way, so
    the message keeps its ``file:line:col``.
    """
    from tenfra.inventory import DEFAULT_INVENTORY, inventory_from_data, load_inventory

    file = path / DEFAULT_INVENTORY if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return load_inventory(path)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except ValueError:
            data = None
        if isinstance(data, dict):
            try:
                return inventory_from_data(data, source=str(file), path=file)
            except TenfraError:
                logger.debug("%s: reloading with the YAML loader for positions", file)
    return load_inventory(path)


# -- recipes -------------------------------------------------------------------


def load_recipe_infos(recipes_dir: Path) -> dict[str, RecipeInfo]:
    """Every recipe of ``recipes_dir`` as :class:`RecipeInfo`, by id.

    The recipes are loaded and validated by :func:`tenfra.recipe.load_recipes`
    (which also rejects unknown dependencies and cycles).
    """
    from tenfra.recipe import load_recipes

    if not recipes_dir.is_dir():
        raise CompileError(
            f"{recipes_dir}: the recipes folder does not exist; pass the folder "
            "holding your recipes with --recipes."
        )
    recipe_set = load_recipes(recipes_dir)
    infos: dict[str, RecipeInfo] = {}
    for recipe_id in recipe_set.ids():
        info = recipe_info(recipe_set.get(recipe_id), recipes_dir)
        infos[info.id] = info
    return dict(sorted(infos.items()))


# Resource types whose option names an asset of the recipe (plugins may set an
# ``asset_options`` tuple on their resource type class for the same check).
ASSET_OPTIONS: dict[str, tuple[str, ...]] = {"copy": ("src",), "template": ("src",)}


def _asset_references(recipe: Any) -> tuple[tuple[str, Optional[Location]], ...]:
    from tenfra.recipe import nested_tasks
    from tenfra.templating import has_template

    found: list[tuple[str, Optional[Location]]] = []
    pending = list(recipe.tasks) + list(recipe.handlers)
    while pending:
        task = pending.pop(0)
        pending[:0] = nested_tasks(task)
        names = getattr(task.resource, "asset_options", None) or ASSET_OPTIONS.get(
            task.type, ()
        )
        if not isinstance(task.options, dict):
            continue
        for option_name in names:
            value = task.options.get(option_name)
            if isinstance(value, str) and value and not has_template(value):
                found.append((value, task.option_location(option_name)))
    return tuple(found)


def recipe_info(recipe: Any, recipes_dir: Path) -> RecipeInfo:
    """The compiler's view of a loaded :class:`tenfra.recipe.Recipe`."""
    file = Path(recipe.path)
    try:
        relative = file.resolve().relative_to(recipes_dir.resolve()).as_posix()
    except ValueError:
        relative = file.name
    try:
        text = file.read_bytes().decode("utf-8")  # exactly, line endings too
    except (OSError, UnicodeDecodeError) as exc:
        raise CompileError(f"{recipe.source}: cannot read the recipe: {exc}.") from None
    return RecipeInfo(
        id=str(recipe.id),
        path=relative,
        display=str(recipe.source),
        text=text,
        targets=list(recipe.targets) or None,
        phase=str(recipe.phase),
        dependencies=tuple(str(d) for d in recipe.dependencies),
        other_hosts=list(recipe.other_hosts) or None,
        assets_dir=Path(recipe.dir) / "assets",
        positions=recipe.doc,
        asset_refs=_asset_references(recipe),
    )


def check_assets(info: RecipeInfo, names: Mapping[str, str]) -> None:
    """Every literal asset a task of ``info`` names must exist in ``names``."""
    import fnmatch

    for reference, location in info.asset_refs:
        wanted = reference.strip("/")
        if wanted in names:
            continue
        if any(name.startswith(wanted + "/") for name in names):
            continue  # a folder of assets
        if any(ch in wanted for ch in "*?[") and any(
            fnmatch.fnmatchcase(name, wanted) for name in names
        ):
            continue
        where = location or Location(info.display)
        folder = info.assets_dir or Path(info.display).parent / "assets"
        raise CompileError(
            f"{where}: recipe {info.id!r} uses the asset {reference!r}, which is "
            f"not in {folder}; add the file there or fix the name."
        )


def check_dependencies(recipes: Mapping[str, RecipeInfo]) -> list[str]:
    """All recipe ids, dependencies before their dependants (ties by id).

    Raises :class:`CompileError` for an unknown id or a cycle, naming the
    recipe file and the position of the dependency.
    """
    import difflib

    for info in recipes.values():
        for index, dependency in enumerate(info.dependencies):
            if dependency in recipes:
                continue
            close = difflib.get_close_matches(dependency, list(recipes), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise CompileError(
                f"{info.location('dependencies', index)}: recipe {info.id!r} depends "
                f"on {dependency!r}, which is not a recipe id; {hint}recipe ids are "
                "paths under the recipes folder without '.yaml' (web/main.yaml is "
                "'web')."
            )
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(recipe_id: str, trail: list[str]) -> None:
        mark = state.get(recipe_id)
        if mark == 2:
            return
        if mark == 1:
            cycle = [*trail[trail.index(recipe_id) :], recipe_id]
            info = recipes[trail[-1]]
            index = info.dependencies.index(recipe_id)
            raise CompileError(
                f"{info.location('dependencies', index)}: recipe dependencies form a "
                f"cycle: {' -> '.join(cycle)}. Remove one of these dependencies."
            )
        state[recipe_id] = 1
        trail.append(recipe_id)
        for dependency in sorted(recipes[recipe_id].dependencies):
            visit(dependency, trail)
        trail.pop()
        state[recipe_id] = 2
        order.append(recipe_id)

    for recipe_id in sorted(recipes):
        visit(recipe_id, [])
    return order


def _closures(
    recipes: Mapping[str, RecipeInfo], order: Sequence[str]
) -> dict[str, frozenset[str]]:
    closure: dict[str, frozenset[str]] = {}
    for recipe_id in order:  # dependencies come first
        found = {recipe_id}
        for dependency in recipes[recipe_id].dependencies:
            found |= closure[dependency]
        closure[recipe_id] = frozenset(found)
    return closure


# -- the compile ---------------------------------------------------------------


@attrs.define
class _RecipeSet:
    """The part of a bundle shared by every host receiving the same recipes."""

    recipes: bytes
    assets: bytes
    run: bytes
    other_hosts: bytes


class Compiler:
    """One compile; use :func:`compile_release`."""

    def __init__(self, options: CompileOptions, progress: Optional[Progress]) -> None:
        self.options = options
        self.progress = progress
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        logger.warning("%s", message)
        self.warnings.append(message)

    def _tick(self, phase: str, done: int, total: int) -> None:
        every = max(1, self.options.progress_every)
        if self.progress is not None and (done % every == 0 or done == total):
            self.progress(phase, done, total)

    # -- inputs --------------------------------------------------------------------

    def load_plugins(self) -> tuple[dict[str, str], dict[str, Path]]:
        from tenfra.pluginmanager import get_plugin_manager

        folder = self.options.plugins_dir
        if folder is None:
            folder = self.options.recipes.parent / "plugins"
        manager = get_plugin_manager()
        files = scan_folder(folder, "site plugin file")
        if files:
            manager.load_site_plugins(folder)
        # Pin the installed plugins and this repository's site plugins only
        # (another repository's site plugins may be loaded in this process).
        own = {f"{SITE_PREFIX}{stem}" for stem in site_plugin_names(folder)}
        pins = {
            name: version
            for name, version in manager.pins().items()
            if not name.startswith(SITE_PREFIX) or name in own
        }
        return pins, files

    def load_inventory(self) -> Inventory:
        inventory = load_inventory_file(self.options.inventory)
        try:
            inventory.load_all_sources()
        except InventoryError as exc:
            raise CompileError(
                f"A compile-time vars source failed, so no release was written: "
                f"{exc.message.rstrip('.')}."
            ) from None
        if not inventory.hosts:
            raise CompileError(
                f"{self.options.inventory}: the inventory has no hosts, so there is "
                "nothing to compile; add hosts or host sources."
            )
        return inventory

    def match(
        self, inventory: Inventory, recipes: Mapping[str, RecipeInfo]
    ) -> tuple[dict[str, list[str]], dict[str, frozenset[str]]]:
        """Targeted recipe ids per host, and otherHosts per recipe."""
        from tenfra.patterns import compile_pattern

        per_host: dict[str, list[str]] = {host: [] for host in inventory.hosts}
        others: dict[str, frozenset[str]] = {}
        for recipe_id, info in recipes.items():
            if info.phase not in PHASES:
                raise CompileError(
                    f"{info.location('phase')}: recipe {recipe_id!r} has phase "
                    f"{info.phase!r}; use 'runtime' or 'bootstrap'."
                )
            if info.targets is not None:
                pattern = compile_pattern(
                    info.targets, location=info.location("targets")
                )
                hosts = inventory.match(pattern)
                if not hosts:
                    self.warn(
                        f"{info.location('targets')}: the targets of recipe "
                        f"{recipe_id!r} ({_describe_patterns(info.targets)}) match "
                        "no host of the inventory; check the pattern."
                    )
                for host in hosts:
                    per_host[host].append(recipe_id)
            if info.other_hosts is not None:
                pattern = compile_pattern(
                    info.other_hosts, location=info.location("otherHosts")
                )
                selected = frozenset(inventory.match(pattern))
                if not selected:
                    self.warn(
                        f"{info.location('otherHosts')}: the otherHosts of recipe "
                        f"{recipe_id!r} ({_describe_patterns(info.other_hosts)}) "
                        "match no host of the inventory; check the pattern."
                    )
                others[recipe_id] = selected
        return per_host, others

    # -- the run -------------------------------------------------------------------

    def run(self) -> CompileResult:
        started = time.monotonic()
        options = self.options
        if options.signing_key is None and not options.unsigned:
            raise CompileError(
                "No signing key: pass --signing-key FILE (or set TENFRA_SIGNING_KEY) "
                "with a key made by 'tenfra keygen', or --unsigned to write a "
                "release that agents refuse unless told to accept unsigned releases."
            )
        fs, root = storage.open_fs(options.out)

        pins, site_files = self.load_plugins()
        inventory = self.load_inventory()
        logger.info(
            "inventory: %d hosts loaded after %.1f s",
            len(inventory.hosts),
            time.monotonic() - started,
        )
        recipes = load_recipe_infos(options.recipes)
        logger.info(
            "recipes: %d loaded after %.1f s", len(recipes), time.monotonic() - started
        )
        order = check_dependencies(recipes)
        closure = _closures(recipes, order)
        position = {recipe_id: index for index, recipe_id in enumerate(order)}
        per_host, others = self.match(inventory, recipes)
        hosts = inventory.hosts
        for host in hosts:
            if "/" in host or not storage.is_safe_key(host):
                raise CompileError(
                    f"{options.inventory}: host name {host!r} cannot name a bundle "
                    "file (it contains '/', a backslash or a NUL byte, or is '.' or "
                    "'..'); rename the host."
                )
        logger.info("%d hosts, %d recipes", len(hosts), len(recipes))

        # Assets and site plugins: hashed once.
        asset_paths: dict[str, Path] = {}
        folder_cache: dict[Path, dict[str, str]] = {}
        recipe_assets: dict[str, dict[str, str]] = {}
        for recipe_id, info in recipes.items():
            assets_dir = info.assets_dir
            if assets_dir is None:
                recipe_assets[recipe_id] = {}
                continue
            if assets_dir not in folder_cache:
                names: dict[str, str] = {}
                for name, path in scan_folder(assets_dir, "asset").items():
                    digest = _file_digest(path)
                    names[name] = digest
                    asset_paths.setdefault(digest, path)
                folder_cache[assets_dir] = names
            recipe_assets[recipe_id] = folder_cache[assets_dir]
            check_assets(info, recipe_assets[recipe_id])
        site_plugins: dict[str, str] = {}
        for name, path in site_files.items():
            digest = _file_digest(path)
            site_plugins[name] = digest
            asset_paths.setdefault(digest, path)

        # Every recipe serialised once.
        fragments = {
            recipe_id: _json(recipe_id, "a recipe id")
            + b":"
            + _json(
                {
                    "path": info.path,
                    "source": info.text,
                    "assets": recipe_assets[recipe_id],
                },
                f"recipe {recipe_id!r}",
            )
            for recipe_id, info in recipes.items()
        }

        # Every host's own vars serialised once (they also serve otherHosts).
        # Vars from sources that look like templates are listed in dataVars,
        # so the agent uses them as data.
        vars_json: dict[str, bytes] = {}
        data_json: dict[str, bytes] = {}
        for count, host in enumerate(hosts, 1):
            vars_json[host] = _json(
                inventory.host_vars(host), f"The vars of host {host!r}"
            )
            data_names = inventory.data_var_names(host)
            if data_names:
                data_json[host] = _json(data_names, "dataVars")
            self._tick("vars", count, len(hosts))

        # Hosts grouped by the recipes they receive.
        by_set: dict[tuple[str, ...], list[str]] = {}
        for host in hosts:
            by_set.setdefault(tuple(per_host[host]), []).append(host)

        site_digests = set(site_plugins.values())
        constants = {
            "format": _json(rel.FORMAT, "format"),
            "plugins": _json(pins, "plugin pins"),
            "sitePlugins": _json(site_plugins, "site plugins"),
        }

        def recipe_set(targeted: tuple[str, ...]) -> _RecipeSet:
            ids: set[str] = set()
            for recipe_id in targeted:
                ids |= closure[recipe_id]
            chosen = sorted(ids)
            digests = set(site_digests)
            for recipe_id in chosen:
                digests.update(recipe_assets[recipe_id].values())
            ordered = sorted(targeted, key=position.__getitem__)
            run = {
                phase: [r for r in ordered if recipes[r].phase == phase]
                for phase in PHASES
            }
            other_hosts: set[str] = set()
            for recipe_id in chosen:
                other_hosts |= others.get(recipe_id, frozenset())
            return _RecipeSet(
                recipes=b"{" + b",".join(fragments[r] for r in chosen) + b"}",
                assets=_json(sorted(digests), "assets"),
                run=_json(run, "run"),
                other_hosts=b"{"
                + b",".join(
                    _json(other, "host") + b":" + vars_json[other]
                    for other in sorted(other_hosts)
                )
                + b"}",
            )

        groups_json: dict[tuple[str, ...], bytes] = {}

        def host_groups(host: str) -> bytes:
            names = tuple(inventory.groups_of(host))
            found = groups_json.get(names)
            if found is None:
                found = groups_json[names] = _json(list(names), "groups")
            return found

        def stable_pieces(host: str, shared: _RecipeSet) -> dict[str, bytes]:
            pieces = {
                **constants,
                "assets": shared.assets,
                "groups": host_groups(host),
                "host": _json(host, "host"),
                "otherHosts": shared.other_hosts,
                "recipes": shared.recipes,
                "run": shared.run,
                "vars": vars_json[host],
            }
            data = data_json.get(host)
            if data is not None:
                pieces["dataVars"] = data
            return pieces

        def bundles() -> Iterator[tuple[str, dict[str, bytes]]]:
            for targeted, members in by_set.items():
                shared = recipe_set(targeted)
                for host in members:
                    yield host, stable_pieces(host, shared)

        # First pass: content digests and the release id.
        content: dict[str, str] = {}
        for count, (host, pieces) in enumerate(bundles(), 1):
            content[host] = rel.sha256_hex(_object(pieces.items()))
            self._tick("hashed", count, len(hosts))
        release_id = rel.compute_release_id(dict(sorted(content.items())), pins)
        logger.info(
            "release id %s computed after %.1f s",
            release_id,
            time.monotonic() - started,
        )

        refs = rel._list_releases(fs, root, complete=False)  # one listing
        latest = rel._read_latest(fs, root)
        newest = max(
            [r.sequence for r in refs] + ([latest.sequence] if latest else []),
            default=0,
        )
        key = options.signing_key
        key_id = rel.key_id(key) if key is not None else None
        if latest is not None and latest.release == release_id:
            logger.info("release %s is unchanged", release_id)
            return CompileResult(
                release=release_id,
                sequence=latest.sequence,
                name=latest.name,
                url=options.out,
                hosts=len(hosts),
                recipes=len(recipes),
                assets=len(asset_paths),
                assets_written=0,
                bytes_written=0,
                unchanged=True,
                signed=key is not None,
                key_id=key_id,
                warnings=tuple(self.warnings),
                seconds=time.monotonic() - started,
                manifest={},
            )
        sequence = options.sequence if options.sequence is not None else newest + 1
        if sequence < 1:
            raise CompileError(f"--sequence must be 1 or more, not {sequence}.")
        if latest is not None and sequence <= latest.sequence:
            raise CompileError(
                f"Sequence {sequence} is not greater than the latest release "
                f"{latest.name} at {options.out}; agents reject older sequences. "
                f"Use --sequence {latest.sequence + 1} or leave --sequence out."
            )
        created = creation_time(options.created)
        expires = created + options.valid_for
        name = rel.release_name(sequence, release_id)
        volatile = {
            "created": _json(rel.format_time(created), "created"),
            "expires": _json(rel.format_time(expires), "expires"),
            "release": _json(release_id, "release"),
            "sequence": _json(sequence, "sequence"),
        }

        # Assets: stored once by digest, skipped when already there.
        assets_folder = storage.join(root, rel.ASSETS)
        present = set(storage.list_dir(fs, assets_folder))
        written_assets = 0
        with storage.BatchWriter(fs) as writer:
            for digest, path in sorted(asset_paths.items()):
                if digest in present:
                    continue
                data = path.read_bytes()
                if rel.sha256_hex(data) != digest:
                    raise CompileError(
                        f"{path} changed while the release was being compiled; "
                        "compile again."
                    )
                writer.put(storage.join(assets_folder, digest), data)
                written_assets += 1
            asset_bytes = writer.bytes

        # Second pass: bundles and signatures.
        folder = storage.join(root, storage.safe_key(rel.RELEASES, name))
        host_digests: dict[str, str] = {}
        with storage.BatchWriter(fs) as writer:
            for count, (host, pieces) in enumerate(bundles(), 1):
                data = _object({**pieces, **volatile}.items())
                key_path = storage.join(
                    folder, storage.safe_key(rel.HOSTS, f"{host}.json")
                )
                writer.put(key_path, data)
                if key is not None:
                    writer.put(key_path + rel.SIG, rel.sign(data, key))
                host_digests[host] = rel.digest_of(data)
                self._tick("written", count, len(hosts))
            bundle_bytes = writer.bytes

        manifest: dict[str, Any] = {
            "format": rel.FORMAT,
            "release": release_id,
            "sequence": sequence,
            "created": rel.format_time(created),
            "expires": rel.format_time(expires),
            "plugins": pins,
            "hosts": dict(sorted(host_digests.items())),
            "assets": sorted(asset_paths),
            "keyId": key_id,
        }
        manifest_bytes = rel.canonical_json(manifest)
        manifest_path = storage.join(folder, rel.MANIFEST)
        if key is not None:
            storage.write_atomic(
                fs, manifest_path + rel.SIG, rel.sign(manifest_bytes, key)
            )
        storage.write_atomic(fs, manifest_path, manifest_bytes, durable=True)
        storage.write_atomic(
            fs, storage.join(root, rel.LATEST), f"{name}\n".encode(), durable=True
        )
        logger.info("wrote release %s to %s", name, options.out)

        from tenfra.pluginmanager import get_plugin_manager

        try:
            get_plugin_manager().hook.tenfra_after_compile(
                manifest=manifest, url=options.out
            )
        except Exception as exc:  # the release is written; report, do not fail
            self.warn(
                f"A plugin's tenfra_after_compile hook failed after release {name} "
                f"was written: {type(exc).__name__}: {exc}."
            )
        return CompileResult(
            release=release_id,
            sequence=sequence,
            name=name,
            url=options.out,
            hosts=len(hosts),
            recipes=len(recipes),
            assets=len(asset_paths),
            assets_written=written_assets,
            bytes_written=asset_bytes + bundle_bytes + len(manifest_bytes),
            unchanged=False,
            signed=key is not None,
            key_id=key_id,
            warnings=tuple(self.warnings),
            seconds=time.monotonic() - started,
            manifest=manifest,
        )


def compile_release(
    options: CompileOptions, progress: Optional[Progress] = None
) -> CompileResult:
    """Compile a release as ``options`` says; see the module docstring.

    ``progress(phase, done, total)`` is called every ``options.progress_every``
    hosts.  Raises :class:`~tenfra.errors.UserError` subclasses for problems
    in the inputs and :class:`~tenfra.errors.StorageError` when ``out``
    cannot be written.
    """
    return Compiler(options, progress).run()


# -- rollback by re-issue -------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReissueOptions:
    """What :func:`reissue_release` needs (``tenfra compile --rollback-to``)."""

    out: str = attrs.field(metadata={"description": "The storage URL of releases."})
    source: str = attrs.field(
        metadata={"description": "The old release: folder name, sequence or id."}
    )
    signing_key: Ed25519PrivateKey = attrs.field(
        metadata={"description": "The ed25519 key that signs the new release."}
    )
    trusted_keys: tuple[Any, ...] = attrs.field(
        default=(),
        metadata={
            "description": "Public keys the old release may be signed with "
            "(default: the signing key's own)."
        },
    )
    sequence: Optional[int] = attrs.field(
        default=None,
        metadata={"description": "Release sequence (default: latest at out + 1)."},
    )
    created: Optional[dt.datetime] = attrs.field(
        default=None, metadata={"description": "Creation time (default: now)."}
    )
    valid_for: dt.timedelta = attrs.field(
        default=DEFAULT_VALID_FOR,
        metadata={"description": "How long agents accept the release."},
    )


def reissue_release(options: ReissueOptions) -> CompileResult:
    """Publish the content of an older release again under a new, higher sequence.

    Agents refuse any sequence lower than the one they applied (no downgrade,
    no replay), so returning hosts to older content means a *new* release:
    the old release is read and fully verified (manifest signature, every
    bundle's digest and signature, assets present), then every bundle is
    written again with the next sequence, fresh ``created``/``expires`` times
    and fresh signatures; the release id stays the old one, since it names the
    content.  The old release itself stays rejected by agents that moved past
    it.  Raises :class:`VerificationError` when the old release does not
    verify, :class:`CompileError` for an impossible sequence.
    """
    from tenfra.errors import VerificationError

    started = time.monotonic()
    key = options.signing_key
    trusted = list(options.trusted_keys) or [key.public_key()]
    fs, root = storage.open_fs(options.out)
    old = rel.open_release(options.out, options.source)
    what = f"Release {old.name} at {options.out}"
    try:
        manifest = rel.verify_manifest(
            old.manifest_bytes, old.manifest_signature, trusted
        )
    except VerificationError as exc:
        raise VerificationError(
            f"{what} cannot be re-issued: {exc} Pass the key it was signed with as "
            "--public-key, or recompile its sources at that commit instead."
        ) from None
    if (
        manifest["sequence"] != old.ref.sequence
        or manifest["release"] != old.ref.release
    ):
        raise VerificationError(
            f"{what} holds a manifest for sequence {manifest['sequence']} and "
            f"release {manifest['release']}, not its folder name; it was not "
            "re-issued."
        )
    present = set(storage.list_dir(fs, storage.join(root, rel.ASSETS)))
    missing = sorted(set(manifest["assets"]) - present)
    if missing:
        raise CompileError(
            f"{what} references {len(missing)} asset(s) no longer in storage "
            f"(first: {missing[0]}); recompile its sources instead of re-issuing."
        )
    bundles: dict[str, dict[str, Any]] = {}
    for host, digest in sorted(manifest["hosts"].items()):
        data, signature = old.bundle(host)
        if rel.digest_of(data) != digest:
            raise VerificationError(
                f"The bundle of host {host!r} in release {old.name} does not match "
                "the manifest's digest; it was changed after signing and is not "
                "re-issued."
            )
        rel.check_signature(
            data, signature, trusted, what=f"The bundle for host {host!r} in {old.name}"
        )
        bundle = json.loads(data.decode("utf-8"))
        if bundle.get("host") != host or bundle.get("release") != manifest["release"]:
            raise VerificationError(
                f"The bundle file of host {host!r} in {old.name} belongs to host "
                f"{bundle.get('host')!r} of release {bundle.get('release')!r}; the "
                "release is not re-issued."
            )
        bundles[host] = bundle

    refs = rel._list_releases(fs, root, complete=False)
    latest = rel._read_latest(fs, root)
    newest = max(
        [r.sequence for r in refs] + ([latest.sequence] if latest else []), default=0
    )
    sequence = options.sequence if options.sequence is not None else newest + 1
    if sequence <= newest:
        raise CompileError(
            f"Sequence {sequence} is not greater than the newest sequence {newest} at "
            f"{options.out}; a re-issued release needs a higher sequence, so that "
            f"agents take it. Use --sequence {newest + 1} or leave --sequence out."
        )
    created = creation_time(options.created)
    expires = created + options.valid_for
    name = rel.release_name(sequence, manifest["release"])
    folder = storage.join(root, storage.safe_key(rel.RELEASES, name))
    host_digests: dict[str, str] = {}
    with storage.BatchWriter(fs) as writer:
        for host, bundle in bundles.items():
            bundle.update(
                sequence=sequence,
                created=rel.format_time(created),
                expires=rel.format_time(expires),
            )
            data = rel.canonical_json(bundle)
            path = storage.join(folder, storage.safe_key(rel.HOSTS, f"{host}.json"))
            writer.put(path, data)
            writer.put(path + rel.SIG, rel.sign(data, key))
            host_digests[host] = rel.digest_of(data)
        written = writer.bytes
    new_manifest = {
        **manifest,
        "sequence": sequence,
        "created": rel.format_time(created),
        "expires": rel.format_time(expires),
        "hosts": host_digests,
        "keyId": rel.key_id(key),
    }
    manifest_bytes = rel.canonical_json(new_manifest)
    manifest_path = storage.join(folder, rel.MANIFEST)
    storage.write_atomic(fs, manifest_path + rel.SIG, rel.sign(manifest_bytes, key))
    storage.write_atomic(fs, manifest_path, manifest_bytes, durable=True)
    storage.write_atomic(
        fs, storage.join(root, rel.LATEST), f"{name}\n".encode(), durable=True
    )
    logger.warning(
        "re-issued the content of release %s as %s at %s", old.name, name, options.out
    )
    warnings: list[str] = []
    from tenfra.pluginmanager import get_plugin_manager

    try:
        get_plugin_manager().hook.tenfra_after_compile(
            manifest=new_manifest, url=options.out
        )
    except Exception as exc:  # the release is written; report, do not fail
        warnings.append(
            f"A plugin's tenfra_after_compile hook failed after release {name} was "
            f"written: {type(exc).__name__}: {exc}."
        )
    return CompileResult(
        release=manifest["release"],
        sequence=sequence,
        name=name,
        url=options.out,
        hosts=len(bundles),
        recipes=len({r for b in bundles.values() for r in b.get("recipes", {})}),
        assets=len(manifest["assets"]),
        assets_written=0,
        bytes_written=written + len(manifest_bytes),
        unchanged=False,
        signed=True,
        key_id=rel.key_id(key),
        warnings=tuple(warnings),
        seconds=time.monotonic() - started,
        manifest=new_manifest,
    )


# -- diff ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class HostDiff:
    """What changes for one host between two releases."""

    host: str
    status: str  # "added", "removed", "changed" or "unchanged"
    recipes: Mapping[str, list[str]] = attrs.field(factory=dict)  # id -> details
    vars: Mapping[str, list[str]] = attrs.field(factory=dict)  # added/removed/changed
    other_hosts: Mapping[str, list[str]] = attrs.field(factory=dict)
    groups: Mapping[str, list[str]] = attrs.field(factory=dict)
    site_plugins: Mapping[str, list[str]] = attrs.field(factory=dict)
    assets: Mapping[str, list[str]] = attrs.field(factory=dict)  # added/removed
    run: Optional[Mapping[str, Any]] = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "recipes": dict(self.recipes),
            "vars": dict(self.vars),
            "otherHosts": dict(self.other_hosts),
            "groups": dict(self.groups),
            "sitePlugins": dict(self.site_plugins),
            "assets": dict(self.assets),
            "run": self.run,
        }


def _keys_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    result = {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(k for k in set(old) & set(new) if old[k] != new[k]),
    }
    return {kind: names for kind, names in result.items() if names}


def _recipe_changes(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> dict[str, list[str]]:
    changes: dict[str, list[str]] = {}
    for recipe_id in sorted(set(old) | set(new)):
        if recipe_id not in old:
            changes[recipe_id] = ["added"]
            continue
        if recipe_id not in new:
            changes[recipe_id] = ["removed"]
            continue
        before, after = old[recipe_id], new[recipe_id]
        details: list[str] = []
        if before.get("path") != after.get("path"):
            details.append(f"moved from {before.get('path')} to {after.get('path')}")
        if before.get("source") != after.get("source"):
            details.append("source changed")
        for kind, names in _keys_diff(
            before.get("assets", {}), after.get("assets", {})
        ).items():
            details.extend(f"asset {name} {kind}" for name in names)
        if details:
            changes[recipe_id] = details
    return changes


def diff_bundles(
    host: str, old: Optional[Mapping[str, Any]], new: Optional[Mapping[str, Any]]
) -> HostDiff:
    """Compare one host's bundles (parsed); None means the host has none."""
    if old is None and new is None:
        return HostDiff(host=host, status="unchanged")
    if old is None or new is None:
        present = new if old is None else old
        assert present is not None
        return HostDiff(
            host=host,
            status="added" if old is None else "removed",
            recipes={
                r: ["added" if old is None else "removed"]
                for r in sorted(present["recipes"])
            },
        )
    recipes = _recipe_changes(old["recipes"], new["recipes"])
    variables = _keys_diff(old["vars"], new["vars"])
    other_hosts = _keys_diff(old["otherHosts"], new["otherHosts"])
    groups = {
        kind: names
        for kind, names in {
            "added": sorted(set(new["groups"]) - set(old["groups"])),
            "removed": sorted(set(old["groups"]) - set(new["groups"])),
        }.items()
        if names
    }
    site_plugins = _keys_diff(old["sitePlugins"], new["sitePlugins"])
    assets = {
        kind: names
        for kind, names in {
            "added": sorted(set(new["assets"]) - set(old["assets"])),
            "removed": sorted(set(old["assets"]) - set(new["assets"])),
        }.items()
        if names
    }
    run = None if old["run"] == new["run"] else {"old": old["run"], "new": new["run"]}
    changed = any((recipes, variables, other_hosts, groups, site_plugins, assets, run))
    return HostDiff(
        host=host,
        status="changed" if changed else "unchanged",
        recipes=recipes,
        vars=variables,
        other_hosts=other_hosts,
        groups=groups,
        site_plugins=site_plugins,
        assets=assets,
        run=run,
    )


def _load_bundle(release: rel.Release, host: str) -> Optional[dict[str, Any]]:
    if host not in release.manifest.get("hosts", {}):
        return None
    try:
        data, _signature = release.bundle(host)
    except FileNotFoundError:
        raise CompileError(
            f"Release {release.name} lists host {host!r} but has no bundle for it; "
            "the release is incomplete. Recompile it."
        ) from None
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CompileError(
            f"The bundle of host {host!r} in release {release.name} is not valid "
            "JSON; the release is damaged. Recompile it."
        ) from None
    if not isinstance(value, dict):
        raise CompileError(
            f"The bundle of host {host!r} in release {release.name} is not an object."
        )
    return value


def diff_releases(
    old: rel.Release, new: rel.Release, hosts: Optional[Sequence[str]] = None
) -> list[HostDiff]:
    """Per host, what changes from ``old`` to ``new`` (every host, or ``hosts``)."""
    names = set(old.manifest.get("hosts", {})) | set(new.manifest.get("hosts", {}))
    if hosts:
        unknown = [h for h in hosts if h not in names]
        if unknown:
            raise CompileError(
                f"Host {unknown[0]!r} is in neither release ({old.name}, {new.name}); "
                "check the name with 'tenfra inventory list'."
            )
        names = set(hosts)
    return [
        diff_bundles(host, _load_bundle(old, host), _load_bundle(new, host))
        for host in sorted(names)
    ]


def verify_release(
    release: rel.Release, public_key: Any, *, allow_unsigned: bool = False
) -> None:
    """Check a release's manifest and that every bundle matches its digest.

    Used by ``tenfra diff --public-key``; raises :class:`VerificationError`.
    """
    manifest = rel.verify_manifest(
        release.manifest_bytes,
        release.manifest_signature,
        public_key,
        allow_unsigned=allow_unsigned,
    )
    from tenfra.errors import VerificationError

    for host, digest in manifest["hosts"].items():
        data, signature = release.bundle(host)
        if rel.digest_of(data) != digest:
            raise VerificationError(
                f"The bundle of host {host!r} in release {release.name} does not "
                "match the digest in the manifest; the release was changed after "
                "signing."
            )
        rel.check_signature(
            data,
            signature,
            public_key,
            what=f"The bundle for host {host!r}",
            allow_unsigned=allow_unsigned,
        )


__all__ = [
    "CompileOptions",
    "CompileResult",
    "HostDiff",
    "RecipeInfo",
    "ReissueOptions",
    "compile_release",
    "diff_bundles",
    "diff_releases",
    "reissue_release",
    "verify_release",
]
