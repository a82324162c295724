"""The inventory: hosts, groups, inventory vars, and the host/vars source contracts.

An ``inventory.yaml`` has five optional keys::

    hosts:          # a list of names, or a mapping name -> {vars, groups}
    hostSources:    # a list of {<host source>: options}
    groups:         # name -> a pattern, a list of patterns, or
                    #         {hosts, groups, vars, varsSources}
    vars:           # inventory-wide vars
    varsSources:    # a list of {<vars source>: options}

:func:`load_inventory` reads the file, runs the host sources, resolves the
groups (groups may include groups; cycles are errors) and returns an
:class:`Inventory`.  Vars sources are loaded lazily, the first time a host's
vars are asked for.

Vars layers of one host, low to high precedence (:meth:`Inventory.var_layers`):

1. inventory ``vars``;
2. inventory ``varsSources``, in the order written;
3. group vars: groups ordered by depth (a group included by another group is
   one level deeper than the group including it), then by name; each group's
   ``vars`` come before its ``varsSources``;
4. host vars: the ``hosts`` section first, then host sources in order.

Plugins add host sources (subclass :class:`HostSource`) and vars sources
(subclass :class:`VarsSource`) through ``tenfra_add_host_sources`` and
``tenfra_add_vars_sources``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Sequence, TypeVar, Union

import attrs

from tenfra.convert import structure, type_name_of
from tenfra.errors import InventoryError, Location, TenfraError, ValidationError
from tenfra.patterns import (
    SPECIAL_GROUPS,
    Pattern,
    check_name,
    compile_pattern,
    expand_ranges,
)
from tenfra.variables import DataVars
from tenfra.yamlio import (
    PathItem,
    load_yaml,
    load_yaml_file,
    locate,
    locate_key,
    to_plain,
)

logger = logging.getLogger(__name__)

DEFAULT_INVENTORY = "inventory.yaml"

T = TypeVar("T")


# -- contracts for plugins -----------------------------------------------------------


@attrs.frozen(kw_only=True)
class HostRecord:
    """One host as a host source (or the ``hosts`` section) defines it."""

    name: str
    vars: Mapping[str, Any] = attrs.field(factory=dict)
    groups: tuple[str, ...] = ()
    origin: str = "inventory"  # where the record came from, for explanations
    data: bool = False  # vars loaded by a host source: never templates


@attrs.frozen(kw_only=True)
class SourceContext:
    """What a host source or vars source gets besides its options.

    :ivar base_dir: Relative paths in options are resolved against this folder
        (the inventory's or the recipe's folder).
    :ivar label: Names the source in messages: ``inventory.yaml:12:5: host
        source 'http'``.
    :ivar environ: The environment to read (``os.environ`` unless a test or
        the agent passes another mapping).
    """

    base_dir: Path
    label: str
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ))

    def path(self, relative: str) -> Path:
        """``relative`` resolved against :attr:`base_dir` (absolute paths stay)."""
        return (self.base_dir / os.path.expanduser(relative)).resolve()

    def display(self, path: Path) -> str:
        """``path`` relative to :attr:`base_dir` when inside it, for messages."""
        try:
            return str(path.relative_to(self.base_dir))
        except ValueError:
            return str(path)

    def fail(self, problem: str) -> InventoryError:
        """An :class:`InventoryError` prefixed with this source's label."""
        return InventoryError(f"{self.label}: {problem}")


class HostSource:
    """Base class of host sources; register subclasses in ``tenfra_add_host_sources``.

    Class attributes: ``name`` (the key in ``hostSources``), ``Options`` (a
    frozen attrs class, structured strictly from the YAML), ``free_form``
    (the option a plain string sets, as in ``- file: hosts.yaml``).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[Any]]
    free_form: ClassVar[Optional[str]] = None

    def load(self, options: Any, ctx: SourceContext) -> list[HostRecord]:
        """Return the hosts, with optional vars and groups; raise InventoryError."""
        raise NotImplementedError


class VarsSource:
    """Base class of vars sources; register subclasses in ``tenfra_add_vars_sources``.

    Same class attributes as :class:`HostSource`; :meth:`load` returns a
    mapping of variable names to plain values.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[Any]]
    free_form: ClassVar[Optional[str]] = None

    def load(self, options: Any, ctx: SourceContext) -> Mapping[str, Any]:
        """Return the vars; raise InventoryError with ``ctx.label`` on failure."""
        raise NotImplementedError


@attrs.frozen(kw_only=True)
class SourceSpec:
    """One parsed entry of ``hostSources`` or ``varsSources``."""

    kind: str  # "host source" or "vars source"
    name: str
    cls: type[Any]
    options: Any
    location: Location
    key: str  # e.g. "varsSources[0]"

    @property
    def label(self) -> str:
        return f"{self.location}: {self.kind} {self.name!r}"

    def describe(self) -> str:
        """A short description for layer names: ``file vars/common.yaml``."""
        free = getattr(self.cls, "free_form", None)
        detail = getattr(self.options, free, None) if free else None
        return f"{self.name} {detail}" if isinstance(detail, str) else self.name


def parse_source_entry(
    entry: Any,
    kind: str,
    registry: Any,
    *,
    source: str,
    root: Any,
    path: Sequence[PathItem],
) -> SourceSpec:
    """Check ``{name: options}`` (or ``{name: "free form"}``) against ``registry``."""
    location = locate(root, path, source)
    key = _dotted(path)
    if not isinstance(entry, dict) or len(entry) != 1:
        known = ", ".join(registry) or "none installed"
        raise ValidationError(
            f"{key}: each {kind} is a mapping with exactly one key naming the "
            f"{kind} ({known}), for example '- file: vars/common.yaml'; got "
            f"{_shape(entry)}",
            location,
        )
    ((name, value),) = entry.items()
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        import difflib

        known_names = list(registry)
        close = difflib.get_close_matches(str(name), known_names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValidationError(
            f"{key}: unknown {kind} {name!r}{hint}; installed {kind}s are: "
            f"{', '.join(known_names) or 'none'}. Install the plugin that "
            "provides it, or fix the name",
            location,
        )
    free_form = getattr(cls, "free_form", None)
    data = value
    if isinstance(value, str) and free_form:
        data = {free_form: value}
    elif value is None:
        data = {}
    options = structure(
        data,
        cls.Options,
        source=source,
        root=root,
        base_path=tuple(path) + ((name,) if data is value else ()),
        what=f"the options of {kind} {name!r}",
    )
    return SourceSpec(
        kind=kind, name=name, cls=cls, options=options, location=location, key=key
    )


def run_vars_source(
    spec: SourceSpec, base_dir: Path, environ: Optional[Mapping[str, str]] = None
) -> dict[str, Any]:
    """Load one vars source and check that it gave a mapping with string keys."""
    ctx = SourceContext(
        base_dir=base_dir,
        label=spec.label,
        environ=dict(os.environ) if environ is None else environ,
    )
    result = _call_source(spec, ctx)
    if not isinstance(result, Mapping):
        raise ctx.fail(
            f"returned {type_name_of(result)} instead of a mapping of vars; "
            "the vars document must be a mapping at its top level."
        )
    for name in result:
        if not isinstance(name, str):
            raise ctx.fail(
                f"var name {name!r} is not a string; quote it in the vars document."
            )
    return dict(result)


def load_vars(
    entry: Any,
    *,
    source: str,
    base_dir: Path,
    root: Any = None,
    path: Sequence[PathItem] = (),
    environ: Optional[Mapping[str, str]] = None,
    registry: Any = None,
) -> dict[str, Any]:
    """Parse and load one ``varsSources`` entry (used by recipes and ``load``)."""
    if registry is None:
        from tenfra.pluginmanager import get_plugin_manager

        registry = get_plugin_manager().vars_sources
    spec = parse_source_entry(
        entry,
        "vars source",
        registry,
        source=source,
        root=entry if root is None else root,
        path=path,
    )
    return run_vars_source(spec, base_dir, environ)


def _call_source(spec: SourceSpec, ctx: SourceContext) -> Any:
    try:
        return spec.cls().load(spec.options, ctx)
    except TenfraError:
        raise
    except Exception as exc:
        raise ctx.fail(
            f"failed with {type(exc).__name__}: {exc}. This is a bug in the plugin "
            f"providing {spec.kind} {spec.name!r}; report it to its authors."
        ) from exc


# -- parsing hosts -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class HostEntry:
    """The mapping form of one host: ``web-01: {vars: {...}, groups: [...]}``."""

    vars: dict[str, Any] = attrs.field(
        factory=dict, metadata={"description": "Vars of this host."}
    )
    groups: list[str] = attrs.field(
        factory=list, metadata={"description": "Groups this host joins."}
    )


@attrs.frozen(kw_only=True)
class NamedHostEntry:
    """The list form of one host with vars: ``- {name: web-01, vars: {...}}``."""

    name: str = attrs.field(metadata={"description": "The host name."})
    vars: dict[str, Any] = attrs.field(
        factory=dict, metadata={"description": "Vars of this host."}
    )
    groups: list[str] = attrs.field(
        factory=list, metadata={"description": "Groups this host joins."}
    )


def parse_hosts(
    data: Any,
    *,
    source: str,
    root: Any = None,
    path: Sequence[PathItem] = (),
    origin: Optional[str] = None,
) -> list[HostRecord]:
    """Host records from a ``hosts`` value (also the payload of host sources).

    Accepts a list of names or ``{name, vars, groups}`` mappings, or a mapping
    of names to ``null`` or ``{vars, groups}``.  Closed ranges in names are
    expanded (``web-[01:03]``).  Duplicate names are errors.  ``origin``
    names where the records come from; by default each record's position.
    """
    root = data if root is None else root
    path = tuple(path)
    records: list[HostRecord] = []
    if data is None:
        return records
    if isinstance(data, list):
        for index, item in enumerate(data):
            here = (*path, index)
            if isinstance(item, str):
                entry = NamedHostEntry(name=item)
            elif isinstance(item, dict):
                entry = _structure_host(
                    item,
                    NamedHostEntry,
                    subject=_dotted(here) or "hosts",
                    here=here,
                    root=root,
                    source=source,
                )
            else:
                raise ValidationError(
                    f"{_dotted(here) or 'hosts'}: expected a host name or a mapping "
                    f"with 'name' (and 'vars', 'groups'), got {_shape(item)}",
                    locate(root, here, source),
                )
            records.extend(
                _records(
                    entry.name,
                    location=locate(root, here, source),
                    variables=entry.vars,
                    groups=entry.groups,
                    source=source,
                    root=root,
                    here=here,
                    origin=origin,
                )
            )
    elif isinstance(data, dict):
        for name, value in data.items():
            here = (*path, name)
            if not isinstance(name, str):
                raise ValidationError(
                    f"{_dotted(path) or 'hosts'}: host name {name!r} is not a "
                    "string; quote it",
                    locate(root, here, source),
                )
            host = (
                HostEntry()
                if value is None
                else _structure_host(
                    value,
                    HostEntry,
                    subject=f"host {name!r}",
                    here=here,
                    root=root,
                    source=source,
                )
            )
            records.extend(
                _records(
                    name,
                    location=locate_key(root, path, name, source),
                    variables=host.vars,
                    groups=host.groups,
                    source=source,
                    root=root,
                    here=here,
                    origin=origin,
                )
            )
    else:
        raise ValidationError(
            f"{_dotted(path) or 'hosts'}: expected a list of host names or a mapping "
            f"of host names to their vars, got {_shape(data)}",
            locate(root, path, source),
        )
    seen: set[str] = set()
    for record in records:
        if record.name in seen:
            raise ValidationError(
                f"{_dotted(path) or 'hosts'}: host {record.name!r} is defined twice; "
                "keep one definition and merge its vars",
                locate(root, path, source),
            )
        seen.add(record.name)
    return records


def _structure_host(
    value: Any,
    cls: type[T],
    *,
    subject: str,
    here: tuple[PathItem, ...],
    root: Any,
    source: str,
) -> T:
    try:
        return structure(value, cls, source=source, root=root, base_path=here)
    except ValidationError as exc:
        raise ValidationError(f"{subject}: {exc.problem}", exc.location) from None


def _records(
    name: str,
    *,
    location: Location,
    variables: Mapping[str, Any],
    groups: Sequence[str],
    source: str,
    root: Any,
    here: tuple[PathItem, ...],
    origin: Optional[str],
) -> list[HostRecord]:
    try:
        names = expand_ranges(name)
    except InventoryError as exc:
        raise ValidationError(exc.message.rstrip("."), location) from None
    for host in names:
        problem = check_name(host, "host")
        if problem:
            raise ValidationError(problem, location)
    for group in groups:
        problem = check_name(group, "group")
        if problem:
            raise ValidationError(problem, location)
        if group in SPECIAL_GROUPS:
            raise ValidationError(
                f"host {name!r} joins the special group {group!r}, which tenfra "
                "computes itself; remove it from 'groups'",
                location,
            )
    plain = to_plain(dict(variables))
    if origin is None:
        origin = str(location)
    return [
        HostRecord(name=host, vars=plain, groups=tuple(groups), origin=origin)
        for host in names
    ]


# -- the inventory file ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InventoryFile:
    """The top level of ``inventory.yaml`` (values checked further when loaded)."""

    hosts: Any = attrs.field(
        default=None,
        metadata={"description": "Host names, or a mapping of names to vars/groups."},
    )
    host_sources: list[Any] = attrs.field(
        factory=list, metadata={"description": "Host sources to run, in order."}
    )
    groups: dict[str, Any] = attrs.field(
        factory=dict,
        metadata={"description": "Groups: a pattern, a list, or a full mapping."},
    )
    vars: dict[str, Any] = attrs.field(
        factory=dict, metadata={"description": "Vars of every host."}
    )
    vars_sources: list[Any] = attrs.field(
        factory=list, metadata={"description": "Vars sources for every host."}
    )


@attrs.frozen(kw_only=True)
class GroupSpec:
    """The full form of a group."""

    hosts: Any = attrs.field(
        default=None,
        metadata={"description": "A host pattern or a list of patterns."},
    )
    groups: list[str] = attrs.field(
        factory=list, metadata={"description": "Groups whose hosts join this one."}
    )
    vars: dict[str, Any] = attrs.field(
        factory=dict, metadata={"description": "Vars of the group's hosts."}
    )
    vars_sources: list[Any] = attrs.field(
        factory=list, metadata={"description": "Vars sources of the group's hosts."}
    )


@attrs.define(kw_only=True)
class Group:
    """A resolved group."""

    name: str
    pattern: Optional[Pattern] = None
    includes: list[str] = attrs.field(factory=list)
    vars: dict[str, Any] = attrs.field(factory=dict)
    vars_sources: list[SourceSpec] = attrs.field(factory=list)
    location: Optional[Location] = None
    members: frozenset[str] = frozenset()
    depth: int = 0

    def children(self, defined: Collection[str]) -> set[str]:
        """Groups this group includes (by name in its pattern, or in ``groups``)."""
        found = set(self.includes)
        if self.pattern is not None:
            found |= {
                t.text
                for t in self.pattern.union
                if t.kind == "name" and t.text in defined
            }
        return found


Layer = tuple[str, Mapping[str, Any]]


class Inventory:
    """Hosts, groups and inventory vars, resolved; see the module docstring."""

    def __init__(
        self,
        *,
        records: Sequence[HostRecord] = (),
        groups: Optional[dict[str, Group]] = None,
        variables: Optional[Mapping[str, Any]] = None,
        vars_sources: Sequence[SourceSpec] = (),
        path: Optional[Path] = None,
        environ: Optional[Mapping[str, str]] = None,
        vars_location: Optional[Location] = None,
    ) -> None:
        self.path = path
        self.base_dir = path.parent if path is not None else Path.cwd()
        self.source = str(path) if path is not None else "<inventory>"
        self.vars: dict[str, Any] = dict(variables or {})
        self.vars_sources = list(vars_sources)
        self.vars_location = vars_location
        self.environ = environ
        self._records: dict[str, list[HostRecord]] = {}
        for record in records:
            self._records.setdefault(record.name, []).append(record)
        self._hosts = list(self._records)
        self.host_set = frozenset(self._hosts)
        self.groups: dict[str, Group] = dict(groups or {})
        self._source_cache: dict[int, dict[str, Any]] = {}
        self._atom_cache: dict[str, frozenset[str]] = {}
        self._add_record_groups()
        self._resolve_groups()
        self._host_groups: dict[str, list[str]] = {h: [] for h in self._hosts}
        for group in self.ordered_groups():
            for host in group.members:
                self._host_groups[host].append(group.name)
        self._grouped = frozenset(h for h, gs in self._host_groups.items() if gs)

    # -- building ------------------------------------------------------------------

    @classmethod
    def from_hosts(
        cls,
        hosts: Sequence[str],
        groups: Optional[Mapping[str, Sequence[str]]] = None,
    ) -> Inventory:
        """A small in-memory inventory (tests, ``tenfra run`` without a file)."""
        return cls(
            records=[HostRecord(name=h) for h in hosts],
            groups={
                name: Group(name=name, pattern=compile_pattern(list(members)))
                for name, members in (groups or {}).items()
            },
        )

    def _add_record_groups(self) -> None:
        for records in self._records.values():
            for record in records:
                for group_name in record.groups:
                    self.groups.setdefault(group_name, Group(name=group_name))
        clash = sorted(self.host_set & set(self.groups))
        if clash:
            group = self.groups[clash[0]]
            where = f"{group.location}: " if group.location else f"{self.source}: "
            raise InventoryError(
                f"{where}{clash[0]!r} is both a host and a group name; a pattern "
                "could not tell them apart. Rename the group (for example "
                f"'{clash[0]}s') or the host."
            )

    def _resolve_groups(self) -> None:
        done: dict[str, frozenset[str]] = {}
        stack: list[str] = []
        record_members: dict[str, set[str]] = {}
        for host, records in self._records.items():
            for record in records:
                for group_name in record.groups:
                    record_members.setdefault(group_name, set()).add(host)
        inventory = self

        class _Resolving:
            hosts = inventory._hosts
            host_set = inventory.host_set

            def members(self, name: str) -> Optional[frozenset[str]]:
                return resolve(name)

        universe = _Resolving()

        def resolve(name: str) -> Optional[frozenset[str]]:
            if name == "all":
                return self.host_set
            group = self.groups.get(name)
            if group is None:
                return None
            if name in done:
                return done[name]
            if name in stack:
                cycle = " -> ".join([*stack[stack.index(name) :], name])
                where = f"{group.location}: " if group.location else ""
                raise InventoryError(
                    f"{where}groups include each other in a cycle: {cycle}. "
                    "Remove one of these references."
                )
            stack.append(name)
            selected = set(record_members.get(name, ()))
            if group.pattern is not None:
                selected |= group.pattern.select_set(universe)
            for child in group.includes:
                selected |= resolve(child) or frozenset()
            stack.pop()
            done[name] = frozenset(selected)
            return done[name]

        for name, group in self.groups.items():
            self._check_references(group)
            group.members = resolve(name) or frozenset()
        depths: dict[str, int] = {}
        parents: dict[str, set[str]] = {name: set() for name in self.groups}
        for name, group in self.groups.items():
            for child in group.children(self.groups):
                parents[child].add(name)

        def depth(name: str) -> int:
            if name not in depths:
                depths[name] = 1 + max((depth(p) for p in parents[name]), default=-1)
            return depths[name]

        for name, group in self.groups.items():
            group.depth = depth(name)

    def _check_references(self, group: Group) -> None:
        where = group.location or Location(self.source)
        names = list(group.includes)
        if group.pattern is not None:
            names += [t.text for t in group.pattern.terms if t.kind == "name"]
        for name in names:
            if name in ("grouped", "ungrouped"):
                raise ValidationError(
                    f"group {group.name!r} refers to the special group {name!r}, "
                    "which depends on every group; list its hosts or groups instead",
                    where,
                )
            if name == "all" or name in self.host_set or name in self.groups:
                continue
            import difflib

            close = difflib.get_close_matches(name, [*self.groups, *self._hosts], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValidationError(
                f"group {group.name!r} names {name!r}, which is neither a host nor "
                f"a group{hint}; add it under 'hosts' or fix the spelling",
                where,
            )
        for name in group.includes:
            if name == "all":
                continue
            if name not in self.groups:
                raise ValidationError(
                    f"group {group.name!r} includes {name!r}, which is not a group",
                    where,
                )

    # -- reading -------------------------------------------------------------------

    @property
    def hosts(self) -> list[str]:
        """Every host name, in the order they were first defined."""
        return list(self._hosts)

    def __contains__(self, host: object) -> bool:
        return host in self.host_set

    def __len__(self) -> int:
        return len(self._hosts)

    def members(self, group: str) -> Optional[frozenset[str]]:
        """The hosts of ``group`` (``all``, ``grouped``, ``ungrouped`` included)."""
        if group == "all":
            return self.host_set
        if group == "grouped":
            return self._grouped
        if group == "ungrouped":
            return self.host_set - self._grouped
        found = self.groups.get(group)
        return found.members if found is not None else None

    def ordered_groups(self) -> list[Group]:
        """Groups in precedence order: by depth, then by name."""
        return sorted(self.groups.values(), key=lambda g: (g.depth, g.name))

    def groups_of(self, host: str, *, special: bool = False) -> list[str]:
        """The groups of ``host`` in precedence order (lowest first).

        With ``special=True`` the list starts with ``all`` and ``grouped`` or
        ``ungrouped``.
        """
        self._require(host)
        groups = list(self._host_groups[host])
        if special:
            return ["all", "grouped" if groups else "ungrouped", *groups]
        return groups

    def match(self, pattern: Union[str, Sequence[str], Pattern]) -> list[str]:
        """Hosts selected by ``pattern``, in inventory order."""
        compiled = pattern if isinstance(pattern, Pattern) else compile_pattern(pattern)
        return compiled.select(self, self._atom_cache)

    def unknown_names(self, pattern: Union[str, Sequence[str], Pattern]) -> list[str]:
        """Plain names in ``pattern`` that are neither hosts nor groups (typos).

        ``check`` and the compiler use this to warn about targets that can never
        match, since :meth:`match` just leaves them out.
        """
        compiled = pattern if isinstance(pattern, Pattern) else compile_pattern(pattern)
        return [
            term.text
            for term in compiled.terms
            if term.kind == "name"
            and term.text not in self.host_set
            and term.text not in self.groups
            and term.text not in SPECIAL_GROUPS
        ]

    def records(self, host: str) -> list[HostRecord]:
        """Every definition of ``host`` (the ``hosts`` section, host sources)."""
        self._require(host)
        return list(self._records[host])

    def var_layers(self, host: str) -> list[Layer]:
        """The inventory vars layers of ``host``, lowest precedence first.

        Each layer is ``(label, mapping)``; empty layers are left out.  Vars
        sources are loaded on first use and cached.
        """
        self._require(host)
        layers: list[Layer] = []
        where = f" ({self.vars_location})" if self.vars_location else ""
        layers.append((f"inventory vars{where}", self.vars))
        for spec in self.vars_sources:
            layers.append(
                (
                    f"inventory {spec.key} {spec.describe()}",
                    DataVars(self._load_source(spec)),
                )
            )
        for name in self._host_groups[host]:
            group = self.groups[name]
            at = f" ({group.location})" if group.location else ""
            layers.append((f"group {name} vars{at}", group.vars))
            for index, spec in enumerate(group.vars_sources):
                layers.append(
                    (
                        f"group {name} varsSources[{index}] {spec.describe()}",
                        DataVars(self._load_source(spec)),
                    )
                )
        for record in self._records[host]:
            values = DataVars(record.vars) if record.data else record.vars
            layers.append((f"host vars ({record.origin})", values))
        return [(label, values) for label, values in layers if values]

    def data_var_names(self, host: str) -> list[str]:
        """Vars of ``host`` whose value comes from a source and looks like a
        template: the agent must use them as they are (bundle ``dataVars``)."""
        from tenfra.templating import has_template

        data: dict[str, bool] = {}
        merged: dict[str, Any] = {}
        for _label, values in self.var_layers(host):
            for key, value in values.items():
                data[key] = isinstance(values, DataVars)
                merged[key] = value
        return sorted(
            k for k, is_data in data.items() if is_data and has_template(merged[k])
        )

    def host_vars(self, host: str) -> dict[str, Any]:
        """The inventory vars of ``host`` merged (a higher layer replaces a key)."""
        merged: dict[str, Any] = {}
        for _label, values in self.var_layers(host):
            merged.update(values)
        return merged

    def load_all_sources(self) -> None:
        """Load every vars source now (the compiler does this once, up front)."""
        for spec in self.vars_sources:
            self._load_source(spec)
        for group in self.groups.values():
            for spec in group.vars_sources:
                self._load_source(spec)

    def _load_source(self, spec: SourceSpec) -> dict[str, Any]:
        key = id(spec)
        found = self._source_cache.get(key)
        if found is None:
            found = to_plain(run_vars_source(spec, self.base_dir, self.environ))
            self._source_cache[key] = found
        return found

    def _require(self, host: str) -> None:
        if host not in self.host_set:
            import difflib

            close = difflib.get_close_matches(host, self._hosts, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else "list the hosts with 'tenfra inventory list'."
            )
            raise InventoryError(
                f"Host {host!r} is not in the inventory {self.source}; {hint}"
            )


# -- loading -------------------------------------------------------------------------


def load_inventory(
    path: Union[str, Path],
    *,
    environ: Optional[Mapping[str, str]] = None,
    plugin_manager: Any = None,
) -> Inventory:
    """Read ``path``, run its host sources and resolve its groups."""
    path = Path(path)
    display = str(path)
    if path.is_dir():
        path = path / DEFAULT_INVENTORY
        display = str(path)
    if not path.is_file():
        raise InventoryError(
            f"{display}: inventory file not found; create it, or pass another file "
            "with --inventory."
        )
    data = load_yaml_file(path, display)
    return inventory_from_data(
        data, source=display, path=path, environ=environ, plugin_manager=plugin_manager
    )


def load_inventory_text(
    text: str,
    source: str = DEFAULT_INVENTORY,
    *,
    base_dir: Optional[Path] = None,
    environ: Optional[Mapping[str, str]] = None,
    plugin_manager: Any = None,
) -> Inventory:
    """Like :func:`load_inventory` for YAML text (tests, generated inventories)."""
    data = load_yaml(text, source)
    path = (base_dir or Path.cwd()) / source
    return inventory_from_data(
        data, source=source, path=path, environ=environ, plugin_manager=plugin_manager
    )


def inventory_from_data(
    data: Any,
    *,
    source: str,
    path: Path,
    environ: Optional[Mapping[str, str]] = None,
    plugin_manager: Any = None,
) -> Inventory:
    """Build an :class:`Inventory` from parsed YAML (ruamel data keeps positions)."""
    if data is None:
        data = {}
    spec = structure(data, InventoryFile, source=source, what="the inventory")
    if plugin_manager is None and (
        spec.host_sources or spec.vars_sources or _any_group_sources(spec.groups)
    ):
        from tenfra.pluginmanager import get_plugin_manager

        plugin_manager = get_plugin_manager()
    records = parse_hosts(
        data.get("hosts"),
        source=source,
        root=data,
        path=("hosts",),
    )
    base_dir = path.parent
    for index, entry in enumerate(spec.host_sources):
        records.extend(
            _run_host_source(
                entry,
                index,
                plugin_manager=plugin_manager,
                source=source,
                root=data,
                base_dir=base_dir,
                environ=environ,
            )
        )
    vars_sources = [
        parse_source_entry(
            entry,
            "vars source",
            plugin_manager.vars_sources,
            source=source,
            root=data,
            path=("varsSources", index),
        )
        for index, entry in enumerate(spec.vars_sources)
    ]
    groups = {
        name: _parse_group(name, value, source, data, plugin_manager)
        for name, value in (data.get("groups") or {}).items()
    }
    vars_location = locate(data, ("vars",), source) if "vars" in data else None
    return Inventory(
        records=records,
        groups=groups,
        variables=to_plain(spec.vars),
        vars_sources=vars_sources,
        path=path,
        environ=environ,
        vars_location=vars_location,
    )


def _any_group_sources(groups: Mapping[str, Any]) -> bool:
    return any(isinstance(v, dict) and v.get("varsSources") for v in groups.values())


def _run_host_source(
    entry: Any,
    index: int,
    *,
    plugin_manager: Any,
    source: str,
    root: Any,
    base_dir: Path,
    environ: Optional[Mapping[str, str]],
) -> list[HostRecord]:
    spec = parse_source_entry(
        entry,
        "host source",
        plugin_manager.host_sources,
        source=source,
        root=root,
        path=("hostSources", index),
    )
    ctx = SourceContext(
        base_dir=base_dir,
        label=spec.label,
        environ=dict(os.environ) if environ is None else environ,
    )
    result = _call_source(spec, ctx)
    if not isinstance(result, list) or not all(
        isinstance(r, HostRecord) for r in result
    ):
        raise ctx.fail(
            "did not return a list of host records; this is a bug in the plugin "
            f"providing host source {spec.name!r}."
        )
    origin = f"{spec.key} {spec.describe()}"
    logger.info("%s: %d hosts", spec.label, len(result))
    return [attrs.evolve(r, origin=origin, data=True) for r in result]


def _parse_group(
    name: Any, value: Any, source: str, root: Any, plugin_manager: Any
) -> Group:
    path: tuple[PathItem, ...] = ("groups", name)
    location = locate(root, path, source)
    if not isinstance(name, str):
        raise ValidationError(
            f"group name {name!r} is not a string; quote it", location
        )
    problem = check_name(name, "group")
    if problem:
        raise ValidationError(problem, location)
    if name in SPECIAL_GROUPS:
        raise ValidationError(
            f"{name!r} is a special group that tenfra computes (all, grouped, "
            "ungrouped); put vars for every host under the top-level 'vars', and "
            "pick another name for this group",
            location,
        )
    if isinstance(value, (str, list)):
        return Group(
            name=name,
            pattern=compile_pattern(
                _patterns(value, source, root, path), location=location
            ),
            location=location,
        )
    if isinstance(value, dict):
        spec = structure(
            value,
            GroupSpec,
            source=source,
            root=root,
            base_path=path,
            what=f"group {name!r}",
        )
        pattern = None
        if spec.hosts is not None:
            pattern_path = (*path, "hosts")
            pattern = compile_pattern(
                _patterns(spec.hosts, source, root, pattern_path),
                location=locate(root, pattern_path, source),
            )
        vars_sources = []
        for index, entry in enumerate(spec.vars_sources):
            vars_sources.append(
                parse_source_entry(
                    entry,
                    "vars source",
                    plugin_manager.vars_sources,
                    source=source,
                    root=root,
                    path=(*path, "varsSources", index),
                )
            )
        return Group(
            name=name,
            pattern=pattern,
            includes=list(spec.groups),
            vars=to_plain(spec.vars),
            vars_sources=vars_sources,
            location=location,
        )
    if value is None:
        return Group(name=name, location=location)
    raise ValidationError(
        f"groups.{name}: expected a host pattern, a list of patterns, or a mapping "
        f"with hosts, groups, vars and varsSources; got {_shape(value)}",
        location,
    )


def _patterns(
    value: Any, source: str, root: Any, path: tuple[PathItem, ...]
) -> Union[str, list[str]]:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ValidationError(
                    f"{_dotted((*path, index))}: expected a host pattern (a string), "
                    f"got {_shape(item)}; quote it",
                    locate(root, (*path, index), source),
                )
        return [str(v) for v in value]
    raise ValidationError(
        f"{_dotted(path)}: expected a host pattern or a list of patterns, got "
        f"{_shape(value)}",
        locate(root, path, source),
    )


def _shape(value: Any) -> str:
    if isinstance(value, dict) and value:
        keys = ", ".join(repr(str(k)) for k in list(value)[:4])
        return f"a mapping with keys {keys}"
    return type_name_of(value)


def _dotted(path: Sequence[PathItem]) -> str:
    text = ""
    for item in path:
        if isinstance(item, int):
            text += f"[{item}]"
        else:
            text += ("." if text else "") + str(item)
    return text


# -- documents for sources: files and HTTP --------------------------------------------


def _check_format(_instance: Any, attribute: Any, value: str) -> None:
    if value not in ("auto", "json", "yaml"):
        raise ValueError(f"format must be 'auto', 'json' or 'yaml', got {value!r}")


def _check_url(_instance: Any, _attribute: Any, value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {value!r}")


def _check_timeout(_instance: Any, _attribute: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {value}")


def _check_retries(_instance: Any, _attribute: Any, value: int) -> None:
    if value < 0:
        raise ValueError(f"retries must be 0 or more, got {value}")


@attrs.frozen(kw_only=True)
class HttpOptions:
    """Options shared by the ``http`` host source and the ``http`` vars source."""

    url: str = attrs.field(
        validator=_check_url,
        metadata={"description": "The URL to GET (http:// or https://)."},
    )
    headers: dict[str, str] = attrs.field(
        factory=dict, metadata={"description": "Extra request headers."}
    )
    token: Optional[str] = attrs.field(
        default=None,
        metadata={"description": "Bearer token sent as 'Authorization: Bearer'."},
    )
    token_env: Optional[str] = attrs.field(
        default=None,
        metadata={"description": "Environment variable holding the bearer token."},
    )
    username: Optional[str] = attrs.field(
        default=None, metadata={"description": "User name for basic auth."}
    )
    password: Optional[str] = attrs.field(
        default=None, metadata={"description": "Password for basic auth."}
    )
    password_env: Optional[str] = attrs.field(
        default=None,
        metadata={"description": "Environment variable holding the password."},
    )
    timeout: float = attrs.field(
        default=10.0,
        validator=_check_timeout,
        metadata={"description": "Seconds to wait for the whole request."},
    )
    retries: int = attrs.field(
        default=2,
        validator=_check_retries,
        metadata={"description": "Retries on connection errors and 502/503/504."},
    )
    format: str = attrs.field(
        default="auto",
        validator=_check_format,
        metadata={
            "description": "json, yaml, or auto (from Content-Type, then the body)."
        },
    )
    ca_cert: Optional[str] = attrs.field(
        default=None,
        metadata={"description": "A CA bundle file to verify the server with."},
    )

    def __attrs_post_init__(self) -> None:
        if (self.token or self.token_env) and (self.username or self.password):
            raise ValueError(
                "use either a bearer token (token, tokenEnv) or basic auth "
                "(username, password), not both"
            )
        if self.token and self.token_env:
            raise ValueError("give token or tokenEnv, not both")
        if self.password and self.password_env:
            raise ValueError("give password or passwordEnv, not both")
        if (self.password or self.password_env) and not self.username:
            raise ValueError("a password needs a username")


def _env_secret(ctx: SourceContext, name: str, what: str) -> str:
    value = ctx.environ.get(name)
    if not value:
        raise ctx.fail(
            f"the environment variable {name!r} that holds the {what} is not set "
            "or empty; export it before running tenfra."
        )
    return value


def safe_url(url: str) -> str:
    """``url`` without user info or query string, for messages and labels."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def fetch_document(options: HttpOptions, ctx: SourceContext) -> Any:
    """GET ``options.url`` and parse the body as JSON or YAML (plain data).

    Errors (timeouts, refused connections, HTTP errors, malformed bodies) are
    :class:`InventoryError` naming the source and the URL, without secrets.
    """
    import urllib3

    headers = dict(options.headers)
    token = options.token
    if options.token_env:
        token = _env_secret(ctx, options.token_env, "bearer token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if options.username:
        password = options.password or ""
        if options.password_env:
            password = _env_secret(ctx, options.password_env, "password")
        headers.update(
            urllib3.util.make_headers(basic_auth=f"{options.username}:{password}")
        )
    headers.setdefault("Accept", "application/json, application/yaml;q=0.9, */*;q=0.1")
    shown = safe_url(options.url)
    pool_kwargs: dict[str, Any] = {}
    if options.ca_cert:
        pool_kwargs["ca_certs"] = str(ctx.path(options.ca_cert))
    retries = urllib3.Retry(
        total=options.retries,
        read=0,
        status_forcelist=(502, 503, 504),
        backoff_factor=0.2,
        raise_on_status=False,
    )
    try:
        with urllib3.PoolManager(**pool_kwargs) as pool:
            response = pool.request(
                "GET",
                options.url,
                headers=headers,
                timeout=urllib3.Timeout(total=options.timeout),
                retries=retries,
                preload_content=True,
            )
    except urllib3.exceptions.HTTPError as exc:
        raise ctx.fail(_transport_problem(exc, shown, options.timeout)) from None
    logger.info("GET %s -> %s", shown, response.status)
    if response.status != 200:
        hint = "check the URL"
        if response.status in (401, 403):
            hint = "check the credentials (token, username, password)"
        elif response.status >= 500:
            hint = "the server failed; try again later or ask its owners"
        raise ctx.fail(
            f"GET {shown} answered HTTP {response.status} {response.reason or ''}"
            f"; {hint}.".replace(" ;", ";")
        )
    content_type = (response.headers.get("Content-Type") or "").lower()
    try:
        text = response.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ctx.fail(
            f"the response of {shown} is not UTF-8 text (byte {exc.start}); the "
            "source must answer JSON or YAML."
        ) from None
    return parse_document(
        text, source=shown, ctx=ctx, fmt=options.format, content_type=content_type
    )


def _transport_problem(exc: Exception, shown: str, timeout: float) -> str:
    import urllib3

    reason = getattr(exc, "reason", None) or exc
    # NewConnectionError subclasses ConnectTimeoutError: test it first.
    if isinstance(reason, urllib3.exceptions.SSLError):
        return (
            f"GET {shown} failed the TLS check ({reason}); give the server's CA "
            "with 'caCert'."
        )
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return (
            f"GET {shown} could not connect ({_short(reason)}); check the host "
            "name and port, and that the server is running."
        )
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return (
            f"GET {shown} timed out after {timeout:g} s; check that the server is "
            "up and answering, or raise 'timeout'."
        )
    return f"GET {shown} failed: {_short(reason)}; check the URL and the network."


def _short(exc: Any) -> str:
    text = str(exc)
    if ": " in text and text.startswith("<"):
        text = text.split(": ", 1)[1]
    return text


def parse_document(
    text: str,
    *,
    source: str,
    ctx: SourceContext,
    fmt: str = "auto",
    content_type: str = "",
) -> Any:
    """Parse ``text`` as JSON or YAML; ``auto`` looks at the type, then the text."""
    if fmt == "auto":
        if "json" in content_type:
            fmt = "json"
        elif "yaml" in content_type:
            fmt = "yaml"
        elif source.endswith(".json"):
            fmt = "json"
        elif source.endswith((".yaml", ".yml")):
            fmt = "yaml"
        else:
            fmt = "json" if text.lstrip().startswith(("{", "[")) else "yaml"
    if fmt == "json":
        import json

        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ctx.fail(
                f"{source} did not return valid JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno}; fix the server's answer or set 'format'."
            ) from None
    try:
        return to_plain(load_yaml(text, source))
    except TenfraError as exc:
        raise ctx.fail(
            f"{exc.message.rstrip('.')}; fix the document or set 'format'."
        ) from None


def read_document(path: Path, display: str, ctx: SourceContext) -> Any:
    """Load a YAML or JSON file with positions kept (ruamel data)."""
    if not path.is_file():
        raise ctx.fail(
            f"file {display} not found (looked at {path}); check the path, which "
            "is relative to the inventory's folder."
        )
    try:
        return load_yaml_file(path, display)
    except TenfraError as exc:
        raise ctx.fail(str(exc)) from None
